"""modelyard-azure-batch: Azure OpenAI files and batches, validated and load-balanced."""

from __future__ import annotations

from importlib.metadata import version

__version__ = version("modelyard-azure-batch")
