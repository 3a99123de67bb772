"""``modelyard new-plugin``: refuses names that are no identifier and directories that exist."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelyard.cli import main


def test_new_plugin_writes_the_skeleton_and_refuses_bad_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-plugin", "my_llm", "-d", str(tmp_path)]) == 0
    plugin = (tmp_path / "modelyard-my-llm" / "src" / "modelyard_my_llm" / "plugin.py").read_text()
    assert 'PROVIDER = "my_llm"' in plugin and "from modelyard.plugin import" in plugin
    assert 'my_llm = "modelyard_my_llm.plugin"' in (tmp_path / "modelyard-my-llm" / "pyproject.toml").read_text()
    compile(plugin, "plugin.py", "exec")
    assert main(["new-plugin", "my_llm", "-d", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["new-plugin", "My-LLM", "-d", str(tmp_path)]) == 2
    assert "lower-case letters" in capsys.readouterr().err
