"""The ``modelyard`` command: ``serve``, ``plugins``, ``emulator``, ``demo``, ``keys``, and the commands plugins register."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

__all__ = ["main"]

EXTRA_OF_COMMAND = {"serve": "proxy", "emulator": "emulator", "demo": "emulator"}
"""The extra of the ``modelyard`` distribution each built-in command needs beyond the core.

A module of another extra (``sqlalchemy`` for a proxy with a store: ``store``) is named by
:func:`_extra_for` from the metadata."""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _extra_for(module: str, default: str) -> str:
    """The extra that installs ``module``: the command's own when it lists it, else the one that does.

    Read from modelyard's installed metadata (``Requires-Dist: uvicorn>=0.30; extra == "proxy"``),
    so the message follows the extras as they are declared. A module whose distribution has
    another name (``yaml`` from ``pyyaml``, ``multipart`` from ``python-multipart``) is matched
    with those prefixes; one no extra lists (a dependency's dependency) gets the command's extra,
    one several extras list the smallest of them.
    """
    names = {_norm(module), _norm("py" + module), _norm("python-" + module)}
    size: dict[str, int] = {}  # requirements per extra
    extras: list[str] = []
    try:
        requires = metadata.requires("modelyard") or []
    except metadata.PackageNotFoundError:
        requires = []
    for line in requires:
        found = re.match(r"\s*([A-Za-z0-9._-]+).*;.*extra\s*==\s*['\"]([^'\"]+)['\"]", line)
        if found:
            size[found.group(2)] = size.get(found.group(2), 0) + 1
            if _norm(found.group(1)) in names:
                extras.append(found.group(2))
    if not extras or default in extras:
        return default
    # Extras include each other (``postgres`` brings ``store``): name the smallest that installs it.
    return min(extras, key=lambda extra: size[extra])


def _missing_extra(command: str, exc: ModuleNotFoundError) -> int:
    """Say which extra a command needs, with its install line, instead of a traceback."""
    module = (exc.name or "").partition(".")[0]
    extra = _extra_for(module, EXTRA_OF_COMMAND[command])
    print(
        f"error: `modelyard {command}` needs the {extra!r} extra, which is not installed "
        f"(no module named {module!r}). Install it: pip install 'modelyard[{extra}]'",
        file=sys.stderr,
    )
    return 2


def _new_plugin(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .errors import ConfigError
    from .scaffold import new_plugin

    try:
        target = new_plugin(args.name, Path(args.directory))
    except ConfigError as exc:
        print(f"modelyard new-plugin: {exc}", file=sys.stderr)
        return 2
    print(f"Created {target}: pip install -e '{target}[test]' && pytest {target}")
    return 0


def _plugins(args: argparse.Namespace) -> int:
    from .hookspecs import HOOK_API
    from .plugins import get_plugins

    plugins = get_plugins()
    plugins.families  # noqa: B018  (collects families, filling PluginInfo.families)
    print(f"modelyard HOOK_API {HOOK_API[0]}.{HOOK_API[1]}")
    rows = [("plugin", "distribution", "version", "HOOK_API", "status", "families / reason")]
    for info in plugins.infos:
        api = f"{info.hook_api[0]}.{info.hook_api[1]}" if info.hook_api else "-"
        detail = ", ".join(info.families) if info.status == "loaded" else info.reason
        rows.append((info.name, info.distribution, info.version, api, info.status, detail or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    if args.verbose:
        for info in plugins.infos:
            if info.hooks:
                print(f"{info.name}: hooks {', '.join(info.hooks)}")
        declared = plugins.connection_settings.declared()
        if declared:
            print("connection settings (plugin, provider: name kind [environment]):")
        for plugin, setting in declared:
            env = f" [{', '.join(setting.env)}]" if setting.env else ""
            print(f"  {plugin}, {setting.provider}: {setting.name} {setting.kind}{env}")
    return 0


def _deployment(spec: str) -> Any:
    """``name`` or ``name=model`` (``my-o3=o3-mini``): the model decides what the deployment accepts."""
    from .testing import Deployment

    name, _, model = spec.partition("=")
    return Deployment(name, model=model) if model else Deployment(name)


def _emulator(args: argparse.Namespace) -> int:
    import uvicorn

    from .testing import Emulator

    emulator = Emulator([_deployment(d) for d in args.deployment or ["gpt-4o", "gpt-4o-mini"]], api_keys=[args.api_key])
    print(
        f"modelyard emulator on http://{args.host}:{args.port}  "
        f"deployments: {', '.join(emulator.deployments)}  (api-key: the one you passed with --api-key)",
        flush=True,
    )
    uvicorn.run(emulator.app, host=args.host, port=args.port, log_level="warning")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from . import completion
    from .testing import Emulator, EmulatorServer
    from .testing.demo import DEMO_MODEL

    with EmulatorServer(Emulator([DEMO_MODEL.rpartition("/")[2]], api_keys=["demo-key"])) as server:
        response = completion(
            model=DEMO_MODEL,
            api_base=server.url,
            api_key="demo-key",
            messages=[{"role": "user", "content": args.prompt}],
        )
    print(response.model_dump_json(indent=2, exclude_none=True))  # type: ignore[union-attr]
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .proxy.serve import run

    return run(
        args.config,
        host=args.host,
        port=args.port,
        num_workers=args.num_workers,
        dev=args.dev,
        log_level=args.log_level,
        access_log=not args.no_access_log,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )


def _plugin_commands(sub: Any) -> None:
    """Let plugins add commands (the ``register_commands`` hook); a broken plugin only warns."""
    from .errors import ModelyardError
    from .plugins import get_plugins

    try:
        plugins = get_plugins()
    except ModelyardError as exc:
        print(f"warning: plugin commands unavailable: {exc}", file=sys.stderr)
        return

    def register(
        name: str,
        *,
        summary: str,
        setup: Callable[[argparse.ArgumentParser], None],
        run: Callable[[argparse.Namespace], int],
    ) -> None:
        if name in sub.choices:
            print(f"warning: a plugin's command {name!r} clashes with an existing one; skipped", file=sys.stderr)
            return
        parser = sub.add_parser(name, help=summary)
        setup(parser)
        parser.set_defaults(func=run)

    plugins.hook.register_commands(register=register)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modelyard`` console script."""
    parser = argparse.ArgumentParser(prog="modelyard", description="Model APIs from Python, through provider plugins.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the proxy (LiteLLM's config.yaml)")
    p.add_argument("--config", "-c", help="config.yaml (default: the providers' environment variables, else the built-in emulator)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=4000)
    p.add_argument("--num_workers", "--num-workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--dev", action="store_true", help="local development: allow no or a well-known master key")
    p.add_argument("--log-level", default="info", help="modelyard log level (default info)")
    p.add_argument("--no-access-log", action="store_true", help="do not print one JSON line per request")
    p.add_argument("--ssl-certfile", help="serve HTTPS with this PEM certificate (chain); see docs/deploy.md")
    p.add_argument("--ssl-keyfile", help="the certificate's PEM private key (if not in --ssl-certfile)")
    p.set_defaults(func=_serve)

    p = sub.add_parser("new-plugin", help="write the skeleton of a provider plugin (an in-process echo to start from)")
    p.add_argument("name", help="the provider's name, e.g. 'echo': model strings will be 'echo/<model>'")
    p.add_argument("--directory", "-d", default=".", help="where to create modelyard-<name>/ (default: here)")
    p.set_defaults(func=_new_plugin)

    p = sub.add_parser("plugins", help="list discovered plugins, their families and status")
    p.add_argument("-v", "--verbose", action="store_true", help="also list each plugin's hooks")
    p.set_defaults(func=_plugins)

    p = sub.add_parser("emulator", help="serve the upstream emulator (modelyard.testing)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--api-key", default="emulator-key", help="the key clients must send (default: emulator-key)")
    p.add_argument(
        "--deployment", action="append", help="a deployment to serve, NAME or NAME=MODEL (my-o3=o3-mini); repeatable"
    )
    p.set_defaults(func=_emulator)

    p = sub.add_parser("demo", help="run one completion against an embedded emulator and print it")
    p.add_argument("prompt", nargs="?", default="Hello, how are you?")
    p.set_defaults(func=_demo)

    from .keys_cli import add_parser as add_keys_parser

    add_keys_parser(sub)  # ``modelyard keys create|list|revoke``
    _plugin_commands(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ModuleNotFoundError as exc:
        # A built-in command whose extra is not installed (a subset install): the install line,
        # not a traceback. modelyard's own modules missing is a broken install: let it raise.
        if args.command in EXTRA_OF_COMMAND and exc.name and exc.name.partition(".")[0] != "modelyard":
            return _missing_extra(args.command, exc)
        raise
    except Exception as exc:
        from .errors import ModelyardError

        if isinstance(exc, ModelyardError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())
