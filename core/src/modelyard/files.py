"""Files and batches: LiteLLM's ``create_file`` / ``create_batch`` family, through the one pipeline.

Every function takes the usual connection parameters (``api_base``, ``api_version``,
``api_key``, ``azure_ad_token``, ``azure_ad_token_provider``, the Entra settings,
``extra_headers``), ``custom_llm_provider`` (default ``"azure"``), ``timeout`` and
``num_retries``; each has an async twin named with an ``a`` prefix.

The steps are those of :mod:`modelyard.api`: the call is described in OpenAI's shape
(:class:`FilesRequest`), the ``transform_files_request`` hook of the provider's plugin turns it
into an upstream call, ``resolve_auth`` adds the credential, the pooled transport sends it
(uploads are streamed from the file object), ``map_error`` maps a failure, and the observers
see the outcome. The core knows no provider: it only speaks OpenAI's files and batches API.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from .errors import APIConnectionError, APIError, BadRequestError, error_for_status
from .file_types import (
    Batch,
    BatchList,
    FileContent,
    FileDeleted,
    FileList,
    FileObject,
    FilesOperation,
    FilesRequest,
    FineTuningJob,
    FineTuningJobCheckpointList,
    FineTuningJobEventList,
    FineTuningJobList,
    Upload,
)
from .hookspecs import Authenticator
from .plugins import Plugins, get_plugins
from .redact import check_header_values
from .types import ProviderRequest, ProviderResponse, Route

if TYPE_CHECKING:
    from .transport import Attempts

__all__ = [
    "Batch",
    "BatchList",
    "FileContent",
    "FileContentStream",
    "FileDeleted",
    "FileList",
    "FileObject",
    "FilesOperation",
    "FilesRequest",
    "Upload",
    "acancel_batch",
    "acreate_batch",
    "acreate_file",
    "afile_content",
    "afile_delete",
    "afile_list",
    "afile_retrieve",
    "alist_batches",
    "aopen_file_content",
    "aretrieve_batch",
    "cancel_batch",
    "create_batch",
    "create_file",
    "file_content",
    "file_delete",
    "file_list",
    "file_retrieve",
    "list_batches",
    "retrieve_batch",
]

DEFAULT_PROVIDER = ""
"""``custom_llm_provider`` left unset: :func:`default_files_provider` picks the provider."""
_SPOOL_IN_MEMORY = 8 * 1024 * 1024
_CONTROL_KEYS = frozenset({"timeout", "request_timeout", "num_retries", "max_retries", "extra_body",
                           "model", "model_info", "base_model", "custom_llm_provider", "retry_on_timeout"})  # fmt: skip
DEFAULT_NUM_RETRIES = 2

@dataclass
class _Call:
    plugins: Plugins
    route: Route
    request: ProviderRequest
    auth: Authenticator
    timeout: Any
    num_retries: int
    started: float
    owned: IO[bytes] | None = None
    retry_on_timeout: bool = False
    attempts: Attempts | None = None

    def close(self) -> None:
        if self.owned is not None:
            self.owned.close()


def _bad(message: str, param: str) -> BadRequestError:
    return BadRequestError(message, param=param)


def _id(value: Any, param: str) -> str:
    if not isinstance(value, str) or not value.strip() or "/" in value:
        raise _bad(f"{param!r} must be a non-empty id string without '/', got {value!r}.", param)
    if value in (".", ".."):
        # As a path segment it would climb out of /files or /batches: `GET /files/../content`
        # would become `GET <api root>/content`, sent with the deployment's credentials.
        raise _bad(f"{param!r} cannot be {value!r}.", param)
    return value


def _segment(value: Any, param: str) -> str:
    """An id checked by :func:`_id` and percent-encoded as exactly one path segment (``?``, ``#``,
    ``%`` and control characters included), so it can never change the upstream path or query."""
    return quote(_id(value, param), safe="")


def _spool(stream: IO[bytes]) -> IO[bytes]:
    """A seekable copy of a non-seekable stream (kept in memory up to 8 MB, then on disk)."""
    copy = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115  (closed by the call)
    shutil.copyfileobj(stream, copy)
    copy.seek(0)
    return copy


def _coerce_upload(file: Any, purpose: str) -> tuple[Upload, IO[bytes] | None]:
    """The ``file=`` argument (file object, bytes, path, or ``(name, content[, type])``) as an Upload.

    Returns the upload and the file object this call opened (to close after sending).
    """
    content_type = "application/jsonl" if purpose == "batch" else "application/octet-stream"
    name: str | None = None
    if isinstance(file, tuple):
        if not 2 <= len(file) <= 3:
            raise _bad("'file' as a tuple must be (filename, content) or (filename, content, content_type).", "file")
        if len(file) == 3 and isinstance(file[2], str):
            content_type = file[2]
        name, file = file[0], file[1]
    owned: IO[bytes] | None = None
    if isinstance(file, bytes | bytearray):
        fileobj: IO[bytes] = io.BytesIO(bytes(file))
        owned = fileobj
    elif isinstance(file, os.PathLike):
        path = os.fspath(file)
        try:
            fileobj = open(path, "rb")  # noqa: SIM115  (closed after the call)
        except OSError as exc:
            raise _bad(f"Cannot open 'file' {path!r}: {exc.strerror}.", "file") from None
        owned = fileobj
        name = name or os.path.basename(path)
    elif hasattr(file, "read"):
        if isinstance(file, io.TextIOBase):
            raise _bad("'file' must be opened in binary mode: open(path, 'rb').", "file")
        fileobj = file
        if not (getattr(file, "seekable", lambda: False)()):
            fileobj = owned = _spool(file)
        name = name or os.path.basename(str(getattr(file, "name", "") or ""))
    else:
        raise _bad(
            f"'file' must be a binary file object, bytes, a path or a (filename, content) tuple, "
            f"got {type(file).__name__}.",
            "file",
        )
    if not isinstance(content_type, str) or check_header_values({"content-type": content_type}) is not None:
        # It becomes the part's Content-Type header: a line break would add headers of the caller's choosing.
        if owned is not None:
            owned.close()
        raise _bad("The file's content type must be one line of printable characters (such as "
                   "'application/jsonl'); it holds a control character.", "file")  # fmt: skip
    return Upload(filename=name or ("input.jsonl" if purpose == "batch" else "upload"), file=fileobj,
                  content_type=content_type), owned  # fmt: skip


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    from .connection import connection_schema

    connection_keys = connection_schema().all_names
    connection: dict[str, Any] = {}
    control: dict[str, Any] = {}
    for key, value in kwargs.items():
        if value is None:
            continue
        if key in connection_keys:
            connection[key] = value
        elif key in _CONTROL_KEYS:
            control[key] = value
        else:
            raise _bad(f"Unexpected argument {key!r} for a files/batches call.", key)
    return connection, control


def _route(operation: str, control: dict[str, Any]) -> Route:
    model = control.get("model")
    provider = control.get("custom_llm_provider")
    deployment = ""
    if isinstance(model, str) and "/" in model:
        prefix, _, deployment = model.partition("/")
        provider = provider or prefix
    elif isinstance(model, str):
        deployment = model
    provider = provider or default_files_provider()
    if not isinstance(provider, str) or not provider:
        raise _bad("'custom_llm_provider' must be the name of a provider a loaded plugin serves.", "custom_llm_provider")
    return Route(model=model or provider, provider=provider, family="files", deployment=deployment, operation=operation)


def default_files_provider() -> str:
    """The provider of a files or batches call that names none: the one provider whose plugins
    declare a files distribution (``register_providers``).

    Raises:
        BadRequestError: none or several do; the message asks for ``custom_llm_provider``.
    """
    declared = sorted(n for n, p in get_plugins().providers.items() if p.distribution_for("transform_files_request"))
    if len(declared) == 1:
        return declared[0]
    which = f"several providers serve them ({', '.join(declared)})" if declared else "no loaded plugin serves them"
    raise _bad(f"Name the provider of files and batches with custom_llm_provider: {which}.", "custom_llm_provider")


def _unknown_provider(provider: str, plugins: Plugins) -> BadRequestError | None:
    """The error for a ``provider`` no loaded plugin knows (the caller's mistake), or None when the
    provider is known and only its files plugin is missing (a :class:`PluginNotLoadedError` then)."""
    # Known for files: a provider a loaded plugin declares a files distribution for (installed or
    # not: then a PluginNotLoadedError names it). A provider that serves chat only is unknown here.
    providers = {name for name, p in plugins.providers.items() if p.distribution_for("transform_files_request")}
    if provider in providers:
        return None
    known = ", ".join(repr(p) for p in sorted(providers)) or "none"
    return _bad(f"Unknown custom_llm_provider {provider!r}: no loaded plugin serves files and batches for it "
                f"(providers of the loaded plugins: {known}; see `modelyard plugins`).", "custom_llm_provider")  # fmt: skip


def _prepare(request: FilesRequest, kwargs: dict[str, Any], owned: IO[bytes] | None = None) -> _Call:
    from ._calls import (
        _connection,
        _control_setting,
        _first,
        _module_settings,
        _retries,
        _retry_on_timeout,
    )
    from .transport import timeout_seconds

    started = time.perf_counter()
    try:
        conn_kw, control = _split(kwargs)
        route = _route(request.operation, control)
        settings = _module_settings()
        connection = _connection(conn_kw, settings)
        extra = control.get("extra_body")
        if extra:
            if not isinstance(extra, dict):
                raise _bad("'extra_body' must be a dict.", "extra_body")
            if request.json_body is not None:
                request = request.model_copy(update={"json_body": {**request.json_body, **extra}})
            elif request.upload is not None:
                request = request.model_copy(update={"form": {**request.form, **{k: str(v) for k, v in extra.items()}}})
        plugins = get_plugins()
        hook = plugins.hook
        provider_request = _first(
            hook.transform_files_request, ProviderRequest, "transform_files_request", route,
            unknown=lambda: _unknown_provider(route.provider, plugins), request=request, connection=connection,
        )  # fmt: skip
        retries = _retries(
            _control_setting(control, settings, ("num_retries", "max_retries"), "num_retries"),
            "num_retries" in control or "max_retries" in control,
        )
        timeout = _control_setting(control, settings, ("timeout", "request_timeout"), "request_timeout")
        auth = _first(
            hook.resolve_auth, object, "resolve_auth", route, connection=connection, timeout=timeout_seconds(timeout)
        )
        retry_on_timeout = _retry_on_timeout(control)
    except BaseException:
        if owned is not None:
            owned.close()
        raise
    return _Call(
        plugins=plugins,
        route=route,
        request=provider_request,
        auth=auth,
        timeout=timeout,
        num_retries=retries,
        started=started,
        owned=owned,
        retry_on_timeout=retry_on_timeout,
    )


# --------------------------------------------------------------------------- finish


def _observe(call: _Call, status: int | None, error: APIError | None = None) -> None:
    hook = call.plugins.hook.on_failure if error else call.plugins.hook.on_success
    if not hook.get_hookimpls():
        return
    from ._calls import CallRecord

    try:
        retries, resent = (call.attempts.retries, call.attempts.resent) if call.attempts else (0, 0)
        hook(event=CallRecord(call.route, time.perf_counter() - call.started, status, None, error, retries, resent))
    except Exception:  # observers must not break a call
        import logging

        logging.getLogger("modelyard").exception("an on_success/on_failure observer raised")


def _annotate(call: _Call, err: APIError) -> APIError:
    err.provider = err.provider or call.route.provider
    if call.route.deployment:
        err.deployment = err.deployment or call.route.deployment
    return err


def _error(call: _Call, status: int, headers: Mapping[str, str], content: bytes) -> APIError:
    presp = ProviderResponse.model_construct(status_code=status, headers=headers, content=content)
    err = call.plugins.hook.map_error(route=call.route, response=presp)
    if not isinstance(err, APIError):
        body = presp.json_body()
        detail = body.get("error") if isinstance(body, dict) else None
        message = (detail or {}).get("message") if isinstance(detail, dict) else None
        code = (detail or {}).get("code") if isinstance(detail, dict) else None
        err = error_for_status(status)(
            message or f"Upstream answered HTTP {status}.", status_code=status, body=body,
            code=str(code) if code is not None else None,
        )  # fmt: skip
    err.request_id = err.request_id or presp.request_id
    return _annotate(call, err)


_RESULTS: dict[str, type[BaseModel]] = {
    "create_file": FileObject,
    "file_retrieve": FileObject,
    "file_list": FileList,
    "file_delete": FileDeleted,
    "create_batch": Batch,
    "retrieve_batch": Batch,
    "cancel_batch": Batch,
    "list_batches": BatchList,
    "create_fine_tuning_job": FineTuningJob,
    "retrieve_fine_tuning_job": FineTuningJob,
    "cancel_fine_tuning_job": FineTuningJob,
    "list_fine_tuning_jobs": FineTuningJobList,
    "list_fine_tuning_job_events": FineTuningJobEventList,
    "list_fine_tuning_job_checkpoints": FineTuningJobCheckpointList,
}


def _result(call: _Call, status: int, headers: Mapping[str, str], content: bytes) -> Any:
    if status >= 400:
        err = _error(call, status, headers, content)
        _observe(call, status, err)
        raise err
    _observe(call, status)
    operation = call.route.operation
    if operation == "file_content":
        return FileContent(content, headers)
    try:
        return _RESULTS[operation].model_validate_json(content)
    except ValidationError as exc:
        err = error_for_status(502)(
            f"The upstream answered {operation} with an unexpected body: {exc.errors()[0]['msg']}.",
            status_code=502,
        )
        raise _annotate(call, err) from None


def _send(call: _Call) -> Any:
    from .transport import Attempts, get_transport

    call.attempts = Attempts()
    try:
        try:
            response = get_transport().send(
                call.request, call.auth, timeout=call.timeout, num_retries=call.num_retries,
                retry_on_timeout=call.retry_on_timeout, attempts=call.attempts,
            )  # fmt: skip
        except APIError as err:
            _observe(call, err.status_code, err)
            raise _annotate(call, err) from err.__cause__
    finally:
        call.close()
    return _result(call, response.status_code, response.headers, response.content)


async def _aresponse(call: _Call) -> Any:
    """``call`` sent (retried as configured): the upstream's response; a transport error observed and raised."""
    from .transport import Attempts, get_transport

    call.attempts = Attempts()
    try:
        return await get_transport().asend(
            call.request, call.auth, timeout=call.timeout, num_retries=call.num_retries,
            retry_on_timeout=call.retry_on_timeout, attempts=call.attempts,
        )  # fmt: skip
    except APIError as err:
        _observe(call, err.status_code, err)
        raise _annotate(call, err) from err.__cause__


async def _asend(call: _Call) -> Any:
    try:
        response = await _aresponse(call)
    finally:
        call.close()
    return _result(call, response.status_code, response.headers, response.content)


# --------------------------------------------------------------------------- requests


def _create_file_request(file: Any, purpose: Any) -> tuple[FilesRequest, IO[bytes] | None]:
    if not isinstance(purpose, str) or not purpose:
        raise _bad("'purpose' must be a string such as 'batch' or 'fine-tune'.", "purpose")
    upload, owned = _coerce_upload(file, purpose)
    request = FilesRequest(operation="create_file", method="POST", path="/files", form={"purpose": purpose}, upload=upload)
    return request, owned


def _file_list_request(purpose: str | None, after: str | None, limit: int | None) -> FilesRequest:
    params: dict[str, str] = {}
    if purpose is not None:
        params["purpose"] = str(purpose)
    if after is not None:
        params["after"] = _id(after, "after")
    if limit is not None:
        params["limit"] = str(_limit(limit))
    return FilesRequest(operation="file_list", path="/files", params=params)


def _limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
        raise _bad(f"'limit' must be an integer from 1 to 100, got {limit!r}.", "limit")
    return limit


def _create_batch_request(
    input_file_id: Any, endpoint: Any, completion_window: Any, metadata: Any
) -> FilesRequest:
    body: dict[str, Any] = {
        "input_file_id": _id(input_file_id, "input_file_id"),
        "endpoint": endpoint,
        "completion_window": completion_window,
    }
    if not isinstance(endpoint, str) or not endpoint.startswith("/"):
        raise _bad(f"'endpoint' must be a path such as '/v1/chat/completions', got {endpoint!r}.", "endpoint")
    if not isinstance(completion_window, str) or not completion_window:
        raise _bad("'completion_window' must be a string ('24h').", "completion_window")
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise _bad("'metadata' must map strings to strings.", "metadata")
        body["metadata"] = metadata
    return FilesRequest(operation="create_batch", method="POST", path="/batches", json_body=body)


def _list_batches_request(after: str | None, limit: int | None) -> FilesRequest:
    params: dict[str, str] = {}
    if after is not None:
        params["after"] = _id(after, "after")
    if limit is not None:
        params["limit"] = str(_limit(limit))
    return FilesRequest(operation="list_batches", path="/batches", params=params)


def _one(operation: FilesOperation, method: Literal["GET", "POST", "DELETE"], template: str, value: Any,
         param: str) -> FilesRequest:  # fmt: skip
    return FilesRequest(operation=operation, method=method, path=template.format(_segment(value, param)))


# --------------------------------------------------------------------------- public API


def create_file(file: Any, purpose: str = "batch", custom_llm_provider: str = DEFAULT_PROVIDER,
                **kwargs: Any) -> FileObject:  # fmt: skip
    """Upload a file (``POST /files``), as LiteLLM's ``create_file``.

    Args:
        file: a binary file object (streamed, not read whole), bytes, a path, or a
            ``(filename, content[, content_type])`` tuple.
        purpose: ``batch``, ``fine-tune``, ``assistants`` ... A ``batch`` file is checked line by
            line by the provider's plugin before anything is sent.
        custom_llm_provider: which provider plugin answers (``azure``).
        **kwargs: connection settings (``api_base``, ``api_key``, ``api_version`` ...),
            ``extra_headers``, ``extra_body``, ``timeout``, ``num_retries``.

    Returns:
        The :class:`FileObject` (``.id`` is what ``create_batch`` takes).

    Raises:
        BadRequestError: invalid arguments or an invalid batch file (naming the line).
        APIError: the upstream's error, mapped to its class.
    """
    request, owned = _create_file_request(file, purpose)
    return _send(_prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider}, owned))  # type: ignore[no-any-return]


async def acreate_file(file: Any, purpose: str = "batch", custom_llm_provider: str = DEFAULT_PROVIDER,
                       **kwargs: Any) -> FileObject:  # fmt: skip
    """The async twin of :func:`create_file` (the file is checked in a worker thread)."""
    request, owned = _create_file_request(file, purpose)
    kw = {**kwargs, "custom_llm_provider": custom_llm_provider}
    call = await asyncio.to_thread(_prepare, request, kw, owned)
    return await _asend(call)  # type: ignore[no-any-return]


def file_retrieve(file_id: str, custom_llm_provider: str = DEFAULT_PROVIDER, **kwargs: Any) -> FileObject:
    """Describe one file (``GET /files/{id}``); Azure's ``status`` says whether it is ``processed``."""
    request = _one("file_retrieve", "GET", "/files/{}", file_id, "file_id")
    return _send(_prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider}))  # type: ignore[no-any-return]


async def afile_retrieve(file_id: str, custom_llm_provider: str = DEFAULT_PROVIDER, **kwargs: Any) -> FileObject:
    """The async twin of :func:`file_retrieve`."""
    request = _one("file_retrieve", "GET", "/files/{}", file_id, "file_id")
    return await _asend(_prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider}))  # type: ignore[no-any-return]


def file_list(custom_llm_provider: str = DEFAULT_PROVIDER, purpose: str | None = None, *,
              after: str | None = None, limit: int | None = None, **kwargs: Any) -> FileList:  # fmt: skip
    """List files (``GET /files``), optionally of one ``purpose``."""
    request = _file_list_request(purpose, after, limit)
    return _send(_prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider}))  # type: ignore[no-any-return]


async def afile_list(custom_llm_provider: str = DEFAULT_PROVIDER, purpose: str | None = None, *,
                     after: str | None = None, limit: int | None = None, **kwargs: Any) -> FileList:  # fmt: skip
    """The async twin of :func:`file_list`."""
    request = _file_list_request(purpose, after, limit)
    return await _asend(_prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider}))  # type: ignore[no-any-return]


def file_delete(file_id: str, custom_llm_provider: str = DEFAULT_PROVIDER, **kwargs: Any) -> FileDeleted:
    """Delete a file (``DELETE /files/{id}``)."""
    request = _one("file_delete", "DELETE", "/files/{}", file_id, "file_id")
    return _send(_prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider}))  # type: ignore[no-any-return]


async def afile_delete(file_id: str, custom_llm_provider: str = DEFAULT_PROVIDER, **kwargs: Any) -> FileDeleted:
    """The async twin of :func:`file_delete`."""
    request = _one("file_delete", "DELETE", "/files/{}", file_id, "file_id")
    return await _asend(_prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider}))  # type: ignore[no-any-return]


def file_content(file_id: str, custom_llm_provider: str = DEFAULT_PROVIDER, **kwargs: Any) -> FileContent:
    """Download a file's bytes (``GET /files/{id}/content``): batch output and error files."""
    request = _one("file_content", "GET", "/files/{}/content", file_id, "file_id")
    return _send(_prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider}))  # type: ignore[no-any-return]


async def afile_content(file_id: str, custom_llm_provider: str = DEFAULT_PROVIDER, **kwargs: Any) -> FileContent:
    """The async twin of :func:`file_content`."""
    request = _one("file_content", "GET", "/files/{}/content", file_id, "file_id")
    return await _asend(_prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider}))  # type: ignore[no-any-return]


class FileContentStream:
    """A file's bytes as the upstream sends them, not read whole: :func:`aopen_file_content`.

    Iterate :meth:`aiter_bytes` once, then :meth:`aclose` (or use ``async with``); memory stays
    at one chunk whatever the file's size.

    Attributes:
        headers: the upstream response headers (``content-type``, ``content-length`` ...).
    """

    def __init__(self, response: Any) -> None:
        self._response = response
        self.headers: Mapping[str, str] = response.headers

    @property
    def content_type(self) -> str:
        """The upstream's content type (``application/octet-stream`` when it sent none)."""
        return str(self.headers.get("content-type") or "application/octet-stream")

    @property
    def content_length(self) -> int | None:
        """The size the upstream announced for the bytes iterated (None: unknown, or encoded)."""
        length = self.headers.get("content-length")
        if length is None or self.headers.get("content-encoding") or not str(length).isdigit():
            return None
        return int(length)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body, chunk by chunk (decoded when the upstream compressed it).

        Raises:
            APIConnectionError: the connection broke before the last byte.
        """
        import httpx

        try:
            async for chunk in self._response.aiter_bytes():
                yield chunk
        except httpx.TransportError as exc:
            from .transport import _TRANSPORT_ERRORS

            reason = next((text for kind, text in _TRANSPORT_ERRORS if isinstance(exc, kind)), "the connection broke")
            raise APIConnectionError(f"File content download failed: {reason}.") from None

    async def aclose(self) -> None:
        """Release the upstream connection (closed, not pooled, when the body was not read to its end)."""
        await self._response.aclose()

    async def __aenter__(self) -> FileContentStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def aopen_file_content(file_id: str, custom_llm_provider: str = DEFAULT_PROVIDER,
                             **kwargs: Any) -> FileContentStream:  # fmt: skip
    """Start downloading a file's bytes (``GET /files/{id}/content``) without reading them whole.

    As :func:`afile_content`, but the answer is a :class:`FileContentStream` to iterate: a batch
    output of hundreds of megabytes passes through in chunks (the proxy's download endpoint uses
    it). An upstream error is raised here, before any byte, mapped as for :func:`afile_content`.
    """
    request = _one("file_content", "GET", "/files/{}/content", file_id, "file_id")
    call = _prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider})
    call.request = call.request.model_copy(update={"stream": True})
    response = await _aresponse(call)
    if response.status_code >= 400:
        _result(call, response.status_code, response.headers, response.content)  # raises the mapped error
    _observe(call, response.status_code)
    return FileContentStream(response)


def create_batch(
    completion_window: str = "24h",
    endpoint: str = "/v1/chat/completions",
    input_file_id: str | None = None,
    custom_llm_provider: str = DEFAULT_PROVIDER,
    metadata: dict[str, str] | None = None,
    **kwargs: Any,
) -> Batch:
    """Start a batch job over an uploaded ``batch`` file (``POST /batches``), as LiteLLM's ``create_batch``.

    The positional order is LiteLLM's; pass the arguments by name.

    Args:
        completion_window: ``24h``, the only value Azure accepts.
        endpoint: ``/v1/chat/completions`` (Azure also takes ``/chat/completions``).
        input_file_id: the id ``create_file`` returned (required).
        custom_llm_provider: which provider plugin answers (``azure``).
        metadata: string-to-string labels kept on the batch.
        **kwargs: connection settings, ``extra_headers``, ``extra_body``, ``timeout``, ``num_retries``.

    Returns:
        The new :class:`Batch` (``status == "validating"``).
    """
    request = _create_batch_request(input_file_id, endpoint, completion_window, metadata)
    return _send(_prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider}))  # type: ignore[no-any-return]


async def acreate_batch(
    completion_window: str = "24h",
    endpoint: str = "/v1/chat/completions",
    input_file_id: str | None = None,
    custom_llm_provider: str = DEFAULT_PROVIDER,
    metadata: dict[str, str] | None = None,
    **kwargs: Any,
) -> Batch:
    """The async twin of :func:`create_batch`."""
    request = _create_batch_request(input_file_id, endpoint, completion_window, metadata)
    return await _asend(_prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider}))  # type: ignore[no-any-return]


def retrieve_batch(batch_id: str, custom_llm_provider: str = DEFAULT_PROVIDER,
                  metadata: dict[str, str] | None = None, **kwargs: Any) -> Batch:  # fmt: skip
    """The current state of a batch (``GET /batches/{id}``): status, counts, output file ids.

    ``metadata`` is accepted for LiteLLM compatibility and not sent.
    """
    request = _one("retrieve_batch", "GET", "/batches/{}", batch_id, "batch_id")
    return _send(_prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider}))  # type: ignore[no-any-return]


async def aretrieve_batch(batch_id: str, custom_llm_provider: str = DEFAULT_PROVIDER,
                         metadata: dict[str, str] | None = None, **kwargs: Any) -> Batch:  # fmt: skip
    """The async twin of :func:`retrieve_batch`."""
    request = _one("retrieve_batch", "GET", "/batches/{}", batch_id, "batch_id")
    return await _asend(_prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider}))  # type: ignore[no-any-return]


def cancel_batch(batch_id: str, custom_llm_provider: str = DEFAULT_PROVIDER,
                metadata: dict[str, str] | None = None, **kwargs: Any) -> Batch:  # fmt: skip
    """Ask a batch to stop (``POST /batches/{id}/cancel``); it moves to ``cancelling`` then ``cancelled``.

    ``metadata`` is accepted for LiteLLM compatibility and not sent.
    """
    request = _one("cancel_batch", "POST", "/batches/{}/cancel", batch_id, "batch_id")
    return _send(_prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider}))  # type: ignore[no-any-return]


async def acancel_batch(batch_id: str, custom_llm_provider: str = DEFAULT_PROVIDER,
                       metadata: dict[str, str] | None = None, **kwargs: Any) -> Batch:  # fmt: skip
    """The async twin of :func:`cancel_batch`."""
    request = _one("cancel_batch", "POST", "/batches/{}/cancel", batch_id, "batch_id")
    return await _asend(_prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider}))  # type: ignore[no-any-return]


def list_batches(after: str | None = None, limit: int | None = None,
                 custom_llm_provider: str = DEFAULT_PROVIDER, **kwargs: Any) -> BatchList:  # fmt: skip
    """A page of batches, newest first (``GET /batches?after=&limit=``; Azure's default limit is 20)."""
    request = _list_batches_request(after, limit)
    return _send(_prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider}))  # type: ignore[no-any-return]


async def alist_batches(after: str | None = None, limit: int | None = None,
                        custom_llm_provider: str = DEFAULT_PROVIDER, **kwargs: Any) -> BatchList:  # fmt: skip
    """The async twin of :func:`list_batches`."""
    request = _list_batches_request(after, limit)
    return await _asend(_prepare(request, {**kwargs, "custom_llm_provider": custom_llm_provider}))  # type: ignore[no-any-return]
