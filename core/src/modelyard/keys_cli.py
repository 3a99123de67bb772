"""``modelyard keys create|list|revoke``: virtual keys from the command line, through the proxy's admin API.

The commands talk to a running proxy (``--url``, else ``MODELYARD_PROXY_URL``, else
``http://127.0.0.1:4000``) with its master key (``MODELYARD_MASTER_KEY``, else
``PROXY_MASTER_KEY``; ``--master-key`` works but leaves the key in the shell's history). Going
through the API rather than the database means an operator needs no database credentials, and
a revocation is at once effective on the instance that receives it (and on the others within
``general_settings.user_api_key_cache_ttl``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Add ``keys`` with its ``create``, ``list`` and ``revoke`` subcommands to ``modelyard``'s parser."""
    p = sub.add_parser("keys", help="create, list and revoke the proxy's virtual keys (through its admin API)")
    p.add_argument("--url", default=None, help="the proxy (default: MODELYARD_PROXY_URL, else http://127.0.0.1:4000)")
    p.add_argument("--master-key", default=None, help="default: MODELYARD_MASTER_KEY, else PROXY_MASTER_KEY")
    verbs = p.add_subparsers(dest="verb", required=True)
    c = verbs.add_parser("create", help="make a key; it is printed once, keep it")
    c.add_argument("--models", help="allowed model names, comma-separated (default: all)")
    c.add_argument("--max-budget", type=float, help="USD")
    c.add_argument("--budget-duration", help="budget reset period: 30m, 1h, 7d, 1mo ...")
    c.add_argument("--rpm-limit", type=int)
    c.add_argument("--tpm-limit", type=int)
    c.add_argument("--max-parallel-requests", type=int)
    c.add_argument("--duration", help="lifetime: 1h, 30d ... (default: no expiry)")
    c.add_argument("--alias", dest="key_alias")
    c.add_argument("--team-id")
    c.add_argument("--user-id")
    lst = verbs.add_parser("list", help="list keys (hash, alias, team, spend, budget; never the key)")
    lst.add_argument("--team-id")
    lst.add_argument("--json", action="store_true", help="print the full JSON objects")
    r = verbs.add_parser("revoke", help="delete keys: by key, token (hash) or --alias")
    r.add_argument("keys", nargs="*", help="keys or their tokens")
    r.add_argument("--alias", action="append", dest="aliases", help="a key alias (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run one ``modelyard keys`` subcommand; 0 on success, 1 when the proxy refused, 2 on bad usage."""
    import httpx

    url = (args.url or os.environ.get("MODELYARD_PROXY_URL") or "http://127.0.0.1:4000").rstrip("/")
    master = args.master_key or os.environ.get("MODELYARD_MASTER_KEY") or os.environ.get("PROXY_MASTER_KEY")
    if not master:
        print("error: no master key: set MODELYARD_MASTER_KEY (or PROXY_MASTER_KEY).", file=sys.stderr)
        return 2
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {master}"}, timeout=30) as client:
        try:
            if args.verb == "create":
                fields = {k: getattr(args, k) for k in ("max_budget", "budget_duration", "rpm_limit", "tpm_limit",
                          "max_parallel_requests", "duration", "key_alias", "team_id", "user_id")}  # fmt: skip
                body: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
                if args.models:
                    body["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
                response = client.post("/key/generate", json=body)
            elif args.verb == "list":
                params = {"return_full_object": "true", "size": "1000"}
                if args.team_id:
                    params["team_id"] = args.team_id
                response = client.get("/key/list", params=params)
            else:
                if not args.keys and not args.aliases:
                    print("error: name the keys (or tokens) to revoke, or --alias.", file=sys.stderr)
                    return 2
                response = client.post("/key/delete", json={"keys": args.keys or None, "key_aliases": args.aliases})
        except httpx.HTTPError as exc:
            print(f"error: cannot reach the proxy at {url}: {type(exc).__name__}", file=sys.stderr)
            return 1
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        print(f"error: the proxy answered {response.status_code}: {message}", file=sys.stderr)
        return 1
    data = response.json()
    if args.verb == "create":
        print(data["key"])
        print(f"token {data['token']}  (the key is shown only now; keep it)", file=sys.stderr)
    elif args.verb == "list":
        if args.json:
            print(json.dumps(data["keys"], indent=2))
        else:
            print("token         key_name      alias  team  spend  max_budget  models")
            for k in data["keys"]:
                print(f"{k['token'][:12]}  {k['key_name']}  {k['key_alias'] or '-'}  {k['team_id'] or '-'}  "
                      f"{k['spend']:.6f}  {k['max_budget'] if k['max_budget'] is not None else '-'}  "
                      f"{','.join(k['models']) or '(all)'}")  # fmt: skip
    else:
        print(f"revoked {len(data['deleted_keys'])} key(s): {', '.join(t[:12] for t in data['deleted_keys'])}")
    return 0
