#!/usr/bin/env bash
# Installs what Spatia needs on a fresh Debian (bookworm) machine, idempotently and quickly
# when everything is present: Debian packages (OpenSlide, libclang for bindgen, HDF5, vips,
# Chromium for the report test; R with cmprsk, riskRegression and jsonlite for the competing-risks
# reference test) and the rustfmt and clippy components that `make lint` and
# `make test` run. Run as root (CI and the dev machines are root) or with sudo.
set -euo pipefail
PKGS=(pkg-config libclang-dev libopenslide-dev openslide-tools libhdf5-dev libvips-tools chromium fonts-dejavu-core
      r-cran-cmprsk r-cran-riskregression r-cran-jsonlite)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
# rustfmt and clippy: `make test` checks formatting and lints before testing
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  if command -v rustup >/dev/null; then
    echo "setup: adding the rustup components rustfmt and clippy"
    rustup component add rustfmt clippy
  else
    echo "setup: cargo fmt or cargo clippy is missing and rustup is not installed; install the rustfmt and clippy" \
      "components of your Rust toolchain (e.g. Debian's rustfmt and rust-clippy packages)" >&2
    exit 1
  fi
fi
# the RO-Crate community validator (roc-validator, pinned) in a venv outside the clone, its HTTP cache
# seeded with the vendored JSON-LD contexts so that tests/rocrate.rs validates offline
bash "$(dirname "${BASH_SOURCE[0]}")/setup-rocrate.sh"
