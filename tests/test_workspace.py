"""The repository as users meet it: a tidy root, and test-only plugins kept out of `./dev serve`."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REAL_PLUGINS = [
    "plugins/azure_audio", "plugins/azure_auth", "plugins/azure_batch", "plugins/azure_chat", "plugins/azure_common",
    "plugins/azure_embeddings", "plugins/azure_images", "plugins/azure_vision", "plugins/otel",
]  # fmt: skip
TEST_PLUGIN = "tests/plugins/acme_family"


def test_the_root_holds_only_the_layout() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    top = {line.split("/", 1)[0] for line in files.splitlines()}
    # mkdocs.yml: the documentation site's config, where MkDocs looks for it (`mkdocs serve`).
    allowed = {"pyproject.toml", "uv.lock", "README.md", "dev", "mkdocs.yml", "core", "plugins", "tests", "docs", "bench", ".ci"}
    assert sorted(name for name in top if name not in allowed and not name.startswith(".")) == []


def _script(path: Path, body: str) -> None:
    path.write_text(f"#!/usr/bin/env bash\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _uv_calls(tmp_path: Path, command: str) -> list[tuple[list[str], str]]:
    """Run a copy of ./dev COMMAND with uv, the tools and .venv faked; the uv calls it made."""
    work, fake_bin, log = tmp_path / command, tmp_path / f"{command}-bin", tmp_path / f"{command}.log"
    (work / ".venv" / "bin").mkdir(parents=True)
    fake_bin.mkdir()
    shutil.copy(ROOT / "dev", work / "dev")
    for tool in ("modelyard", "ruff", "mypy", "pytest"):
        _script(work / ".venv" / "bin" / tool, "exit 0")
    # The scripts ./dev runs with the workspace's python, one line per run.
    _script(work / ".venv" / "bin" / "python", f'echo "$*" >> {shlex.quote(str(tmp_path / f"{command}.python.log"))}')
    _script(work / ".venv" / "bin" / "mkdocs", f'echo "$*" >> {shlex.quote(str(tmp_path / f"{command}.mkdocs.log"))}')
    for tool in ("pg_ctl", "redis-server"):  # so ./dev test installs nothing
        _script(fake_bin / tool, "exit 0")
    # One line per call: the project environment it targets, a tab, the arguments.
    _script(fake_bin / "uv", f'printf "%s\\t%s\\n" "${{UV_PROJECT_ENVIRONMENT:-}}" "$*" >> {shlex.quote(str(log))}')
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([str(work / "dev"), command], cwd=work, env=env, check=True, capture_output=True, timeout=60)
    calls = []
    for line in log.read_text().splitlines():
        environment, args = line.split("\t", 1)
        calls.append((args.split(), environment))
    return calls


def _installed(sync_args: list[str]) -> str:
    """What `uv sync <sync_args>` installs, read from uv.lock (`uv export`: no install, no network)."""
    assert sync_args[0] == "sync", sync_args
    uv = shutil.which("uv")
    assert uv is not None, "uv is not on PATH (./dev installs it)"
    args = [uv, "export", *[a for a in sync_args[1:] if a != "--quiet"], "--no-hashes", "--quiet"]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60).stdout


def test_dev_serve_installs_the_real_plugins_and_not_the_test_only_ones(tmp_path: Path) -> None:
    (sync,) = [args for args, _ in _uv_calls(tmp_path, "serve") if args[0] == "sync"]
    served = _installed(sync)
    assert [p for p in REAL_PLUGINS if f"-e ./{p}\n" not in served] == []
    assert TEST_PLUGIN not in served


def test_dev_test_installs_the_test_only_plugins_and_runs_a_plugin_alone(tmp_path: Path) -> None:
    calls = _uv_calls(tmp_path, "test")
    (sync,) = [args for args, _ in calls if args[0] == "sync"]
    assert f"-e ./{TEST_PLUGIN}\n" in _installed(sync)
    alone = [(args, env) for args, env in calls if args[0] == "run"]
    packages = [args[args.index("--package") + 1] for args, _ in alone]
    assert packages == ["modelyard-azure-chat", "modelyard-otel"]
    for (args, environment), tests in zip(alone, ("plugins/azure_chat/tests", "plugins/otel/tests"), strict=True):
        assert "--exact" in args
        assert args[-2:] == ["pytest", tests]
        assert environment and not environment.startswith(str(ROOT))  # a fresh environment, not .venv


def test_dev_test_checks_the_release_and_the_wheels(tmp_path: Path) -> None:
    """CI runs ./dev test (.ci/run): it must run ./dev release --check and the wheel check."""
    _uv_calls(tmp_path, "test")
    assert (tmp_path / "test.python.log").read_text().splitlines() == [".ci/release.py --check", ".ci/wheels.py"]


def test_dev_test_builds_the_docs_site_strictly(tmp_path: Path) -> None:
    """CI runs ./dev test: the site's build must run there, strict (a broken link fails it)."""
    calls = _uv_calls(tmp_path, "test")
    (sync,) = [args for args, _ in calls if args[0] == "sync"]
    assert "mkdocs-material" in _installed(sync)
    (build,) = (tmp_path / "test.mkdocs.log").read_text().splitlines()
    assert build.split()[:2] == ["build", "--strict"]


def test_dev_docs_serves_the_site(tmp_path: Path) -> None:
    _uv_calls(tmp_path, "docs")
    assert (tmp_path / "docs.mkdocs.log").read_text().split() == ["serve"]
