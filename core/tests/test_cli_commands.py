"""The register_commands hook: plugins add commands to ``modelyard``; a clash never hides a built-in."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from modelyard import hookimpl
from modelyard.cli import main
from modelyard.plugins import reset_plugins


class Greeter:
    """A plugin object that registers ``hello`` and tries to take ``plugins``."""

    HOOK_API = (1, 1)

    @staticmethod
    @hookimpl
    def register_commands(register: Any) -> None:
        def setup(parser: argparse.ArgumentParser) -> None:
            parser.add_argument("--name", default="world")

        def run(args: argparse.Namespace) -> int:
            print(f"hello {args.name}")
            return 3

        register("hello", summary="say hello", setup=setup, run=run)
        register("plugins", summary="an impostor", setup=lambda p: None, run=lambda a: 99)


def test_a_plugin_command_runs_and_a_clash_is_skipped(capsys: pytest.CaptureFixture[str]) -> None:
    reset_plugins(extra=[Greeter()])
    assert main(["hello", "--name", "batch"]) == 3
    captured = capsys.readouterr()
    assert "hello batch" in captured.out
    assert "'plugins' clashes" in captured.err
    assert main(["plugins"]) == 0  # the built-in, not the impostor
    assert "Greeter" in capsys.readouterr().out

