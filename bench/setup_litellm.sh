#!/usr/bin/env bash
# Install LiteLLM's proxy, pinned, into bench/.litellm-venv (separate from the workspace).
# litellm[proxy] pins a `litellm-proxy` distribution (and companion versions) that the package
# index here may not have; the proxy code ships inside `litellm` itself, so we then install litellm
# and the rest of its `proxy` extra's requirements (read from its own metadata), companions unpinned.
set -euo pipefail
cd "$(dirname "$0")"
VERSION="${LITELLM_VERSION:-1.110.2}"
VENV=.litellm-venv
if [ -x "$VENV/bin/litellm" ] && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('litellm') != '$VERSION')" 2>/dev/null \
   && "$VENV/bin/python" -c "import fastapi, backoff, apscheduler" 2>/dev/null; then
  exit 0
fi
echo "bench: installing litellm $VERSION (proxy) into bench/$VENV" >&2
[ -d "$VENV" ] || uv venv -q "$VENV" --python 3.11
export VIRTUAL_ENV="$PWD/$VENV"
if ! uv pip install -q "litellm[proxy]==$VERSION" 2>/dev/null; then
  uv pip install -q "litellm==$VERSION"
  reqs=$("$VENV/bin/python" - <<'PY'
import importlib.metadata as m
from packaging.requirements import Requirement
out = []
for r in m.requires("litellm") or []:
    req = Requirement(r)
    if req.marker and req.marker.evaluate({"extra": "proxy"}) and not req.marker.evaluate({"extra": ""}):
        if req.name == "litellm-proxy":
            continue  # not on the index here; its code is inside litellm
        if req.name.startswith("litellm-"):
            out.append(req.name)  # exact pins of companion packages the index may lack
        else:
            out.append(str(req).split(";")[0])
print("\n".join(out))
PY
)
  # shellcheck disable=SC2086
  echo "$reqs" | tr '\n' '\0' | xargs -0 uv pip install -q "litellm==$VERSION"
fi
