"""modelyard's pytest plugin (``pytest11`` entry point): cheap, inert by default, opt-in isolation.

Installed, it loads in every pytest run of every project in the environment, so these tests run
pytest in a separate process on a directory of their own, as a user's project.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

INERT = '''
import os, socket, sys

def test_probe(request):
    assert os.environ["AZURE_API_KEY"] == "from-the-machine"      # environment left alone
    assert socket.socket.connect.__name__ == "connect"             # sockets unpatched
    defs = request._pyfuncitem._fixtureinfo.name2fixturedefs
    assert not [n for n, d in defs.items() if d[-1].func.__module__.startswith("modelyard")]  # none of ours
    assert not [m for m in sys.modules if m.split(".")[0] in ("httpx", "pydantic", "starlette", "uvicorn")]
'''

ISOLATED = '''
import os, socket
import pytest

def test_probe(request):
    assert "AZURE_API_KEY" not in os.environ
    assert "clean_environment" in request.fixturenames
    with pytest.raises(ConnectionRefusedError, match="may not reach the network"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)   # refused before any packet leaves

async def test_async_probe(request):
    assert "close_async_clients" in request.fixturenames
'''


def _run(tmp_path: Path, test: str, ini: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(test)
    settings = "[pytest]\nfilterwarnings = error\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    (tmp_path / "pytest.ini").write_text(settings + textwrap.dedent(ini))
    # Without this run's PYTHONPATH: it carries the network guard to our own subprocesses.
    env = {**{k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}, "AZURE_API_KEY": "from-the-machine"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_probe.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_it_is_a_pytest11_entry_point_of_modelyard() -> None:
    (plugin,) = [ep for ep in entry_points(group="pytest11") if ep.name == "modelyard"]
    assert plugin.value == "modelyard.testing.pytest_plugin"
    assert plugin.dist is not None and plugin.dist.name == "modelyard"


def test_importing_it_loads_no_http_client_pydantic_or_server() -> None:
    code = (
        "import sys, pytest\n"
        "before = set(sys.modules)\n"
        "import modelyard.testing.pytest_plugin\n"
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in "
        "('httpx', 'httpcore', 'pydantic', 'starlette', 'uvicorn', 'redis', 'psycopg', 'sqlalchemy')"
        " or m in ('modelyard.plugins', 'modelyard.api', 'modelyard.testing.emulator')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_users_run_is_unchanged_without_the_options(tmp_path: Path) -> None:
    run = _run(tmp_path, INERT, "")
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_ini_options_guard_the_network_and_clean_the_environment(tmp_path: Path) -> None:
    run = _run(tmp_path, ISOLATED, "modelyard_no_network = true\nmodelyard_clean_env = true\n")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout


@pytest.mark.parametrize("option", ["modelyard_no_network", "modelyard_clean_env"])
def test_each_option_alone_is_needed(tmp_path: Path, option: str) -> None:
    # The probe of the isolated run fails when either option is missing: the options, not
    # something else in this environment, make the difference.
    run = _run(tmp_path, ISOLATED, f"{option} = true\n")
    assert run.returncode == 1, run.stdout + run.stderr


def test_every_name_modelyard_testing_exports_loads() -> None:
    import modelyard.testing as testing
    from modelyard.testing import pytest_plugin

    assert sorted(testing.__all__) == sorted(dir(testing))
    for name in testing.__all__:
        assert getattr(testing, name) is not None, name
    # The plugin module re-exports the helpers too, so one import line serves a test module.
    for name in ("KEY", "AD_TOKEN", "batch_jsonl", "ManualClock", "add_family_deployments", "RedisServer"):
        assert getattr(pytest_plugin, name) is getattr(testing, name)


def test_a_missing_postgresql_fails_the_test_instead_of_skipping_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that needs a real server must not pass quietly on a machine without it."""
    from modelyard.testing import services

    monkeypatch.setattr(services, "_postgres_bin_dir", lambda: None)  # as on a machine without PostgreSQL
    with pytest.raises(pytest.fail.Exception, match=r"PostgreSQL .* is not installed"), services.postgres_server():
        pass
