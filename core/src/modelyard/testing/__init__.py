"""Test helpers for modelyard and for your own application: the Azure OpenAI and Entra ID emulators.

```python
from modelyard.testing import Emulator, EmulatorServer

with EmulatorServer(Emulator(["gpt-4o"])) as server:
    completion(model="azure/gpt-4o", api_base=server.url, api_key="emulator-key", messages=[...])
```

Entra ID (``EntraEmulator``, ``EntraServer``: tokens for the real azure-identity classes over
HTTPS) is described in :mod:`modelyard.testing.entra`; ``EntraServer`` also needs ``trustme``
(the ``entra`` extra).

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
from .entra import EntraEmulator
from .entra_server import EntraServer
from .server import EmulatorServer

__all__ = [
    "API_VERSIONS",
    "FILTER_OUTPUT_TRIGGER",
    "FILTER_PROMPT_TRIGGER",
    "Deployment",
    "Emulator",
    "EmulatorServer",
    "EntraEmulator",
    "EntraServer",
    "Faults",
    "RecordedRequest",
]
