#!/bin/sh
# Installs what compiling and vetting the cuda-tagged code needs on a
# Debian bookworm machine without a GPU (make check-cuda, docs/CUDA.md):
# Debian's CUDA 11.8 toolkit (nvcc, to regenerate and check kernels/*.ptx)
# and nvidia-cuda-dev (cuda.h and libcuda.so for gorgonia.org/cu's cgo).
# It adds Debian's contrib/non-free components when no source has them.
# About 1.6 GB to download and 5.5 GB on disk; the install runs under
# nice -n 19 so it does not starve other work on a shared machine.
# `make test` never runs this: the default build needs no CUDA.
set -eu

if command -v nvcc >/dev/null 2>&1 && [ -f /usr/include/cuda.h ] &&
	nvcc --version | grep -q 'release 11\.8'; then
	echo "deps-cuda: nvcc 11.8 and cuda.h already installed"
	exit 0
fi

SUDO=
if [ "$(id -u)" != 0 ]; then
	SUDO=sudo
fi

. /etc/os-release
if [ "${ID:-}" != debian ] || [ "${VERSION_CODENAME:-}" != bookworm ]; then
	echo "deps-cuda: this script installs Debian bookworm's CUDA 11.8 packages; this is ${PRETTY_NAME:-an unknown system}." >&2
	echo "deps-cuda: elsewhere install CUDA 11.8's nvcc and cuda.h by hand (newer headers do not build gorgonia.org/cu v0.9.6)." >&2
	exit 1
fi

src=/etc/apt/sources.list.d/nonfree.sources
if ! grep -rqsE '^Components:.*non-free( |$)|^deb .* non-free( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	echo "deps-cuda: adding Debian contrib non-free to $src"
	$SUDO tee "$src" >/dev/null <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
fi

start=$(date +%s)
$SUDO nice -n 19 apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive nice -n 19 \
	apt-get install -y -q --no-install-recommends nvidia-cuda-toolkit nvidia-cuda-dev
echo "deps-cuda: installed $(nvcc --version | tail -n 2 | head -n 1) in $(($(date +%s) - start)) s"
