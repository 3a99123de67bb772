"""Issue 13 acceptance: third-party providers in a fresh environment, from the public module only.

A new virtual environment gets modelyard (the core from this checkout, ``server`` extra), the
fixture ``tests/plugins/ext_provider`` (an HTTP provider written only against
``modelyard.plugin``) and a provider created by ``modelyard new-plugin`` from the installed
package's template (an in-process one), all installed offline from uv's cache, at the versions
``uv.lock`` pins (what ``uv sync`` put in the cache: the index pages there may name newer releases
whose files were never downloaded). The skeleton's own
tests pass there, and ``check.py`` drives both providers through the SDK (sync, async, streamed)
and the proxy, the in-process one with sockets switched off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "plugins" / "ext_provider"


def _uv() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    for python in (sys.executable, shutil.which("python3")):
        if python and subprocess.run([python, "-m", "uv", "--version"], capture_output=True).returncode == 0:
            return [python, "-m", "uv"]
    raise AssertionError("uv is needed to build the fresh environment (pip install uv)")


def run(*args: str | Path, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "MODELYARD_", "AZURE_", "OPENAI_"))}
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert done.returncode == 0, f"{args}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def locked(uv: list[str], tmp_path: Path) -> Path:
    """uv.lock's versions of every third-party package, as a constraints file."""
    exported = run(*uv, "export", "--frozen", "--no-hashes", "--all-extras", "--all-groups", "--all-packages",
                   "--no-emit-workspace", "--no-header", "-q", cwd=ROOT)  # fmt: skip
    pins = [line for line in exported.splitlines() if line and not line.startswith(("#", " ", "-e"))]
    assert any(line.startswith("pydantic==") for line in pins), exported[:2000]
    path = tmp_path / "constraints.txt"
    path.write_text("\n".join(pins) + "\n")
    return path


def test_out_of_tree_providers_in_a_fresh_environment(tmp_path: Path) -> None:
    uv = _uv()
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    constraints = locked(uv, tmp_path)
    run(*uv, "venv", "-q", venv, "--python", Path(sys.executable).resolve())
    run(*uv, "pip", "install", "-q", "--offline", "--python", python, "-c", constraints, f"{ROOT / 'core'}[server]", FIXTURE)
    out = run(venv / "bin" / "modelyard", "new-plugin", "local_llm", "-d", tmp_path)
    skeleton = tmp_path / "modelyard-local-llm"
    assert f"Created {skeleton}" in out
    run(*uv, "pip", "install", "-q", "--offline", "--python", python, "-c", constraints, f"{skeleton}[test]")
    assert "modelyard-workspace" not in run(*uv, "pip", "list", "--python", python)  # nothing from this checkout's venv
    listed = run(venv / "bin" / "modelyard", "plugins")
    assert "modelyard-ext-provider" in listed and "modelyard-local-llm" in listed and "azure" not in listed
    assert "2 passed" in run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", skeleton / "tests", cwd=skeleton)
    out = run(python, FIXTURE / "check.py", "local_llm", cwd=tmp_path)
    assert [line for line in out.splitlines() if line.endswith(" ok")] == [
        "sdk sync ok", "sdk async and stream ok", "proxy ok", "in-process ok"
    ]  # fmt: skip
