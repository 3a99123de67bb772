"""modelyard: Azure OpenAI from Python.

``from modelyard import completion`` and call ``completion(model="azure/<deployment>", ...)``.
Everything heavy (httpx, pydantic models, plugins) loads on first use, so ``import modelyard``
stays fast.

Module settings:
    drop_params: drop parameters a model family does not support instead of raising.
    enable_azure_ad_token_refresh: fall back to ``DefaultAzureCredential`` when no credential
        is given (needs the ``modelyard-azure-auth`` plugin and azure-identity).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import (
        AsyncChatStream,
        AsyncTextStream,
        ChatStream,
        TextStream,
        acompletion,
        atext_completion,
        completion,
        text_completion,
    )
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
    from .hookspecs import HOOK_API, hookimpl
    from .router import Router
    from .types import ChatCompletion, ChatCompletionChunk, TextCompletion

__all__ = [
    "HOOK_API",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncChatStream",
    "AsyncTextStream",
    "AuthenticationError",
    "BadRequestError",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatStream",
    "ConfigError",
    "ContentFilterError",
    "ContextWindowExceededError",
    "InternalServerError",
    "ModelyardError",
    "NotFoundError",
    "PermissionDeniedError",
    "PluginError",
    "PluginNotLoadedError",
    "RateLimitError",
    "Router",
    "ServiceUnavailableError",
    "TextCompletion",
    "TextStream",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "acancel_batch",
    "acompletion",
    "acreate_batch",
    "acreate_file",
    "afile_content",
    "afile_delete",
    "afile_list",
    "afile_retrieve",
    "alist_batches",
    "aretrieve_batch",
    "atext_completion",
    "cancel_batch",
    "completion",
    "create_batch",
    "create_file",
    "drop_params",
    "enable_azure_ad_token_refresh",
    "file_content",
    "file_delete",
    "file_list",
    "file_retrieve",
    "hookimpl",
    "list_batches",
    "retrieve_batch",
    "text_completion",
]

drop_params: bool = False
enable_azure_ad_token_refresh: bool = False

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
    "Router": "router",
}
_LAZY.update({name: "files" for name in __all__ if "batch" in name or "file" in name})
_LAZY.update({name: "errors" for name in __all__ if name.endswith("Error")})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelyard' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
