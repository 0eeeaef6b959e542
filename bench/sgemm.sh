#!/bin/sh
# Prints GFLOP/s of the CPU backend's matrix products (ours = the backend's
# MatMul/Linear path, openblas = one cblas_sgemm call threaded over all
# cores, pure-go = the !cgo kernel on all cores) for 1024^3 and SD-sized
# shapes, then the time of whole SD1.5-sized ops.
#   bench/sgemm.sh            cgo build (OpenBLAS)
#   CGO_ENABLED=0 bench/sgemm.sh   pure-Go build (openblas column is 0)
set -e
cd "$(dirname "$0")/.."
exec go test -tags bench -run '^$' -bench SGEMMTable -benchtime 1x ./diffusion/backend/cpu/
