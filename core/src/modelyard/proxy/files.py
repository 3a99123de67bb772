"""The proxy's files and batches endpoints: OpenAI's paths in front of :mod:`modelyard.files`.

Each with and without ``/v1``: ``POST/GET /files``, ``GET/DELETE /files/{id}``,
``GET /files/{id}/content``, ``POST/GET /batches``, ``GET /batches/{id}``,
``POST /batches/{id}/cancel``.

Where a call goes:

1. With ``litellm_settings.enable_loadbalancing_on_batch_endpoints`` on, the
   :class:`~modelyard.files_router.FilesRouter` a plugin returned from the ``files_router`` hook
   is asked first: it answers for a ``batch`` upload whose lines name a ``mode: batch`` model
   group, and for every id it recorded (files, batches, their output and error files); listings
   come from it.
2. Otherwise the provider named by the ``custom-llm-provider`` header (else the
   ``custom_llm_provider`` query parameter, else that body or form field, else ``azure``) gets the
   call through :func:`modelyard.acreate_file` and its siblings, with the provider's
   settings from the environment (``AZURE_API_BASE``, ``AZURE_API_KEY`` ...), as LiteLLM does.

An upload is parsed as it arrives into a spooled temporary file (in memory up to 1 MB, then on
disk), never into one bytes object, and is streamed from there to the upstream; its size limit is
``general_settings.max_upload_size_mb`` (200 MB by default), separate from the JSON body limit.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Awaitable, Callable, Collection
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ..errors import APIConnectionError, BadRequestError, NotFoundError

if TYPE_CHECKING:
    from ..files_router import FilesRouter
    from .app import ProxyApp

__all__ = ["FilesEndpoints"]

log = logging.getLogger("modelyard.proxy")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[Any, Scope, Receive, Send], Awaitable[None]]

_SPOOL_IN_MEMORY = 1024 * 1024
_MAX_FIELD = 64 * 1024
_ID = r"([^/]+)"
_PATTERNS: list[tuple[str, re.Pattern[str], str]] = []
for _prefix in ("", "/v1"):
    _PATTERNS += [
        ("GET", re.compile(rf"^{_prefix}/files/{_ID}$"), "file_retrieve"),
        ("DELETE", re.compile(rf"^{_prefix}/files/{_ID}$"), "file_delete"),
        ("GET", re.compile(rf"^{_prefix}/files/{_ID}/content$"), "file_content"),
        ("GET", re.compile(rf"^{_prefix}/batches/{_ID}$"), "retrieve_batch"),
        ("POST", re.compile(rf"^{_prefix}/batches/{_ID}/cancel$"), "cancel_batch"),
    ]
# Fields of a batch create body that are not the upstream's: LiteLLM's proxy takes ``model`` (the
# group; here the input file decides where the batch goes) and ``custom_llm_provider``.
_BATCH_FIELDS = frozenset({"input_file_id", "endpoint", "completion_window", "metadata"})
_BATCH_PROXY_FIELDS = frozenset({"model", "custom_llm_provider"})


class _Form:
    """A parsed multipart upload: the text fields and the file parts.

    Attributes:
        fields: each text field's last value.
        items: every text field in order, ``(name, value)`` (a repeated ``name[]`` appears once per value).
        parts: every file part in order, ``(field, filename, content_type, spooled file)``.
        file, filename, content_type: the first file part (``POST /files`` takes one).
    """

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.items: list[tuple[str, str]] = []
        self.parts: list[tuple[str, str, str, IO[bytes]]] = []
        self.file: IO[bytes] | None = None
        self.filename = ""
        self.content_type = "application/octet-stream"

    def close(self) -> None:
        for part in self.parts:
            part[3].close()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


_LIMIT_SETTING = "general_settings.max_upload_size_mb"


def _too_large(limit_mb: float, setting: str = _LIMIT_SETTING) -> BadRequestError:
    return BadRequestError(f"The upload is larger than the proxy's limit of {limit_mb:g} MB ({setting}).",
                           status_code=413, code="request_too_large")  # fmt: skip


async def read_multipart(
    scope: Scope, receive: Receive, *, limit: int, limit_mb: float, files: Collection[str] = ("file",),
    required: str | None = "file", endpoint: str = "POST /files", setting: str = _LIMIT_SETTING,
) -> _Form:  # fmt: skip
    """Parse a ``multipart/form-data`` body as it arrives; each file part goes to a spooled temp file.

    Nothing is held whole: file parts are written to temporary files (in memory up to 1 MB, then
    on disk) as the body arrives, and the body is refused with 413 as soon as it passes ``limit``.

    Args:
        scope, receive: the ASGI request.
        limit: the most bytes the file parts may hold together.
        limit_mb: ``limit`` as the user configured it, for the 413 message.
        files: the field names whose file parts are kept (others are skipped); a name ending in
            ``[]`` may repeat, any other may come once.
        required: the file field that must be present (None: none is).
        endpoint: the endpoint, for the message when the body is not multipart.
        setting: what sets the limit, for the 413 message.

    Raises:
        BadRequestError: not multipart (400), or larger than ``limit`` bytes (413).
    """
    from python_multipart.multipart import MultipartParser, parse_options_header

    from .app import _Disconnected

    ctype = _header(scope, b"content-type") or ""
    kind, options = parse_options_header(ctype)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        what = " with a 'file' part and a 'purpose' field" if endpoint == "POST /files" else ""
        raise BadRequestError(f"{endpoint} takes multipart/form-data{what} "
                              f"(got content-type {kind.decode('latin-1') or 'none'!r}).",
                              param=required or next(iter(files), None))  # fmt: skip
    length = _header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit + _MAX_FIELD:
        raise _too_large(limit_mb, setting)
    form = _Form()
    state: dict[str, Any] = {"headers": {}, "field": b"", "value": b"", "name": None, "file": None, "skip": False, "buf": []}

    def on_part_begin() -> None:
        state.update(headers={}, name=None, file=None, skip=False, buf=[])

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        state["name"] = name
        if b"filename" in disposition and name not in files:
            state["skip"] = True  # another file part: not ours to forward
        elif b"filename" in disposition:
            if not name.endswith("[]") and any(part[0] == name for part in form.parts):
                raise BadRequestError(f"Send one file per upload in the field {name!r}.", param=name)
            spooled = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115  (closed by _Form)
            filename = disposition[b"filename"].decode("utf-8", "replace").rsplit("/", 1)[-1]
            ctype = state["headers"].get(b"content-type", b"application/octet-stream").decode("latin-1")
            form.parts.append((name, filename, ctype, spooled))
            state["file"] = spooled
            if form.file is None:
                form.file, form.filename, form.content_type = spooled, filename, ctype

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["skip"]:
            return
        if state["file"] is not None:
            state["file"].write(data[start:end])
        else:
            state["buf"].append(data[start:end])
            if sum(len(b) for b in state["buf"]) > _MAX_FIELD:
                raise BadRequestError(f"The form field {state['name']!r} is too long.", param=state["name"])

    def on_part_end() -> None:
        if state["file"] is None and not state["skip"] and state["name"]:
            value = b"".join(state["buf"]).decode("utf-8", "replace")
            form.fields[state["name"]] = value
            form.items.append((state["name"], value))

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
        "on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
    })  # fmt: skip
    size = 0
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit + _MAX_FIELD:
                raise _too_large(limit_mb, setting)
            if chunk:
                parser.write(chunk)
            if not message.get("more_body"):
                break
        parser.finalize()
        if required is not None and not any(part[0] == required for part in form.parts):
            raise BadRequestError(f"The multipart field {required!r} is required.", param=required)
        if sum(part[3].tell() for part in form.parts) > limit:
            raise _too_large(limit_mb, setting)
        for part in form.parts:
            part[3].seek(0)
    except BadRequestError:
        form.close()
        raise
    except Exception as exc:
        form.close()
        if isinstance(exc, _Disconnected):
            raise
        raise BadRequestError(f"The multipart body could not be parsed ({type(exc).__name__}).", param="file") from None
    return form


class FilesEndpoints:
    """The files and batches handlers of one :class:`~modelyard.proxy.ProxyApp`.

    Args:
        app: the proxy (its JSON helpers, limits and error rendering are reused).
        router: the plugin's files router when batch load balancing is on, else None.
    """

    def __init__(self, app: ProxyApp, router: FilesRouter | None) -> None:
        self.app = app
        self.router = router

    def routes(self) -> dict[str, Handler]:
        """The exact-path routes (``METHOD path``), with and without ``/v1``."""
        out: dict[str, Handler] = {}
        for prefix in ("", "/v1"):
            out[f"POST {prefix}/files"] = self.create_file
            out[f"GET {prefix}/files"] = self.file_list
            out[f"POST {prefix}/batches"] = self.create_batch
            out[f"GET {prefix}/batches"] = self.list_batches
        return out

    def match(self, method: str, path: str, scope: Scope) -> Handler | None:
        """The handler for a path with an id (``/files/{id}`` ...), or None; the id goes in the scope."""
        for verb, pattern, operation in _PATTERNS:
            found = pattern.match(path)
            if found is not None and verb == method:
                scope["modelyard.id"] = found.group(1)
                handler: Handler = getattr(self, operation)
                return handler
        return None

    def allows(self, path: str) -> bool:
        """True when ``path`` is one of these endpoints' paths (for 405 answers)."""
        return any(pattern.match(path) for _, pattern, _ in _PATTERNS)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _provider(scope: Scope, body: dict[str, Any] | None = None) -> tuple[str, bool]:
        """The provider and whether the client named it (header, query, then body or form field)."""
        named = _header(scope, b"custom-llm-provider") or _query(scope).get("custom_llm_provider")
        if not named and body is not None and isinstance(body.get("custom_llm_provider"), str):
            named = body["custom_llm_provider"]
        if not named:
            from ..files import default_files_provider

            return default_files_provider(), False
        return named.strip(), True

    def _passthrough(self, scope: Scope, what: str, value: str, body: dict[str, Any] | None = None) -> str:
        """The provider for an id the router does not know; with a router and no provider named, 404."""
        provider, named = self._provider(scope, body)
        if self.router is not None and not named:
            raise NotFoundError(f"No {what} with id {value!r} on this proxy (send a 'custom-llm-provider' header "
                                f"for a {what} uploaded to a provider directly).", param=f"{what}_id")  # fmt: skip
        return provider

    async def _json(self, ctx: Any, send: Send, result: Any, status: int = 200) -> None:
        await self.app._send_json(ctx, send, status, result.model_dump_json().encode())

    @staticmethod
    def _limit(value: str | None) -> int | None:
        if value is None or value == "":
            return None
        if not value.isdigit() or not 1 <= int(value) <= 100:
            raise BadRequestError(f"'limit' must be an integer from 1 to 100, got {value!r}.", param="limit")
        return int(value)

    # ------------------------------------------------------------------ files

    async def create_file(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /files``: place a batch file on a deployment of its group, or upload to the provider."""
        import modelyard

        settings = self.app.config.general_settings
        form = await read_multipart(scope, receive, limit=settings.max_upload_bytes, limit_mb=settings.max_upload_size_mb)
        try:
            purpose = form.fields.get("purpose")
            if not purpose:
                raise BadRequestError("The form field 'purpose' is required ('batch', 'fine-tune' ...).", param="purpose")
            assert form.file is not None
            provider, named = self._provider(scope, form.fields)
            if self.router is not None:
                placed = await self.router.acreate_file(form.file, filename=form.filename or "input.jsonl",
                                                        purpose=purpose, required=not named)  # fmt: skip
                if placed is not None:
                    await self._json(ctx, send, placed)
                    return
                form.file.seek(0)
            result = await modelyard.acreate_file(
                file=(form.filename or "upload", form.file, form.content_type), purpose=purpose, custom_llm_provider=provider
            )
        finally:
            form.close()
        await self._json(ctx, send, result)

    async def file_list(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /files[?purpose=]``: the placed files when balancing, else the provider's list."""
        import modelyard

        query = _query(scope)
        purpose = query.get("purpose") or None
        if self.router is not None:
            await self._json(ctx, send, await self.router.afile_list(purpose=purpose))
            return
        provider, _ = self._provider(scope)
        result = await modelyard.afile_list(custom_llm_provider=provider, purpose=purpose, after=query.get("after") or None,
                                            limit=self._limit(query.get("limit")))  # fmt: skip
        await self._json(ctx, send, result)

    async def file_retrieve(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /files/{id}``."""
        import modelyard

        file_id = scope["modelyard.id"]
        found = await self.router.afile_retrieve(file_id) if self.router is not None else None
        if found is None:
            found = await modelyard.afile_retrieve(file_id, custom_llm_provider=self._passthrough(scope, "file", file_id))
        await self._json(ctx, send, found)

    async def file_delete(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``DELETE /files/{id}``."""
        import modelyard

        file_id = scope["modelyard.id"]
        done = await self.router.afile_delete(file_id) if self.router is not None else None
        if done is None:
            done = await modelyard.afile_delete(file_id, custom_llm_provider=self._passthrough(scope, "file", file_id))
        await self._json(ctx, send, done)

    async def file_content(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /files/{id}/content``: the bytes, streamed from the upstream with its content type.

        Memory stays at a chunk whatever the file's size (a router without ``aopen_file_content``
        answers whole). A connection that breaks mid-body is cut here too, never ended cleanly.
        """
        from ..files import aopen_file_content

        file_id = scope["modelyard.id"]
        stream = None
        if self.router is not None:
            opener = getattr(self.router, "aopen_file_content", None)
            if opener is not None:
                stream = await opener(file_id)
            else:
                content = await self.router.afile_content(file_id)
                if content is not None:
                    await self._whole(ctx, send, content)
                    return
        if stream is None:
            stream = await aopen_file_content(file_id, custom_llm_provider=self._passthrough(scope, "file", file_id))
        async with stream:
            headers = [(b"content-type", stream.content_type.encode("latin-1")), (b"x-request-id", ctx.request_id.encode())]
            if stream.content_length is not None:
                headers.append((b"content-length", str(stream.content_length).encode()))
            ctx.status = 200
            await send({"type": "http.response.start", "status": 200, "headers": headers})

            async def pump() -> None:
                async for chunk in stream.aiter_bytes():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})

            try:
                await self.app._until_disconnect(receive, pump())
            except APIConnectionError as err:
                # Headers are out: leaving the body unfinished makes the server drop the connection,
                # so the client sees a broken download, never a silently short file.
                ctx.error = type(err).__name__
                log.warning("request %s: %s", ctx.request_id, err)

    async def _whole(self, ctx: Any, send: Send, content: Any) -> None:
        ctype = next((v for k, v in content.headers.items() if k.lower() == "content-type"), "application/octet-stream")
        payload = content.content
        ctx.status = 200
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", ctype.encode("latin-1")), (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", ctx.request_id.encode()),
        ]})  # fmt: skip
        await send({"type": "http.response.body", "body": payload})

    async def _content(self, scope: Scope, file_id: str) -> Any:
        import modelyard

        content = await self.router.afile_content(file_id) if self.router is not None else None
        if content is None:
            content = await modelyard.afile_content(file_id, custom_llm_provider=self._passthrough(scope, "file", file_id))
        return content

    async def _output(self, scope: Scope, file_id: str) -> bytes:
        return bytes((await self._content(scope, file_id)).content)

    # ------------------------------------------------------------------ batches

    async def create_batch(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /batches``: created where the input file lives (recorded), else on the provider."""
        import modelyard

        body = await self.app._read_json(scope, receive)
        file_id = body.get("input_file_id")
        if not isinstance(file_id, str) or not file_id:
            raise BadRequestError("'input_file_id' is required: the id POST /files returned.", param="input_file_id",
                                  code="missing_required_parameter")  # fmt: skip
        endpoint = body.get("endpoint", "/v1/chat/completions")
        window = body.get("completion_window", "24h")
        metadata = body.get("metadata")
        if self.router is not None:
            if not isinstance(endpoint, str) or not isinstance(window, str):
                raise BadRequestError("'endpoint' and 'completion_window' must be strings.", param="endpoint")
            if metadata is not None and not (isinstance(metadata, dict)
                                             and all(isinstance(v, str) for v in metadata.values())):  # fmt: skip
                raise BadRequestError("'metadata' must map strings to strings.", param="metadata")
            placed = await self.router.acreate_batch(input_file_id=file_id, endpoint=endpoint,
                                                     completion_window=window, metadata=metadata)  # fmt: skip
            if placed is not None:
                await self._json(ctx, send, placed)
                if self.app.batch_spend is not None:  # who created it: its spend is theirs (docs/spend.md)
                    await self.app.batch_spend.created(ctx, placed)
                return
        provider = self._passthrough(scope, "file", file_id, body)
        extra = {k: v for k, v in body.items() if k not in _BATCH_FIELDS and k not in _BATCH_PROXY_FIELDS}
        result = await modelyard.acreate_batch(input_file_id=file_id, endpoint=endpoint, completion_window=window,
                                               metadata=metadata, custom_llm_provider=provider,
                                               extra_body=extra or None)  # fmt: skip
        await self._json(ctx, send, result)
        if self.app.batch_spend is not None:
            await self.app.batch_spend.created(ctx, result)

    async def list_batches(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /batches[?after=&limit=]``: the placed batches when balancing, else the provider's."""
        import modelyard

        query = _query(scope)
        after = query.get("after") or None
        limit = self._limit(query.get("limit"))
        if self.router is not None:
            await self._json(ctx, send, await self.router.alist_batches(after=after, limit=limit or 20))
            return
        provider, _ = self._provider(scope)
        await self._json(ctx, send, await modelyard.alist_batches(after=after, limit=limit, custom_llm_provider=provider))

    async def retrieve_batch(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /batches/{id}``."""
        import modelyard

        batch_id = scope["modelyard.id"]
        found = await self.router.aretrieve_batch(batch_id) if self.router is not None else None
        if found is None:
            found = await modelyard.aretrieve_batch(batch_id, custom_llm_provider=self._passthrough(scope, "batch", batch_id))
        await self._json(ctx, send, found)
        if self.app.batch_spend is not None:  # after the answer: priced once, when first seen completed
            await self.app.batch_spend.retrieved(ctx, found, lambda file_id: self._output(scope, file_id))

    async def cancel_batch(self, ctx: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /batches/{id}/cancel``."""
        import modelyard

        batch_id = scope["modelyard.id"]
        found = await self.router.acancel_batch(batch_id) if self.router is not None else None
        if found is None:
            found = await modelyard.acancel_batch(batch_id, custom_llm_provider=self._passthrough(scope, "batch", batch_id))
        await self._json(ctx, send, found)

