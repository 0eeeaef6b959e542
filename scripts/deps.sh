#!/usr/bin/env bash
# Installs what building and testing latentfarm needs on a fresh Debian
# machine: OpenBLAS for the CPU backend's matrix products (cgo builds),
# pkg-config, and ffmpeg (nodes encode animations to MP4 with it; the tests
# check the MP4), Node.js and npm (the ComfyUI client test drives the farm
# with a real npm client) and Chromium (the dashboard test drives it
# headless). Safe to run again; it installs only what is missing.
set -euo pipefail
need=()
for pkg in libopenblas-dev pkg-config ffmpeg; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
# Commands rather than packages: a machine may have Node.js from elsewhere,
# whose nodejs package already holds npm.
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v chromium >/dev/null || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing ${need[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
