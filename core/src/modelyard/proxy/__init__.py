"""The OpenAI-compatible proxy: LiteLLM's ``config.yaml`` in, OpenAI's wire format out.

``modelyard serve --config config.yaml`` runs it; :class:`ProxyApp` is the ASGI app for any
server. Nothing here is imported by ``import modelyard``.
"""

from __future__ import annotations

from .app import ProxyApp
from .config import ProxyConfig, load_config, parse_config
from .deployments import Deployment, Deployments

__all__ = ["Deployment", "Deployments", "ProxyApp", "ProxyConfig", "load_config", "parse_config"]
