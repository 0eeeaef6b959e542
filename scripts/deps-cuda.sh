#!/bin/sh
# Installs what compiling and vetting the cuda-tagged code needs on a
# Debian bookworm machine without a GPU (make check-cuda, docs/CUDA.md):
# Debian's CUDA 11.8 toolkit (nvcc, to regenerate and check kernels/*.ptx)
# and nvidia-cuda-dev (cuda.h and libcuda.so for gorgonia.org/cu's cgo).
# It adds Debian's contrib/non-free components when no source has them.
# About 1.6 GB to download and 5.5 GB on disk; the install runs under
# nice -n 19 so it does not starve other work on a shared machine.
# `make test` runs it through `make check-cuda` (CI vets and compiles the
# cuda-tagged code); the default build itself needs no CUDA.
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

# CUDA 11.8 is in Debian's non-free component. When no apt source has it,
# add contrib and non-free on the mirror the machine already uses for
# bookworm (no host name is written here: the machine's sources say where).
src=/etc/apt/sources.list.d/nonfree.sources
if ! grep -rqsE '^Components:.*non-free( |$)|^deb .* non-free( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '/^URIs:/ { u = $2 } /^Suites:/ && / bookworm( |$)/ { print u; exit }')
	if [ -z "$uri" ]; then
		uri=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
	fi
	if [ -z "$uri" ]; then
		echo "deps-cuda: the apt sources have no non-free component, and no Debian bookworm source to add it to." >&2
		echo "deps-cuda: CUDA 11.8 (nvidia-cuda-toolkit) is in non-free: add 'contrib non-free' to your bookworm source and run again." >&2
		exit 1
	fi
	echo "deps-cuda: non-free is missing from the apt sources; adding contrib non-free on $uri to $src"
	$SUDO tee "$src" >/dev/null <<SOURCES
Types: deb
URIs: $uri
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
