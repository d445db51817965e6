#!/usr/bin/env bash
# Makes the libtorch that `tch` 0.24 links against available, idempotently and quickly when it
# is already there: a Python virtual environment OUTSIDE the clone (reused across runs and
# clones; CI must not reinstall 4.7 GB each time) holding the PyPI wheel torch==2.11.0 (plus
# numpy and h5py, which the tests and benchmarks use to cross-check against PyTorch and CLAM).
#
# Usage:  bash scripts/setup-torch.sh            # installs if missing, prints the env to build with
#         eval "$(bash scripts/setup-torch.sh --env)"   # exports LIBTORCH, LIBTORCH_CXX11_ABI, SPATIA_TORCH_PYTHON
# The venv lives at ${SPATIA_TORCH_VENV:-$HOME/.cache/spatia/torch-2.11.0}.
set -euo pipefail
TORCH_VERSION=2.11.0
VENV="${SPATIA_TORCH_VENV:-$HOME/.cache/spatia/torch-${TORCH_VERSION}}"
PY="$VENV/bin/python"
MODE="${1:-}"

log() { if [ "$MODE" = "--env" ]; then echo "$*" >&2; else echo "$*"; fi; }

# Fast path: the venv exists and imports the right torch (checked via a stamp file written
# after a successful install, so no Python start-up on every `make`).
STAMP="$VENV/.spatia-torch-ok"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$TORCH_VERSION" ]; then
  log "setup-torch: creating $VENV with torch==$TORCH_VERSION (about 4.7 GB, a minute or two)"
  PYTHON_BIN="${SPATIA_PYTHON:-}"
  if [ -z "$PYTHON_BIN" ]; then
    for c in python3.11 python3; do command -v "$c" >/dev/null && { PYTHON_BIN="$c"; break; }; done
  fi
  [ -n "$PYTHON_BIN" ] || { echo "setup-torch: no python3 found (need Python 3.11 with venv)" >&2; exit 1; }
  mkdir -p "$(dirname "$VENV")"
  [ -x "$PY" ] || "$PYTHON_BIN" -m venv "$VENV"
  "$PY" -m pip install -q --disable-pip-version-check "torch==$TORCH_VERSION" numpy h5py >&2
  got="$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')"
  [ "$got" = "$TORCH_VERSION" ] || { echo "setup-torch: expected torch $TORCH_VERSION in $VENV, found $got" >&2; exit 1; }
  echo "$TORCH_VERSION" > "$STAMP"
fi

SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null || true)"
[ -n "$SITE" ] || SITE="$(ls -d "$VENV"/lib/python3*/site-packages | head -1)"
LIBTORCH="$SITE/torch"
[ -f "$LIBTORCH/lib/libtorch_cpu.so" ] || { echo "setup-torch: $LIBTORCH/lib/libtorch_cpu.so not found; remove $VENV and rerun" >&2; exit 1; }

if [ "$MODE" = "--env" ]; then
  echo "export LIBTORCH='$LIBTORCH'"
  echo "export LIBTORCH_CXX11_ABI=1"
  echo "export SPATIA_TORCH_PYTHON='$PY'"
else
  echo "setup-torch: libtorch $TORCH_VERSION ready. Build with:"
  echo "  export LIBTORCH='$LIBTORCH'"
  echo "  export LIBTORCH_CXX11_ABI=1"
  echo "  export SPATIA_TORCH_PYTHON='$PY'"
  echo "  cargo build --release --features torch"
fi
