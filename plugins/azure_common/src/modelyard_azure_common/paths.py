"""The proxy paths of ``AzureOpenAI`` clients, for the plugins that serve each operation.

An ``AzureOpenAI`` client (``openai.AzureOpenAI(azure_endpoint=<proxy>, ...)``) calls
``/openai/deployments/{deployment}/<operation path>?api-version=...``: the deployment in the
path is the proxy's model group. Each Azure plugin registers the paths of the operations it
serves (``register_operations``), so the proxy serves them only while that plugin is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping

from modelyard.plugin import ProxyPath

__all__ = ["DEPLOYMENT_PATH", "deployment_paths"]

DEPLOYMENT_PATH = "/openai/deployments/{model}"
"""Where an ``AzureOpenAI`` client puts the deployment (here: the proxy's model group)."""


def deployment_paths(operations: Mapping[str, str]) -> list[ProxyPath]:
    """One deployment-scoped :class:`~modelyard.plugin.ProxyPath` per operation.

    Args:
        operations: operation name -> its path after the deployment (``{"embeddings": "/embeddings"}``).
    """
    return [
        ProxyPath(f"{DEPLOYMENT_PATH}{path}", name, query=("api-version",),
                  description="(the Azure shape, for AzureOpenAI clients)")
        for name, path in operations.items()
    ]  # fmt: skip
