"""The canned upstream served by nginx (``--upstream nginx``): bench/upstream.py's answers for less CPU.

The same three answers as bench/upstream.py (its bytes: the Azure chat completion, the SSE
stream when the body asks for ``"stream": true``, the embeddings answer for an ``/embeddings``
path), from one nginx process (no master, no access log) on loopback with a generated config in
a temporary directory. A streamed request differs from a plain one only in its body, which
nginx's ``return`` never reads (and a ``return`` takes no 30 KB answer), so a few lines of njs
answer (the Debian package ``libnginx-mod-http-js``; ``./dev bench --upstream nginx`` installs
it and nginx).

    python bench/upstream_nginx.py --port 8900
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from upstream import _BODY, _EMB_BODY, _EVENTS  # the answers' bytes, one source

NJS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")

SCRIPT = """var CHAT = %s;
var STREAM = %s;
var EMBEDDINGS = %s;
function answer(r) {
    r.headersOut['apim-request-id'] = 'bench';
    if (r.uri.endsWith('/embeddings')) {
        r.headersOut['Content-Type'] = 'application/json';
        r.return(200, EMBEDDINGS);
    } else if (/"stream"\\s*:\\s*true/.test(r.requestText || '')) {
        r.headersOut['Content-Type'] = 'text/event-stream';
        r.return(200, STREAM);
    } else {
        r.headersOut['Content-Type'] = 'application/json';
        r.return(200, CHAT);
    }
}
export default {answer};
"""

CONFIG = """daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
load_module {module};
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_body_buffer_size 64k;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    js_path {dir};
    js_import canned.js;
    server {{
        listen {host}:{port} backlog=1024;
        location / {{
            js_content canned.answer;
        }}
    }}
}}
"""


def nginx_path() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found or not NJS_MODULE.exists():
        raise SystemExit("--upstream nginx needs nginx and its njs module: `./dev bench --upstream nginx` installs them "
                         "(apt-get install nginx libnginx-mod-http-js)")  # fmt: skip
    return found


def write_config(host: str, port: int) -> Path:
    """A directory holding nginx.conf and canned.js for ``host:port``; returns the config's path."""
    folder = Path(tempfile.mkdtemp(prefix="modelyard-bench-nginx-"))
    (folder / "canned.js").write_text(SCRIPT % tuple(json.dumps(b.decode()) for b in (_BODY, _EVENTS, _EMB_BODY)))
    config = folder / "nginx.conf"
    config.write_text(CONFIG.format(dir=folder, module=NJS_MODULE, host=host, port=port))
    return config


def command(port: int, host: str = "127.0.0.1") -> list[str]:
    """nginx in the foreground, one process (its pid is the upstream's for CPU accounting)."""
    config = write_config(host, port)
    return [nginx_path(), "-c", str(config), "-p", str(config.parent), "-e", str(config.parent / "error.log")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    args = parser.parse_args()
    cmd = command(args.port, args.host)
    print(f"canned upstream (nginx) on http://{args.host}:{args.port}", flush=True)
    os.execv(cmd[0], cmd)  # nginx in this process: a signal to it stops nginx


if __name__ == "__main__":
    main()
