# latentfarm — see README.md. `make demo` runs the farm on one machine;
# `make test` installs what it needs and runs every check CI runs.
GO      ?= go
BIN     := bin/farm
PKGS    := ./...

.PHONY: all build deps test vet fmt-check demo bench clean

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

bench: build
	./scripts/bench.sh

clean:
	rm -rf bin farm-data
