"""modelyard: model APIs from Python, through provider plugins.

``from modelyard import completion`` (or ``embedding`` ...) and call ``completion(model="<provider>/<deployment>", ...)``.
Everything heavy (httpx, pydantic models, plugins) loads on first use, so ``import modelyard``
stays fast.

Module settings, as LiteLLM's (``modelyard.api_key = ...``): each fills what a call leaves unset,
read at every call, so a change takes effect on the next one. Precedence: call arguments >
module settings > environment variables (docs/sdk.md). A call that passes any credential takes
none from here, and one that passes ``api_base`` or ``base_url`` takes neither from here.

    api_key: the API key.
    api_base, base_url: the endpoint, or a full base URL.
    api_version: the upstream API's version.
    drop_params: drop parameters a model family does not support instead of raising.
    num_retries: retries after the first try (None: 2).
    request_timeout: seconds per upstream call (None: 600).
    and every connection setting the loaded provider plugins declare (``modelyard plugins``
    lists them; ``register_connection_settings``), with its declared default until set.

Secrets set here go into ``SecretStr`` fields at each call and never show in reprs, errors or logs.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from ._httpx_cli import defer as _defer_httpx_cli

_defer_httpx_cli()  # httpx's CLI (click, rich, pygments) loads only if its command runs

if TYPE_CHECKING:
    from .api import (
        AsyncChatStream,
        AsyncTextStream,
        ChatStream,
        TextStream,
        acompletion,
        aembedding,
        aimage_edit,
        aimage_generation,
        aspeech,
        atext_completion,
        atranscription,
        atranslation,
        completion,
        embedding,
        image_edit,
        image_generation,
        speech,
        text_completion,
        transcription,
        translation,
    )
    from .binary import BinaryResponse
    from .errors import (
        APIConnectionError,
        APIError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        ConfigError,
        ContentFilterError,
        ContextWindowExceededError,
        InternalServerError,
        ModelyardError,
        NotFoundError,
        PermissionDeniedError,
        PluginError,
        PluginNotLoadedError,
        RateLimitError,
        ServiceUnavailableError,
        UnprocessableEntityError,
        UnsupportedParamsError,
    )
    from .files import (
        acancel_batch,
        acreate_batch,
        acreate_file,
        afile_content,
        afile_delete,
        afile_list,
        afile_retrieve,
        alist_batches,
        aretrieve_batch,
        cancel_batch,
        create_batch,
        create_file,
        file_content,
        file_delete,
        file_list,
        file_retrieve,
        list_batches,
        retrieve_batch,
    )
    from .fine_tuning import (
        acancel_fine_tuning_job,
        acreate_fine_tuning_job,
        alist_fine_tuning_job_checkpoints,
        alist_fine_tuning_job_events,
        alist_fine_tuning_jobs,
        aretrieve_fine_tuning_job,
        cancel_fine_tuning_job,
        create_fine_tuning_job,
        list_fine_tuning_job_checkpoints,
        list_fine_tuning_job_events,
        list_fine_tuning_jobs,
        retrieve_fine_tuning_job,
    )
    from .hookspecs import HOOK_API, hookimpl
    from .pricing import completion_cost, register_model
    from .responses_api import (
        AsyncResponsesStream,
        ResponsesStream,
        acancel_responses,
        adelete_responses,
        aget_responses,
        alist_input_items,
        aresponses,
        cancel_responses,
        delete_responses,
        get_responses,
        list_input_items,
        responses,
    )
    from .responses_types import ResponsesAPIResponse
    from .router import Router
    from .types import (
        ChatCompletion,
        ChatCompletionChunk,
        EmbeddingResponse,
        ImageResponse,
        TextCompletion,
        TranscriptionResponse,
    )

__all__ = [
    "HOOK_API",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncChatStream",
    "AsyncResponsesStream",
    "AsyncTextStream",
    "AuthenticationError",
    "BadRequestError",
    "BinaryResponse",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatStream",
    "ConfigError",
    "ContentFilterError",
    "ContextWindowExceededError",
    "EmbeddingResponse",
    "ImageResponse",
    "InternalServerError",
    "ModelyardError",
    "NotFoundError",
    "PermissionDeniedError",
    "PluginError",
    "PluginNotLoadedError",
    "RateLimitError",
    "ResponsesAPIResponse",
    "ResponsesStream",
    "Router",
    "ServiceUnavailableError",
    "TextCompletion",
    "TextStream",
    "TranscriptionResponse",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "acancel_batch",
    "acancel_fine_tuning_job",
    "acancel_responses",
    "acompletion",
    "acreate_batch",
    "acreate_file",
    "acreate_fine_tuning_job",
    "adelete_responses",
    "aembedding",
    "afile_content",
    "afile_delete",
    "afile_list",
    "afile_retrieve",
    "aget_responses",
    "aimage_edit",
    "aimage_generation",
    "alist_batches",
    "alist_fine_tuning_job_checkpoints",
    "alist_fine_tuning_job_events",
    "alist_fine_tuning_jobs",
    "alist_input_items",
    "api_base",
    "api_key",
    "api_version",
    "aresponses",
    "aretrieve_batch",
    "aretrieve_fine_tuning_job",
    "aspeech",
    "atext_completion",
    "atranscription",
    "atranslation",
    "base_url",
    "cancel_batch",
    "cancel_fine_tuning_job",
    "cancel_responses",
    "completion",
    "completion_cost",
    "create_batch",
    "create_file",
    "create_fine_tuning_job",
    "delete_responses",
    "drop_params",
    "embedding",
    "file_content",
    "file_delete",
    "file_list",
    "file_retrieve",
    "get_responses",
    "hookimpl",
    "image_edit",
    "image_generation",
    "list_batches",
    "list_fine_tuning_job_checkpoints",
    "list_fine_tuning_job_events",
    "list_fine_tuning_jobs",
    "list_input_items",
    "num_retries",
    "register_model",
    "request_timeout",
    "responses",
    "retrieve_batch",
    "retrieve_fine_tuning_job",
    "speech",
    "text_completion",
    "transcription",
    "translation",
]

# The module settings the provider plugins declare, and the header view classes they register,
# are public names too; they are known only once the plugins load, so ``__all__`` is answered by
# ``__getattr__`` (the list above is the core's).
_CORE_ALL = list(__all__)
del __all__

# Module settings (read by api._prepare at each call; plain attributes so that import stays free).
# The provider plugins' own settings (``register_connection_settings``) are read from here too
# once set; until then ``__getattr__`` answers their declared default.
api_key: str | None = None
api_base: str | None = None
base_url: str | None = None
api_version: str | None = None
drop_params: bool = False
num_retries: int | None = None
request_timeout: float | None = None

_RESPONSES = (
    "responses", "aresponses", "get_responses", "aget_responses", "delete_responses", "adelete_responses",
    "list_input_items", "alist_input_items", "cancel_responses", "acancel_responses", "ResponsesStream",
    "AsyncResponsesStream",
)  # fmt: skip
_LAZY = {
    "HOOK_API": "hookspecs",
    "hookimpl": "hookspecs",
    "completion": "api",
    "acompletion": "api",
    "ChatStream": "api",
    "AsyncChatStream": "api",
    "text_completion": "api",
    "atext_completion": "api",
    "TextStream": "api",
    "AsyncTextStream": "api",
    "ChatCompletion": "types",
    "ChatCompletionChunk": "types",
    "TextCompletion": "types",
    "EmbeddingResponse": "types",
    "embedding": "api",
    "aembedding": "api",
    "ImageResponse": "types",
    "image_generation": "api",
    "aimage_generation": "api",
    "image_edit": "api",
    "aimage_edit": "api",
    "speech": "api",
    "aspeech": "api",
    "transcription": "api",
    "atranscription": "api",
    "translation": "api",
    "atranslation": "api",
    "TranscriptionResponse": "types",
    "BinaryResponse": "binary",
    "Router": "router",
    "completion_cost": "pricing",
    "register_model": "pricing",
}
_LAZY.update({name: "fine_tuning" for name in _CORE_ALL if "fine_tuning" in name})
_LAZY.update({name: "responses_api" for name in _RESPONSES})
_LAZY["ResponsesAPIResponse"] = "responses_types"
_LAZY.update({name: "files" for name in _CORE_ALL if ("batch" in name or "file" in name) and name not in _LAZY})
_LAZY.update({name: "errors" for name in _CORE_ALL if name.endswith("Error")})


def _module_settings() -> dict[str, Any]:
    """The module settings the loaded provider plugins declare, with their defaults (loads the plugins)."""
    from .connection import connection_schema

    return {name: s.default for name, s in connection_schema().module_settings.items()}


def _contributed_sdk() -> list[str]:
    """The SDK functions of the operation rows the loaded plugins contribute (loads the plugins)."""
    from .plugins import get_plugins

    return list(get_plugins().operations.by_sdk)


def _plugin_names() -> set[str]:
    """The public names the loaded plugins add: their module settings and header view classes (loads the plugins)."""
    from .plugins import get_plugins

    return {*_module_settings(), *(getattr(view, "__name__", "") for view in get_plugins().header_views.values())} - {""}


def __getattr__(name: str) -> Any:
    if name == "__all__":
        # The public names: the core's, the module settings the loaded providers declare and
        # the SDK functions of their operation rows (register_operations) and the header view
        # classes they register (register_header_views).
        return sorted({*_CORE_ALL, *_plugin_names(), *_contributed_sdk()})
    module = _LAZY.get(name)
    if module is None:
        # ``from . import hookspecs`` asks here first: a submodule is never a setting.
        if not name.startswith("_") and find_spec(f"{__name__}.{name}") is None:
            settings = _module_settings()
            if name in settings:
                return settings[name]
            # The typed header view classes and the SDK functions of the operation rows that
            # provider plugins register; neither is cached here: they go with their plugin set.
            from .header_views import missing_class, view_class
            from .operation_table import sdk_function
            from .plugins import get_plugins

            found = view_class(name)
            if found is not None:
                return found
            table = get_plugins().operations
            if table.function(name) is not None or name in table.refs:
                return sdk_function(name, __name__)
            raise missing_class(__name__, name)
        raise AttributeError(f"module 'modelyard' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*_CORE_ALL, *_plugin_names(), *_contributed_sdk()})
