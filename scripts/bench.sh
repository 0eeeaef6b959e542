#!/bin/sh
# What `make bench` runs: on this machine, in one go and one after the other
# (never at the same time, so they do not share the cores):
#   1. our sgemm (the CPU backend's MatMul/Linear path) vs one OpenBLAS call
#      threaded over all cores vs the pure-Go kernel   (bench/sgemm.sh)
#   2. our SD1.5-shaped UNet forward, batch 2, 64x64 latents, f32, random
#      weights                                          (bench/unetforward)
#   3. the same forward in PyTorch on the CPU, 2 threads (bench/unet_torch.py)
# then prints seconds per forward, peak RSS and the ratios side by side.
#
# Environment: BENCH_RUNS (timed forwards per engine after one warm-up,
# default 2), BENCH_SKIP_SGEMM=1 to skip step 1. OPENBLAS_CORETYPE, if set,
# applies to both engines (PyTorch's Linear and bmm also go through OpenBLAS).
set -eu
cd "$(dirname "$0")/.."

RUNS=${BENCH_RUNS:-2}
PY=/usr/bin/python3 # a pyenv python may shadow Debian's, which has torch
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! "$PY" -c 'import torch' 2>/dev/null; then
	echo "bench: $PY cannot import torch; install Debian's python3-torch (apt-get install python3-torch)" >&2
	exit 1
fi

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "machine: $cpu, $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>}"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine makes absolute times noisy; compare the ratios)"

if [ "${BENCH_SKIP_SGEMM:-0}" != 1 ]; then
	echo
	echo "== sgemm, GFLOP/s (bench/sgemm.sh)"
	bench/sgemm.sh | grep -v -e '^goos:' -e '^goarch:' -e '^pkg:' -e '^cpu:' -e '^Benchmark' -e '^PASS' -e '^ok'
fi

echo
echo "== SD1.5 UNet forward, batch 2, 64x64 latents, float32, 1 warm-up + $RUNS timed"
go build -o "$tmp/unetforward" ./bench/unetforward
"$tmp/unetforward" -runs "$RUNS" | tee "$tmp/go.txt"
echo "load average between: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" bench/unet_torch.py --runs "$RUNS" | tee "$tmp/torch.txt"

echo
grep -h '^RESULT' "$tmp/go.txt" "$tmp/torch.txt" | awk '
{
	for (i = 2; i <= NF; i++) { split($i, kv, "="); v[$2, kv[1]] = kv[2] }
	e[NR] = $2
}
END {
	g = "engine=go"; t = "engine=torch"
	printf "%-28s %12s %12s %12s\n", "UNet batch 2 64x64 f32", "ours (Go)", "PyTorch", "ours/torch"
	printf "%-28s %12.2f %12.2f %12.2f\n", "best s/forward", v[g, "best_s"], v[t, "best_s"], v[g, "best_s"] / v[t, "best_s"]
	printf "%-28s %12.2f %12.2f %12.2f\n", "mean s/forward", v[g, "mean_s"], v[t, "mean_s"], v[g, "mean_s"] / v[t, "mean_s"]
	printf "%-28s %12.2f %12.2f %12.2f\n", "peak RSS GiB", v[g, "peak_rss_gib"], v[t, "peak_rss_gib"], v[g, "peak_rss_gib"] / v[t, "peak_rss_gib"]
	printf "goal: time ratio <= 0.50 with RSS ratio <= 1.00\n"
}'
