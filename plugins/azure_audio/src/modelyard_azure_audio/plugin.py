"""Azure OpenAI audio: ``transform_request``, ``normalize_response`` and ``map_error`` for
(``azure``, ``speech``), (``azure``, ``transcriptions``) and (``azure``, ``translations``), and
nothing else.

* ``speech``: ``POST .../audio/speech`` with a JSON body; the answer is audio, which the core
  hands back unread as a streamed ``BinaryResponse`` (``normalize_response`` is not asked).
* ``transcriptions`` / ``translations``: ``POST .../audio/transcriptions|translations`` as a
  multipart upload: the ``file`` part streamed from where it is, the other fields as form fields
  (``timestamp_granularities[]`` repeated); the answer is JSON for ``json`` / ``verbose_json``
  and plain text for ``text`` / ``srt`` / ``vtt``, each a ``TranscriptionResponse`` whose
  ``text`` is the transcript (subtitle files unchanged).

The model string is resolved by the ``azure/`` family (``modelyard-azure-chat``); blocking this
plugin leaves every other operation working and makes its own fail before sending, naming it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelyard import hookimpl
from modelyard.families import Provider
from modelyard.hookspecs import answers_for
from modelyard.operations import OPERATIONS, multipart_parts
from modelyard.types import ProviderRequest, TranscriptionResponse
from modelyard_azure_common.errors import map_azure_error
from modelyard_azure_common.paths import deployment_paths
from modelyard_azure_common.urls import deployment_url

if TYPE_CHECKING:
    from modelyard.errors import APIError
    from modelyard.hookspecs import RegisterOperation, RegisterProvider
    from modelyard.types import ChatRequest, Connection, ProviderResponse, Route

HOOK_API = (1, 11)  # answers_for (1.11); keeps_answers (1.10); register_operations: the AzureOpenAI clients' paths (1.4: hooks per operation)
PROVIDER = "azure"
PATHS = {"speech": "/audio/speech", "transcriptions": "/audio/transcriptions", "translations": "/audio/translations"}
"""Each operation served and its path after the deployment (upstream, and the proxy's for ``AzureOpenAI`` clients)."""
OPERATIONS_SERVED = tuple(PATHS)
DISTRIBUTION = "modelyard-azure-audio"


def _mine(route: Route) -> bool:
    return route.provider == PROVIDER and route.operation in OPERATIONS_SERVED


@hookimpl
@answers_for(PROVIDER, *OPERATIONS_SERVED)
def transform_request(route: Route, request: ChatRequest, connection: Connection) -> ProviderRequest | None:
    """The upstream call: ``POST /openai/deployments/{d}/audio/<op>?api-version=V`` (or
    ``/openai/v1/audio/<op>`` with ``model`` in the body or form)."""
    if not _mine(route):
        return None
    op = OPERATIONS[route.operation]
    url, query, model_in_body = deployment_url(connection, route.deployment, PATHS[route.operation])
    params = dict(request.params)
    if model_in_body:
        params["model"] = route.deployment
    headers = dict(connection.extra_headers) if connection.extra_headers else {}
    if op.body == "multipart":
        if isinstance(params.get("file"), tuple):
            params["file"] = _named(params["file"])
        files, data = multipart_parts(op, params)
        return ProviderRequest(url=url, params=query, headers=headers, files=files, data=data)
    return ProviderRequest(url=url, params=query, headers=headers, json_body=params)


# Azure tells the audio format by the file name's extension: an upload without one (bytes, an
# unnamed stream) is named by its first bytes, which every audio container starts with.
_MAGIC = ((b"fLaC", "flac"), (b"OggS", "ogg"), (b"ID3", "mp3"), (b"\xff\xfb", "mp3"), (b"\xff\xf3", "mp3"),
          (b"\x1a\x45\xdf\xa3", "webm"))  # fmt: skip


def _named(part: tuple[str, Any, str]) -> tuple[str, Any, str]:
    """``(filename, fileobj, content_type)`` with an audio extension when the name has none
    (a name the caller gave with an extension is theirs: Azure judges it)."""
    filename, fileobj, ctype = part
    if "." in filename or not hasattr(fileobj, "seek"):
        return part
    start = fileobj.tell()
    head = fileobj.read(12)
    fileobj.seek(start)
    ext = next((e for magic, e in _MAGIC if head.startswith(magic)), None)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        ext = "wav"
    elif head[4:8] == b"ftyp":
        ext = "m4a"
    if ext is None:
        return part
    if ctype == "application/octet-stream":
        ctype = {"mp3": "audio/mpeg", "m4a": "audio/mp4"}.get(ext, f"audio/{ext}")
    return (f"{filename or 'audio'}.{ext}", fileobj, ctype)


@hookimpl
@answers_for(PROVIDER, *OPERATIONS_SERVED)
def keeps_answers(route: Route, kind: str) -> bool | None:
    """Transcripts are made here (text formats): not kept as sent; None for others' routes."""
    return False if _mine(route) else None


@hookimpl
@answers_for(PROVIDER, *OPERATIONS_SERVED)
def normalize_response(route: Route, response: ProviderResponse) -> TranscriptionResponse | None:
    """A transcription or translation as a :class:`TranscriptionResponse` (``.text`` always)."""
    if not _mine(route) or route.operation == "speech":
        return None
    ctype = str(response.headers.get("content-type") or "")
    if "json" in ctype:
        return TranscriptionResponse.model_validate_json(response.content)
    # text / srt / vtt: the transcript as Azure wrote it (subtitles keep their cue lines).
    return TranscriptionResponse(text=response.content.decode("utf-8", "replace"))


@hookimpl
@answers_for(PROVIDER, *OPERATIONS_SERVED)
def map_error(route: Route, response: ProviderResponse) -> APIError | None:
    """Azure's error bodies, mapped as for every Azure operation (``param`` kept)."""
    if not _mine(route):
        return None
    return map_azure_error(route, response, PROVIDER)


@hookimpl
def register_operations(register: RegisterOperation) -> None:
    """``/openai/deployments/{model}/audio/...`` on the proxy, for ``AzureOpenAI`` clients."""
    for path in deployment_paths(PATHS):
        register(path)


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    """Declares that this distribution serves ``transform_request`` for the audio operations."""
    register(Provider(name=PROVIDER, served_by={f"transform_request:{op}": DISTRIBUTION for op in OPERATIONS_SERVED}))
