"""The secret scan (``modelyard_secret_scan = true``): a planted secret in a log or a proxy answer fails the run.

Each case runs pytest in a separate process on a project of its own (as test_pytest_plugin
does): the scan swaps the logging setup of the process, which must not touch this run's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLANTED = "planted-secret-3c9e1f0a7b"

LEAKY_LOG = f'''
import logging

PLANTED_SECRET = "{PLANTED}"

def test_quiet():
    logging.getLogger("some.library").debug("all fine")

def test_leaks_into_a_debug_log():
    logging.getLogger("some.library").debug("calling with token=%s", PLANTED_SECRET)
'''

LEAKY_RESPONSE = f'''
import httpx
from modelyard.testing import MASTER_KEY

UPSTREAM_API_KEY = "{PLANTED}"

def test_a_proxy_answer_quotes_it(proxy):
    # The proxy names the unknown model in its 404: here the model name is the secret.
    answer = httpx.post(f"{{proxy.url}}/v1/chat/completions", headers={{"Authorization": f"Bearer {{MASTER_KEY}}"}},
                        json={{"model": UPSTREAM_API_KEY, "messages": [{{"role": "user", "content": "hi"}}]}})
    assert answer.status_code in (400, 404)
'''

CLEAN = '''
import logging
import httpx
from modelyard.testing import KEY, MASTER_KEY

def test_uses_the_keys_without_leaking(proxy, caplog):
    logging.getLogger("modelyard").debug("a call with a key of %d characters", len(KEY))
    answer = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200
'''

KEY_IN_LOG = '''
import logging
from modelyard.testing import KEY

def test_logs_the_emulator_key():
    logging.getLogger("modelyard.proxy.access").info("api-key: " + KEY)
'''


def _run(tmp_path: Path, test: str, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(test)
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\nmodelyard_no_network = true\n"
                                         "modelyard_clean_env = true\nmodelyard_secret_scan = true\n")  # fmt: skip
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:asyncio", "-q",
                           *extra, "test_probe.py"], cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_a_secret_in_a_debug_log_fails_the_run_naming_it_and_the_test(tmp_path: Path) -> None:
    run = _run(tmp_path, LEAKY_LOG)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "2 passed" in out  # every test passed: the scan alone fails the run
    assert "SECRETS LEAKED" in out
    assert "test_probe.PLANTED_SECRET appeared 1x in log record of 'some.library'" in out
    assert "test_probe.py::test_leaks_into_a_debug_log" in out
    assert "test_quiet" not in out.split("SECRETS LEAKED", 1)[1]
    assert PLANTED not in out  # the report names the secret, never prints it


def test_a_secret_seen_in_a_pytest_xdist_worker_fails_the_run_and_is_reported(tmp_path: Path) -> None:
    """`./dev test` runs the suite on pytest-xdist workers: what a worker's scan finds reaches the
    controller, which names it and fails the run (a worker's own exit status and report would not)."""
    run = _run(tmp_path, LEAKY_LOG, "-n", "2")
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "2 passed" in out
    assert "SECRETS LEAKED" in out
    assert "test_probe.PLANTED_SECRET appeared 1x in log record of 'some.library'" in out
    assert "test_probe.py::test_leaks_into_a_debug_log" in out
    assert PLANTED not in out


def test_a_clean_run_on_pytest_xdist_workers_passes_and_counts_what_they_searched(tmp_path: Path) -> None:
    run = _run(tmp_path, CLEAN, "-n", "2")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    line = next(x for x in out.splitlines() if x.startswith("modelyard secret scan:"))
    assert "none found" in line and " 0 log records" not in line  # the workers' records are counted


def test_a_secret_in_a_proxy_answer_fails_the_run(tmp_path: Path) -> None:
    run = _run(tmp_path, LEAKY_RESPONSE)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "test_probe.UPSTREAM_API_KEY appeared" in out
    assert "in a proxy response body" in out


def test_the_testing_keys_are_secrets_too(tmp_path: Path) -> None:
    run = _run(tmp_path, KEY_IN_LOG)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "modelyard.testing.KEY appeared 1x in log record of 'modelyard.proxy.access'" in out


def test_a_run_that_leaks_nothing_passes_and_says_what_was_searched(tmp_path: Path) -> None:
    run = _run(tmp_path, CLEAN)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "modelyard secret scan:" in out and "none found" in out
