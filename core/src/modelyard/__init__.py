"""modelyard: Azure OpenAI from Python.

``from modelyard import completion`` (or ``embedding`` ...) and call ``completion(model="azure/<deployment>", ...)``.
Everything heavy (httpx, pydantic models, plugins) loads on first use, so ``import modelyard``
stays fast.

Module settings, as LiteLLM's (``modelyard.api_key = ...``): each fills what a call leaves unset,
read at every call, so a change takes effect on the next one. Precedence: call arguments >
module settings > environment variables (docs/sdk.md). A call that passes any credential takes
none from here, and one that passes ``api_base`` or ``base_url`` takes neither from here.

    api_key, azure_key: the API key (``azure_key`` is read when ``api_key`` is None).
    api_base, base_url: the endpoint (``https://<resource>.openai.azure.com``), or a full base URL.
    api_version: the api-version (``2024-10-21``, ``v1`` ...).
    azure_ad_token: a Microsoft Entra ID bearer token.
    tenant_id, client_id, client_secret, azure_username, azure_password,
    client_certificate_path, client_certificate_password, azure_scope, azure_authority_host:
        an Entra ID credential and where to get tokens, as the call arguments of the same names.
    drop_params: drop parameters a model family does not support instead of raising.
    num_retries: retries after the first try (None: 2).
    request_timeout: seconds per upstream call (None: 600).
    enable_azure_ad_token_refresh: fall back to ``DefaultAzureCredential`` when no credential
        is given (needs the ``modelyard-azure-auth`` plugin and azure-identity).

Secrets set here go into ``SecretStr`` fields at each call and never show in reprs, errors or logs.
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
        aanthropic_messages,
        acompletion,
        aembedding,
        aimage_edit,
        aimage_generation,
        anthropic_messages,
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
        AzureHeaders,
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
    "AzureHeaders",
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
    "aanthropic_messages",
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
    "anthropic_messages",
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
    "azure_ad_token",
    "azure_authority_host",
    "azure_key",
    "azure_password",
    "azure_scope",
    "azure_username",
    "base_url",
    "cancel_batch",
    "cancel_fine_tuning_job",
    "cancel_responses",
    "client_certificate_password",
    "client_certificate_path",
    "client_id",
    "client_secret",
    "completion",
    "completion_cost",
    "create_batch",
    "create_file",
    "create_fine_tuning_job",
    "delete_responses",
    "drop_params",
    "embedding",
    "enable_azure_ad_token_refresh",
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
    "tenant_id",
    "text_completion",
    "transcription",
    "translation",
]

# Module settings (read by api._prepare at each call; plain attributes so that import stays free).
api_key: str | None = None
azure_key: str | None = None
api_base: str | None = None
base_url: str | None = None
api_version: str | None = None
azure_ad_token: str | None = None
tenant_id: str | None = None
client_id: str | None = None
client_secret: str | None = None
azure_username: str | None = None
azure_password: str | None = None
client_certificate_path: str | None = None
client_certificate_password: str | None = None
azure_scope: str | None = None
azure_authority_host: str | None = None
drop_params: bool = False
num_retries: int | None = None
request_timeout: float | None = None
enable_azure_ad_token_refresh: bool = False

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
    "AzureHeaders": "types",
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
    "anthropic_messages": "api",
    "aanthropic_messages": "api",
    "TranscriptionResponse": "types",
    "BinaryResponse": "binary",
    "Router": "router",
    "completion_cost": "pricing",
    "register_model": "pricing",
}
_LAZY.update({name: "fine_tuning" for name in __all__ if "fine_tuning" in name})
_LAZY.update({name: "responses_api" for name in _RESPONSES})
_LAZY["ResponsesAPIResponse"] = "responses_types"
_LAZY.update({name: "files" for name in __all__ if ("batch" in name or "file" in name) and name not in _LAZY})
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
