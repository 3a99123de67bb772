"""``modelyard serve --num_workers N``: the parent checks the config, each worker builds the app.

The parent opens no store and loads no upstream client (issue 17: ~0.3 s of CPU and ~20 MiB
less before the workers start); a bad config still fails before any worker starts, and a worker
that cannot build the app stops the server (exit 3) instead of being restarted forever.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from modelyard.errors import ConfigError
from modelyard.proxy import serve
from modelyard.testing import KEY

from .conftest import MASTER_KEY
from .test_lifecycle import free_port


def _config(tmp_path: Path, api_base: str, *, model: str = "azure/gpt-4o", store: str | None = None,
            extra: str = "", settings: str = "") -> Path:  # fmt: skip
    config = tmp_path / "config.yaml"
    config.write_text(f"""
model_list:
  - model_name: m
    litellm_params: {{model: {model}, api_base: "{api_base}", api_key: "{KEY}"}}
modelyard_settings: {{store_path: "{store or tmp_path / 'spend.db'}"{settings}}}
general_settings: {{master_key: "{MASTER_KEY}"}}
{extra}""")
    return config


def test_the_check_builds_no_app_and_loads_no_store_or_client(tmp_path: Path, api_base: str) -> None:
    config = _config(tmp_path, api_base)
    code = (
        "import json, sys\n"
        "from modelyard.proxy.serve import check\n"
        f"built = check({str(config)!r})\n"
        "print(json.dumps({'app': built.app is None, 'models': built.deployments.model_names(),\n"
        "    'loaded': sorted(m for m in ('sqlalchemy', 'aiohttp', 'modelyard.store', 'modelyard.proxy.ui')\n"
        "                     if m in sys.modules)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"app": True, "models": ["m"], "loaded": []}
    # build() makes the app from the same config, store and all.
    built = serve.build(str(config))
    assert built.app is not None and built.deployments is built.app.deployments and built.app.store is not None


def test_the_check_refuses_what_the_app_refuses(tmp_path: Path, api_base: str) -> None:
    with pytest.raises(ConfigError, match="model_list"):
        serve.check(str(_config(tmp_path, api_base, model="nosuchprovider/x")))
    weak = tmp_path / "weak.yaml"
    weak.write_text(_config(tmp_path, api_base).read_text().replace(MASTER_KEY, "sk-1234"))
    with pytest.raises(ConfigError, match=r"general_settings\.master_key"):
        serve.check(str(weak))
    with pytest.raises(ConfigError, match=r"modelyard_settings\.prices"):
        serve.check(str(_config(tmp_path, api_base, settings=f', prices: "{tmp_path / "no-such-prices.json"}"')))
    with pytest.raises(ConfigError, match="routing_strategy"):
        serve.check(str(_config(tmp_path, api_base, extra="router_settings: {routing_strategy: no-such-strategy}\n")))


def _serve(config: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "modelyard.cli", "serve", "--config", str(config), "--port", str(free_port()),
           "--num_workers", "2"]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=120)


def test_a_bad_config_fails_before_the_workers_start(tmp_path: Path, api_base: str) -> None:
    out = _serve(_config(tmp_path, api_base, model="nosuchprovider/x"))
    assert out.returncode == 2, out.stderr
    assert "model_list" in out.stderr and "a worker could not start" not in out.stderr


def test_a_worker_that_cannot_build_the_app_stops_the_server(tmp_path: Path, api_base: str) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    out = _serve(_config(tmp_path, api_base, store=str(blocker / "spend.db")))
    assert out.returncode == serve.STARTUP_FAILURE, out.stderr
    assert "a worker could not start" in out.stderr and "not-a-directory" in out.stderr
    assert KEY not in out.stderr and MASTER_KEY not in out.stderr
