"""``./dev release --check``: every distribution's version identifies what it ships.

The rules (docs/releasing.md explains them for people):

1. A CHANGELOG.md has ``## Unreleased`` (first, at most once) and ``## X.Y.Z (YYYY-MM-DD)``
   headings, versions strictly decreasing.
2. No ``## Unreleased``: the version in pyproject.toml is the top dated heading (released).
   With ``## Unreleased``: the version is above every dated heading (the one being prepared), so
   unreleased work is never built into a version that was already released.
3. A released distribution (no ``## Unreleased``) ships what it shipped when its dated heading
   was committed: no change under ``src/``, to ``README.md`` or to ``[project]`` (version aside).
4. A requirement on another distribution of the workspace admits its current version.
5. The core's ``HOOK_API`` has the last row of docs/releasing.md's table (``HOOK_API -> first
   modelyard``), no later than the core's version; rows increase, and a new HOOK_API major starts a
   breaking core line. A plugin's ``modelyard`` requirement has a lower bound no lower than the
   first core providing the highest ``HOOK_API`` its modules declare.

Standard library and ``packaging`` only; git for rule 3 (skipped outside a git checkout).
"""

from __future__ import annotations

import argparse
import ast
import itertools
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
HEADING = re.compile(r"^## (?P<title>.*?)\s*$", re.MULTILINE)
DATED = re.compile(r"^(?P<version>\d+(?:\.\d+)*)\s+\((?P<date>\d{4}-\d{2}-\d{2})\)$")
TABLE_ROW = re.compile(r"^\|\s*(?P<api>\d+\.\d+)\s*\|\s*(?P<version>\d+\.\d+\.\d+)\s*\|", re.MULTILINE)
TABLE_START = "<!-- hook-api-table -->"


@dataclass
class Dist:
    """One distribution of the workspace, as its files say."""

    path: Path  # relative to the workspace root
    name: str
    version: Version
    project: dict[str, object]

    @property
    def rel(self) -> str:
        return self.path.as_posix()


def workspace(root: Path) -> list[Dist]:
    """The workspace members (root pyproject.toml's members minus its excludes)."""
    members = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    excluded = {(root / e).resolve() for e in members.get("exclude", [])}
    dists = []
    for pattern in members["members"]:
        for folder in sorted(root.glob(pattern)):
            if folder.resolve() in excluded or not (folder / "pyproject.toml").is_file():
                continue
            project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
            dists.append(Dist(folder.relative_to(root), project["name"], Version(project["version"]), project))
    return dists


def git(root: Path, *args: str) -> str | None:
    """A git command's output, or None outside a git checkout."""
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout


def changelog(root: Path, dist: Dist, errors: list[str]) -> tuple[bool, list[tuple[Version, str]]]:
    """Rule 1: (has an Unreleased section, dated (version, date) headings top down)."""
    file = dist.path / "CHANGELOG.md"
    text = (root / file).read_text() if (root / file).is_file() else ""
    unreleased, dated = False, list[tuple[Version, str]]()
    for i, match in enumerate(HEADING.finditer(text)):
        title = match["title"]
        if title == "Unreleased":
            if i:
                errors.append(f"{file}: '## Unreleased' must be the first heading")
            unreleased = True
            continue
        found = DATED.match(title)
        if not found:
            errors.append(f"{file}: heading '## {title}' is neither 'Unreleased' nor 'X.Y.Z (YYYY-MM-DD)'")
            continue
        version = Version(found["version"])
        if dated and version >= dated[-1][0]:
            errors.append(f"{file}: {version} is listed below {dated[-1][0]}; versions must decrease")
        dated.append((version, found["date"]))
    if not HEADING.search(text):
        errors.append(f"{file}: no '## Unreleased' nor '## X.Y.Z (YYYY-MM-DD)' heading")
    return unreleased, dated


def released_content_changed(root: Path, dist: Dist, version: Version, date: str) -> list[str]:
    """Rule 3: what changed in the wheel's sources since the commit that dated ``version``."""
    log = git(root, "log", "--format=%H", "--reverse", "-S", f"## {version} ({date})", "--", f"{dist.rel}/CHANGELOG.md")
    if not log or not log.split():
        return []  # being released in the working tree, or no git: nothing to compare with
    commit = log.split()[0]
    changed = (git(root, "diff", "--name-only", commit, "--", f"{dist.rel}/src", f"{dist.rel}/README.md") or "").split()
    changed += (git(root, "ls-files", "--others", "--exclude-standard", "--", f"{dist.rel}/src") or "").split()
    old = git(root, "show", f"{commit}:{dist.rel}/pyproject.toml")
    if old is not None:
        before = dict(tomllib.loads(old)["project"])
        now = dict(dist.project)
        before.pop("version", None)
        now.pop("version", None)
        if before != now:
            changed.append(f"{dist.rel}/pyproject.toml [project]")
    return [f"{name} (since {commit[:9]})" for name in changed if "__pycache__" not in name]


def hook_api_table(root: Path, errors: list[str]) -> list[tuple[tuple[int, int], Version]]:
    """docs/releasing.md's rows (HOOK_API, first modelyard release providing it), in order."""
    text = (root / "docs/releasing.md").read_text()
    if TABLE_START not in text:
        errors.append(f"docs/releasing.md: no table after {TABLE_START}")
        return []
    rows = []
    for match in TABLE_ROW.finditer(text.split(TABLE_START, 1)[1]):
        major, minor = (int(p) for p in match["api"].split("."))
        rows.append(((major, minor), Version(match["version"])))
    for (api_a, v_a), (api_b, v_b) in itertools.pairwise(rows):
        if not (api_b > api_a and v_b > v_a):
            errors.append(f"docs/releasing.md: HOOK_API {api_b} -> {v_b} after {api_a} -> {v_a}: both must increase")
        elif api_b[0] > api_a[0] and breaking_line(v_b) == breaking_line(v_a):
            errors.append(
                f"docs/releasing.md: HOOK_API {api_b[0]}.{api_b[1]} -> {v_b}: a new HOOK_API major breaks plugins, "
                f"so it needs a breaking modelyard release (not in the {'.'.join(map(str, breaking_line(v_a)))} line)"
            )
    return rows


def breaking_line(version: Version) -> tuple[int, ...]:
    """The releases that stay compatible with ``version``: same major, or same minor while on 0.x."""
    return (0, version.minor) if version.major == 0 else (version.major,)


def short(version: Version) -> str:
    """``0.2`` for 0.2.0, ``0.2.1`` as it is: how a requirement's lower bound is written."""
    return f"{version.major}.{version.minor}" if version.micro == 0 else str(version)


def declared_hook_apis(root: Path, dist: Dist) -> list[tuple[int, int]]:
    """The ``HOOK_API = (major, minor)`` values assigned at module level under ``src/``."""
    found = []
    for file in sorted((root / dist.path / "src").rglob("*.py")):
        for node in ast.parse(file.read_text()).body:
            target: ast.expr
            value: ast.expr | None
            if isinstance(node, ast.AnnAssign):
                target, value = node.target, node.value
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id == "HOOK_API" and value is not None:
                major, minor = ast.literal_eval(value)
                found.append((int(major), int(minor)))
    return found


def requirements(dist: Dist) -> list[Requirement]:
    """The distribution's requirements, extras included."""
    deps: list[str] = list(dist.project.get("dependencies", []))  # type: ignore[call-overload]
    extras: dict[str, list[str]] = dict(dist.project.get("optional-dependencies", {}))  # type: ignore[call-overload]
    for extra in extras.values():
        deps.extend(extra)
    return [Requirement(d) for d in deps]


def has_lower_bound(req: Requirement, floor: Version) -> bool:
    """Whether ``req`` admits no version below ``floor``."""
    return any(s.operator in (">=", ">", "~=", "==", "===") and Version(s.version) >= floor for s in req.specifier)


def check(root: Path = ROOT) -> list[str]:
    """Every rule's violations, as messages naming the distribution, file and fix (none: all good)."""
    errors: list[str] = []
    dists = workspace(root)
    by_name: dict[str, Dist] = {canonicalize_name(d.name): d for d in dists}
    for dist in dists:
        unreleased, dated = changelog(root, dist, errors)
        fix = (
            f"add '## Unreleased' to {dist.rel}/CHANGELOG.md and raise the version "
            f"(uv version --package {dist.name} --bump patch, or --bump minor if it breaks)"
        )
        if unreleased:
            if dated and dist.version <= dated[0][0]:
                errors.append(
                    f"{dist.name} {dist.version}: unreleased changes in a version that was released on "
                    f"{dated[0][1]}; raise the version (uv version --package {dist.name} --bump patch)"
                )
        elif dated:
            version, date = dated[0]
            if dist.version != version:
                errors.append(f"{dist.name}: version {dist.version} but CHANGELOG's latest release is {version}")
            changed = released_content_changed(root, dist, version, date)
            if changed:
                errors.append(
                    f"{dist.name} {version} (released {date}) changed since: "
                    + ", ".join(changed[:5])
                    + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
                    + f"; {fix}"
                )
        for req in requirements(dist):
            other = by_name.get(canonicalize_name(req.name))
            if other is not None and not req.specifier.contains(other.version, prereleases=True):
                errors.append(
                    f"{dist.name} requires '{req}', which excludes {other.name} {other.version} of this workspace"
                )

    rows = hook_api_table(root, errors)
    core = by_name.get("modelyard")
    if core is None or not rows:
        return errors
    (core_api,) = declared_hook_apis(root, core)
    first = dict(rows)
    if core_api not in first:
        errors.append(f"docs/releasing.md: no row for the core's HOOK_API {core_api[0]}.{core_api[1]}")
    elif first[core_api] > core.version or rows[-1][0] != core_api:
        errors.append(
            f"docs/releasing.md: HOOK_API {core_api[0]}.{core_api[1]} first ships in {first[core_api]}, "
            f"and must be the last row, the core being {core.version}"
        )
    for dist in dists:
        if dist is core:
            continue
        apis = declared_hook_apis(root, dist)
        if not apis:
            continue
        needed = max(apis)
        floors = [v for api, v in rows if api[0] == needed[0] and api >= needed]
        reqs = [r for r in requirements(dist) if canonicalize_name(r.name) == "modelyard" and not r.marker]
        if not floors:
            errors.append(f"{dist.name}: declares HOOK_API {needed}, which no modelyard release provides")
        elif not reqs or not all(has_lower_bound(r, floors[0]) for r in reqs):
            errors.append(
                f"{dist.name}: declares HOOK_API {needed[0]}.{needed[1]}, first provided by modelyard "
                f"{floors[0]}; require 'modelyard>={short(floors[0])},<...' so that pip refuses an older core"
            )
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev release", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="check the rules; exit 1 naming what breaks one")
    parser.add_argument("--root", type=Path, default=ROOT, help="the workspace (default: this checkout)")
    args = parser.parse_args(argv)
    if not args.check:
        parser.print_help()
        return 2
    errors = check(args.root.resolve())
    for error in errors:
        print(f"release: {error}", file=sys.stderr)
    if not errors:
        print("release: every distribution's version and CHANGELOG match what it ships")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
