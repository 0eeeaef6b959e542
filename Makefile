# latentfarm — see README.md. `make demo` runs the farm on one machine;
# `make test` installs what it needs and runs every check CI runs.
GO      ?= go
BIN     := bin/farm
PKGS    := ./...

.PHONY: all build deps test vet fmt-check demo bench bench-engine bench-farm clean

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
