"""The exception tree raised by the SDK and rendered by the proxy.

```
ModelyardError
├── ConfigError            a setting is missing or invalid (names the key)
├── PluginError            a plugin failed to load or broke the hook contract (names the plugin)
│   └── PluginNotLoadedError 501    no loaded plugin serves the call (also an APIError)
└── APIError               one request failed; .status_code .type .provider .deployment .request_id
    ├── BadRequestError 400
    │   ├── ContextWindowExceededError      code context_length_exceeded
    │   ├── ContentFilterError              code content_filter (.content_filter_result)
    │   └── UnsupportedParamsError          a parameter the model family does not take
    ├── AuthenticationError 401
    ├── PermissionDeniedError 403
    ├── NotFoundError 404                   (.code "DeploymentNotFound" kept)
    ├── UnprocessableEntityError 422
    ├── RateLimitError 429                  (.retry_after in seconds; any APIError may carry one)
    ├── InternalServerError 500 / other 5xx
    │   └── ServiceUnavailableError 503
    ├── PluginNotLoadedError 501            names the distribution to install or unblock
    └── APIConnectionError                  no HTTP response at all
        └── APITimeoutError 408
```

Messages say what failed and what to do; they never contain a credential. ``repr`` shows
the class, status and message only.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

__all__ = [
    "MAX_RETRY_AFTER",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
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
    "ServiceUnavailableError",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "error_for_status",
]


class ModelyardError(Exception):
    """Root of every error modelyard raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ConfigError(ModelyardError):
    """A setting is missing or invalid; ``key`` names it (``model_list[2].litellm_params.api_version``)."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class PluginError(ModelyardError):
    """A plugin could not be loaded or answered a hook with the wrong type; ``plugin`` names it."""

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin


class APIError(ModelyardError):
    """One request failed.

    Attributes:
        status_code: the HTTP status (the upstream's, or the one the proxy answers with).
        type: the OpenAI error type (``invalid_request_error``, ``rate_limit_error`` ...).
        code: the upstream error code when it gave one (``DeploymentNotFound``, ``content_filter``).
        param: the request field at fault, when known.
        provider: the provider that failed (``azure``).
        model: the model string the caller passed.
        deployment: the upstream deployment.
        request_id: ``apim-request-id`` / ``x-request-id`` of the failed upstream call.
        body: the upstream's parsed error body (never contains credentials; Azure does not echo them).
        retry_after: seconds to wait before trying again, when known: an upstream's 429, or the
            Router's answer when every deployment of a group is cooling down (None: unknown).
    """

    status_code: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        param: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        deployment: str | None = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code  # type: ignore[misc]  # instance override of the class default
        self.code = code
        self.param = param
        self.provider = provider
        self.model = model
        self.deployment = deployment
        self.request_id = request_id
        self.body = body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code}, message={self.message!r})"

    def to_response_body(self) -> dict[str, Any]:
        """The JSON body the proxy answers this error with: ``{"error": {message, type, param, code}}``.

        OpenAI's error object, which OpenAI-compatible clients read (named ``to_openai`` before 0.2.1).
        """
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code if self.code is not None else str(self.status_code),
            }
        }


class BadRequestError(APIError):
    """400: the upstream (or modelyard, before sending) refused the request's content."""

    status_code = 400
    type = "invalid_request_error"


class ContextWindowExceededError(BadRequestError):
    """400 ``context_length_exceeded``: the prompt is longer than the model's context window."""


class ContentFilterError(BadRequestError):
    """400 ``content_filter``: Azure's content filter blocked the prompt.

    ``content_filter_result`` holds Azure's per-category verdicts (``hate``, ``jailbreak`` ...).
    """

    def __init__(
        self, message: str, *, content_filter_result: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        kw.setdefault("code", "content_filter")
        super().__init__(message, **kw)
        self.content_filter_result = content_filter_result or {}


class UnsupportedParamsError(BadRequestError):
    """A parameter that the model family does not take; raised before any request is sent."""

    def __init__(self, message: str, *, param: str, family: str, **kw: Any) -> None:
        kw.setdefault("code", "unsupported_parameter")
        super().__init__(message, param=param, **kw)
        self.family = family


class AuthenticationError(APIError):
    """401: no credential, or the upstream refused the one given."""

    status_code = 401
    type = "authentication_error"


class PermissionDeniedError(APIError):
    """403: the credential is valid but lacks a role for this operation."""

    status_code = 403
    type = "permission_error"


class NotFoundError(APIError):
    """404: unknown deployment (``code == "DeploymentNotFound"``), model, path or api-version."""

    status_code = 404
    type = "not_found_error"


class UnprocessableEntityError(APIError):
    """422: the request is well-formed but cannot be processed."""

    status_code = 422
    type = "invalid_request_error"


MAX_RETRY_AFTER = 60.0
"""The longest wait, in seconds, taken from an upstream's ``retry-after-ms`` / ``retry-after``.

A longer wait is clamped to it: the SDK's retries sleep at most this long, the Router cools a
deployment down at most this long for it, the proxy promises at most this much.
"""


class RateLimitError(APIError):
    """429: the deployment's quota is exhausted.

    ``retry_after`` is in seconds when the upstream said: at most :data:`MAX_RETRY_AFTER`
    (a longer value is clamped); a negative or non-finite value is dropped (None).
    """

    status_code = 429
    type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        if retry_after is not None and not (math.isfinite(retry_after) and retry_after >= 0):
            retry_after = None  # "inf" would cool a deployment down for ever
        self.retry_after = None if retry_after is None else min(float(retry_after), MAX_RETRY_AFTER)


class InternalServerError(APIError):
    """500 and any other 5xx the upstream answered."""

    status_code = 500
    type = "api_error"


class ServiceUnavailableError(InternalServerError):
    """503: the upstream is overloaded or down."""

    status_code = 503


class PluginNotLoadedError(APIError, PluginError):
    """501: no loaded plugin serves this call (an operation, or credentials, for a provider).

    Raised before anything is sent. The message names the distribution that would serve the
    call, as the provider's plugins declare it (``register_providers``), and why it is not
    loaded (not installed, blocked, not in the load list, skipped with the reason), with the
    line that fixes it. ``plugin`` is that distribution (None when no plugin declares one);
    ``code`` is ``plugin_not_loaded``. It is a :class:`PluginError` too, for callers that
    caught the earlier "No plugin answered ..." error.
    """

    status_code = 501
    type = "api_error"

    def __init__(self, message: str, *, plugin: str | None = None, **kw: Any) -> None:
        kw.setdefault("code", "plugin_not_loaded")
        super().__init__(message, **kw)
        self.plugin = plugin


class APIConnectionError(APIError):
    """No HTTP response: the connection failed or broke.

    ``request_sent`` is True when the call failed after the request left (a read timeout, a
    connection dropped while waiting for the answer): the upstream may have received it and
    be running and billing it, so a retry can duplicate it (see ``retry_on_timeout``). It is
    False when the connection could not be made, and for an upstream's own 408 answer.
    """

    status_code = 502
    type = "api_connection_error"

    def __init__(self, message: str, *, request_sent: bool = False, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.request_sent = request_sent


class APITimeoutError(APIConnectionError):
    """408, or the request ran past its timeout."""

    status_code = 408
    type = "timeout_error"


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: APITimeoutError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    500: InternalServerError,
    503: ServiceUnavailableError,
}


def error_for_status(status_code: int) -> type[APIError]:
    """The error class for an HTTP status: exact match first, then by class (4xx, 5xx)."""
    cls = _BY_STATUS.get(status_code)
    if cls is not None:
        return cls
    return InternalServerError if status_code >= 500 else BadRequestError
