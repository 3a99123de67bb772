"""Fine-tuning jobs: LiteLLM's ``create_fine_tuning_job`` family, through the files pipeline.

The calls travel exactly as files and batches do (:mod:`modelyard.files`): each is described in
OpenAI's shape (a :class:`~modelyard.file_types.FilesRequest` with path ``/fine_tuning/jobs...``),
the provider's ``transform_files_request`` hook builds the upstream call, ``resolve_auth`` adds
the credential, and the answer is parsed into the models of :mod:`modelyard.file_types`.

Every function takes the connection parameters of the files functions (``api_base``,
``api_version``, ``api_key``, the Entra settings, ``extra_headers``, ``extra_body``),
``custom_llm_provider`` (default ``"azure"``), ``timeout`` and ``num_retries``; each has an async
twin named with an ``a`` prefix. The training file is uploaded first with
``create_file(file, purpose="fine-tune")``, which the provider's plugin checks line by line.
"""

from __future__ import annotations

from typing import Any

from .file_types import (
    FilesOperation,
    FilesRequest,
    FineTuningJob,
    FineTuningJobCheckpointList,
    FineTuningJobEventList,
    FineTuningJobList,
)
from .files import DEFAULT_PROVIDER, _asend, _bad, _id, _limit, _prepare, _segment, _send

__all__ = [
    "acancel_fine_tuning_job",
    "acreate_fine_tuning_job",
    "alist_fine_tuning_job_checkpoints",
    "alist_fine_tuning_job_events",
    "alist_fine_tuning_jobs",
    "aretrieve_fine_tuning_job",
    "cancel_fine_tuning_job",
    "create_fine_tuning_job",
    "list_fine_tuning_job_checkpoints",
    "list_fine_tuning_job_events",
    "list_fine_tuning_jobs",
    "retrieve_fine_tuning_job",
]

_HYPERPARAMETERS: dict[str, type | tuple[type, ...]] = {"n_epochs": int, "batch_size": int, "learning_rate_multiplier": (int, float)}


def _hyperparameters(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad("'hyperparameters' must be a dict of n_epochs, batch_size and learning_rate_multiplier.",
                   "hyperparameters")  # fmt: skip
    for key, item in value.items():
        kind = _HYPERPARAMETERS.get(key)
        if kind is None:
            raise _bad(f"Unknown hyperparameter {key!r}; use n_epochs, batch_size or learning_rate_multiplier.",
                       f"hyperparameters.{key}")  # fmt: skip
        if item == "auto":
            continue
        if isinstance(item, bool) or not isinstance(item, kind) or not isinstance(item, int | float) or item <= 0:
            raise _bad(f"'hyperparameters.{key}' must be a positive number or 'auto', got {item!r}.",
                       f"hyperparameters.{key}")  # fmt: skip
    return dict(value)


def _create_request(model: Any, training_file: Any, hyperparameters: Any, suffix: Any, validation_file: Any,
                    integrations: Any, seed: Any) -> FilesRequest:  # fmt: skip
    if not isinstance(model, str) or not model.strip():
        raise _bad("'model' is required: the base model to fine-tune, such as 'gpt-4o-mini-2024-07-18'.", "model")
    body: dict[str, Any] = {"model": model, "training_file": _id(training_file, "training_file")}
    if validation_file is not None:
        body["validation_file"] = _id(validation_file, "validation_file")
    if hyperparameters is not None:
        body["hyperparameters"] = _hyperparameters(hyperparameters)
    if suffix is not None:
        if not isinstance(suffix, str) or not suffix:
            raise _bad("'suffix' must be a non-empty string.", "suffix")
        body["suffix"] = suffix
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise _bad(f"'seed' must be an integer, got {seed!r}.", "seed")
        body["seed"] = seed
    if integrations is not None:
        body["integrations"] = integrations
    return FilesRequest(operation="create_fine_tuning_job", method="POST", path="/fine_tuning/jobs", json_body=body)


def _page(operation: FilesOperation, path: str, after: Any, limit: Any) -> FilesRequest:
    params: dict[str, str] = {}
    if after is not None:
        params["after"] = _id(after, "after")
    if limit is not None:
        params["limit"] = str(_limit(limit))
    return FilesRequest(operation=operation, path=path, params=params)


def _job(operation: FilesOperation, job_id: Any, suffix: str = "", method: Any = "GET") -> FilesRequest:
    path = f"/fine_tuning/jobs/{_segment(job_id, 'fine_tuning_job_id')}{suffix}"
    return FilesRequest(operation=operation, method=method, path=path)


def _kw(kwargs: dict[str, Any], provider: str) -> dict[str, Any]:
    return {**kwargs, "custom_llm_provider": provider}


def create_fine_tuning_job(
    model: str,
    training_file: str,
    hyperparameters: dict[str, Any] | None = None,
    suffix: str | None = None,
    validation_file: str | None = None,
    integrations: list[dict[str, Any]] | None = None,
    seed: int | None = None,
    custom_llm_provider: str = DEFAULT_PROVIDER,
    **kwargs: Any,
) -> FineTuningJob:
    """Start a fine-tuning job (``POST /fine_tuning/jobs``), as LiteLLM's ``create_fine_tuning_job``.

    Args:
        model: the base model (on Azure the model name, such as ``gpt-4o-mini-2024-07-18``).
        training_file: the id ``create_file(..., purpose="fine-tune")`` returned.
        hyperparameters: ``n_epochs``, ``batch_size``, ``learning_rate_multiplier`` (each a
            positive number or ``"auto"``).
        suffix: added to the fine-tuned model's name.
        validation_file: a second uploaded file, for validation metrics.
        integrations: passed as given (OpenAI's Weights & Biases integration).
        seed: makes the job reproducible.
        custom_llm_provider: which provider plugin answers (``azure``).
        **kwargs: connection settings, ``extra_headers``, ``extra_body``, ``timeout``, ``num_retries``.

    Returns:
        The new :class:`~modelyard.file_types.FineTuningJob`.

    Raises:
        BadRequestError: an invalid argument (naming it) or the upstream's 400.
    """
    request = _create_request(model, training_file, hyperparameters, suffix, validation_file, integrations, seed)
    return _send(_prepare(request, _kw(kwargs, custom_llm_provider)))  # type: ignore[no-any-return]


async def acreate_fine_tuning_job(
    model: str,
    training_file: str,
    hyperparameters: dict[str, Any] | None = None,
    suffix: str | None = None,
    validation_file: str | None = None,
    integrations: list[dict[str, Any]] | None = None,
    seed: int | None = None,
    custom_llm_provider: str = DEFAULT_PROVIDER,
    **kwargs: Any,
) -> FineTuningJob:
    """The async twin of :func:`create_fine_tuning_job`."""
    request = _create_request(model, training_file, hyperparameters, suffix, validation_file, integrations, seed)
    return await _asend(_prepare(request, _kw(kwargs, custom_llm_provider)))  # type: ignore[no-any-return]


def list_fine_tuning_jobs(after: str | None = None, limit: int | None = None,
                          custom_llm_provider: str = DEFAULT_PROVIDER, **kwargs: Any) -> FineTuningJobList:  # fmt: skip
    """A page of jobs, newest first (``GET /fine_tuning/jobs?after=&limit=``)."""
    request = _page("list_fine_tuning_jobs", "/fine_tuning/jobs", after, limit)
    return _send(_prepare(request, _kw(kwargs, custom_llm_provider)))  # type: ignore[no-any-return]


async def alist_fine_tuning_jobs(after: str | None = None, limit: int | None = None,
                                 custom_llm_provider: str = DEFAULT_PROVIDER, **kwargs: Any) -> FineTuningJobList:  # fmt: skip
    """The async twin of :func:`list_fine_tuning_jobs`."""
    request = _page("list_fine_tuning_jobs", "/fine_tuning/jobs", after, limit)
    return await _asend(_prepare(request, _kw(kwargs, custom_llm_provider)))  # type: ignore[no-any-return]


def retrieve_fine_tuning_job(fine_tuning_job_id: str, custom_llm_provider: str = DEFAULT_PROVIDER,
                             **kwargs: Any) -> FineTuningJob:  # fmt: skip
    """The current state of a job (``GET /fine_tuning/jobs/{id}``)."""
    request = _job("retrieve_fine_tuning_job", fine_tuning_job_id)
    return _send(_prepare(request, _kw(kwargs, custom_llm_provider)))  # type: ignore[no-any-return]


async def aretrieve_fine_tuning_job(fine_tuning_job_id: str, custom_llm_provider: str = DEFAULT_PROVIDER,
                                    **kwargs: Any) -> FineTuningJob:  # fmt: skip
    """The async twin of :func:`retrieve_fine_tuning_job`."""
    request = _job("retrieve_fine_tuning_job", fine_tuning_job_id)
    return await _asend(_prepare(request, _kw(kwargs, custom_llm_provider)))  # type: ignore[no-any-return]


def cancel_fine_tuning_job(fine_tuning_job_id: str, custom_llm_provider: str = DEFAULT_PROVIDER,
                           **kwargs: Any) -> FineTuningJob:  # fmt: skip
    """Stop a job that has not finished (``POST /fine_tuning/jobs/{id}/cancel``)."""
    request = _job("cancel_fine_tuning_job", fine_tuning_job_id, "/cancel", "POST")
    return _send(_prepare(request, _kw(kwargs, custom_llm_provider)))  # type: ignore[no-any-return]


async def acancel_fine_tuning_job(fine_tuning_job_id: str, custom_llm_provider: str = DEFAULT_PROVIDER,
                                  **kwargs: Any) -> FineTuningJob:  # fmt: skip
    """The async twin of :func:`cancel_fine_tuning_job`."""
    request = _job("cancel_fine_tuning_job", fine_tuning_job_id, "/cancel", "POST")
    return await _asend(_prepare(request, _kw(kwargs, custom_llm_provider)))  # type: ignore[no-any-return]


def _events(job_id: Any, after: Any, limit: Any) -> FilesRequest:
    path = f"/fine_tuning/jobs/{_segment(job_id, 'fine_tuning_job_id')}/events"
    return _page("list_fine_tuning_job_events", path, after, limit)


def _checkpoints(job_id: Any, after: Any, limit: Any) -> FilesRequest:
    path = f"/fine_tuning/jobs/{_segment(job_id, 'fine_tuning_job_id')}/checkpoints"
    return _page("list_fine_tuning_job_checkpoints", path, after, limit)


def list_fine_tuning_job_events(fine_tuning_job_id: str, after: str | None = None, limit: int | None = None,
                                custom_llm_provider: str = DEFAULT_PROVIDER,
                                **kwargs: Any) -> FineTuningJobEventList:  # fmt: skip
    """A job's events, newest first (``GET /fine_tuning/jobs/{id}/events?after=&limit=``)."""
    return _send(_prepare(_events(fine_tuning_job_id, after, limit), _kw(kwargs, custom_llm_provider)))  # type: ignore[no-any-return]


async def alist_fine_tuning_job_events(fine_tuning_job_id: str, after: str | None = None, limit: int | None = None,
                                       custom_llm_provider: str = DEFAULT_PROVIDER,
                                       **kwargs: Any) -> FineTuningJobEventList:  # fmt: skip
    """The async twin of :func:`list_fine_tuning_job_events`."""
    return await _asend(_prepare(_events(fine_tuning_job_id, after, limit), _kw(kwargs, custom_llm_provider)))  # type: ignore[no-any-return]


def list_fine_tuning_job_checkpoints(fine_tuning_job_id: str, after: str | None = None, limit: int | None = None,
                                     custom_llm_provider: str = DEFAULT_PROVIDER,
                                     **kwargs: Any) -> FineTuningJobCheckpointList:  # fmt: skip
    """A job's checkpoints, newest first (``GET /fine_tuning/jobs/{id}/checkpoints?after=&limit=``)."""
    return _send(_prepare(_checkpoints(fine_tuning_job_id, after, limit), _kw(kwargs, custom_llm_provider)))  # type: ignore[no-any-return]


async def alist_fine_tuning_job_checkpoints(fine_tuning_job_id: str, after: str | None = None,
                                            limit: int | None = None, custom_llm_provider: str = DEFAULT_PROVIDER,
                                            **kwargs: Any) -> FineTuningJobCheckpointList:  # fmt: skip
    """The async twin of :func:`list_fine_tuning_job_checkpoints`."""
    return await _asend(_prepare(_checkpoints(fine_tuning_job_id, after, limit), _kw(kwargs, custom_llm_provider)))  # type: ignore[no-any-return]
