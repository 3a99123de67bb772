"""modelyard-azure-auth: credentials for Azure OpenAI (api key, AD token, token provider)."""

from __future__ import annotations

from importlib.metadata import version

__version__ = version("modelyard-azure-auth")
