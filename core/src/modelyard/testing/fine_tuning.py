"""Fine-tuning jobs for the emulator: jobs that validate their files, queue, train and finish.

Paths (classic with ``?api-version=``, and v1): ``POST/GET /openai/fine_tuning/jobs``,
``GET /openai/fine_tuning/jobs/{id}``, ``POST .../{id}/cancel``, ``GET .../{id}/events``,
``GET .../{id}/checkpoints``. A create answers 201 on the classic API (Azure's 2024-10-21
authoring spec) and 200 on v1; errors use the Microsoft REST shape
``{"error": {"code": "invalidPayload", "message", "target"}}``.

A job moves ``validating_files -> queued -> running -> succeeded``: ``validating_files`` and
``queued`` last ``step_seconds`` each, ``running`` one ``step_seconds`` per epoch, each epoch
adding a metrics event and a checkpoint. A training file that breaks the chat format fails the
job at the end of ``validating_files`` (``error.message`` names the line); ``cancel`` stops a job
that has not finished. On success the job has ``fine_tuned_model``
(``<model>.ft-<hex>[-<suffix>]``) and a ``fine-tune-results`` CSV in ``result_files``. Time
advances when a client looks (no background task), on :attr:`FineTuningService.clock`, which is
the batches' clock unless set: a test drives both with one
:class:`~modelyard.testing.ManualClock`.

Creates are checked as strictly as Azure: ``model`` (a base model that can be fine-tuned) and
``training_file`` (an uploaded ``fine-tune`` file) are required, ``hyperparameters`` hold only
``n_epochs`` (1-50), ``batch_size`` (1-256) and ``learning_rate_multiplier`` (0-10, exclusive
of 0), each a number or ``"auto"``, and undeclared keys are refused (400 naming the field).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .batches import StoredFile, _err

if TYPE_CHECKING:
    from .emulator import Emulator

__all__ = ["FINE_TUNABLE_MODELS", "FineTuningService", "StoredJob"]

FINE_TUNABLE_MODELS = frozenset({
    "gpt-35-turbo-0613", "gpt-35-turbo-1106", "gpt-35-turbo-0125", "gpt-4o-2024-08-06",
    "gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14", "gpt-4.1-nano-2025-04-14",
    "o4-mini-2025-04-16", "babbage-002", "davinci-002",
})  # fmt: skip
"""The base models the emulated resource fine-tunes (Azure's list, by region, is similar)."""
CREATE_KEYS = frozenset({"model", "training_file", "validation_file", "hyperparameters", "suffix", "seed",
                         "integrations", "method", "metadata"})  # fmt: skip
HYPERPARAMETERS = {"n_epochs": (1, 50, int), "batch_size": (1, 256, int), "learning_rate_multiplier": (0, 10, float)}
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
DEFAULT_EPOCHS = 3
_SUFFIX = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass
class StoredJob:
    """One fine-tuning job, its events and checkpoints (newest last), and where it is in its run."""

    obj: dict[str, Any]
    phase_started: float
    examples: int = 0
    epochs_done: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)


def _training_problem(content: bytes) -> str | None:
    """The first line that breaks the chat (or prompt/completion) format, as Azure reports it."""
    lines = 0
    for number, raw in enumerate(content.splitlines(), 1):
        if not raw.strip():
            continue
        lines += 1
        try:
            obj = json.loads(raw)
        except ValueError:
            return f"line {number}: not valid JSON"
        if not isinstance(obj, dict):
            return f"line {number}: not a JSON object"
        if "prompt" in obj and "completion" in obj:
            continue
        messages = obj.get("messages")
        if not isinstance(messages, list) or not messages:
            return f"line {number}: 'messages' is missing or empty"
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
            return f"line {number}: no assistant message"
    return None if lines else "the file holds no examples"


class FineTuningService:
    """The fine-tuning jobs of one emulated resource (files are the resource's, ``emulator.batches.files``).

    Args:
        emulator: the :class:`~modelyard.testing.Emulator` (its files, auth and version checks).
        step_seconds: how long ``validating_files`` and ``queued`` last, and each epoch.
        clock: a monotonic clock in seconds; None uses the batches' clock.

    Attributes:
        jobs: every job, by id, oldest first.
    """

    def __init__(self, emulator: Emulator, *, step_seconds: float = 0.2,
                 clock: Callable[[], float] | None = None) -> None:  # fmt: skip
        self.emulator = emulator
        self.step_seconds = step_seconds
        self._clock = clock
        self.jobs: dict[str, StoredJob] = {}
        self._lock = threading.RLock()

    @property
    def clock(self) -> Callable[[], float]:
        """The clock jobs progress on (the batches' clock unless one was set)."""
        return self._clock if self._clock is not None else self.emulator.batches.clock

    @clock.setter
    def clock(self, value: Callable[[], float] | None) -> None:
        self._clock = value

    def reset(self) -> None:
        """Forget every job."""
        with self._lock:
            self.jobs.clear()

    def routes(self) -> list[Route]:
        """The Starlette routes, classic and v1."""
        routes = []
        for root in ("/openai", "/openai/v1"):
            jobs = f"{root}/fine_tuning/jobs"
            routes += [
                Route(jobs, self._jobs, methods=["GET", "POST"]),
                Route(f"{jobs}/{{job_id}}", self._job, methods=["GET"]),
                Route(f"{jobs}/{{job_id}}/cancel", self._cancel, methods=["POST"]),
                Route(f"{jobs}/{{job_id}}/events", self._events, methods=["GET"]),
                Route(f"{jobs}/{{job_id}}/checkpoints", self._checkpoints, methods=["GET"]),
            ]
        return routes

    # ------------------------------------------------------------------ requests

    async def _open(self, request: Request) -> tuple[Any, Response | None]:
        body, bad = await self.emulator._record(request)
        latency = self.emulator.batches.latency
        if latency:
            await asyncio.sleep(latency)
        v1 = request.url.path.startswith("/openai/v1/")
        denied = self.emulator._check_auth(request, v1) or self.emulator._check_version(request, v1)
        return body, denied or bad

    async def _jobs(self, request: Request) -> Response:
        body, denied = await self._open(request)
        if denied is not None:
            return denied
        if request.method == "GET":
            with self._lock:
                for job in self.jobs.values():
                    self._advance(job)
                data = [dict(j.obj) for j in self.jobs.values()][::-1]
            return self._page(data, request, 20, first_last=False)
        problem = self._check_create(body, v1=request.url.path.startswith("/openai/v1/"))
        if problem is not None:
            return problem
        return self._create(body, v1=request.url.path.startswith("/openai/v1/"))

    def _check_create(self, body: Any, *, v1: bool) -> Response | None:
        if not isinstance(body, dict):
            return _err(400, "invalidPayload", "The request body must be a JSON object.")
        for key in body:
            if key not in CREATE_KEYS:
                return _err(400, "invalidPayload", f"The property {key!r} is not supported.", key)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _err(400, "invalidPayload", "The 'model' field is required.", "model")
        if model not in FINE_TUNABLE_MODELS:
            return _err(400, "invalidPayload", f"The specified base model {model!r} does not support fine-tuning.", "model")
        for key in ("training_file", "validation_file"):
            value = body.get(key)
            if value is None and key == "validation_file":
                continue
            if not isinstance(value, str) or not value:
                return _err(400, "invalidPayload", f"The '{key}' field is required.", key)
            found = self.emulator.batches.files.get(value)
            if found is None:
                return _err(400, "invalidPayload", f"The {key.replace('_', ' ')} {value!r} does not exist.", key)
            if found.purpose != "fine-tune":
                return _err(400, "invalidPayload", f"File {value} has purpose {found.purpose!r}, not 'fine-tune'.", key)
        hyper = body.get("hyperparameters")
        if hyper is not None:
            if not isinstance(hyper, dict):
                return _err(400, "invalidPayload", "'hyperparameters' must be an object.", "hyperparameters")
            for key, value in hyper.items():
                if key not in HYPERPARAMETERS:
                    return _err(400, "invalidPayload", f"Unknown hyperparameter {key!r}.", f"hyperparameters.{key}")
                low, high, kind = HYPERPARAMETERS[key]
                if value == "auto":
                    continue
                numeric = isinstance(value, int if kind is int else int | float) and not isinstance(value, bool)
                if not numeric or not (low <= value <= high if kind is int else low < value <= high):
                    return _err(400, "invalidPayload",
                                f"hyperparameters.{key} must be 'auto' or a {kind.__name__} from {low} to {high}, "
                                f"got {value!r}.", f"hyperparameters.{key}")  # fmt: skip
        suffix = body.get("suffix")
        if suffix is not None:
            longest = 64 if v1 else 40
            if not isinstance(suffix, str) or not _SUFFIX.match(suffix) or len(suffix) > longest:
                return _err(400, "invalidPayload", f"The suffix must be up to {longest} characters a-z, A-Z, 0-9, - and _.",
                            "suffix")  # fmt: skip
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**31 - 1):
            return _err(400, "invalidPayload", "The seed must be an integer from 0 to 2147483647.", "seed")
        return None

    def _create(self, body: dict[str, Any], *, v1: bool) -> Response:
        hyper = dict(body.get("hyperparameters") or {})
        epochs = hyper.get("n_epochs", "auto")
        resolved = {
            "n_epochs": DEFAULT_EPOCHS if epochs == "auto" else epochs,
            "batch_size": 1 if hyper.get("batch_size", "auto") == "auto" else hyper["batch_size"],
            "learning_rate_multiplier": 1.0 if hyper.get("learning_rate_multiplier", "auto") == "auto"
            else hyper["learning_rate_multiplier"],
        }  # fmt: skip
        now = int(time.time())
        job_id = f"ftjob-{uuid.uuid4().hex}"
        obj: dict[str, Any] = {
            "id": job_id, "object": "fine_tuning.job", "model": body["model"], "created_at": now,
            "finished_at": None, "fine_tuned_model": None, "organization_id": "org-emulator", "result_files": [],
            "status": "validating_files", "training_file": body["training_file"],
            "validation_file": body.get("validation_file"), "hyperparameters": resolved,
            "trained_tokens": None, "error": None, "suffix": body.get("suffix"),
            "seed": body["seed"] if body.get("seed") is not None else uuid.uuid4().int % 2**31,
            "estimated_finish": None, "integrations": body.get("integrations"), "metadata": body.get("metadata"),
        }  # fmt: skip
        job = StoredJob(obj=obj, phase_started=self.clock())
        self._event(job, f"Job enqueued. Validating training file: {body['training_file']}")
        with self._lock:
            self.jobs[job_id] = job
        return JSONResponse(dict(obj), status_code=200 if v1 else 201)

    def _find(self, job_id: str) -> StoredJob | Response:
        found = self.jobs.get(job_id)
        if found is None:
            return _err(404, "notFound", f"Fine-tuning job with id={job_id} was not found.", "fine_tuning_job_id")
        return found

    async def _with_job(self, request: Request, answer: Callable[[StoredJob], Response]) -> Response:
        """``answer(job)`` for the path's job, brought up to date, under the lock; or the refusal."""
        _, denied = await self._open(request)
        if denied is not None:
            return denied
        with self._lock:
            found = self._find(request.path_params["job_id"])
            if isinstance(found, Response):
                return found
            self._advance(found)
            return answer(found)

    async def _job(self, request: Request) -> Response:
        return await self._with_job(request, lambda job: JSONResponse(dict(job.obj)))

    async def _cancel(self, request: Request) -> Response:
        def cancel(job: StoredJob) -> Response:
            status = job.obj["status"]
            if status in TERMINAL:
                return _err(400, "unexpectedEntityState", f"The job is {status} and cannot be cancelled.",
                            "fine_tuning_job_id")  # fmt: skip
            job.obj.update(status="cancelled", finished_at=int(time.time()))
            self._event(job, "Job cancelled.")
            return JSONResponse(dict(job.obj))

        return await self._with_job(request, cancel)

    async def _events(self, request: Request) -> Response:
        return await self._with_job(
            request, lambda job: self._page([dict(e) for e in job.events][::-1], request, 20, first_last=False)
        )

    async def _checkpoints(self, request: Request) -> Response:
        return await self._with_job(
            request, lambda job: self._page([dict(c) for c in job.checkpoints][::-1], request, 10, first_last=True)
        )

    @staticmethod
    def _page(data: list[dict[str, Any]], request: Request, default: int, *, first_last: bool) -> Response:
        after = request.query_params.get("after")
        raw = request.query_params.get("limit", str(default))
        if not raw.isdigit() or not 1 <= int(raw) <= 100:
            return _err(400, "invalidPayload", f"'limit' must be an integer from 1 to 100, got {raw!r}.", "limit")
        limit = int(raw)
        if after is not None:
            ids = [d["id"] for d in data]
            data = data[ids.index(after) + 1 :] if after in ids else []
        page = data[:limit]
        out: dict[str, Any] = {"object": "list", "data": page, "has_more": len(data) > limit}
        if first_last:
            out.update(first_id=page[0]["id"] if page else None, last_id=page[-1]["id"] if page else None)
        return JSONResponse(out)

    # ------------------------------------------------------------------ progress

    def _event(self, job: StoredJob, message: str, *, level: str = "info", kind: str = "message",
               data: Any = None) -> None:  # fmt: skip
        job.events.append({"object": "fine_tuning.job.event", "id": f"ftevent-{uuid.uuid4().hex}",
                           "created_at": int(time.time()), "level": level, "message": message, "type": kind,
                           "data": data if data is not None else {}})  # fmt: skip

    def _advance(self, job: StoredJob) -> None:
        """Move the job as far as the clock allows (called under the lock when a client looks)."""
        step = self.step_seconds
        obj = job.obj
        while obj["status"] not in TERMINAL:
            elapsed = self.clock() - job.phase_started
            status = obj["status"]
            if status == "validating_files":
                if elapsed < step:
                    return
                problem = self._validate(job)
                job.phase_started += step
                if problem is not None:
                    obj.update(status="failed", finished_at=int(time.time()),
                               error={"code": "invalid_training_file", "param": "training_file",
                                      "message": f"The training file is invalid: {problem}."})  # fmt: skip
                    self._event(job, f"Training file validation failed: {problem}.", level="error")
                    return
                obj["status"] = "queued"
                self._event(job, "Training file validated. Job queued.")
            elif status == "queued":
                if elapsed < step:
                    return
                job.phase_started += step
                obj["status"] = "running"
                self._event(job, "Job started.")
            else:  # running: one step per epoch
                epochs = int(obj["hyperparameters"]["n_epochs"])
                reached = min(epochs, int(elapsed // step)) if step > 0 else epochs
                while job.epochs_done < reached:
                    job.epochs_done += 1
                    self._epoch(job, job.epochs_done)
                if job.epochs_done < epochs:
                    return
                self._succeed(job)

    def _validate(self, job: StoredJob) -> str | None:
        files = self.emulator.batches.files
        for key in ("training_file", "validation_file"):
            file_id = job.obj.get(key)
            if file_id is None:
                continue
            stored = files.get(file_id)
            if stored is None:
                return f"{key} {file_id} was deleted"
            problem = _training_problem(stored.content)
            if problem is not None:
                return problem if key == "training_file" else f"validation file: {problem}"
            if key == "training_file":
                job.examples = sum(1 for line in stored.content.splitlines() if line.strip())
        return None

    def _steps_per_epoch(self, job: StoredJob) -> int:
        return max(1, math.ceil(job.examples / int(job.obj["hyperparameters"]["batch_size"])))

    def _model_name(self, job: StoredJob) -> str:
        suffix = job.obj.get("suffix")
        name = f"{job.obj['model']}.ft-{job.obj['id'].removeprefix('ftjob-')}"
        return f"{name}-{suffix}" if suffix else name

    def _epoch(self, job: StoredJob, epoch: int) -> None:
        step_number = epoch * self._steps_per_epoch(job)
        loss = round(2.0 / (epoch + 1), 4)
        metrics = {"step": step_number, "train_loss": loss, "train_mean_token_accuracy": round(1 - loss / 3, 4)}
        self._event(job, f"Step {step_number}: training loss={loss}", kind="metrics", data=metrics)
        job.checkpoints.append({
            "object": "fine_tuning.job.checkpoint", "id": f"ftckpt-{uuid.uuid4().hex}", "created_at": int(time.time()),
            "fine_tuned_model_checkpoint": f"{self._model_name(job)}:ckpt-step-{step_number}",
            "fine_tuning_job_id": job.obj["id"], "step_number": step_number, "metrics": metrics,
        })  # fmt: skip

    def _succeed(self, job: StoredJob) -> None:
        rows = ["step,train_loss,train_mean_token_accuracy"]
        rows += [f"{c['step_number']},{c['metrics']['train_loss']},{c['metrics']['train_mean_token_accuracy']}"
                 for c in job.checkpoints]  # fmt: skip
        results = StoredFile(id=f"file-{uuid.uuid4().hex}", filename="results.csv", purpose="fine-tune-results",
                             content=("\n".join(rows) + "\n").encode())  # fmt: skip
        self.emulator.batches.files[results.id] = results
        epochs = int(job.obj["hyperparameters"]["n_epochs"])
        job.obj.update(status="succeeded", finished_at=int(time.time()), fine_tuned_model=self._model_name(job),
                       result_files=[results.id], trained_tokens=job.examples * epochs * 20)  # fmt: skip
        self._event(job, f"New fine-tuned model created: {job.obj['fine_tuned_model']}")
        self._event(job, "The job has successfully completed.")
