"""Azure OpenAI images: ``transform_request``, ``normalize_response`` and ``map_error`` for
(``azure``, ``image_generation``) and (``azure``, ``image_edit``), and nothing else.

The model string is resolved by the ``azure/`` family (``modelyard-azure-chat``); this plugin
only answers for its two operations, so blocking it leaves every other operation working and
makes ``image_generation()`` / ``image_edit()`` fail before sending, naming this distribution.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelyard import hookimpl
from modelyard.errors import BadRequestError
from modelyard.families import Provider
from modelyard.hookspecs import answers_for
from modelyard.types import ImageResponse, ProviderRequest
from modelyard_azure_common.errors import map_azure_error
from modelyard_azure_common.paths import deployment_paths
from modelyard_azure_common.urls import deployment_url

from .uploads import file_part

if TYPE_CHECKING:
    from modelyard.errors import APIError
    from modelyard.hookspecs import RegisterOperation, RegisterProvider
    from modelyard.types import ChatRequest, Connection, ProviderResponse, Route

HOOK_API = (1, 11)  # answers_for (1.11); keeps_answers (1.10); register_operations: the AzureOpenAI clients' paths (1.4: hooks per operation)
PROVIDER = "azure"
OPERATIONS = {"image_generation": "/images/generations", "image_edit": "/images/edits"}
DISTRIBUTION = "modelyard-azure-images"


def _mine(route: Route) -> bool:
    return route.provider == PROVIDER and route.operation in OPERATIONS


def _edit(params: dict[str, Any], model: str | None) -> ProviderRequest:
    """The multipart parts of an edit: ``image`` (``image[]`` for several, as the openai SDK
    sends them), ``mask``, and every other field as a form field."""
    images = params.pop("image")
    mask = params.pop("mask", None)
    files: list[tuple[str, Any]] = []
    try:
        if isinstance(images, list):
            files += [("image[]", file_part(v, f"image-{i}.png")) for i, v in enumerate(images)]
        else:
            files.append(("image", file_part(images, "image.png")))
        if mask is not None:
            files.append(("mask", file_part(mask, "mask.png")))
    except FileNotFoundError as exc:
        raise BadRequestError(f"Invalid value for 'image': no such file {exc.args[0]!r}.", param="image") from None
    data = {k: v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
    if model is not None:
        data["model"] = model
    return ProviderRequest(url="", files=files, data=data)


@hookimpl
@answers_for(PROVIDER, *OPERATIONS)
def transform_request(route: Route, request: ChatRequest, connection: Connection) -> ProviderRequest | None:
    """``POST /openai/deployments/{d}/images/generations?api-version=V`` (or ``/openai/v1/...``
    with ``model`` in the body) with the validated JSON body; ``images/edits`` as a multipart
    upload whose files are streamed from their paths or file objects."""
    if not _mine(route):
        return None
    url, query, model_in_body = deployment_url(connection, route.deployment, OPERATIONS[route.operation])
    headers = dict(connection.extra_headers) if connection.extra_headers else {}
    body = dict(request.params)
    if route.operation == "image_edit":
        upload = _edit(body, route.deployment if model_in_body else None)
        return upload.model_copy(update={"url": url, "params": query, "headers": headers})
    if model_in_body:
        body["model"] = route.deployment
    return ProviderRequest(url=url, params=query, headers=headers, json_body=body)


@hookimpl
@answers_for(PROVIDER, *OPERATIONS)
def keeps_answers(route: Route, kind: str) -> bool | None:
    """Only image operations are this plugin's: None for every other route."""
    return False if _mine(route) else None


@hookimpl
@answers_for(PROVIDER, *OPERATIONS)
def normalize_response(route: Route, response: ProviderResponse) -> ImageResponse | None:
    """Azure's answer as an :class:`ImageResponse` (filter results and unknown fields kept)."""
    if not _mine(route):
        return None
    return ImageResponse.model_validate_json(response.content)


@hookimpl
@answers_for(PROVIDER, *OPERATIONS)
def map_error(route: Route, response: ProviderResponse) -> APIError | None:
    """Azure's error bodies, mapped as for every Azure operation; a prompt refused by the
    safety system (``content_policy_violation``, with ``inner_error.content_filter_results``)
    is a :class:`~modelyard.errors.ContentFilterError`."""
    if not _mine(route):
        return None
    return map_azure_error(route, response, PROVIDER)


@hookimpl
def register_operations(register: RegisterOperation) -> None:
    """``/openai/deployments/{model}/images/generations`` and ``.../images/edits`` on the proxy,
    for ``AzureOpenAI`` clients."""
    for path in deployment_paths(OPERATIONS):
        register(path)


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    """Declares that this distribution serves ``transform_request`` for both image operations."""
    register(Provider(name=PROVIDER, served_by={f"transform_request:{op}": DISTRIBUTION for op in OPERATIONS}))
