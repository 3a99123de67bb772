"""Files and batches for the emulator: uploads, downloads, and batch jobs that really run.

Paths (classic with ``?api-version=``, and v1): ``POST/GET /openai/files``, ``GET/DELETE
/openai/files/{id}``, ``GET /openai/files/{id}/content``, ``POST/GET /openai/batches``, ``GET
/openai/batches/{id}``, ``POST /openai/batches/{id}/cancel``. Shapes follow Azure's 2024-10-21
authoring spec: an upload answers 201 with a ``Location``; a batch create answers 200 (201 on
v1); errors use the Microsoft REST shape ``{"error": {"code": "invalidPayload", ...}}``.

A batch moves ``validating -> in_progress -> finalizing -> completed`` (or ``failed`` when the
input file breaks Azure's rules, with ``errors.data[].line``); ``cancel`` moves it through
``cancelling`` to ``cancelled``. Each phase lasts ``step_seconds``; the lines are answered
during ``in_progress`` (at least ``line_seconds`` each) by the emulator's own chat replies, so
``request_counts`` grow while a client polls. Output and error files are real files of purpose
``batch_output``. Time advances when a client looks: no background task, so the emulator works
the same served by uvicorn or called in-process.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import _schema
from .emulator import FILTER_PROMPT_TRIGGER, RecordedRequest, _text, _tokens

if TYPE_CHECKING:
    from .emulator import Emulator

__all__ = ["BatchService", "StoredBatch", "StoredFile"]

UPLOAD_PURPOSES = frozenset({"fine-tune", "fine-tune-results", "assistants", "assistants_output", "batch", "evals"})
BATCH_ENDPOINTS = frozenset({"/chat/completions", "/v1/chat/completions"})
FIRST_BATCH_VERSION = "2024-07-01"
MAX_LINES = 100_000
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


def _err(status: int, code: str, message: str, target: str | None = None) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if target:
        error["target"] = target
    return JSONResponse({"error": error}, status_code=status)


def _strip_v1(url: str) -> str:
    return url[3:] if url.startswith("/v1/") else url


@dataclass
class StoredFile:
    """One file the emulated resource holds; ``pending`` until ``ready_at`` (clock seconds).

    ``generate`` (with ``size``) makes a file that is never held whole: its content is produced
    chunk by chunk on each download (a batch output of hundreds of megabytes, for memory tests).
    """

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int = field(default_factory=lambda: int(time.time()))
    ready_at: float = 0.0
    generate: Callable[[], Iterator[bytes]] | None = None
    size: int = 0

    def status(self, now: float) -> str:
        return "processed" if now >= self.ready_at else "pending"

    def obj(self, now: float) -> dict[str, Any]:
        return {"object": "file", "id": self.id, "bytes": self.size if self.generate else len(self.content), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": self.status(now),
                "status_details": None}  # fmt: skip


@dataclass
class StoredBatch:
    """One batch job and where it is in its run."""

    obj: dict[str, Any]
    phase_started: float
    lines: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    done: int = 0
    outputs: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class BatchService:
    """The files and batches of one emulated resource.

    Args:
        emulator: the :class:`~modelyard.testing.Emulator` whose deployments answer the lines.
        step_seconds: how long ``validating``, ``finalizing`` and ``cancelling`` last, and the
            least time ``in_progress`` lasts.
        line_seconds: time per line while ``in_progress``.
        file_seconds: how long an upload stays ``pending`` before it is ``processed`` (Azure
            imports files asynchronously; a batch on a pending file is refused). Default 0.
        clock: a monotonic clock in seconds (tests may drive their own).

    Attributes:
        files: every file, by id. batches: every batch, by id, oldest first.
        latency: seconds every files and batches call waits (once recorded) before answering:
            fault injection, as ``Faults.latency`` for a deployment. ``reset()`` sets it to 0.
    """

    def __init__(
        self,
        emulator: Emulator,
        *,
        step_seconds: float = 0.2,
        line_seconds: float = 0.01,
        file_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.emulator = emulator
        self.step_seconds = step_seconds
        self.line_seconds = line_seconds
        self.file_seconds = file_seconds
        self.clock = clock
        self.latency = 0.0
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, StoredBatch] = {}
        self._lock = threading.RLock()

    def reset(self) -> None:
        """Forget every file and batch."""
        with self._lock:
            self.files.clear()
            self.batches.clear()
            self.latency = 0.0

    def routes(self) -> list[Route]:
        """The Starlette routes, classic and v1."""
        routes = []
        for root in ("/openai", "/openai/v1"):
            routes += [
                Route(f"{root}/files", self._files, methods=["GET", "POST"]),
                Route(f"{root}/files/{{file_id}}", self._file, methods=["GET", "DELETE"]),
                Route(f"{root}/files/{{file_id}}/content", self._content, methods=["GET"]),
                Route(f"{root}/batches", self._batches, methods=["GET", "POST"]),
                Route(f"{root}/batches/{{batch_id}}", self._batch, methods=["GET"]),
                Route(f"{root}/batches/{{batch_id}}/cancel", self._cancel, methods=["POST"]),
            ]
        return routes

    # ------------------------------------------------------------------ checks

    def _checks(self, request: Request, *, batches: bool) -> Response | None:
        v1 = request.url.path.startswith("/openai/v1/")
        denied = self.emulator._check_auth(request, v1) or self.emulator._check_version(request, v1)
        if denied is not None:
            return denied
        version = request.query_params.get("api-version", "")
        if batches and not v1 and version[:10] < FIRST_BATCH_VERSION:
            return _err(404, "404", "Resource not found")
        return None

    async def _open(self, request: Request, *, batches: bool) -> tuple[Any, Response | None]:
        body, bad = await self.emulator._record(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        return body, self._checks(request, batches=batches) or bad

    # ------------------------------------------------------------------ files

    async def _files(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._upload(request)
        _, denied = await self._open(request, batches=False)
        if denied is not None:
            return denied
        purpose = request.query_params.get("purpose")
        with self._lock:
            now = self.clock()
            data = [f.obj(now) for f in self.files.values() if purpose is None or f.purpose == purpose]
        v1 = request.url.path.startswith("/openai/v1/")
        if not v1 and not {"after", "limit"} & set(request.query_params):
            return JSONResponse({"object": "list", "data": data[::-1]})  # GA: every file, no paging
        return self._bad_limit(request) or JSONResponse(self._page(data[::-1], request))

    async def _upload(self, request: Request) -> Response:
        form = await request.form()
        upload = form.get("file")
        purpose = form.get("purpose")
        content = await upload.read() if isinstance(upload, UploadFile) else b""
        recorded: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        if isinstance(upload, UploadFile):
            recorded["file"] = {"filename": upload.filename, "content_type": upload.content_type,
                                "bytes": len(content), "content": content.decode("utf-8", "replace")}  # fmt: skip
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.emulator.requests.append(
            RecordedRequest(request.method, request.url.path, dict(request.query_params), headers, recorded,
                            raw_path=request.scope.get("raw_path", b"").decode("latin-1"))
        )
        await form.close()
        denied = self._checks(request, batches=False)
        if denied is not None:
            return denied
        if not isinstance(upload, UploadFile):
            return _err(400, "invalidPayload", "The multipart field 'file' is required.", "file")
        if purpose not in UPLOAD_PURPOSES:
            return _err(400, "invalidPayload", f"The purpose {purpose!r} is not supported for uploads.", "purpose")
        now = self.clock()
        stored = StoredFile(id=f"file-{uuid.uuid4().hex}", filename=upload.filename or "file", purpose=str(purpose),
                            content=content, ready_at=now + self.file_seconds)  # fmt: skip
        with self._lock:
            self.files[stored.id] = stored
        location = str(request.url.replace(query="")).rstrip("/") + f"/{stored.id}"
        return JSONResponse(stored.obj(now), status_code=201, headers={"Location": location})

    def _find_file(self, file_id: str) -> StoredFile | Response:
        with self._lock:
            found = self.files.get(file_id)
        if found is None:
            return _err(404, "notFound", f"File with id={file_id} was not found.", "file_id")
        return found

    async def _file(self, request: Request) -> Response:
        _, denied = await self._open(request, batches=False)
        if denied is not None:
            return denied
        found = self._find_file(request.path_params["file_id"])
        if isinstance(found, Response):
            return found
        if request.method == "DELETE":
            with self._lock:
                self.files.pop(found.id, None)
            return JSONResponse({"object": "file", "id": found.id, "deleted": True})
        return JSONResponse(found.obj(self.clock()))

    async def _content(self, request: Request) -> Response:
        _, denied = await self._open(request, batches=False)
        if denied is not None:
            return denied
        found = self._find_file(request.path_params["file_id"])
        if isinstance(found, Response):
            return found
        if found.generate is not None:
            return StreamingResponse(found.generate(), media_type="application/octet-stream",
                                     headers={"content-length": str(found.size)})  # fmt: skip
        return Response(found.content, media_type="application/octet-stream")

    # ------------------------------------------------------------------ batches

    async def _batches(self, request: Request) -> Response:
        body, denied = await self._open(request, batches=True)
        if denied is not None:
            return denied
        if request.method == "GET":
            with self._lock:
                for b in self.batches.values():
                    self._advance(b)
                data = [dict(b.obj) for b in self.batches.values()][::-1]
            return self._bad_limit(request) or JSONResponse(self._page(data, request))
        if not isinstance(body, dict):
            return _err(400, "invalidPayload", "The request body must be a JSON object.")
        invalid = _schema.first_error("BatchCreateRequest", body)  # the authoring spec's, as Azure checks it
        if invalid is not None:
            return _err(400, "invalidPayload", invalid.message, invalid.param)
        file_id = body.get("input_file_id")
        if not isinstance(file_id, str) or not file_id:
            return _err(400, "invalidPayload", "'input_file_id' is required.", "input_file_id")
        endpoint = body.get("endpoint")
        if endpoint not in BATCH_ENDPOINTS:
            return _err(400, "invalidPayload", f"The endpoint {endpoint!r} is not supported; use /chat/completions.",
                        "endpoint")  # fmt: skip
        if body.get("completion_window") != "24h":
            return _err(400, "invalidPayload", "The completion_window must be '24h'.", "completion_window")
        metadata = body.get("metadata")
        if metadata is not None and not (
            isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
        ):
            return _err(400, "invalidPayload", "'metadata' must map strings to strings.", "metadata")
        found = self._find_file(file_id)
        if isinstance(found, Response):
            return found
        if found.purpose != "batch":
            return _err(400, "invalidPayload", f"File {file_id} has purpose {found.purpose!r}, not 'batch'.",
                        "input_file_id")  # fmt: skip
        if found.status(self.clock()) != "processed":
            return _err(400, "invalidPayload", f"File {file_id} is not processed yet; wait for status 'processed'.",
                        "input_file_id")  # fmt: skip
        now = int(time.time())
        obj: dict[str, Any] = {
            "id": f"batch_{uuid.uuid4()}", "object": "batch", "endpoint": endpoint, "errors": None,
            "input_file_id": file_id, "completion_window": "24h", "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
            "expires_at": now + 86_400, "finalizing_at": None, "completed_at": None, "failed_at": None,
            "expired_at": None, "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": metadata,
        }  # fmt: skip
        with self._lock:
            self.batches[obj["id"]] = StoredBatch(obj=obj, phase_started=self.clock())
        v1 = request.url.path.startswith("/openai/v1/")
        return JSONResponse(dict(obj), status_code=201 if v1 else 200)

    def _find_batch(self, batch_id: str) -> StoredBatch | Response:
        found = self.batches.get(batch_id)
        if found is None:
            return _err(404, "notFound", f"Batch with id={batch_id} was not found.", "batch_id")
        return found

    async def _batch(self, request: Request) -> Response:
        _, denied = await self._open(request, batches=True)
        if denied is not None:
            return denied
        with self._lock:
            found = self._find_batch(request.path_params["batch_id"])
            if isinstance(found, Response):
                return found
            self._advance(found)
            return JSONResponse(dict(found.obj))

    async def _cancel(self, request: Request) -> Response:
        _, denied = await self._open(request, batches=True)
        if denied is not None:
            return denied
        with self._lock:
            found = self._find_batch(request.path_params["batch_id"])
            if isinstance(found, Response):
                return found
            self._advance(found)
            status = found.obj["status"]
            if status in TERMINAL:
                return _err(400, "unexpectedEntityState", f"The batch is {status} and cannot be cancelled.")
            if status != "cancelling":
                found.obj.update(status="cancelling", cancelling_at=int(time.time()))
                found.phase_started = self.clock()
            return JSONResponse(dict(found.obj))

    @staticmethod
    def _bad_limit(request: Request) -> Response | None:
        """The spec's ``limit`` is an int32: anything else is a 400 naming it (not a silent default)."""
        limit = request.query_params.get("limit")
        if limit is None or (limit.lstrip("-").isdigit() and -(2**31) <= int(limit) < 2**31):
            return None
        return _err(400, "invalidPayload", f"The query parameter 'limit' must be an integer, got {limit!r}.", "limit")

    @staticmethod
    def _page(data: list[dict[str, Any]], request: Request) -> dict[str, Any]:
        after = request.query_params.get("after")
        try:
            limit = int(request.query_params.get("limit", "20"))
        except ValueError:
            limit = 20
        if after is not None:
            ids = [d["id"] for d in data]
            data = data[ids.index(after) + 1 :] if after in ids else []
        page = data[: max(1, limit)]
        return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None, "has_more": len(data) > len(page)}  # fmt: skip

    # ------------------------------------------------------------------ running

    def _advance(self, b: StoredBatch) -> None:
        """Bring a batch up to the present (called under the lock whenever a client looks)."""
        now = self.clock()
        step = self.step_seconds
        while True:
            status = b.obj["status"]
            if status == "validating":
                if now < b.phase_started + step:
                    return
                b.phase_started += step
                errors = self._validate(b)
                if errors:
                    b.obj.update(status="failed", failed_at=int(time.time()), errors={"object": "list", "data": errors})
                    return
                b.obj.update(status="in_progress", in_progress_at=int(time.time()))
                b.obj["request_counts"]["total"] = len(b.lines)
            elif status == "in_progress":
                duration = max(step, len(b.lines) * self.line_seconds)
                elapsed = now - b.phase_started
                due = len(b.lines) if elapsed >= duration else int(len(b.lines) * elapsed / duration)
                while b.done < due:
                    self._run_line(b)
                if b.done < len(b.lines):
                    return
                b.phase_started += duration
                b.obj.update(status="finalizing", finalizing_at=int(time.time()))
            elif status in ("finalizing", "cancelling"):
                if now < b.phase_started + step:
                    return
                self._write_results(b)
                if status == "finalizing":
                    b.obj.update(status="completed", completed_at=int(time.time()))
                else:
                    b.obj.update(status="cancelled", cancelled_at=int(time.time()))
                return
            else:
                return

    def _validate(self, b: StoredBatch) -> list[dict[str, Any]]:
        """Azure's checks of the input file; the first problems, each naming its line."""
        source = self.files.get(b.obj["input_file_id"])
        problems: list[dict[str, Any]] = []

        def problem(code: str, message: str, line: int | None = None) -> None:
            if len(problems) < 100:
                problems.append({"code": code, "message": message, "param": None,
                                 "line": str(line) if line is not None else None})  # fmt: skip

        if source is None:
            problem("input_no_permissions", "The input file is no longer available.")
            return problems
        raw_lines = source.content.decode("utf-8", "replace").splitlines()
        seen: set[str] = set()
        model: str | None = None
        for number, raw in enumerate(raw_lines, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                problem("invalid_json_line", "This line is not valid JSON.", number)
                continue
            body = obj.get("body") if isinstance(obj, dict) else None
            if not isinstance(obj, dict) or not isinstance(body, dict) or not isinstance(obj.get("custom_id"), str):
                problem("invalid_request", "A request needs custom_id, method, url and body.", number)
                continue
            if _strip_v1(str(obj.get("url"))) != _strip_v1(b.obj["endpoint"]):
                problem("url_mismatch", f"The url {obj.get('url')!r} does not match the batch endpoint.", number)
            name = body.get("model")
            if name not in self.emulator.deployments:
                problem("model_not_found", f"The deployment {name!r} was not found on this resource.", number)
            elif model is not None and name != model:
                problem("model_mismatch", f"All requests must use the deployment {model!r}.", number)
            model = model or (name if isinstance(name, str) else None)
            if obj["custom_id"] in seen:
                problem("duplicate_custom_id", f"The custom_id {obj['custom_id']!r} is not unique.", number)
            seen.add(obj["custom_id"])
            b.lines.append((number, obj))
        if not b.lines and not problems:
            problem("empty_file", "The input file holds no requests.")
        if len(b.lines) > MAX_LINES:
            problem("too_many_tasks", f"A batch holds at most {MAX_LINES} requests.")
        return problems

    def _run_line(self, b: StoredBatch) -> None:
        _, line = b.lines[b.done]
        b.done += 1
        body = line["body"]
        d = self.emulator.deployments[body["model"]]
        messages = body.get("messages")
        envelope: dict[str, Any] = {"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": line["custom_id"]}
        request_id = str(uuid.uuid4())
        error: tuple[str, str] | None = None
        prompt_tokens = 0
        if not isinstance(messages, list) or not messages:
            error = ("invalid_request_error", "'messages' is a required property")
        else:
            prompt = " ".join(_text(m.get("content")) for m in messages if isinstance(m, dict))
            prompt_tokens = _tokens(prompt) + 3 * len(messages)
            if FILTER_PROMPT_TRIGGER in prompt:
                error = ("content_filter", "The response was filtered due to the prompt triggering Azure "
                         "OpenAI's content management policy.")  # fmt: skip
            elif prompt_tokens > d.context_window:
                error = ("context_length_exceeded", f"This model's maximum context length is {d.context_window} "
                         f"tokens. However, your messages resulted in {prompt_tokens} tokens.")  # fmt: skip
        counts = b.obj["request_counts"]
        if error is None:
            completion = self.emulator._reply(d, body, messages, prompt_tokens)
            envelope.update(response={"status_code": 200, "request_id": request_id, "body": completion}, error=None)
            b.outputs.append(json.dumps(envelope))
            counts["completed"] += 1
        else:
            code, message = error
            envelope.update(
                response={"status_code": 400, "request_id": request_id,
                          "body": {"error": {"code": code, "message": message, "param": "messages",
                                             "type": "invalid_request_error"}}},
                error={"code": code, "message": message},
            )  # fmt: skip
            b.failures.append(json.dumps(envelope))
            counts["failed"] += 1

    def _write_results(self, b: StoredBatch) -> None:
        batch_id = b.obj["id"]
        if b.outputs or not b.failures:
            out = StoredFile(id=f"file-{uuid.uuid4().hex}", filename=f"{batch_id}_output.jsonl",
                             purpose="batch_output", content="".join(o + "\n" for o in b.outputs).encode())  # fmt: skip
            self.files[out.id] = out
            b.obj["output_file_id"] = out.id
        if b.failures:
            err = StoredFile(id=f"file-{uuid.uuid4().hex}", filename=f"{batch_id}_error.jsonl",
                             purpose="batch_output", content="".join(e + "\n" for e in b.failures).encode())  # fmt: skip
            self.files[err.id] = err
            b.obj["error_file_id"] = err.id
