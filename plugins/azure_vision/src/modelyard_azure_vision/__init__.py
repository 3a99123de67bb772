"""modelyard-azure-vision: image inputs and Azure vision enhancements (``/extensions``)."""

from __future__ import annotations

from importlib.metadata import version

__version__ = version("modelyard-azure-vision")
