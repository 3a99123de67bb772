"""The proxy's OpenAPI document (``GET /openapi.json``), built from what validates requests.

Every operation of :data:`modelyard.operations.OPERATIONS` gets its paths (with and without
``/v1``, and the paths the loaded plugins add for it, :class:`~modelyard.operations.ProxyPath`:
with a ``{model}`` segment, the model group is a path parameter, not a body field) and a request body made of its request model's JSON schema (``ChatParams``,
``TextParams``, ``EmbeddingParams`` ...) plus ``model`` (one of the configured model groups),
its payload fields and ``stream`` when it streams: a new row in the table appears here with no
change to this module. The files, batches and fine-tuning endpoints, the models list and the health checks
are declared below with the models of :mod:`modelyard.file_types`. Every answer that is not a
success is OpenAI's error JSON (``{"error": {message, type, param, code}}``), listed per status.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from ..file_types import (
    Batch,
    BatchList,
    FileDeleted,
    FileList,
    FileObject,
    FineTuningJob,
    FineTuningJobCheckpointList,
    FineTuningJobEventList,
    FineTuningJobList,
)
from ..operations import OPERATIONS, Operation, ProxyPath

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"

# Payload fields an operation's request model does not declare (chat's ``messages`` are checked
# by the family rules, not by ChatParams): their schema here; any other such field is any JSON.
_PAYLOAD_SCHEMAS: dict[str, dict[str, Any]] = {
    "messages": {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "required": ["role"],
            "properties": {
                "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool", "function"]},
                "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}, {"type": "null"}]},
                "name": {"type": "string"},
            },
        },
    },
}

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

# What any endpoint may answer besides its success: the client's mistakes, a missing key, an
# upstream's (or the Router's) refusal passed on, and an upstream that failed or cannot be reached.
_ERRORS = {
    "400": "Invalid request: the message names the field (param).",
    "401": "Missing or invalid API key.",
    "403": "The upstream refused the credentials.",
    "404": "Unknown model, path or id.",
    "405": "Method not allowed on this path.",
    "408": "The request body did not arrive in time, or the upstream timed out.",
    "413": "The request body is larger than general_settings.max_request_bytes.",
    "422": "The upstream could not process the request.",
    "429": "Rate limited (retry-after says when to come back).",
    "500": "The upstream failed.",
    "501": "No installed plugin serves this call.",
    "502": "The upstream could not be reached or broke the connection.",
    "503": "The upstream, or every deployment of the model group, is unavailable (retry-after).",
    "504": "The upstream timed out.",
}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    """``model``'s JSON schema, its definitions moved to ``components``."""
    schema = model.model_json_schema(ref_template=_REF)
    components.update(schema.pop("$defs", {}))
    return schema


def _responses(ok: dict[str, Any]) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}}
    return {"200": ok, **{status: {"description": text, "content": error} for status, text in _ERRORS.items()}}


def _json(schema: dict[str, Any], description: str = "Success.") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _model_ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    components[model.__name__] = _schema(model, components)
    return {"$ref": _REF.format(model=model.__name__)}


def _operation_body(op: Operation, models: list[str], components: dict[str, Any]) -> dict[str, Any]:
    """The request body of ``op``: its request model's fields, ``model``, the payload, ``stream``."""
    schema = _schema(op.request, components)
    properties: dict[str, Any] = {"model": {"type": "string", "enum": models} if models else {"type": "string"}}
    properties.update(schema.get("properties", {}))
    for name in op.payload:
        properties.setdefault(name, _PAYLOAD_SCHEMAS.get(name, {}))
    if op.answer == "sse":
        properties["stream"] = {"type": "boolean"}
    required = ["model", *op.payload, *(r for r in schema.get("required", []) if r not in op.payload)]
    return {"type": "object", "required": required, "properties": properties}


_SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer"}},
}
"""One server-sent event of a stream (before OpenAPI 3.2's ``itemSchema``, a stream's ``schema`` describes each event)."""


def _ops(op: Operation, models: list[str], components: dict[str, Any], *, path: ProxyPath | None = None) -> dict[str, Any]:
    """``op``'s POST; on a plugin's ``path`` with the model group in it, a path parameter instead of a body field."""
    name = op.request.__name__.removesuffix("Params") + "Request"
    components[name] = _operation_body(op, models, components)
    body: dict[str, Any] = {"$ref": _REF.format(model=name)}
    parameters: list[dict[str, Any]] = []
    if path is not None and path.model_in_path:
        body = {**components[name], "required": [r for r in components[name]["required"] if r != "model"]}
        model = {"type": "string", "enum": models} if models else {"type": "string"}
        parameters = [{"name": "model", "in": "path", "required": True, "schema": model}]
    if path is not None:
        parameters += [{"name": q, "in": "query", "schema": {"type": "string"}} for q in path.query]
    ok = _json({"$ref": _model_ref(op.response, components)["$ref"]})
    if op.answer == "sse":
        ok["content"]["text/event-stream"] = {"schema": _SSE_EVENT}
    return {
        "post": {
            "summary": " ".join(filter(None, (op.description, path.description if path is not None else ""))),
            "parameters": parameters,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": _responses(ok),
        }
    }


def _id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_.\-]{1,200}$"}}


def openapi_document(models: list[str], *, version: str, paths: Sequence[ProxyPath] = ()) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the proxy's endpoints for a config serving ``models``.

    Args:
        models: the configured model group names (the ``model`` values a request may name).
        version: the proxy's version, for ``info.version``.
        paths: the paths the loaded plugins add (:class:`~modelyard.operations.ProxyPath`).
    """
    components: dict[str, Any] = {"Error": _ERROR}
    documented: dict[str, Any] = {}
    listing = [{"name": "after", "in": "query", "schema": {"type": "string"}},
               {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}]  # fmt: skip
    batch_body = {
        "type": "object",
        "required": ["input_file_id", "endpoint", "completion_window"],
        "properties": {
            "input_file_id": {"type": "string"},
            "endpoint": {"type": "string", "enum": ["/v1/chat/completions", "/v1/embeddings", "/v1/completions"]},
            "completion_window": {"type": "string", "enum": ["24h"]},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    positive_or_auto = {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"const": "auto"}]}
    fine_tuning_body = {
        "type": "object",
        "required": ["model", "training_file"],
        "properties": {
            "model": {"type": "string"},
            "training_file": {"type": "string"},
            "validation_file": {"type": "string"},
            "hyperparameters": {"type": "object", "additionalProperties": False, "properties": {
                name: positive_or_auto for name in ("n_epochs", "batch_size", "learning_rate_multiplier")}},
            "suffix": {"type": "string"},
            "seed": {"type": "integer"},
        },
    }  # fmt: skip
    upload = {
        "type": "object",
        "required": ["file", "purpose"],
        "properties": {"file": {"type": "string", "format": "binary"}, "purpose": {"type": "string", "enum": ["batch", "fine-tune", "assistants"]}},
    }  # fmt: skip
    model_object = {"type": "object", "required": ["id", "object"],
                    "properties": {"id": {"type": "string"}, "object": {"type": "string"}}}  # fmt: skip
    for prefix in ("", "/v1"):
        for op in OPERATIONS.values():
            for path in op.paths:
                documented[prefix + path] = _ops(op, models, components)
        documented[f"{prefix}/models"] = {"get": {"responses": _responses(_json({"type": "object"}))}}
        documented[f"{prefix}/models/{{model}}"] = {"get": {"parameters": [_id("model")], "responses": _responses(_json(model_object))}}
        documented[f"{prefix}/files"] = {
            "post": {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": upload}}},
                     "responses": _responses(_json(_model_ref(FileObject, components)))},
            "get": {"parameters": [*listing, {"name": "purpose", "in": "query", "schema": {"type": "string"}}],
                    "responses": _responses(_json(_model_ref(FileList, components)))},
        }  # fmt: skip
        documented[f"{prefix}/files/{{file_id}}"] = {
            "get": {"parameters": [_id("file_id")], "responses": _responses(_json(_model_ref(FileObject, components)))},
            "delete": {"parameters": [_id("file_id")], "responses": _responses(_json(_model_ref(FileDeleted, components)))},
        }
        documented[f"{prefix}/files/{{file_id}}/content"] = {
            "get": {"parameters": [_id("file_id")],
                    "responses": _responses({"description": "The file's bytes.",
                                             "content": {"application/octet-stream": {"schema": {"type": "string"}}}})},
        }  # fmt: skip
        documented[f"{prefix}/batches"] = {
            "post": {"requestBody": {"required": True, "content": {"application/json": {"schema": batch_body}}},
                     "responses": _responses(_json(_model_ref(Batch, components)))},
            "get": {"parameters": listing, "responses": _responses(_json(_model_ref(BatchList, components)))},
        }  # fmt: skip
        documented[f"{prefix}/batches/{{batch_id}}"] = {
            "get": {"parameters": [_id("batch_id")], "responses": _responses(_json(_model_ref(Batch, components)))}
        }
        documented[f"{prefix}/batches/{{batch_id}}/cancel"] = {
            "post": {"parameters": [_id("batch_id")], "responses": _responses(_json(_model_ref(Batch, components)))}
        }
        job = _json(_model_ref(FineTuningJob, components))
        documented[f"{prefix}/fine_tuning/jobs"] = {
            "post": {"requestBody": {"required": True, "content": {"application/json": {"schema": fine_tuning_body}}},
                     "responses": _responses(job)},
            "get": {"parameters": listing, "responses": _responses(_json(_model_ref(FineTuningJobList, components)))},
        }  # fmt: skip
        documented[f"{prefix}/fine_tuning/jobs/{{fine_tuning_job_id}}"] = {
            "get": {"parameters": [_id("fine_tuning_job_id")], "responses": _responses(job)}
        }
        documented[f"{prefix}/fine_tuning/jobs/{{fine_tuning_job_id}}/cancel"] = {
            "post": {"parameters": [_id("fine_tuning_job_id")], "responses": _responses(job)}
        }
        for tail, model in (("events", FineTuningJobEventList), ("checkpoints", FineTuningJobCheckpointList)):
            documented[f"{prefix}/fine_tuning/jobs/{{fine_tuning_job_id}}/{tail}"] = {
                "get": {"parameters": [_id("fine_tuning_job_id"), *listing],
                        "responses": _responses(_json(_model_ref(model, components)))}
            }  # fmt: skip
        documented[f"{prefix}/health"] = {"get": {"responses": _responses(_json({"type": "object"}))}}
    for extra in paths:
        documented[extra.template] = _ops(OPERATIONS[extra.operation], models, components, path=extra)
    for path in ("/health/liveliness", "/health/liveness", "/health/readiness"):
        documented[path] = {"get": {"security": [], "responses": _responses(_json({}))}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "modelyard proxy", "version": version,
                 "description": "A proxy in front of model providers. Errors are JSON: {\"error\": {message, type, param, code}}."},
        "paths": documented,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "apiKey": {"type": "apiKey", "in": "header", "name": "api-key"}},
        },
        "security": [{"bearer": []}, {"apiKey": []}],
    }  # fmt: skip
