"""Fixtures for the Entra ID tests: an HTTPS Entra emulator wired to the data-plane emulator.

Import the fixtures into a test module (``from entrasupport import entra, entra_server``).
``entra`` points azure-identity at the emulator the way a real deployment is configured
(``REQUESTS_CA_BUNDLE``, ``HTTPS_PROXY``), makes the data plane accept only the tokens it
issues, and starts every test with an empty token cache.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from modelyard.testing import Emulator
from modelyard.testing.entra import EntraEmulator
from modelyard.testing.entra_server import EntraServer

TENANT = "8f3c1b2a-5d6e-4f70-9a81-b2c3d4e5f607"
CLIENT_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
CLIENT_SECRET = "Zq8~client-secret-value-4d7e9a"
USER_CLIENT_ID = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
USERNAME = "ada@contoso.example"
PASSWORD = "p4ssw0rd-for-ada!"
WORKLOAD_SUBJECT = "system:serviceaccount:ai:modelyard"
COGNITIVE_SCOPE = "https://cognitiveservices.azure.com/.default"


@pytest.fixture(scope="session")
def entra_server() -> Iterator[EntraServer]:
    entra = EntraEmulator(tenants=[TENANT])
    entra.add_app(CLIENT_ID, client_secret=CLIENT_SECRET, federated_subjects={WORKLOAD_SUBJECT})
    entra.add_app(USER_CLIENT_ID, public_client=True)
    entra.add_user(USERNAME, PASSWORD)
    with EntraServer(entra) as server:
        yield server


@pytest.fixture
def entra(entra_server: EntraServer, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[EntraEmulator]:
    """The session's Entra emulator, reset, trusted and reachable; the data plane checks its tokens."""
    from modelyard_azure_auth.entra import clear_token_cache

    e = entra_server.entra
    e.reset()
    e.token_lifetime = 3599
    e.audiences = {"https://cognitiveservices.azure.com"}
    for name, value in entra_server.environ().items():
        monkeypatch.setenv(name, value)
    e.install(emulator)
    clear_token_cache()
    yield e
    emulator.token_validator = None
    clear_token_cache()
