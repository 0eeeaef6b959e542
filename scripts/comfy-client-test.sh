#!/usr/bin/env bash
# Runs the ComfyUI client (tools/comfy-client/client.js, a real npm ComfyUI
# SDK) against a farm's ComfyUI API, installing its npm packages, pinned by
# tools/comfy-client/package-lock.json, when they are missing. The
# arguments go to client.js; the token comes from COMFY_TOKEN:
#
#   COMFY_TOKEN=... scripts/comfy-client-test.sh --url http://127.0.0.1:8080 --out DIR [--ckpt NAME ...]
#
# e2e/comfy_test.go runs it against an in-process farm.
set -euo pipefail
dir="$(cd "$(dirname "$0")/../tools/comfy-client" && pwd)"
if [ ! -d "$dir/node_modules/@saintno/comfyui-sdk" ]; then
  echo "installing the ComfyUI client's npm packages into $dir" >&2
  npm ci --prefix "$dir" --no-audit --no-fund >&2
fi
exec node "$dir/client.js" "$@"
