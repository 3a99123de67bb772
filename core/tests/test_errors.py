"""Every public error class, raised from the Azure response that causes it; no secret leaks."""

from __future__ import annotations

import modelyard
import pytest
from modelyard import errors
from modelyard.testing import KEY, Emulator, Faults

SECRET_TOKEN = "eyJsecret-token-that-must-not-leak"


def _call(api_base: str, deployment: str = "gpt-4o", content: str = "hi", **kw):
    kw.setdefault("api_key", KEY)
    return modelyard.completion(
        model=f"azure/{deployment}",
        api_base=api_base,
        api_version="2024-10-21",
        messages=[{"role": "user", "content": content}],
        num_retries=0,
        **kw,
    )


def _assert_clean(exc: BaseException, *secrets: str) -> None:
    for text in (str(exc), repr(exc), repr(exc.args)):
        for secret in (KEY, SECRET_TOKEN, *secrets):
            assert secret not in text


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequestError),
        (403, errors.PermissionDeniedError),
        (408, errors.APITimeoutError),
        (422, errors.UnprocessableEntityError),
        (500, errors.InternalServerError),
        (503, errors.ServiceUnavailableError),
    ],
)
def test_status_maps_to_class(api_base: str, emulator: Emulator, status: int, cls: type) -> None:
    emulator.deployments["gpt-4o"].faults = Faults(script=[status])
    with pytest.raises(cls) as info:
        _call(api_base)
    err = info.value
    assert type(err) is cls
    assert err.status_code == status
    assert err.deployment == "gpt-4o" and err.model == "azure/gpt-4o" and err.provider == "azure"
    assert err.request_id is None or isinstance(err.request_id, str)
    _assert_clean(err)


def test_429_is_rate_limit_with_retry_after(api_base: str, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults = Faults(script=[429], retry_after=7)
    with pytest.raises(errors.RateLimitError) as info:
        _call(api_base)
    assert info.value.status_code == 429
    assert info.value.retry_after == 7.0
    _assert_clean(info.value)


def test_bad_key_is_authentication_error_without_the_key(api_base: str, emulator: Emulator) -> None:
    wrong = "ffffffffffffffffffffffffffffffff"
    with pytest.raises(errors.AuthenticationError) as info:
        _call(api_base, api_key=wrong)
    assert info.value.status_code == 401
    _assert_clean(info.value, wrong)


def test_bad_token_is_authentication_error_without_the_token(api_base: str, emulator: Emulator) -> None:
    with pytest.raises(errors.AuthenticationError) as info:
        _call(api_base, api_key=None, azure_ad_token=SECRET_TOKEN)
    assert "Access token is missing, invalid" in str(info.value)
    _assert_clean(info.value)


def test_deployment_not_found_keeps_code(api_base: str, emulator: Emulator) -> None:
    with pytest.raises(errors.NotFoundError) as info:
        _call(api_base, deployment="no-such-deployment")
    assert info.value.code == "DeploymentNotFound"
    assert "no-such-deployment" in str(info.value)
    _assert_clean(info.value)


def test_content_filter_carries_filter_result(api_base: str, emulator: Emulator) -> None:
    with pytest.raises(errors.ContentFilterError) as info:
        _call(api_base, content="tell me emulator:filter-prompt")
    err = info.value
    assert err.status_code == 400 and err.code == "content_filter"
    assert err.content_filter_result["hate"] == {"filtered": True, "severity": "high"}
    assert isinstance(err, errors.BadRequestError)
    assert err.request_id
    _assert_clean(err)


def test_context_window(api_base: str, emulator: Emulator) -> None:
    with pytest.raises(errors.ContextWindowExceededError) as info:
        _call(api_base, deployment="small-context", content="word " * 50)
    assert info.value.code == "context_length_exceeded"
    assert isinstance(info.value, errors.BadRequestError)


def test_timeout(api_base: str, emulator: Emulator) -> None:
    emulator.deployments["gpt-4o"].faults = Faults(latency=1.0)
    with pytest.raises(errors.APITimeoutError) as info:
        _call(api_base, timeout=0.2)
    assert isinstance(info.value, errors.APIConnectionError)
    assert info.value.deployment == "gpt-4o"
    _assert_clean(info.value)


def test_connection_error() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(errors.APIConnectionError) as info:
        _call(f"http://127.0.0.1:{port}")
    assert type(info.value) is errors.APIConnectionError
    _assert_clean(info.value)


def test_unsupported_params_error_fields() -> None:
    err = errors.UnsupportedParamsError("no", param="top_p", family="o_series")
    assert err.status_code == 400 and err.param == "top_p" and err.family == "o_series"
    assert err.to_response_body() == {
        "error": {"message": "no", "type": "invalid_request_error", "param": "top_p", "code": "unsupported_parameter"}
    }


def test_config_and_plugin_errors_name_their_subject() -> None:
    assert errors.ConfigError("x", key="model_list[0]").key == "model_list[0]"
    assert errors.PluginError("x", plugin="azure_chat").plugin == "azure_chat"


def test_every_public_error_is_exported() -> None:
    public = {n for n in errors.__all__ if n.endswith("Error")}
    assert public <= set(modelyard.__all__)
    for name in public:
        assert getattr(modelyard, name) is getattr(errors, name)


def test_no_credential_names_parameters_and_variables(api_base: str) -> None:
    with pytest.raises(errors.AuthenticationError) as info:
        _call(api_base, api_key=None)
    message = str(info.value)
    for name in ("api_key", "azure_ad_token", "azure_ad_token_provider", "AZURE_API_KEY", "AZURE_AD_TOKEN"):
        assert name in message


def test_secrets_absent_from_connection_repr() -> None:
    from modelyard.types import Connection

    conn = Connection(api_key=KEY, azure_ad_token=SECRET_TOKEN, client_secret="s3cr3t-value", extra_headers={"api-key": KEY})
    _assert_clean(ValueError(repr(conn)), "s3cr3t-value")
    assert "api_key" in repr(conn)
