"""Docs guards: every hook is documented with its exact signature; the public surface is pinned."""

from __future__ import annotations

import inspect
from pathlib import Path

import modelyard
from modelyard import hookspecs

ROOT = Path(__file__).resolve().parents[2]


def _specs() -> dict[str, object]:
    return {n: f for n, f in vars(hookspecs).items() if callable(f) and hasattr(f, "modelyard_spec")}


def test_every_hook_has_a_heading_with_its_signature() -> None:
    text = (ROOT / "docs" / "plugins" / "hooks.md").read_text()
    for name, func in _specs().items():
        signature = str(inspect.signature(func)).replace("'", "")
        assert f"### {name}{signature}" in text, f"docs/plugins/hooks.md lacks '### {name}{signature}'"


def test_every_hook_has_a_docstring_naming_its_version() -> None:
    for name, func in _specs().items():
        assert "Since HOOK_API" in (func.__doc__ or ""), name


def test_public_surface_is_pinned() -> None:
    assert sorted(modelyard.__all__) == sorted(
        [
            "HOOK_API", "APIConnectionError", "APIError", "APITimeoutError", "AsyncChatStream",
            "AuthenticationError", "BadRequestError", "ChatCompletion", "ChatCompletionChunk", "ChatStream",
            "ConfigError", "ContentFilterError", "ContextWindowExceededError", "InternalServerError",
            "ModelyardError", "NotFoundError", "PermissionDeniedError", "PluginError", "PluginNotLoadedError", "RateLimitError",
            "Router", "ServiceUnavailableError", "TextCompletion", "UnprocessableEntityError", "UnsupportedParamsError",
            "acompletion", "completion", "drop_params", "enable_azure_ad_token_refresh", "hookimpl",
            "create_file", "acreate_file", "file_retrieve", "afile_retrieve", "file_list", "afile_list",
            "file_delete", "afile_delete", "file_content", "afile_content", "create_batch", "acreate_batch",
            "retrieve_batch", "aretrieve_batch", "cancel_batch", "acancel_batch", "list_batches",
            "alist_batches",
            "AsyncTextStream", "TextStream", "atext_completion", "text_completion",
            "AzureHeaders", "api_key", "azure_key", "api_base", "base_url", "api_version", "azure_ad_token",
            "tenant_id", "client_id", "client_secret", "azure_username", "azure_password",
            "client_certificate_path", "client_certificate_password", "azure_scope", "azure_authority_host",
            "num_retries", "request_timeout",
            "EmbeddingResponse", "embedding", "aembedding",
            "ImageResponse", "image_generation", "aimage_generation", "image_edit", "aimage_edit",
            "BinaryResponse", "TranscriptionResponse", "speech", "aspeech", "transcription", "atranscription",
            "translation", "atranslation",
            "completion_cost", "register_model",
            "create_fine_tuning_job", "acreate_fine_tuning_job", "list_fine_tuning_jobs", "alist_fine_tuning_jobs",
            "retrieve_fine_tuning_job", "aretrieve_fine_tuning_job", "cancel_fine_tuning_job", "acancel_fine_tuning_job",
            "list_fine_tuning_job_events", "alist_fine_tuning_job_events",
            "list_fine_tuning_job_checkpoints", "alist_fine_tuning_job_checkpoints",
            "anthropic_messages", "aanthropic_messages",
            "responses", "aresponses", "get_responses", "aget_responses", "delete_responses", "adelete_responses",
            "list_input_items", "alist_input_items", "cancel_responses", "acancel_responses", "ResponsesStream",
            "AsyncResponsesStream", "ResponsesAPIResponse",
        ]
    )  # fmt: skip
    for name in modelyard.__all__:
        getattr(modelyard, name)


def test_every_httpx_transport_error_is_mapped() -> None:
    import httpx
    from modelyard import errors
    from modelyard.transport import _connection_error
    from modelyard.types import ProviderRequest

    request = ProviderRequest(url="http://127.0.0.1:1/x")
    leaves = [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout,
              httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.CloseError,
              httpx.RemoteProtocolError, httpx.LocalProtocolError, httpx.ProxyError, httpx.UnsupportedProtocol]  # fmt: skip
    for exc_type in leaves:
        err = _connection_error(exc_type("boom"), request)
        expected = errors.APITimeoutError if issubclass(exc_type, httpx.TimeoutException) else errors.APIConnectionError
        assert type(err) is expected, exc_type
