"""``modelyard serve --ssl-certfile --ssl-keyfile``: HTTPS only, checked with a trustme CA and the openai SDK."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest
import trustme

from .conftest import MASTER_KEY
from .processes import free_port, serve_process


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_the_openai_sdk_talks_to_the_proxy_over_tls(tmp_path: Path, ca: trustme.CA) -> None:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "proxy.pem", tmp_path / "proxy.key"
    cert.private_key_pem.write_to_path(str(keyfile))
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    args = ("--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile), "--no-access-log")
    with serve_process(tmp_path, None, *args, env={"MODELYARD_MASTER_KEY": MASTER_KEY}, scheme="https",
                       verify=trusted) as proxy:  # fmt: skip
        assert proxy.url.startswith("https://")
        with httpx.Client(verify=trusted) as http:
            client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, http_client=http, max_retries=0)
            reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hello"}])
            assert reply.choices[0].message.content
            streamed = client.chat.completions.create(model="gpt-4o", stream=True,
                                                      messages=[{"role": "user", "content": "Hello"}])  # fmt: skip
            assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        # A client that does not trust the CA refuses the certificate; plain HTTP gets no answer.
        with pytest.raises(openai.APIConnectionError), httpx.Client() as untrusting:
            openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, http_client=untrusting,
                          max_retries=0).models.list()  # fmt: skip
        with pytest.raises(httpx.TransportError):
            httpx.get(proxy.url.replace("https://", "http://") + "/health/liveliness", timeout=5)
        assert "https://127.0.0.1" in proxy.output()  # the banner's URL


def test_a_key_file_without_its_certificate_is_refused_by_name(tmp_path: Path) -> None:
    key = tmp_path / "proxy.key"
    key.write_text("not used")
    done = subprocess.run([sys.executable, "-m", "modelyard.cli", "serve", "--port", str(free_port()),
                           "--ssl-keyfile", str(key)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "--ssl-keyfile needs --ssl-certfile" in done.stderr
    missing = subprocess.run([sys.executable, "-m", "modelyard.cli", "serve", "--port", str(free_port()),
                              "--ssl-certfile", str(tmp_path / "nope.pem")], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert missing.returncode == 2
    assert "--ssl-certfile: no readable file" in missing.stderr
