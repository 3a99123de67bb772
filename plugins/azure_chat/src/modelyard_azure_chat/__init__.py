"""modelyard-azure-chat: Azure OpenAI chat completions (and the model families built on them)."""

from __future__ import annotations

from importlib.metadata import version

__version__ = version("modelyard-azure-chat")
