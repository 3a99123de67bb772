"""Credentials, data builders and a clock that go with the pytest plugin's emulators.

Stdlib only at import time (the pytest plugin imports this module in every pytest run).
Everything here is re-exported by :mod:`modelyard.testing`::

    from modelyard.testing import KEY, batch_jsonl

    def test_key_works(emulator, api_base):
        completion(model="azure/gpt-4o", api_base=api_base, api_key=KEY, messages=[...])
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .emulator import Deployment, Emulator

__all__ = [
    "AD_TOKEN",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "COGNITIVE_SCOPE",
    "KEY",
    "MASTER_KEY",
    "PASSWORD",
    "TENANT",
    "USERNAME",
    "USER_CLIENT_ID",
    "WORKLOAD_SUBJECT",
    "ManualClock",
    "add_family_deployments",
    "batch_jsonl",
    "default_deployments",
    "litellm_params",
]

KEY = "0123456789abcdef0123456789abcdef"
"""The api key the ``emulator`` fixture accepts (``api-key`` header, or Bearer on v1 paths)."""

AD_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.static-test-token"
"""A static Microsoft Entra ID token the ``emulator`` fixture accepts (``azure_ad_token=``)."""

def default_deployments() -> list[Deployment]:
    """The ``emulator`` fixture's deployments.

    ``gpt-4o``; ``gpt-4o-mini``; ``chatgpt-v-2`` (a gpt-35-turbo-0613: no images, no
    ``developer`` role); ``chatgpt-functioncalling``; ``small-context`` (a 20-token context
    window, for ``context_length_exceeded``). Add more with ``emulator.add_deployment(...)``.
    """
    from .emulator import Deployment

    return [
        Deployment("gpt-4o"),
        Deployment("gpt-4o-mini", model="gpt-4o-mini-2024-07-18"),
        Deployment("chatgpt-v-2", model="gpt-35-turbo-0613"),
        Deployment("chatgpt-functioncalling", model="gpt-4o-2024-08-06"),
        Deployment("small-context", context_window=20),
    ]


MASTER_KEY = "sk-proxy-test-6f1d0c2b9a8e7d6c5b4a"
"""The master key of the ``proxy`` fixture (and the default of ``running_proxy``)."""

# The Entra ID fixture's tenant, apps and user (``entra``): configure azure-identity with these.
TENANT = "8f3c1b2a-5d6e-4f70-9a81-b2c3d4e5f607"
CLIENT_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
"""A confidential app: ``CLIENT_SECRET`` works, and workload identity for ``WORKLOAD_SUBJECT``."""
CLIENT_SECRET = "Zq8~client-secret-value-4d7e9a"
USER_CLIENT_ID = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
"""A public app, for the user ``USERNAME`` / ``PASSWORD`` (device code, username and password)."""
USERNAME = "ada@contoso.example"
PASSWORD = "p4ssw0rd-for-ada!"
WORKLOAD_SUBJECT = "system:serviceaccount:ai:modelyard"
COGNITIVE_SCOPE = "https://cognitiveservices.azure.com/.default"


def litellm_params(api_base: str, deployment: str, **extra: Any) -> dict[str, Any]:
    """``litellm_params`` of a proxy ``model_list`` entry for a deployment of the emulator.

    Args:
        api_base: the emulator's URL (the ``api_base`` fixture).
        deployment: the emulator deployment to call.
        **extra: more ``litellm_params`` (``rpm``, ``base_model`` ...).

    Returns:
        ``{"model": "azure/<deployment>", "api_base": ..., "api_key": KEY, "api_version": ...}``.
    """
    return {"model": f"azure/{deployment}", "api_base": api_base, "api_key": KEY, "api_version": "2024-10-21", **extra}


def batch_jsonl(n: int, model: str = "gpt-4o-mini", *, url: str = "/chat/completions") -> bytes:
    """A valid batch input file of ``n`` chat requests ``task-0`` ... naming ``model``.

    Args:
        n: the number of lines.
        model: the deployment each line names (a batch fails on a line naming another one).
        url: each line's ``url``.

    Returns:
        The file's bytes, one JSON request per line.
    """
    return "".join(
        json.dumps({"custom_id": f"task-{i}", "method": "POST", "url": url,
                    "body": {"model": model, "messages": [{"role": "user", "content": f"question {i}"}]}}) + "\n"
        for i in range(n)
    ).encode()  # fmt: skip


FAMILY_DEPLOYMENTS: tuple[tuple[str, str], ...] = (
    ("my-o3-deployment", "o3-mini"),
    ("my-random-deployment-name", "o3"),
    ("prod-reasoner", "o3-mini"),
    ("my-o1-mini", "o1-mini"),
    ("o1-preview", "o1-preview"),
    ("my-gpt-5-deployment", "gpt-5"),
    ("gpt-5-mini", "gpt-5-mini"),
    ("gpt-5.1", "gpt-5.1"),
    ("my-gpt-5-chat", "gpt-5-chat"),
    ("azure-openai-4o-audio", "gpt-4o-audio-preview"),
    ("my-instruct-deployment", "gpt-35-turbo-instruct"),
)


def add_family_deployments(emulator: Emulator) -> Emulator:
    """Add a deployment of every model family (o-series, GPT-5, audio, instruct) to ``emulator``.

    Names follow the Azure page's snippets (``my-o3-deployment`` is an ``o3-mini``); each
    deployment's ``model`` decides what the emulator accepts, as on Azure.

    Args:
        emulator: the emulator to add to (the ``emulator`` fixture).

    Returns:
        ``emulator``, for chaining.
    """
    from .emulator import Deployment

    for name, model in FAMILY_DEPLOYMENTS:
        emulator.add_deployment(Deployment(name, model=model))
    return emulator


class ManualClock:
    """A clock for the emulator's batches that only the test moves (``emulator.batches.clock``).

    A batch then stays in its phase until the test calls ``advance``: a cancel right after a
    create always finds it running, however slow the machine (no race with the batch's progress).
    """

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.now += seconds
