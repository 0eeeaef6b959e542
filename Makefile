# latentfarm — see README.md. `make demo` runs the farm on one machine;
# `make test` installs what it needs and runs every check CI runs.
GO      ?= go
BIN     := bin/farm
PKGS    := ./...

.PHONY: all build deps test vet fmt-check demo bench bench-engine bench-farm clean kernels check-ptx check-cuda bench-gpu images fuzz

all: build

deps:
	./scripts/deps.sh

build: deps
	$(GO) build -o $(BIN) ./cmd/farm

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: deps fmt-check vet
	$(GO) test -count=1 -timeout 20m $(PKGS)
	CGO_ENABLED=0 $(GO) test -count=1 ./diffusion/backend/...
	$(MAKE) check-cuda

demo: build
	./scripts/demo.sh

# bench: the engine (sgemm vs OpenBLAS, SD1.5 UNet forward vs PyTorch) and
# the farm (20,000 load-test frames on 32 nodes); figures go to docs/PERF.md.
bench: bench-engine bench-farm

bench-engine: build
	./scripts/bench.sh

bench-farm: deps
	./scripts/bench-farm.sh

clean:
	rm -rf bin farm-data

# images builds the coordinator and CPU-node container images with buildah
# (FROM scratch, binaries built here first) and smoke-runs them against a
# real farm; see deploy/README.md.
images:
	./scripts/images.sh

# CUDA (docs/CUDA.md). `test` ends with check-cuda, which installs Debian's
# CUDA 11.8 toolkit first (scripts/deps-cuda.sh, about 1.6 GB to download,
# two to three minutes on a fresh machine); no GPU is needed.
# kernels regenerates kernels/*.ptx; the flags are pinned so that the same
# nvcc gives byte-identical files (check-ptx verifies it).
NVCC       ?= nvcc
NVCC_FLAGS := -ptx -arch=compute_80 -O3 -std=c++14

kernels:
	@for f in kernels/*.cu; do \
		echo "nvcc $$f"; \
		$(NVCC) $(NVCC_FLAGS) -o $${f%.cu}.ptx $$f || exit 1; \
	done

# check-ptx compiles the sources again into a scratch folder and fails when
# a committed .ptx differs (stale PTX, or a toolkit other than 11.8).
check-ptx:
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	cp kernels/*.cu kernels/*.cuh $$tmp/; \
	for f in kernels/*.cu; do \
		b=$$(basename $${f%.cu}); \
		$(NVCC) $(NVCC_FLAGS) -o $$tmp/$$b.ptx $$tmp/$$b.cu || exit 1; \
		cmp -s $$tmp/$$b.ptx kernels/$$b.ptx || { echo "kernels/$$b.ptx is stale: run make kernels"; exit 1; }; \
	done; echo "kernels/*.ptx are current"

# check-cuda: what CI runs for the cuda-tagged code on a machine without a GPU.
check-cuda:
	./scripts/deps-cuda.sh
	$(MAKE) check-ptx
	$(GO) vet -tags cuda $(PKGS)
	$(GO) vet -tags 'cuda bench' ./diffusion/backend/cuda/
	$(GO) test -count=1 ./kernels/
	$(GO) test -c -tags cuda -o /dev/null ./diffusion/backend/cuda/
	$(GO) test -c -tags cuda -o /dev/null ./node/
	$(GO) test -count=1 -tags cuda ./node/gpuinfo/

# bench-gpu builds the binaries for a lent GPU machine into bin/gpu and
# prints the one command to pass to the device tool (scripts/bench-gpu.sh).
bench-gpu:
	./scripts/bench-gpu.sh build

# fuzz runs every Go fuzz target for FUZZTIME each (a duration, or Nx for N
# executions, e.g. make fuzz FUZZTIME=1000000x) and prints the executions
# each survived; see docs/FUZZ.md. make test runs only their seed corpora.
FUZZTIME ?= 60s

fuzz: deps
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh
