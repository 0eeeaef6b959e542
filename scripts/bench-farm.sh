#!/usr/bin/env bash
# Farm benchmark: one 20,000-frame load-test job across 32 nodes, all in one
# process (coordinator, nodes, NATS and etcd in-process; the S3 gateway is
# its usual child process), measured from submit to manifest. Prints frames
# per second, dispatch latency (p50/p99), CPU per frame and memory, and the
# coordinator's share of the heap near the end of the job.
#
#   scripts/bench-farm.sh                    # the standard run
#   BENCH_FPT=16 scripts/bench-farm.sh       # 16 frames per task
#
# Then a 480-frame animation (BENCH_ANIMATION_FRAMES) the same way, and the
# S3 gateway's cost per small object (embedded/s3bench_test.go).
# Settings (environment): BENCH_KIND (batch or animation: that run alone), BENCH_FRAMES (20000), BENCH_NODES (32), BENCH_FPT
# (frames per task, 4: the job default), BENCH_DELAY_MS (load-test time per
# frame, 0), BENCH_PROBES (idle-farm dispatch probes, 200), BENCH_CPUPROFILE=1
# (also write cpu.prof, and the S3 gateway child's gateway-cpu.prof), BENCH_OUT (where profiles go; default a temp dir),
# BENCH_COORDINATOR=child (the coordinator in a process of its own: its heap
# is read alone from its /metrics), BENCH_TIMEOUT (go test's, default 30m).
# A million frames: BENCH_KIND=batch BENCH_FRAMES=1000000 BENCH_COORDINATOR=child
# BENCH_PROBES=0 BENCH_TIMEOUT=80m (about 12 minutes here; docs/PERF.md).
# Data goes to $TMPDIR: on tmpfs (TMPDIR=/dev/shm/x) the disk drops out.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

out=${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/farm-bench.XXXXXX")}
mkdir -p "$out"
export BENCH_OUT=$out

echo "farm bench: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), data in ${TMPDIR:-/tmp}" >&2
gwprof=()
[ -n "${BENCH_CPUPROFILE:-}" ] && gwprof=(LATENTFARM_S3_CPUPROFILE="$out/gateway-cpu.prof")
env "${gwprof[@]}" "$GO" test -tags farmbench -run '^TestFarmBench$' -count=1 -timeout "${BENCH_TIMEOUT:-30m}" -v ./e2e 2>&1 | tee "$out/bench.log" |
  grep -E 'farm bench:|RESULT|FAIL|panic' | sed -e 's/^ *bench_test.go:[0-9]*: //'
grep -q '^--- PASS: TestFarmBench' "$out/bench.log" || { echo "bench failed: see $out/bench.log" >&2; exit 1; }

# The animation beside it: 480 frames between three keys on the same nodes,
# assembled into a GIF (and an MP4 where ffmpeg is installed) at the end.
if [ -z "${BENCH_KIND:-}" ]; then
  mkdir -p "$out/animation"
  BENCH_KIND=animation BENCH_FRAMES=${BENCH_ANIMATION_FRAMES:-480} BENCH_PROBES=0 BENCH_OUT=$out/animation \
    "$GO" test -tags farmbench -run '^TestFarmBench$' -count=1 -timeout 30m -v ./e2e 2>&1 | tee "$out/bench-animation.log" |
    grep -E 'farm bench:|RESULT (end-to-end|frames alone|assembled)|FAIL|panic' | sed -e 's/^ *bench_test.go:[0-9]*: //'
  grep -q '^--- PASS: TestFarmBench' "$out/bench-animation.log" || { echo "animation bench failed: see $out/bench-animation.log" >&2; exit 1; }
fi

# What one small object costs the S3 gateway and its client (32 writers),
# and what creating its file costs the file system under $TMPDIR.
if [ -z "${BENCH_KIND:-}" ]; then
  "$GO" test -tags farmbench -run '^$' -bench 'S3Gateway|FileCreate' -benchtime 20000x ./embedded 2>&1 |
    tee "$out/bench-s3.log" | grep -E '^Benchmark|FAIL|panic'
fi

if [ -s "$out/heap.prof" ]; then
  echo "coordinator heap in use at 90% of the frames (pprof focus on package coordinator):"
  "$GO" tool pprof -sample_index=inuse_space -top -focus='latentfarm/coordinator\.' "$out/heap.prof" 2>/dev/null |
    grep -E '^Showing nodes accounting' | sed -e 's/^/  /'
fi
echo "log and profiles in $out" >&2
