# strata's entry points. `make demo` runs the main job end to end; `make test`
# runs every test. Both install what they need on a Debian machine with Go.

GO        ?= go
BIN       := $(CURDIR)/.bin
LDFLAGS   := -X github.com/moby/buildkit/version.Version=v0.33.1
TOOLS     := github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl \
             github.com/distribution/distribution/v3/cmd/registry github.com/docker/buildx/cmd/buildx
TEST_TIMEOUT ?= 20m
# Executions per fuzz target. A count, not a duration: Go 1.26's fuzzer can
# fail a duration run with "context deadline exceeded" as the time runs out
# (golang/go#75804).
FUZZTIME  ?= 3000x

export PATH := $(BIN):$(PATH)

.PHONY: all deps build test unit integration fuzz vet demo bench bench-smoke clean

all: build

# System packages the test bed and the local builder need: runc for
# buildkitd's OCI worker, busybox-static for base images made offline.
deps:
	@missing=""; \
	command -v runc >/dev/null 2>&1 || missing="$$missing runc"; \
	dpkg -s busybox-static >/dev/null 2>&1 || missing="$$missing busybox-static"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# strata, the frontend binary and the pinned tools (go.mod's tool lines) into .bin/.
build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/strata $(TOOLS)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/strata-frontend ./cmd/strata-frontend

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

vet:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@fmt=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$fmt" ]; then echo "gofmt needed:"; echo "$$fmt"; exit 1; fi

unit:
	$(GO) test -short -count=1 ./...

integration: deps build
	STRATA_BIN_DIR=$(BIN) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./integration/...

# Short runs of every fuzz target, on top of the checked-in corpora.
fuzz:
	@for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -r -n1 dirname | sort -u); do \
	  for f in $$(grep -h -o '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | cut -d' ' -f2); do \
	    echo "fuzz $$dir $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$dir || exit 1; \
	  done; \
	done

# Every test: vet, unit tests, integration tests on the real test bed
# (buildkitd, registry, buildx), and short fuzz runs.
test: deps build vet
	STRATA_BIN_DIR=$(BIN) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory bench-smoke

# The CI-loop benchmarks side by side with BuildKit's own cache and push
# (bench/results/latest.json, docs/benchmarks.md), then the micro benchmarks.
bench: deps build
	STRATA_BIN_DIR=$(BIN) $(GO) run ./bench
	$(GO) test -run '^$$' -bench . -benchtime 3x -cpu 1 ./bench

# One small run per contender: the harness works (no timings asserted).
bench-smoke: deps build
	STRATA_BIN_DIR=$(BIN) $(GO) run ./bench -runs 1 -step-mb 8 -work 1 -deps-mb 10 -deps-seconds 0 -out $$(mktemp -d)/smoke.json -doc ""

# The main job end to end: a local registry, strata's own buildkitd, build and
# push an app, change a file, rebuild, show what was cached.
demo: deps build
	$(GO) run ./integration/demo

clean:
	rm -rf $(BIN)
