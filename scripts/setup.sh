#!/usr/bin/env bash
# Installs what Spatia needs on a fresh Debian (bookworm) machine, idempotently and quickly
# when everything is present: Debian packages (OpenSlide, libclang for bindgen, HDF5, vips,
# Chromium for the report test). Run as root (CI and the dev machines are root) or with sudo.
set -euo pipefail
PKGS=(pkg-config libclang-dev libopenslide-dev openslide-tools libhdf5-dev libvips-tools chromium fonts-dejavu-core)
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
