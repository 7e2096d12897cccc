#!/usr/bin/env bash
# Create .venv (Python 3.11) with the workstation pins and latentcast installed editable.
# Re-running is cheap: it reinstalls only when the pins or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.latentcast-installed
want=$(cat requirements/workstation.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements/workstation.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi
# The landmark converter (TFLite -> ONNX, export/landmark_models.py) in its own venv: TensorFlow stays out of .venv.
if [ ! -x .venv-convert/bin/python ]; then
  "$PY" -m venv .venv-convert
fi
cstamp=.venv-convert/.latentcast-installed
cwant=$(sha256sum requirements/convert.txt | cut -d' ' -f1)
if [ "$(cat "$cstamp" 2>/dev/null)" != "$cwant" ]; then
  .venv-convert/bin/python -m pip install -q --disable-pip-version-check -r requirements/convert.txt
  echo "$cwant" > "$cstamp"
fi
# The browser renderer's modules (three.js, three-vrm) from the lockfile, served locally by renderer.web.
if command -v npm >/dev/null 2>&1; then
  wstamp=renderer/web/node_modules/.latentcast-lock
  wwant=$(sha256sum renderer/web/package-lock.json | cut -d' ' -f1)
  if [ "$(cat "$wstamp" 2>/dev/null)" != "$wwant" ]; then
    (cd renderer/web && npm ci --no-audit --no-fund --loglevel=error)
    echo "$wwant" > "$wstamp"
  fi
else
  echo "npm not found: the 3D browser renderer (--web) needs 'npm ci' in renderer/web" >&2
fi
.venv/bin/python scripts/make_avatar.py >/dev/null  # the default VRM avatar, from code (runs/avatar/)
echo "latentcast environment ready: .venv ($(.venv/bin/python --version))"
