#!/usr/bin/env bash
# The farm in one command (`make demo`, which builds bin/farm first): starts
# `farm up` with two local nodes and the project's own small model in a fresh
# data dir, renders a batch of 64 images with a live progress line, downloads
# the frames and the manifest to out/demo, prints a one-line summary and stops
# the farm. Safe to run again; when the default ports are taken it uses free
# ones (the CLI finds them in the data dir's credentials).
#
# Then it renders a 24-frame animation between two keyframes on the same
# farm and downloads its frames, animation.gif and (where ffmpeg is
# installed) animation.mp4 to out/demo/animation.
#
# Environment: FARM_BIN (default bin/farm), DEMO_DATA (default
# farm-data/demo), DEMO_OUT (default out/demo), DEMO_COUNT (images per
# prompt, default 16; 4 prompts), DEMO_FRAMES (animation frames, default 24).
set -euo pipefail

cd "$(dirname "$0")/.."
FARM=${FARM_BIN:-bin/farm}
DATA=${DEMO_DATA:-farm-data/demo}
OUT=${DEMO_OUT:-out/demo}
COUNT=${DEMO_COUNT:-16}
FRAMES=${DEMO_FRAMES:-24}

say() { printf 'demo: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ -x "$FARM" ] || die "$FARM not found: run 'make demo' (it builds it) or 'go build -o bin/farm ./cmd/farm'"

# A fresh data dir. A farm still running on a stale one (a demo killed
# before it could stop it) holds its lock: refuse rather than pull the floor
# from under it.
if [ -e "$DATA" ]; then
  if [ -f "$DATA/up.pid" ] && kill -0 "$(cat "$DATA/up.pid")" 2>/dev/null; then
    die "a farm from an earlier demo still runs (pid $(cat "$DATA/up.pid")); stop it with: kill -INT $(cat "$DATA/up.pid")"
  fi
  rm -rf "$DATA"
fi
mkdir -p "$DATA"
rm -rf "$OUT"

# The model: the trained demo model when the checkout has it, otherwise a
# small random-weight one made on the spot (its images are noise).
if [ -f models/demo/model_index.json ]; then
  MODELS=models MODEL=demo SIZE=32
else
  MODELS=$DATA/models MODEL=tiny SIZE=16
  "$FARM" model init-tiny "$MODELS/$MODEL" >/dev/null
fi

# The default ports, or free ones when any is taken.
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORTS=()
for p in 8080 4222 2379 2380 7070 8222; do
  if port_taken "$p"; then
    say "port $p is taken: the farm will use free ports"
    PORTS=(--random-ports)
    break
  fi
done

UP_LOG=$DATA/up.log
say "starting the farm: 2 nodes, model $MODEL, data in $DATA (log: $UP_LOG)"
"$FARM" up --data "$DATA" --nodes 2 --models "$MODELS" "${PORTS[@]}" >"$UP_LOG" 2>&1 &
UP_PID=$!
echo "$UP_PID" >"$DATA/up.pid"

stop_farm() {
  if kill -0 "$UP_PID" 2>/dev/null; then
    kill -INT "$UP_PID" 2>/dev/null || true
    for _ in $(seq 1 300); do
      kill -0 "$UP_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$UP_PID" 2>/dev/null; then
      say "the farm did not stop within 30 s; killing it"
      kill -KILL "$UP_PID" 2>/dev/null || true
    fi
  fi
  wait "$UP_PID" 2>/dev/null || true
  rm -f "$DATA/up.pid"
}
trap stop_farm EXIT

# Ready once both nodes are registered.
ready=""
for _ in $(seq 1 600); do
  if ! kill -0 "$UP_PID" 2>/dev/null; then
    tail -n 20 "$UP_LOG" >&2
    die "farm up exited before it was ready (log above, full log in $UP_LOG)"
  fi
  if [ "$("$FARM" nodes --data "$DATA" --json 2>/dev/null | grep -c '"id"' || true)" -ge 2 ]; then
    ready=yes
    break
  fi
  sleep 0.1
done
[ -n "$ready" ] || { tail -n 20 "$UP_LOG" >&2; die "the farm was not ready within 60 s (log: $UP_LOG)"; }
"$FARM" nodes --data "$DATA"

say "submitting 4 prompts x $COUNT seeds at ${SIZE}x${SIZE}, 20 steps"
start=$(date +%s.%N)
"$FARM" submit --data "$DATA" --name demo --model "$MODEL" --model-family tiny \
  --prompt "a red circle on a blue background" --prompt "a large yellow triangle on a black background" \
  --prompt "a white diamond on a green background" \
  --prompt "a red circle left of a blue square on a yellow background" \
  --seed-start 1 --count "$COUNT" --width "$SIZE" --height "$SIZE" --steps 20 --cfg 5 \
  --frames-per-task 4 --wait | tee "$DATA/submit.out"
end=$(date +%s.%N)
JOB=$(awk 'NR == 1 { print $1 }' "$DATA/submit.out")
[ -n "$JOB" ] || die "no job id in the submit output"

"$FARM" get "$JOB" --data "$DATA" --dir "$OUT" --sheet "$OUT/sheet.png" --sheet-columns "$COUNT"
images=$(find "$OUT/frames" -name '*.png' | wc -l)
want=$((4 * COUNT))
[ "$images" -eq "$want" ] || die "$images frames downloaded, want $want"
[ -s "$OUT/manifest.json" ] || die "no manifest in $OUT"

# The farm's second job: an animation from one keyframe to the next, every
# in-between frame rendered in parallel on both nodes (keys first, then
# coarse to fine), assembled into a GIF (and an MP4 where a node has ffmpeg).
ANIM=$OUT/animation
cat >"$DATA/animation.yaml" <<YAML
kind: animation
name: demo-animation
model: $MODEL
model_family: tiny
width: $SIZE
height: $SIZE
steps: 20
cfg_scale: 5
sampler: euler
frames: $FRAMES
fps: 12
easing: smooth
frames_per_task: 4
keyframes:
  - {frame: 0, prompt: "a red circle on a blue background", seed: 7}
  - {frame: $((FRAMES - 1)), prompt: "a yellow square on a green background", seed: 8}
YAML
say "submitting a $FRAMES-frame animation (${SIZE}x${SIZE}, 20 steps): $DATA/animation.yaml"
astart=$(date +%s.%N)
"$FARM" submit "$DATA/animation.yaml" --data "$DATA" --wait | tee "$DATA/animation.out"
aend=$(date +%s.%N)
AJOB=$(awk 'NR == 1 { print $1 }' "$DATA/animation.out")
[ -n "$AJOB" ] || die "no job id in the animation's submit output"
"$FARM" get "$AJOB" --data "$DATA" --dir "$ANIM" --sheet "$ANIM/sheet.png" --sheet-columns 12
aframes=$(find "$ANIM/frames" -name '*.png' | wc -l)
[ "$aframes" -eq "$FRAMES" ] || die "$aframes animation frames downloaded, want $FRAMES"
[ -s "$ANIM/animation.gif" ] || die "no animation.gif in $ANIM"
made="$ANIM/animation.gif"
[ -s "$ANIM/animation.mp4" ] && made="$made and $ANIM/animation.mp4"

stop_farm
trap - EXIT
awk -v n="$images" -v a="$start" -v b="$end" -v out="$OUT" -v f="$aframes" -v c="$astart" -v d="$aend" -v made="$made" 'BEGIN {
  s = b - a; t = d - c
  printf "demo: %d images in %.1f s (%.2f images/s) on 2 nodes, and a %d-frame animation in %.1f s (%.2f frames/s); frames and manifest.json in %s; the animation in %s\n", n, s, n / s, f, t, f / t, out, made }'
