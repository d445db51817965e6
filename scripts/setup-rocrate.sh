#!/usr/bin/env bash
# Installs the RO-Crate community validator (`rocrate-validator`, PyPI package roc-validator, pinned)
# into a Python virtual environment OUTSIDE the clone, idempotently (a stamp file skips the work when
# it is already there), and pre-seeds its HTTP cache from the JSON-LD contexts vendored under
# assets/rocrate/ so that it validates with no network (see docs/provenance.md).
#
# Usage:  bash scripts/setup-rocrate.sh          # installs if missing
#         bash scripts/setup-rocrate.sh --env    # also prints `export SPATIA_ROCRATE_VALIDATOR=...`
# The venv lives at ${SPATIA_ROCRATE_VENV:-$HOME/.cache/spatia/roc-validator-0.13}.
set -euo pipefail
ROC_VERSION=0.13.0
VENV="${SPATIA_ROCRATE_VENV:-$HOME/.cache/spatia/roc-validator-0.13}"
PY="$VENV/bin/python"
MODE="${1:-}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { if [ "$MODE" = "--env" ]; then echo "$*" >&2; else echo "$*"; fi; }

STAMP="$VENV/.spatia-rocrate-ok"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$ROC_VERSION" ]; then
  log "setup-rocrate: creating $VENV with roc-validator==$ROC_VERSION"
  PYTHON_BIN="${SPATIA_PYTHON:-}"
  if [ -z "$PYTHON_BIN" ]; then
    for c in python3.11 python3.12 python3; do command -v "$c" >/dev/null && { PYTHON_BIN="$c"; break; }; done
  fi
  [ -n "$PYTHON_BIN" ] || { echo "setup-rocrate: no python3 found" >&2; exit 1; }
  mkdir -p "$(dirname "$VENV")"
  [ -x "$PY" ] || "$PYTHON_BIN" -m venv "$VENV"
  "$PY" -m pip install -q --disable-pip-version-check "roc-validator==$ROC_VERSION" >&2
  echo "$ROC_VERSION" > "$STAMP"
fi
# the offline cache: vendored contexts, written where the validator looks (idempotent, cheap)
"$PY" "$HERE/scripts/rocrate-seed-cache.py" "$HERE/assets/rocrate" >&2
if [ "$MODE" = "--env" ]; then
  echo "export SPATIA_ROCRATE_VALIDATOR='$VENV/bin/rocrate-validator'"
fi
