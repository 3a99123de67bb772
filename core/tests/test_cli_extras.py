"""Commands whose extra is not installed print the install line, not a traceback.

Each case runs the installed ``modelyard`` console script in a real subprocess whose
``sitecustomize`` makes one module unimportable (``sys.modules[name] = None``, what Python does
for a module that is not there), as on an install of ``modelyard`` without the command's extra.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("modelyard")


def run_without(module: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(
    ("args", "module", "extra"),
    [
        (("serve", "--port", "0"), "uvicorn", "proxy"),
        (("emulator", "--port", "0"), "uvicorn", "emulator"),
        (("demo",), "uvicorn", "emulator"),
        (("emulator", "--port", "0"), "starlette", "emulator"),
        (("demo",), "starlette", "emulator"),
    ],
)
def test_command_without_its_extra_names_the_install_line(
    args: tuple[str, ...], module: str, extra: str, tmp_path: Path
) -> None:
    done = run_without(module, tmp_path, *args)
    assert done.returncode == 2
    assert done.stderr == (
        f"error: `modelyard {args[0]}` needs the {extra!r} extra, which is not installed (no module named "
        f"{module!r}). Install it: pip install 'modelyard[{extra}]'\n"
    )
    assert done.stdout == ""


def test_serve_with_a_config_file_and_no_yaml(tmp_path: Path) -> None:
    """``yaml`` comes from ``pyyaml``: the extra is found from modelyard's own metadata."""
    config = tmp_path / "config.yaml"
    config.write_text("model_list: []\n")
    done = run_without("yaml", tmp_path, "serve", "--config", str(config), "--port", "0")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.endswith("(no module named 'yaml'). Install it: pip install 'modelyard[proxy]'\n")


def test_a_proxy_with_a_store_and_no_sqlalchemy_names_the_store_extra(tmp_path: Path) -> None:
    """Batch load balancing opens the SQL store: without SQLAlchemy, the ``store`` extra is named."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: batch\n"
        "    litellm_params: {model: azure/gpt-4o, api_base: 'http://127.0.0.1:9', api_key: k}\n"
        "    model_info: {mode: batch}\n"
        "litellm_settings: {enable_loadbalancing_on_batch_endpoints: true}\n"
        f"modelyard_settings: {{store_path: '{tmp_path / 'ids.db'}'}}\n"
    )
    done = run_without("sqlalchemy", tmp_path, "serve", "--config", str(config), "--port", "0", "--dev")
    assert done.returncode == 2, done.stderr
    assert done.stderr.endswith(
        "error: `modelyard serve` needs the 'store' extra, which is not installed (no module named "
        "'sqlalchemy'). Install it: pip install 'modelyard[store]'\n"
    )


def test_the_extra_comes_from_the_metadata() -> None:
    from modelyard.cli import _extra_for

    assert _extra_for("multipart", "proxy") == "proxy"  # python-multipart
    assert _extra_for("multipart", "emulator") == "emulator"  # in both: the command's own
    assert _extra_for("sqlalchemy", "proxy") == "store"  # not the command's, but the one that installs it
    assert _extra_for("psycopg", "proxy") == "postgres"
    assert _extra_for("redis", "proxy") == "redis"
    assert _extra_for("h11", "proxy") == "proxy"  # a dependency's dependency: the command's extra


def test_a_missing_module_of_modelyard_itself_is_not_blamed_on_an_extra(tmp_path: Path) -> None:
    done = run_without("modelyard.testing", tmp_path, "demo")
    assert done.returncode == 1 and "Traceback" in done.stderr and "pip install" not in done.stderr
