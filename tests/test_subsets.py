"""A subset install is a normal state: docs/vision.md's subset config on an interpreter without
the vision and batch plugins.

The subset is real: a site directory holding every entry of this environment's site-packages
except the files of the left-out distributions (their ``.dist-info`` and ``.pth``), used by a
fresh ``python -S`` that adds only that directory. ``importlib.metadata`` and the entry points
there know nothing of the left-out plugins, as after ``pip install modelyard[server]
modelyard-azure-chat modelyard-azure-auth``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "vision.md"
MASTER_KEY = "sk-subset-test-0a9b8c7d6e5f4a3b2c1d"


def subset_python(tmp_path: Path, without: list[str]) -> list[str]:
    """The command line of a Python whose installed distributions lack ``without``."""
    site_packages = Path(sysconfig.get_paths()["purelib"])
    hidden: set[str] = set()
    for dist in without:
        files = metadata.distribution(dist).files or []
        hidden |= {f.parts[0] for f in files if f.parts and f.parts[0] != ".."}
    assert hidden, without
    site = tmp_path / "site-packages"
    site.mkdir()
    for entry in site_packages.iterdir():
        if entry.name not in hidden:
            (site / entry.name).symlink_to(entry)
    return [sys.executable, "-S", "-c", f"import site, sys; site.addsitedir({str(site)!r}); exec(sys.stdin.read())"]


SCRIPT = r"""
import json, logging, os, re, sys
from importlib import metadata

import httpx, yaml
from modelyard.proxy import ProxyApp, parse_config
from modelyard.testing import Emulator, EmulatorServer
from modelyard.testing.server import serve_in_thread

warnings = []
class Collect(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())
logging.getLogger("modelyard.plugins").addHandler(Collect(logging.WARNING))

installed = sorted({ep.dist.name for ep in metadata.entry_points(group="modelyard")})
doc = open(DOC).read()
config = yaml.safe_load(re.search(r"<!-- subset config -->\n```yaml\n(.*?)```", doc, re.S).group(1))
with EmulatorServer(Emulator(["gpt-4o"], api_keys=["subset-key"])) as upstream:
    os.environ["AZURE_API_BASE"], os.environ["AZURE_API_KEY"] = upstream.url, "subset-key"
    with serve_in_thread(ProxyApp(parse_config(config), master_key=MASTER_KEY), lifespan="on") as proxy:
        auth = {"Authorization": f"Bearer {MASTER_KEY}"}
        hi = [{"role": "user", "content": "hi"}]
        with httpx.Client(base_url=proxy.url, headers=auth, timeout=60) as client:
            chat = client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": hi})
            vision = client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": hi, "enhancements": {"ocr": {"enabled": True}}})
            files = client.post("/v1/files", data={"purpose": "batch"}, files={"file": ("in.jsonl", b"{}\n")},
                                headers={"custom-llm-provider": "azure"})
print(json.dumps({
    "installed": installed, "warnings": warnings,
    "chat": [chat.status_code, chat.json()["choices"][0]["message"]["role"]],
    "vision": [vision.status_code, vision.json()], "files": [files.status_code, files.json()],
}))
"""


def test_the_docs_subset_config_starts_and_names_what_to_install(tmp_path: Path) -> None:
    python = subset_python(tmp_path, ["modelyard-azure-vision", "modelyard-azure-batch"])
    script = f"DOC = {str(DOC)!r}\nMASTER_KEY = {MASTER_KEY!r}\n{SCRIPT}"
    done = subprocess.run(python, input=script, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "modelyard-azure-vision" not in out["installed"] and "modelyard-azure-batch" not in out["installed"]
    assert "modelyard-azure-chat" in out["installed"]
    assert [w.split(";")[0] for w in out["warnings"]] == [
        "Plugin 'modelyard-azure-vision' in the block list (block_plugins) is not installed",
        "Plugin 'modelyard-azure-batch' in the block list (block_plugins) is not installed",
    ]
    assert out["chat"] == [200, "assistant"]
    status, body = out["vision"]
    assert status == 400 and body["error"]["code"] == "plugin_not_loaded"
    assert body["error"]["message"].startswith(
        "'enhancements' needs the plugin 'modelyard-azure-vision', which is not loaded (not installed). "
        "Install it (pip install modelyard-azure-vision), or leave out 'enhancements'."
    )
    status, body = out["files"]
    assert status == 501
    assert body == {"error": {
        "message": "create_file on provider 'azure' needs the plugin modelyard-azure-batch (it answers "
                   "transform_files_request), which is not installed. Install it: pip install modelyard-azure-batch",
        "type": "api_error", "param": None, "code": "plugin_not_loaded",
    }}  # fmt: skip
