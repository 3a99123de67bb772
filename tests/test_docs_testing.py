"""docs/testing.md: its examples are a user's test files, run by pytest as a user runs them.

Each ```python block starting with ``# test_<name>.py`` is written to that file in an empty
directory, and a separate pytest process runs them: no conftest, no workspace settings, only
the fixtures the installed ``modelyard`` brings through its ``pytest11`` entry point.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "testing.md"


def _test_files() -> dict[str, str]:
    blocks = re.findall(r"```python\n(# (test_\w+\.py)\n.*?)```", DOC.read_text(), flags=re.S)
    return {name: code for code, name in blocks}


def test_the_examples_pass_in_a_users_pytest_run(tmp_path: Path) -> None:
    files = _test_files()
    assert {"test_summary.py", "test_faults.py", "test_entra.py", "test_proxy.py"} <= set(files)
    summary = files["test_summary.py"]
    # "about ten lines": the application and its test, the first thing the page shows.
    assert len([line for line in summary.splitlines() if line.strip()]) <= 12
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    # A user's settings, strict about warnings: the plugin must not warn in someone else's run
    # (the loop scope: pytest-asyncio warns when it is unset).
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *files],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    expected = sum(len(re.findall(r"^(?:async )?def test_", code, flags=re.M)) for code in files.values())
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{expected} passed" in run.stdout, run.stdout
