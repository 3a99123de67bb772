"""modelyard plugin: Claude on Azure AI Foundry through Anthropic's Messages API.

``azure/claude-*`` and ``azure_ai/claude-*`` model strings go to
``{api_base}/anthropic/v1/messages`` on the Foundry resource; OpenAI-shaped chat calls are
translated both ways (:mod:`.translate`, :mod:`.stream`), and the ``messages`` operation
carries Anthropic's native format unchanged. See docs/anthropic.md.
"""

from __future__ import annotations

__all__: list[str] = []
