"""``./dev release --check`` (.ci/release.py) on small workspaces in git: each rule of
docs/releasing.md breaks it with a message naming the distribution and the fix."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _release() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_release", ROOT / ".ci" / "release.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ci_release"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


release = _release()

TABLE = "# Releasing\n\n<!-- hook-api-table -->\n| HOOK_API | first |\n|---|---|\n| 1.0 | 0.1.0 |\n| 1.3 | 0.2.0 |\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _dist(root: Path, folder: str, name: str, version: str, deps: list[str], changelog: str, hook_api: str) -> None:
    _write(root / folder / "pyproject.toml", f'[project]\nname = "{name}"\nversion = "{version}"\ndependencies = {deps!r}\n')
    _write(root / folder / "CHANGELOG.md", f"# Changelog\n\n{changelog}")
    package = name.replace("-", "_")
    _write(root / folder / "src" / package / "plugin.py", f"HOOK_API{': tuple[int, int]' if name == 'modelyard' else ''} = {hook_api}\n")


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def _commit(root: Path, message: str) -> None:
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """Released: modelyard 0.2.0 (HOOK_API 1.3), auth 0.3.0, batch 0.2.0 requiring auth."""
    root = tmp_path / "ws"
    _write(root / "pyproject.toml", '[tool.uv.workspace]\nmembers = ["core", "plugins/*"]\n')
    _write(root / "docs" / "releasing.md", TABLE)
    _dist(root, "core", "modelyard", "0.2.0", ["httpx"], "## 0.2.0 (2026-12-06)\n\n- x\n\n## 0.1.0 (2026-11-25)\n", "(1, 3)")
    _dist(root, "plugins/auth", "modelyard-azure-auth", "0.3.0", ["modelyard>=0.2,<0.3"],
          "## 0.3.0 (2026-12-06)\n\n- y\n\n## 0.2.0 (2026-11-25)\n", "(1, 3)")  # fmt: skip
    _dist(root, "plugins/batch", "modelyard-azure-batch", "0.2.0", ["modelyard>=0.2,<0.3", "modelyard-azure-auth>=0.3,<0.4"],
          "## 0.2.0 (2026-12-06)\n", "(1, 2)")  # fmt: skip
    _git(root, "init", "-q")
    _commit(root, "release")
    return root


def test_a_consistent_release_passes(workspace: Path) -> None:
    assert release.check(workspace) == []
    done = subprocess.run([sys.executable, str(ROOT / ".ci/release.py"), "--check", "--root", str(workspace)],
                          capture_output=True, text=True)  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")


def test_code_changed_after_its_release_fails(workspace: Path) -> None:
    _write(workspace / "plugins/auth/src/modelyard_azure_auth/plugin.py", "HOOK_API = (1, 3)\nX = 1\n")
    _commit(workspace, "a change")
    [error] = release.check(workspace)
    assert error.startswith(
        "modelyard-azure-auth 0.3.0 (released 2026-12-06) changed since: plugins/auth/src/modelyard_azure_auth/plugin.py (since "
    )
    assert error.endswith(
        "add '## Unreleased' to plugins/auth/CHANGELOG.md and raise the version "
        "(uv version --package modelyard-azure-auth --bump patch, or --bump minor if it breaks)"
    )
    # Unreleased entries, version still the released one: refused too.
    changelog = workspace / "plugins/auth/CHANGELOG.md"
    changelog.write_text(changelog.read_text().replace("# Changelog\n\n", "# Changelog\n\n## Unreleased\n\n- X\n\n"))
    assert release.check(workspace) == [
        "modelyard-azure-auth 0.3.0: unreleased changes in a version that was released on 2026-12-06; raise the "
        "version (uv version --package modelyard-azure-auth --bump patch)"
    ]
    # Raised: in progress, fine (batch's requirement still admits it? no: <0.4 excludes 0.4.0).
    pyproject = workspace / "plugins/auth/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.3.0"', 'version = "0.4.0.dev0"'))
    assert release.check(workspace) == [
        "modelyard-azure-batch requires 'modelyard-azure-auth<0.4,>=0.3', which excludes modelyard-azure-auth "
        "0.4.0.dev0 of this workspace"
    ]


def test_a_dependency_change_counts_a_test_or_changelog_change_does_not(workspace: Path) -> None:
    _write(workspace / "plugins/batch/tests/test_x.py", "def test() -> None: ...\n")
    _commit(workspace, "tests only")
    assert release.check(workspace) == []
    pyproject = workspace / "plugins/batch/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("'modelyard>=0.2,<0.3', ", "'modelyard>=0.2,<0.3', 'redis', "))
    [error] = release.check(workspace)
    assert error.startswith("modelyard-azure-batch 0.2.0 (released 2026-12-06) changed since: plugins/batch/pyproject.toml [project]")


def test_a_plugin_must_require_the_core_that_provides_its_hook_api(workspace: Path) -> None:
    pyproject = workspace / "plugins/auth/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("modelyard>=0.2,<0.3", "modelyard>=0.1,<0.3"))
    _write(workspace / "plugins/auth/CHANGELOG.md", "## Unreleased\n\n- z\n\n## 0.2.0 (2026-11-25)\n")
    assert release.check(workspace) == [
        "modelyard-azure-auth: declares HOOK_API 1.3, first provided by modelyard 0.2.0; require "
        "'modelyard>=0.2,<...' so that pip refuses an older core"
    ]
    _write(workspace / "plugins/auth/src/modelyard_azure_auth/plugin.py", "HOOK_API = (1, 4)\n")
    assert release.check(workspace) == [
        "modelyard-azure-auth: declares HOOK_API (1, 4), which no modelyard release provides"
    ]


def test_the_core_hook_api_needs_its_row(workspace: Path) -> None:
    _write(workspace / "core/src/modelyard/plugin.py", "HOOK_API: tuple[int, int] = (1, 4)\n")
    _write(workspace / "core/CHANGELOG.md", "## Unreleased\n\n- hook\n\n## 0.2.0 (2026-12-06)\n")
    pyproject = workspace / "core/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.2.0"', 'version = "0.2.1"'))
    assert release.check(workspace) == ["docs/releasing.md: no row for the core's HOOK_API 1.4"]
    _write(workspace / "docs/releasing.md", TABLE + "| 1.4 | 0.2.1 |\n")
    assert release.check(workspace) == []  # an added hook: plugins for 1.3 keep working (<0.3)
    _write(workspace / "plugins/auth/src/modelyard_azure_auth/plugin.py", "HOOK_API = (1, 4)\n")
    _write(workspace / "plugins/auth/CHANGELOG.md", "## Unreleased\n\n- z\n\n## 0.3.0 (2026-12-06)\n")
    auth = workspace / "plugins/auth/pyproject.toml"
    auth.write_text(auth.read_text().replace('version = "0.3.0"', 'version = "0.3.1"'))
    assert release.check(workspace) == [
        "modelyard-azure-auth: declares HOOK_API 1.4, first provided by modelyard 0.2.1; require "
        "'modelyard>=0.2.1,<...' so that pip refuses an older core"
    ]
    auth.write_text(auth.read_text().replace("modelyard>=0.2,<0.3", "modelyard>=0.2.1,<0.3"))
    assert release.check(workspace) == []
    # A new major breaks every plugin: it needs a breaking core release (0.x: a new minor).
    _write(workspace / "core/src/modelyard/plugin.py", "HOOK_API: tuple[int, int] = (2, 0)\n")
    _write(workspace / "docs/releasing.md", TABLE + "| 1.4 | 0.2.1 |\n| 2.0 | 0.2.2 |\n")
    pyproject.write_text(pyproject.read_text().replace('version = "0.2.1"', 'version = "0.2.2"'))
    assert release.check(workspace) == [
        "docs/releasing.md: HOOK_API 2.0 -> 0.2.2: a new HOOK_API major breaks plugins, so it needs a breaking "
        "modelyard release (not in the 0.2 line)"
    ]
    _write(workspace / "docs/releasing.md", TABLE + "| 1.4 | 0.2.1 |\n| 2.0 | 0.3.0 |\n")
    pyproject.write_text(pyproject.read_text().replace('version = "0.2.2"', 'version = "0.3.0"'))
    assert release.check(workspace) == [
        "modelyard-azure-auth requires 'modelyard<0.3,>=0.2.1', which excludes modelyard 0.3.0 of this workspace",
        "modelyard-azure-batch requires 'modelyard<0.3,>=0.2', which excludes modelyard 0.3.0 of this workspace",
    ]


def test_a_new_distribution_starts_unreleased_or_dated(workspace: Path) -> None:
    _dist(workspace, "plugins/embeddings", "modelyard-azure-embeddings", "0.1.0", ["modelyard>=0.2,<0.3"],
          "## Unreleased\n\n- First release.\n", "(1, 3)")  # fmt: skip
    assert release.check(workspace) == []
    _write(workspace / "plugins/embeddings/CHANGELOG.md", "## 0.1.0\n\n- First release.\n")
    assert release.check(workspace) == [
        "plugins/embeddings/CHANGELOG.md: heading '## 0.1.0' is neither 'Unreleased' nor 'X.Y.Z (YYYY-MM-DD)'"
    ]
    _write(workspace / "plugins/embeddings/CHANGELOG.md", "## 0.1.0 (2026-12-06)\n\n- First release.\n")
    assert release.check(workspace) == []
