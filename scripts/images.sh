#!/usr/bin/env bash
# Builds latentfarm's container images with buildah and smoke-runs them
# (`make images`). The binaries are built here first and copied in, so the
# images need no Go toolchain and, for the coordinator and the CPU node, no
# base image: both are FROM scratch (see deploy/README.md).
#
#  1. installs buildah (Debian's) when missing, and what scripts/deps.sh
#     installs (OpenBLAS, whose libopenblas.a the static node links);
#  2. builds bin/images/context: the binaries, the healthcheck probe, a tiny
#     root filesystem (passwd, group, CA bundle, /tmp), /home/farm and the
#     optional ffmpeg layer;
#  3. buildah bud deploy/coordinator.Containerfile and node-cpu.Containerfile
#     into $FARM_IMAGE_PREFIX/{coordinator,node-cpu}:$FARM_IMAGE_TAG;
#  4. smoke-runs both images against a real farm (see smoke below).
#
# Environment:
#   IMAGES             images to build (default "coordinator node-cpu";
#                      node-cuda needs nvidia/cuda from a registry)
#   FARM_IMAGE_PREFIX  default localhost/latentfarm
#   FARM_IMAGE_TAG     default dev (the git revision is tagged too)
#   FFMPEG=1           put ffmpeg and its shared libraries into node-cpu
#   SMOKE=0            build only
set -euo pipefail

cd "$(dirname "$0")/.."
IMAGES=${IMAGES:-coordinator node-cpu}
PREFIX=${FARM_IMAGE_PREFIX:-localhost/latentfarm}
TAG=${FARM_IMAGE_TAG:-dev}
FFMPEG=${FFMPEG:-0}
SMOKE=${SMOKE:-1}
OUT=bin/images
CTX=$OUT/context
START=$(date +%s)

say() { printf 'images: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
want() { [[ " $IMAGES " == *" $1 "* ]]; }

# 1. Tools.
./scripts/deps.sh
if ! command -v buildah >/dev/null; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing buildah"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends buildah >/dev/null
fi

# 2. The build context.
REV=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[ "$REV" != unknown ] && ! git diff --quiet HEAD 2>/dev/null && REV=$REV-dirty
rm -rf "$CTX"
mkdir -p "$CTX/rootfs/etc/ssl/certs" "$CTX/rootfs/tmp" "$CTX/home" "$CTX/ffmpeg"
chmod 1777 "$CTX/rootfs/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nfarm:x:65532:65532:latentfarm:/home/farm:/sbin/nologin\n' >"$CTX/rootfs/etc/passwd"
printf 'root:x:0:\nfarm:x:65532:\n' >"$CTX/rootfs/etc/group"
cp /etc/ssl/certs/ca-certificates.crt "$CTX/rootfs/etc/ssl/certs/"

say "building the binaries ($REV)"
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$CTX/healthcheck" ./deploy/healthcheck
if want coordinator; then
  CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$CTX/farm-coordinator" ./cmd/farm
fi
# The node and the smoke run's farm up and CLI: cgo with OpenBLAS, everything
# linked statically (libopenblas.a from libopenblas-pthread-dev, libc.a; the
# objects the farm uses need nothing from libgfortran). netgo and osusergo
# keep glibc's NSS, which a static binary cannot load, out of it.
CGO_ENABLED=1 go build -trimpath -tags netgo,osusergo \
  -ldflags '-s -w -linkmode external -extldflags -static' -o "$CTX/farm-node" ./cmd/farm
if readelf -d "$CTX/farm-node" 2>/dev/null | grep -q NEEDED; then
  die "$CTX/farm-node is not static: $(readelf -d "$CTX/farm-node" | grep NEEDED | tr -s ' ')"
fi
grep -qa 'OpenBLAS 0\.' "$CTX/farm-node" || die "$CTX/farm-node has no OpenBLAS in it (pure-Go fallback build?)"

if want node-cuda; then
  # OpenBLAS static (the CUDA base has none), glibc dynamic: the driver's
  # libcuda is loaded from the host. -L to a folder holding only the archive
  # makes -lopenblas pick it.
  mkdir -p "$OUT/staticblas"
  blas=$(ls /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.a /usr/lib/x86_64-linux-gnu/libopenblas.a 2>/dev/null | head -n 1)
  [ -n "$blas" ] || die "no libopenblas.a (Debian's libopenblas-pthread-dev has it)"
  ln -sf "$blas" "$OUT/staticblas/libopenblas.a"
  CGO_LDFLAGS="-L$PWD/$OUT/staticblas" CGO_ENABLED=1 go build -trimpath -tags cuda -ldflags '-s -w' \
    -o "$CTX/farm-node-cuda" ./cmd/farm
  newest=$(objdump -T "$CTX/farm-node-cuda" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
  [ "$(printf '%s\nGLIBC_2.35\n' "$newest" | sort -V | tail -n 1)" = GLIBC_2.35 ] ||
    die "farm-node-cuda needs $newest; Ubuntu 22.04 (the CUDA base) has GLIBC_2.35"
  say "farm-node-cuda needs glibc up to $newest (Ubuntu 22.04 has 2.35)"
fi

if [ "$FFMPEG" = 1 ]; then
  ff=$(command -v ffmpeg) || die "FFMPEG=1 but no ffmpeg here"
  install -D "$ff" "$CTX/ffmpeg/usr/bin/ffmpeg"
  # Exactly what ldd lists, the loader included, at the paths it names.
  ldd "$ff" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u |
    while read -r lib; do
      real=$(readlink -f "$lib")
      install -D -m "$(stat -c %a "$real")" "$real" "$CTX/ffmpeg$lib"
    done
  say "ffmpeg layer: $(du -sh "$CTX/ffmpeg" | cut -f1)"
fi

# 3. The images. The one a rebuild replaces is removed once it has no tag left.
for img in $IMAGES; do
  say "buildah bud $PREFIX/$img:$TAG"
  old=$(buildah images --quiet --noheading "$PREFIX/$img:$TAG" 2>/dev/null || true)
  buildah bud --quiet --layers=false --build-arg "REVISION=$REV" \
    -f "deploy/$img.Containerfile" -t "$PREFIX/$img:$TAG" -t "$PREFIX/$img:$REV" "$CTX" >/dev/null ||
    die "buildah bud $img failed (node-cuda pulls docker.io/nvidia/cuda: a registry must be reachable)"
  if [ -n "$old" ] && ! buildah images --noheading --format '{{.ID}} {{.Name}}' | grep -v '<none>' | grep -q "^$old "; then
    buildah rmi "$old" >/dev/null 2>&1 || true
  fi
done
BUILT=$(date +%s)
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' | grep -E "^$PREFIX/.*:$TAG " >&2 || true

[ "$SMOKE" = 1 ] || { say "built in $((BUILT - START)) s (no smoke run: SMOKE=0)"; exit 0; }

# 4. Smoke run. No OCI runtime runs containers in every sandbox (crun and runc
# need cgroups they may not get), so the containers run with buildah's chroot
# isolation: the image's root filesystem, user, environment and entrypoint,
# the host's network. Against a real farm (farm up: NATS, etcd, S3 and a
# coordinator, no nodes), the smoke run checks that
#   - each image's entrypoint with -h exits 0 as user 65532;
#   - the coordinator image connects to NATS, etcd and S3: /livez answers 200,
#     /readyz 200 with every check ok and the leader known, /healthcheck
#     (compose's probe) exits 0 inside the container, /metrics serves
#     latentfarm_tasks_pending;
#   - the CPU-node image registers in etcd, answers /livez, /readyz;
#   - a batch job submitted through the coordinator image's API (a follower,
#     so the client follows it to the leader) is rendered by the node image
#     with the demo model, and its frames are downloaded;
#   - an animation is rendered and assembled into a GIF by the node image (and
#     an MP4 when FFMPEG=1).
SMOKE_DIR=$(mktemp -d)
FARM="$PWD/$CTX/farm-node"
DATA=$SMOKE_DIR/farm
PIDS=()
CTRS=()
# cleanup stops what the smoke run started, last first (the containers, then
# farm up), each with SIGTERM and after 10 s SIGKILL.
cleanup() {
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for c in "${CTRS[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
  rm -rf "$SMOKE_DIR"
}
trap cleanup EXIT
fail() {
  for f in "$SMOKE_DIR"/*.log; do [ -f "$f" ] && { say "--- $f"; tail -n 15 "$f" >&2; }; done
  die "smoke: $*"
}
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  while :; do p=$((20000 + RANDOM % 20000)); port_taken "$p" || { echo "$p"; return; }; done
}
# eventually SECONDS CMD...: runs CMD every 0.2 s until it succeeds.
eventually() {
  local deadline=$(($(date +%s) + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}
# new_ctr IMAGE: sets C to a new working container of the image, which must
# run as user 65532.
new_ctr() {
  C=$(buildah from --quiet "$PREFIX/$1:$TAG") || fail "buildah from $PREFIX/$1:$TAG failed"
  CTRS+=("$C")
  local user
  user=$(buildah inspect --format '{{.OCIv1.Config.User}}' "$C")
  [ "$user" = 65532:65532 ] || fail "$1 runs as '$user', want 65532:65532"
}
# entrypoint CONTAINER: the image's ENTRYPOINT, one word a line.
entrypoint() {
  buildah inspect --format '{{range .OCIv1.Config.Entrypoint}}{{println .}}{{end}}' "$1"
}
run_in() { buildah run --isolation chroot --network host "$@"; }
# start_in ARGS... &: run_in in the background, as a process of its own (so
# that $! is buildah, which stops the container when it gets SIGTERM).
start_in() { exec buildah run --isolation chroot --network host "$@"; }

say "smoke: starting farm up (no nodes) in $DATA"
"$FARM" up --data "$DATA" --nodes 0 --random-ports >"$SMOKE_DIR/up.log" 2>&1 &
PIDS+=($!)
eventually 60 test -s "$DATA/credentials.json" || fail "farm up wrote no credentials"
eventually 60 "$FARM" nodes --data "$DATA" || fail "farm up's coordinator does not answer"
# The containers read the credentials as user 65532.
mkdir -p "$SMOKE_DIR/creds"
cp "$DATA/credentials.json" "$SMOKE_DIR/creds/"
chown -R 65532:65532 "$SMOKE_DIR/creds"
chmod 0700 "$SMOKE_DIR/creds"

if want coordinator; then
  new_ctr coordinator
  c=$C
  mapfile -t ep < <(entrypoint "$c")
  [ "${ep[*]}" = "/farm coordinator" ] || fail "coordinator entrypoint is '${ep[*]}'"
  run_in "$c" "${ep[@]}" -h >/dev/null 2>&1 || fail "coordinator -h does not exit 0"
  API=$(free_port)
  say "smoke: coordinator image on 127.0.0.1:$API"
  start_in -v "$SMOKE_DIR/creds:/creds:ro" "$c" "${ep[@]}" --credentials /creds \
    --listen "127.0.0.1:$API" >"$SMOKE_DIR/coordinator.log" 2>&1 &
  PIDS+=($!)
  eventually 30 curl -fsS "http://127.0.0.1:$API/livez" || fail "coordinator /livez does not answer 200"
  eventually 30 curl -fsS "http://127.0.0.1:$API/readyz" || fail "coordinator /readyz: $(curl -sS "http://127.0.0.1:$API/readyz")"
  ready=$(curl -fsS "http://127.0.0.1:$API/readyz")
  for check in '"nats":"ok"' '"etcd":"ok"' '"s3":"ok"' '"leader":"http'; do
    [[ "$ready" == *"$check"* ]] || fail "coordinator /readyz lacks $check: $ready"
  done
  run_in "$c" /healthcheck "http://127.0.0.1:$API/livez" || fail "/healthcheck in the coordinator image fails"
  export FARM_URL="http://127.0.0.1:$API"
fi

if want node-cpu; then
  new_ctr node-cpu
  c=$C
  mapfile -t ep < <(entrypoint "$c")
  [ "${ep[*]}" = "/farm node" ] || fail "node-cpu entrypoint is '${ep[*]}'"
  run_in "$c" "${ep[@]}" -h >/dev/null 2>&1 || fail "node -h does not exit 0"
  if [ "$FFMPEG" = 1 ]; then
    run_in "$c" /usr/bin/ffmpeg -hide_banner -version >/dev/null || fail "ffmpeg does not run in node-cpu"
  fi
  MET=$(free_port)
  say "smoke: node-cpu image, metrics on 127.0.0.1:$MET"
  start_in -v "$SMOKE_DIR/creds:/creds:ro" -v "$PWD/models:/models:ro" "$c" "${ep[@]}" \
    --credentials /creds --models /models --metrics-listen "127.0.0.1:$MET" --id smoke-node-cpu \
    >"$SMOKE_DIR/node.log" 2>&1 &
  PIDS+=($!)
  eventually 30 run_in "$c" /healthcheck "http://127.0.0.1:$MET/readyz" || fail "node /readyz: $(curl -sS "http://127.0.0.1:$MET/readyz")"
  curl -fsS "http://127.0.0.1:$MET/livez" >/dev/null || fail "node /livez does not answer 200"
  eventually 30 sh -c "'$FARM' nodes --data '$DATA' --json | grep -q smoke-node-cpu" || fail "the node did not register"

  say "smoke: a 4-image batch through ${FARM_URL:-the farm up coordinator}, rendered by the node image"
  "$FARM" submit --data "$DATA" --name smoke --model demo --model-family tiny \
    --prompt "a red circle on a blue background" --seed-start 1 --count 4 \
    --width 32 --height 32 --steps 20 --cfg 5 --wait >"$SMOKE_DIR/submit.log" 2>&1 || fail "the batch failed"
  job=$(awk 'NR == 1 { print $1 }' "$SMOKE_DIR/submit.log")
  "$FARM" get "$job" --data "$DATA" --dir "$SMOKE_DIR/batch" >/dev/null || fail "farm get $job failed"
  n=$(find "$SMOKE_DIR/batch/frames" -name '*.png' | wc -l)
  [ "$n" -eq 4 ] || fail "$n frames downloaded, want 4"

  say "smoke: an 8-frame animation, assembled by the node image"
  cat >"$SMOKE_DIR/animation.yaml" <<'YAML'
kind: animation
name: smoke-animation
model: demo
model_family: tiny
width: 32
height: 32
steps: 10
cfg_scale: 5
sampler: euler
frames: 8
fps: 8
frames_per_task: 4
keyframes:
  - {frame: 0, prompt: "a red circle on a blue background", seed: 7}
  - {frame: 7, prompt: "a yellow square on a green background", seed: 8}
YAML
  "$FARM" submit "$SMOKE_DIR/animation.yaml" --data "$DATA" --wait >"$SMOKE_DIR/animation.log" 2>&1 || fail "the animation failed"
  job=$(awk 'NR == 1 { print $1 }' "$SMOKE_DIR/animation.log")
  "$FARM" get "$job" --data "$DATA" --dir "$SMOKE_DIR/anim" >/dev/null || fail "farm get $job failed"
  [ -s "$SMOKE_DIR/anim/animation.gif" ] || fail "no animation.gif"
  if [ "$FFMPEG" = 1 ]; then
    [ -s "$SMOKE_DIR/anim/animation.mp4" ] || fail "FFMPEG=1 but no animation.mp4"
  fi
fi

if want coordinator; then
  curl -fsS "http://127.0.0.1:$API/metrics" | grep -q '^latentfarm_tasks_pending' ||
    fail "coordinator /metrics has no latentfarm_tasks_pending"
fi

END=$(date +%s)
build_s=$((BUILT - START))
smoke_s=$((END - BUILT))
total_s=$((END - START))
say "done: built in $build_s s, smoke run passed in $smoke_s s, $total_s s in all"
