"""Keep ``import httpx`` from importing httpx's command-line client (click, rich, pygments).

httpx's ``__init__`` runs ``from ._main import main`` for its ``httpx`` command. When click,
rich and pygments happen to be installed (they often are: many tools pull rich in), that import
loads all three: measured here, 40-140 ms and 5.8 MiB of RSS added to every process that imports
httpx, for a command modelyard never runs (upstream: encode/httpx#3547, discussion #3523).

:func:`defer` (run by ``import modelyard``) adds an import finder that answers the first import
of ``httpx._main`` with a stand-in and then removes itself. The stand-in loads the real module
the first time anything on it is used (the ``httpx`` console script calls ``httpx.main``, which
is the stand-in's ``main``), so the command and ``import httpx._main`` behave as before. When
httpx is already imported, nothing is changed.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from typing import Any

_NAME = "httpx._main"


class _DeferredMain(types.ModuleType):
    """``httpx._main`` until first used; then the real module, which replaces it in ``sys.modules``."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # the import system probes __path__ ...: not a reason to load
            raise AttributeError(name)
        return getattr(_load(), name)


def _load() -> types.ModuleType:
    if isinstance(sys.modules.get(_NAME), _DeferredMain):
        del sys.modules[_NAME]
    import importlib

    real = importlib.import_module(_NAME)
    httpx = sys.modules.get("httpx")
    if httpx is not None:
        httpx.main = real.main  # type: ignore[attr-defined]
    return real


def _main(*args: Any, **kwargs: Any) -> Any:
    """The ``httpx`` command: the real one, loaded now (httpx's own hint when its extra is missing)."""
    try:
        real = _load()
    except ImportError:
        print("The httpx command line client could not run because the required dependencies were not installed.\n"
              "Make sure you've installed everything with: pip install 'httpx[cli]'")  # fmt: skip
        sys.exit(1)
    return real.main(*args, **kwargs)


class _Finder:
    """Answers the first import of ``httpx._main`` with a :class:`_DeferredMain`, then steps aside."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != _NAME:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        return importlib.machinery.ModuleSpec(fullname, self)  # type: ignore[arg-type]  # a Loader by its methods

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _DeferredMain(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        module.main = _main  # type: ignore[attr-defined]


def defer() -> None:
    """Install the finder, unless httpx is imported already (or the finder is in place)."""
    if "httpx" in sys.modules or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder())
