"""``import modelyard`` keeps httpx's command-line client (click, rich, pygments) out of the process."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_httpx_imported_after_modelyard_leaves_its_cli_unloaded() -> None:
    out = _run(
        "import sys, modelyard, httpx\n"
        "assert not any(m in sys.modules for m in ('click', 'rich', 'pygments')), sorted(sys.modules)\n"
        "assert not hasattr(sys.modules['httpx._main'], '__file__')\n"  # the stand-in, not httpx's module
        "assert httpx.Client and httpx.AsyncClient\n"
        "print('ok')\n"
    )
    assert out.stdout.strip() == "ok", out.stderr


def test_the_httpx_command_still_runs() -> None:
    # The dev environment has httpx's CLI extra (click, rich, pygments): the command works as before.
    out = _run("import sys, modelyard, httpx\nsys.argv = ['httpx', '--help']\nhttpx.main()\n")
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout and "HTTPX" in out.stdout


def test_httpx_cli_module_loads_on_first_use() -> None:
    out = _run(
        "import sys, modelyard, httpx, httpx._main as m\n"
        "assert callable(m.print_help)\n"  # an attribute of the real module
        "assert sys.modules['httpx._main'].__file__.endswith('_main.py')\n"
        "assert httpx.main is sys.modules['httpx._main'].main\n"
        "print('ok')\n"
    )
    assert out.stdout.strip() == "ok", out.stderr


def test_httpx_imported_first_is_left_alone() -> None:
    out = _run("import sys, httpx, modelyard\nprint(sys.modules['httpx._main'].__file__.endswith('_main.py'))\n")
    assert out.stdout.strip() == "True", out.stderr
