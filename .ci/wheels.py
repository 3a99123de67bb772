"""The wheels as an enterprise installs them: built with ``--no-sources``, together and in subsets.

Run by ``./dev test`` (docs/releasing.md, "Checks on the wheels"), with the workspace's .venv
(it serves the emulator the subsets talk to):

1. ``uv build --package <dist> --no-sources`` for every distribution of the workspace, and for a
   probe plugin declaring ``HOOK_API (1, <core's + 1>)`` with the requirement on ``modelyard``
   docs/releasing.md gives it (the next core minor).
2. All the wheels together in a fresh environment: the resolver sees the real requirements
   (``uv.lock`` does not, through workspace sources); every plugin loads.
3. The probe next to the core: refused by the resolver; forced with ``--no-deps``: listed as
   skipped by ``modelyard plugins`` and named by the call that needed it.
4. The subsets core + chat + auth and core + chat + auth + vision, each in a fresh environment:
   chat sync, async and streaming against the emulator, and the errors naming what is not
   installed (batches, vision, Entra ID, the proxy). Each subset's closure (its site-packages)
   is printed; core + chat + auth must stay under 20 MiB.
5. core[proxy] + chat + auth: ``modelyard serve`` on docs/vision.md's subset config (the absent
   plugins blocked) starts and serves chat and the dashboard's files; core + chat + auth[entra]: its closure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from release import declared_hook_apis, workspace  # noqa: E402

MIB = 1024 * 1024
SUBSET_LIMIT_MIB = 20
KEY = "wheels-check-key"
MASTER_KEY = "sk-wheels-check-5d0c1e2f3a4b5c6d7e8f"
# The environments see no MODELYARD_* / AZURE_* settings of the caller (a load list, a key).
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("MODELYARD_", "AZURE_"))}

NAMED = {"batch": "pip install modelyard-azure-batch", "entra": "pip install 'modelyard-azure-auth[entra]'",
         "vision": "plugin 'modelyard-azure-vision'"}  # fmt: skip
"""What each smoke test's missing capability must name."""

SMOKE = """
import asyncio, importlib.util, json, sys
import modelyard
from modelyard.errors import ModelyardError, PluginNotLoadedError

base, key, with_vision = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
kw = dict(model="azure/gpt-4o", api_base=base, api_key=key, api_version="2024-10-21")
messages = [{"role": "user", "content": "hello"}]

r = modelyard.completion(messages=messages, **kw)
assert r.choices[0].message.content.endswith("You said: hello"), r

async def both():
    a = await modelyard.acompletion(messages=messages, **kw)
    chunks = [c async for c in await modelyard.acompletion(messages=messages, stream=True, **kw)]
    return a, chunks

a, chunks = asyncio.run(both())
assert a.choices[0].message.content.endswith("You said: hello"), a
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
assert text.endswith("You said: hello"), text
streamed = "".join(c.choices[0].delta.content or "" for c in modelyard.completion(messages=messages, stream=True, **kw) if c.choices)
assert streamed == text, streamed

def error(call, kind=PluginNotLoadedError):
    try:
        call()
    except kind as exc:
        return str(exc)
    raise AssertionError(f"no {kind.__name__}")

errors = {
    "batch": error(lambda: modelyard.create_file(file=b"{}", purpose="batch", api_base=base, api_key=key)),
    "entra": error(lambda: modelyard.completion(messages=messages, model=kw["model"], api_base=base,
                                                 tenant_id="t", client_id="c", client_secret="s")),
}
vision = dict(
    messages=messages, model="azure/gpt-4-vision", api_base=base, api_key=key, api_version="2023-12-01-preview",
    enhancements={"ocr": {"enabled": True}},
    dataSources=[{"type": "AzureComputerVision",
                  "parameters": {"endpoint": "https://cv.cognitiveservices.azure.com/", "key": "cv-key"}}],
)
if with_vision:
    v = modelyard.completion(**vision)
    assert v.choices[0].message.content, v
else:
    errors["vision"] = error(lambda: modelyard.completion(**vision), ModelyardError)
absent = [m for m in ("azure.identity", "sqlalchemy", "starlette", "uvicorn") if importlib.util.find_spec(m.partition(".")[0]) is not None]
assert absent == [], absent
print(json.dumps(errors))
"""

PROBE_PLUGIN = """\
from __future__ import annotations

from modelyard import hookimpl
from modelyard.families import Family

HOOK_API = {hook_api!r}


@hookimpl
def register_families(register):
    register(Family(name="probe", prefix="probe/", provider="azure", endpoint="chat"))
"""


def run(*args: str | Path, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    """A command, its output captured; on failure (with ``check``) the output is shown."""
    kw.setdefault("env", CLEAN_ENV)
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if check and done.returncode:
        sys.exit(f"wheels: {' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done  # type: ignore[no-any-return]


def uv(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run("uv", *args, check=check, cwd=ROOT)


def venv(path: Path, *wheels: str | Path, no_deps: bool = False) -> Path:
    """A fresh virtual environment holding ``wheels`` (and their dependencies); its python."""
    uv("venv", "--quiet", path)
    python = path / "bin" / "python"
    uv("pip", "install", "--quiet", "--python", python, *(["--no-deps"] if no_deps else []), *wheels)
    return python


def site_packages_size(python: Path) -> int:
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    return sum(f.stat().st_size for f in Path(purelib).rglob("*") if f.is_file() and not f.is_symlink())


def build(out: Path) -> dict[str, Path]:
    """Every workspace distribution's wheel, built without workspace sources, by name."""
    wheels = {}
    for dist in workspace(ROOT):
        uv("build", "--quiet", "--package", dist.name, "--no-sources", "--wheel", "--out-dir", out)
        [wheel] = out.glob(f"{dist.name.replace('-', '_')}-{dist.version}-*.whl")
        wheels[dist.name] = wheel
    return wheels


def probe_wheel(tmp: Path, out: Path, core_api: tuple[int, int], core_version: str) -> Path:
    """A plugin built against the next HOOK_API minor, requiring the next core minor (not yet released)."""
    major, minor, *_ = (int(p) for p in core_version.split("."))
    source = tmp / "probe"
    package = source / "src" / "modelyard_probe_future"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(PROBE_PLUGIN.format(hook_api=(core_api[0], core_api[1] + 1)))
    (source / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [project]
        name = "modelyard-probe-future"
        version = "0.1.0"
        requires-python = ">=3.11"
        dependencies = ["modelyard>={major}.{minor + 1},<{major}.{minor + 2}"]
        [project.entry-points.modelyard]
        probe_future = "modelyard_probe_future.plugin"
        [build-system]
        requires = ["hatchling>=1.25"]
        build-backend = "hatchling.build"
        [tool.hatch.build.targets.wheel]
        packages = ["src/modelyard_probe_future"]
    """))
    run("uv", "build", "--quiet", "--wheel", "--out-dir", out, source)
    [wheel] = out.glob("modelyard_probe_future-*.whl")
    return wheel


def proxy_smoke(modelyard: Path, tmp: Path, upstream: str) -> None:
    """``modelyard serve`` of core[proxy] + chat + auth: docs/vision.md's subset config (blocking the
    absent vision and batch plugins) starts, and chat answers, whole and streamed."""
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp / "proxy.yaml"
    config.write_text(textwrap.dedent(f"""\
        model_list:
          - model_name: gpt-4o
            litellm_params: {{model: azure/gpt-4o, api_base: "{upstream}", api_key: {KEY}, api_version: "2024-10-21"}}
        modelyard_settings:
          block_plugins: [modelyard-azure-vision, modelyard-azure-batch]
        general_settings:
          master_key: {MASTER_KEY}
    """))
    log = tmp / "proxy.log"
    with log.open("w") as out:
        served = subprocess.Popen([modelyard, "serve", "--config", config, "--port", str(port), "--no-access-log"],
                                  stdout=out, stderr=subprocess.STDOUT, env=CLEAN_ENV)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/health/liveliness", timeout=2)
                break
            except httpx.TransportError:
                expect(served.poll() is None and time.monotonic() < deadline, "the proxy did not start", log.read_text())
                time.sleep(0.1)
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
        auth = {"Authorization": f"Bearer {MASTER_KEY}"}
        answer = httpx.post(f"{base}/v1/chat/completions", json=body, headers=auth, timeout=30)
        expect(answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"].endswith("hello"),
               "proxy chat", answer.text)  # fmt: skip
        with httpx.stream("POST", f"{base}/v1/chat/completions", json={**body, "stream": True}, headers=auth,
                          timeout=30) as streamed:  # fmt: skip
            events = [line for line in streamed.iter_lines() if line.startswith("data: ")]
        expect(events[-1] == "data: [DONE]" and len(events) > 2, "proxy stream", "\n".join(events))
        # The dashboard's files are package data of the wheel (docs/dashboard.md).
        for path in ("/ui", "/ui/static/app.js", "/ui/static/uPlot.iife.min.js"):
            page = httpx.get(f"{base}{path}", timeout=10)
            expect(page.status_code == 200 and len(page.content) > 1000, f"GET {path} from the wheel", page.text[:200])
    finally:
        served.terminate()
        served.wait(timeout=30)
    warned = [line for line in log.read_text().splitlines() if "not installed" in line]
    expect(len(warned) == 2, "the subset config's absent plugins were not both warned about", log.read_text())
    print("core[proxy]+chat+auth: modelyard serve with vision and batch blocked but absent starts (2 warnings); "
          "chat and streamed chat through it ok; /ui served from the wheel")


def expect(condition: bool, what: str, detail: str = "") -> None:
    if not condition:
        sys.exit(f"wheels: {what}\n{detail}")


def main() -> int:
    from modelyard.hookspecs import HOOK_API
    from modelyard.testing import Deployment, Emulator, EmulatorServer

    started = time.monotonic()
    dists = {d.name: d for d in workspace(ROOT)}
    (core_api,) = declared_hook_apis(ROOT, dists["modelyard"])
    assert core_api == HOOK_API, (core_api, HOOK_API)
    with tempfile.TemporaryDirectory(prefix="modelyard-wheels-") as name:
        tmp = Path(name)
        out = tmp / "dist"
        wheels = build(out)
        probe = probe_wheel(tmp, out, core_api, str(dists["modelyard"].version))
        core_version = dists["modelyard"].version
        probe_floor = f"{core_version.major}.{core_version.minor + 1}"
        print(f"built {len(wheels)} wheels and a HOOK_API {core_api[0]}.{core_api[1] + 1} probe "
              f"({time.monotonic() - started:.0f} s)")  # fmt: skip

        # All together, with every extra: pip-style resolution of the real requirements.
        everything = [f"modelyard[server,redis,postgres] @ {wheels['modelyard'].as_uri()}",
                      *(str(w) for n, w in wheels.items() if n != "modelyard")]  # fmt: skip
        auth = wheels.get("modelyard-azure-auth")
        if auth is not None:
            everything.append(f"modelyard-azure-auth[entra] @ {auth.as_uri()}")
        python = venv(tmp / "all", *everything)
        listed = run(python.with_name("modelyard"), "plugins", env=CLEAN_ENV).stdout
        rows = [line.split()[1:5:3] for line in listed.splitlines()[2:] if line.strip()]  # distribution, status
        plugins = {d.name for d in workspace(ROOT) if isinstance(eps := d.project.get("entry-points"), dict) and "modelyard" in eps}
        expect({d for d, _ in rows} == plugins and {s for _, s in rows} == {"loaded"},
               "not every plugin is loaded with all wheels installed", listed)  # fmt: skip
        print(f"all {len(wheels)} wheels install together: {site_packages_size(python) / MIB:.1f} MiB")

        # The probe: refused by the resolver, skipped and named when forced in.
        # Only the local wheels as candidates: the core built here is the one the probe must refuse.
        refused = uv("pip", "install", "--dry-run", "--no-index", "--find-links", out, "--python", python, probe,
                     check=False)  # fmt: skip
        reason = " ".join(refused.stderr.split())
        needs = f"modelyard-probe-future==0.1.0 depends on modelyard>={probe_floor}"
        expect(refused.returncode != 0 and needs in reason, "a plugin for a newer HOOK_API was not refused", reason)
        print(f"a plugin requiring modelyard>={probe_floor} (HOOK_API {core_api[0]}.{core_api[1] + 1}) is refused: "
              f"{reason[reason.index('cause: ') + 7:][:200]}")  # fmt: skip

        # modelyard-azure-common is chat's library dependency (no entry point): its wheel is passed
        # too, so the resolver takes the one built here, never a registry's namesake.
        chat = ["modelyard", "modelyard-azure-common", "modelyard-azure-chat", "modelyard-azure-auth"]
        subsets = {"core+chat+auth": chat, "core+chat+auth+vision": [*chat, "modelyard-azure-vision"]}
        emulator = Emulator([Deployment("gpt-4o"), Deployment("gpt-4-vision", model="gpt-4-vision-preview")], api_keys=[KEY])
        sizes = {}
        with EmulatorServer(emulator) as server:
            for label, names in subsets.items():
                python = venv(tmp / label, *(wheels[n] for n in names))
                sizes[label] = site_packages_size(python)
                done = run(python, "-c", SMOKE, server.url, KEY, "1" if "modelyard-azure-vision" in names else "0")
                errors = dict(__import__("json").loads(done.stdout))
                for what, message in errors.items():
                    expect(NAMED[what] in message, f"the {what} error does not name {NAMED[what]}", message)
                serve = run(python.with_name("modelyard"), "serve", "--port", "0", check=False)
                expect(serve.returncode == 2 and "pip install 'modelyard[proxy]'" in serve.stderr,
                       "serve without the proxy extra", serve.stderr)  # fmt: skip
                named = ", ".join(f"{what} -> {NAMED[what]}" for what in errors)
                print(f"{label}: {sizes[label] / MIB:.1f} MiB of site-packages; chat sync/async/stream ok; "
                      f"errors name what to install ({named}); serve names modelyard[proxy]")  # fmt: skip
            # Forced in: skipped, and named by the call that needed it.
            python = tmp / "core+chat+auth" / "bin" / "python"
            uv("pip", "install", "--quiet", "--no-deps", "--python", python, str(probe))
            listed = run(python.with_name("modelyard"), "plugins").stdout
            row = next((line for line in listed.splitlines() if line.startswith("probe_future ")), "")
            expect(" skipped " in row and f"HOOK_API ({core_api[0]}, {core_api[1] + 1})" in row,
                   "modelyard plugins does not report the probe as skipped", listed)  # fmt: skip
            call = run(python, "-c", "import modelyard; modelyard.completion(model='probe/x', messages=[])", check=False)
            expect("probe_future" in call.stderr and "HOOK_API" in call.stderr, "the failing call does not name the skip",
                   call.stderr)  # fmt: skip
            print("forced in with --no-deps, `modelyard plugins` says:", " ".join(row.split()))
            # The extras on their own, for the record (docs/plugins/index.md#extras).
            for extra, wheel in (("proxy", "modelyard"), ("entra", "modelyard-azure-auth")):
                python = venv(tmp / extra, *(f"{n}[{extra}] @ {w.as_uri()}" if n == wheel else w
                                             for n, w in wheels.items() if n in subsets["core+chat+auth"]))  # fmt: skip
                print(f"core+chat+auth with {wheel}[{extra}]: {site_packages_size(python) / MIB:.1f} MiB")
                if extra == "proxy":
                    proxy_smoke(python.with_name("modelyard"), tmp, server.url)
    limit = sizes["core+chat+auth"] / MIB
    expect(limit < SUBSET_LIMIT_MIB, f"core+chat+auth is {limit:.1f} MiB, over {SUBSET_LIMIT_MIB} MiB")
    print(f"wheels ok in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
