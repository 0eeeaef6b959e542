#!/usr/bin/env bash
# Installs what building and testing latentfarm needs on a fresh Debian
# machine: OpenBLAS for the CPU backend's matrix products (cgo builds) and
# pkg-config. Safe to run again; it installs only what is missing.
set -euo pipefail
need=()
for pkg in libopenblas-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing ${need[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
