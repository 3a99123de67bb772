"""Test helpers for modelyard and for your own application: the Azure OpenAI emulator.

```python
from modelyard.testing import Emulator, EmulatorServer

with EmulatorServer(Emulator(["gpt-4o"])) as server:
    completion(model="azure/gpt-4o", api_base=server.url, api_key="emulator-key", messages=[...])
```

Needs the ``server`` extra (``pip install modelyard[server]``).
"""

from __future__ import annotations

from .emulator import (
    API_VERSIONS,
    FILTER_OUTPUT_TRIGGER,
    FILTER_PROMPT_TRIGGER,
    Deployment,
    Emulator,
    Faults,
    RecordedRequest,
)
from .server import EmulatorServer

__all__ = [
    "API_VERSIONS",
    "FILTER_OUTPUT_TRIGGER",
    "FILTER_PROMPT_TRIGGER",
    "Deployment",
    "Emulator",
    "EmulatorServer",
    "Faults",
    "RecordedRequest",
]
