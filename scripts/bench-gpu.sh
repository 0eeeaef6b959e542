#!/bin/sh
# CUDA backend checks and benchmark for a lent GPU machine (docs/CUDA.md).
#
#   scripts/bench-gpu.sh build    here: builds the cuda test binaries into
#                                 bin/gpu (git-ignored), copies the sd-tiny
#                                 fixtures the goldens need, and prints the
#                                 device tool call to make
#   scripts/bench-gpu.sh device   there, in the repository root (no Go, no
#                                 network): conformance suite + goldens, then
#                                 the SD1.5-shaped benchmark against PyTorch
#                                 f16 + SDPA on the same card; logs to $OUT
#   scripts/bench-gpu.sh tests    there: only the conformance suite and goldens
#
# The binaries are built with -tags noopenblas so they need nothing but
# glibc and the driver's libcuda.so.1 there; cuBLAS is found at run time
# (LATENTFARM_CUBLAS, else the Python wheels' nvidia/*/lib).
set -eu
cd "$(dirname "$0")/.."

GPU=bin/gpu

build() {
	mkdir -p "$GPU"
	echo "bench-gpu: building $GPU/cuda.test and $GPU/cuda-bench.test"
	go test -c -tags 'cuda noopenblas' -o "$GPU/cuda.test" ./diffusion/backend/cuda
	go test -c -tags 'cuda bench noopenblas' -o "$GPU/cuda-bench.test" ./diffusion/backend/cuda
	fix=../shared/fixtures/sd-tiny
	if [ ! -f "$fix/README.md" ]; then
		echo "bench-gpu: fixtures missing at $(pwd)/$fix" >&2
		exit 1
	fi
	# The device tool carries only the repository: take the fixture files the
	# goldens read (about 7 MB) along under bin/gpu.
	rm -rf "$GPU/sd-tiny"
	mkdir -p "$GPU/sd-tiny/golden"
	cp "$fix/README.md" "$GPU/sd-tiny/"
	cp -r "$fix/model" "$GPU/sd-tiny/"
	cp "$fix/golden/txt2img_euler.safetensors" "$fix/golden/txt2img_dpmpp_2m_karras.safetensors" "$GPU/sd-tiny/golden/"
	du -sh "$GPU"
	cat <<CALL

Now, in a session lent a GPU, one device tool call (about 6 minutes of its 10):
  run(command="scripts/bench-gpu.sh device", carry=["$GPU"], timeout_s=600)
(or command="scripts/bench-gpu.sh tests" for the correctness half alone)
CALL
}

# find_cublas exports LATENTFARM_CUBLAS from the Python wheels unless set.
find_cublas() {
	if [ -n "${LATENTFARM_CUBLAS:-}" ]; then
		return
	fi
	lib=$(python3 - <<'PY' 2>/dev/null || true
import glob, os, site, sys
dirs = site.getsitepackages() + [site.getusersitepackages()] + sys.path
for d in dirs:
    for pat in ("nvidia/cublas/lib/libcublas.so.*", "nvidia/cu*/lib/libcublas.so.*"):
        hits = sorted(glob.glob(os.path.join(d, pat)), reverse=True)
        if hits:
            print(hits[0]); sys.exit(0)
PY
)
	if [ -n "$lib" ]; then
		export LATENTFARM_CUBLAS="$lib"
	fi
	echo "cuBLAS: ${LATENTFARM_CUBLAS:-<search in the backend>}"
}

# fixtures makes ../shared/fixtures/sd-tiny (where the tests look) point at
# the carried copy.
fixtures() {
	if [ ! -f ../shared/fixtures/sd-tiny/README.md ]; then
		mkdir -p ../shared/fixtures
		ln -sfn "$(pwd)/$GPU/sd-tiny" ../shared/fixtures/sd-tiny
	fi
}

run_tests() {
	out=${OUT:-/tmp}
	echo "== conformance (f32, f16), f16 inputs, attention head dims, pool, device, goldens"
	(cd diffusion/backend/cuda && timeout 200 "../../../$GPU/cuda.test" -test.v -test.count=1 -test.timeout 190s) \
		>"$out/tests.log" 2>&1 && rc=0 || rc=$?
	grep -E '^(=== RUN|--- FAIL|--- PASS: Test[A-Za-z0-9_]+ |ok|FAIL|PASS|panic)|latents max relative|cuda:' "$out/tests.log" |
		grep -v '^=== RUN' | tail -n 60
	echo "tests exit status $rc (full log: tests.log)"
	return $rc
}

torch_baseline() {
	cat >/tmp/unet_torch_cuda.py <<'PY'
"""bench/unet_torch.py's SD1.5 UNet on CUDA in f16 with scaled-dot-product
attention: forward batch 2 at 64x64, and 20 guided Euler steps."""
import math, sys, time
import torch
import torch.nn.functional as F
sys.path.insert(0, "bench")
import unet_torch as ut

def sdpa(self, x, ctx):
    b, n, c = x.shape
    h = self.heads
    q = self.to_q(x).view(b, n, h, c // h).transpose(1, 2)
    k = self.to_k(ctx).view(b, -1, h, c // h).transpose(1, 2)
    v = self.to_v(ctx).view(b, -1, h, c // h).transpose(1, 2)
    o = F.scaled_dot_product_attention(q, k, v)
    return self.to_out[0](o.transpose(1, 2).reshape(b, n, c))

def features(t, dim=320):
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1).half()

ut.Attention.forward = sdpa
ut.UNet.timestep_features = staticmethod(features)
runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
torch.manual_seed(0)
model = ut.UNet().eval()
ut.init_random(model, 1)
model = model.half().cuda()
dev = torch.cuda.get_device_name()
print(f"torch {torch.__version__} on {dev}", flush=True)
x = torch.randn(2, 4, 64, 64, device="cuda", dtype=torch.half)
ctx = torch.randn(2, 77, 768, device="cuda", dtype=torch.half)
t = torch.tensor([999.0, 748.5], device="cuda")

def used():
    free, total = torch.cuda.mem_get_info()
    return (total - free) / 2**30

def timed(fn, n):
    out = []
    for i in range(n + 1):
        torch.cuda.synchronize(); t0 = time.perf_counter(); fn(); torch.cuda.synchronize()
        if i: out.append(time.perf_counter() - t0)
    return min(out), sum(out) / len(out)

with torch.inference_mode():
    torch.cuda.reset_peak_memory_stats()
    best, mean = timed(lambda: model(x, t, ctx), runs)
    print(f"RESULT engine=torch what=unet batch=2 best_s={best:.4f} mean_s={mean:.4f} "
          f"peak_live_gib={torch.cuda.max_memory_allocated() / 2**30:.3f} "
          f"peak_reserved_gib={torch.cuda.max_memory_reserved() / 2**30:.3f} device_used_gib={used():.3f}", flush=True)
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    ac = torch.cumprod(1 - betas, 0)
    all_sig = ((1 - ac) / ac) ** 0.5
    ts = torch.linspace(999, 0, 20, dtype=torch.float64)
    sig = [float(all_sig[int(math.floor(s))] + (all_sig[min(int(math.floor(s)) + 1, 999)] - all_sig[int(math.floor(s))]) * (s - math.floor(s))) for s in ts.tolist()] + [0.0]
    def denoise():
        lat = torch.randn(1, 4, 64, 64, device="cuda", dtype=torch.half) * math.sqrt(sig[0] ** 2 + 1)
        for i, tt in enumerate(ts.tolist()):
            xin = lat / math.sqrt(sig[i] ** 2 + 1)
            out = model(torch.cat([xin, xin]), torch.tensor([tt, tt], device="cuda"), ctx)
            eps = out[0:1] + 7.5 * (out[1:2] - out[0:1])
            lat = lat + eps * (sig[i + 1] - sig[i])
        return lat
    torch.cuda.reset_peak_memory_stats()
    best, mean = timed(denoise, max(1, runs // 2))
    print(f"RESULT engine=torch what=denoise20 batch=2 best_s={best:.4f} mean_s={mean:.4f} it_s={20 / best:.2f} "
          f"peak_live_gib={torch.cuda.max_memory_allocated() / 2**30:.3f} "
          f"peak_reserved_gib={torch.cuda.max_memory_reserved() / 2**30:.3f} device_used_gib={used():.3f}", flush=True)
PY
	timeout 170 python3 /tmp/unet_torch_cuda.py "${BENCH_RUNS:-5}"
}

device() {
	out=${OUT:-/tmp}
	nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader || true
	find_cublas
	fixtures
	run_tests || true
	echo
	echo "== SD1.5-shaped benchmark, ours (f16 storage and weights) then PyTorch f16 + SDPA"
	(cd diffusion/backend/cuda && timeout 180 "../../../$GPU/cuda-bench.test" -test.run 'TestBench' -test.v -test.timeout 170s) \
		>"$out/bench-go.log" 2>&1 || echo "go bench failed: see bench-go.log"
	grep -E '^(RESULT|device|go-cuda|--- FAIL|panic)|_test.go' "$out/bench-go.log" | head -n 20
	torch_baseline >"$out/bench-torch.log" 2>&1 || echo "torch baseline failed: see bench-torch.log"
	grep -E '^(RESULT|torch)|Error' "$out/bench-torch.log" | head -n 10
	echo
	grep -h '^RESULT' "$out/bench-go.log" "$out/bench-torch.log" | awk '
	{
		for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
		k = f["engine"] "|" f["what"]
		best[k] = f["best_s"]; live[k] = f["peak_live_gib"]; res[k] = f["peak_reserved_gib"]; used[k] = f["device_used_gib"]
	}
	END {
		printf "%-10s %-8s %10s %10s %10s %10s\n", "what", "engine", "best s", "live GiB", "pool GiB", "used GiB"
		n = split("unet denoise20 image512", ws, " ")
		for (i = 1; i <= n; i++) for (e = 1; e <= 2; e++) {
			en = e == 1 ? "go-cuda" : "torch"; k = en "|" ws[i]
			if (k in best) printf "%-10s %-8s %10.4f %10.3f %10.3f %10.3f\n", ws[i], en, best[k], live[k], res[k], used[k]
		}
		for (i = 1; i <= 2; i++) { k1 = "go-cuda|" ws[i]; k2 = "torch|" ws[i]
			if ((k1 in best) && (k2 in best) && best[k2] > 0) printf "%s: ours/torch time %.2f, pool/reserved VRAM %.2f\n", ws[i], best[k1] / best[k2], res[k1] / res[k2] }
	}'
}

case "${1:-}" in
build) build ;;
device) device ;;
tests)
	find_cublas
	fixtures
	run_tests
	;;
*)
	echo "usage: $0 build|device|tests" >&2
	exit 2
	;;
esac
