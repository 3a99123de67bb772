"""``modelyard new-plugin NAME``: a provider plugin's skeleton, from a template shipped in the package.

The template (``modelyard/data/plugin_template/*.tmpl``, ``string.Template`` files) is a working
in-process echo provider with its test, written against :mod:`modelyard.plugin`; no repository
checkout is needed.
"""

from __future__ import annotations

import re
import string
from importlib import resources
from pathlib import Path

from .errors import ConfigError

__all__ = ["new_plugin"]

# template file -> where it goes in the new distribution ($name: the import name's suffix)
_LAYOUT = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "CHANGELOG.md.tmpl": "CHANGELOG.md",
    "__init__.py.tmpl": "src/modelyard_$name/__init__.py",
    "plugin.py.tmpl": "src/modelyard_$name/plugin.py",
    "test_plugin.py.tmpl": "tests/test_$name.py",
}


def new_plugin(name: str, parent: Path) -> Path:
    """Write the skeleton of the provider plugin ``name`` to ``parent/modelyard-<name>/``.

    Args:
        name: the provider's name, a Python identifier in lower case (``echo``, ``my_llm``); the
            model strings will be ``<name>/<model>``.
        parent: the directory to create it in.

    Returns:
        The new distribution's directory.

    Raises:
        ConfigError: an invalid name, or the directory already exists.
    """
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ConfigError(f"plugin name {name!r}: use lower-case letters, digits and _ (a Python identifier).", key="NAME")
    dist = name.replace("_", "-")
    target = parent / f"modelyard-{dist}"
    if target.exists():
        raise ConfigError(f"{target} already exists; choose another name or directory.", key="NAME")
    values = {"name": name, "dist": dist}
    templates = resources.files("modelyard") / "data" / "plugin_template"
    for source, dest in _LAYOUT.items():
        path = target / string.Template(dest).substitute(values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(string.Template(templates.joinpath(source).read_text(encoding="utf-8")).substitute(values), encoding="utf-8")
    (target / "src" / f"modelyard_{name}" / "py.typed").write_text("")
    return target
