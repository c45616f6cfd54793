# consoleproxy — the way in. `make help` lists the targets.
SHELL := /usr/bin/env bash
GO ?= go
FUZZTIME ?= 10s
BENCHTIME ?= 1s
SOAK_DURATION ?= 10m

.PHONY: help build run test check fuzz bench bench-compare soak deps deb clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

deps: ## install what the tests need (Debian packages, Go modules); idempotent
	@scripts/deps.sh

build: ## build bin/consoleproxy and bin/consolebench (bench/ is its own Go module)
	$(GO) build -o bin/ ./cmd/...
	cd bench && $(GO) build -o ../bin/ ./cmd/...

run: build ## start the proxy on its embedded default with a demo console; prints a URL and token
	@scripts/run.sh

check: ## gofmt, go vet, staticcheck, go mod tidy unchanged, imports point down, Linux-only code tagged (both modules)
	@scripts/check.sh

# deps installed everything, so under make test a missing server fails a test
# instead of skipping it (internal/testutil.RequireEnv).
test: export CONSOLEPROXY_TEST_REQUIRE_ALL = 1
test: deps check build ## install deps, then vet, race-enabled tests and a short run of every fuzz target
	$(GO) test -race -count=1 ./...
	cd bench && $(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run 'Alloc' ./...   # allocation counts (Test*Alloc*) skip under -race
	cd bench && $(GO) test -count=1 -run 'Alloc' ./...
	@FUZZTIME=$(FUZZTIME) scripts/fuzz.sh
	@scripts/package-test.sh   # the .deb (lintian, dpkg -i, systemd-analyze), dashboard, alert rules
	@PLOT=bin/soak-ci.png RESULTS=bin/soak-ci scripts/soak.sh 60s   # the hostile set under load; fails on drift

deb: ## build bin/consoleproxy_<version>_<arch>.deb (dpkg-deb; VERSION, ARCH, MAINTAINER override)
	@packaging/build-deb.sh

fuzz: ## run every fuzz target for FUZZTIME each (default 10s)
	@FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

bench: ## micro-benchmarks (go test -bench) with allocation counts
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...
	cd bench && $(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...

bench-compare: ## consoleproxy vs websockify vs haproxy, every scenario, side by side (~25 min on 2 cores); writes BENCHMARKS.md
	@scripts/bench-compare.sh

soak: ## one proxy under mixed load, churn and the hostile clients for SOAK_DURATION (10m), plotted to docs/bench/soak.png; fails on an upward drift
	@scripts/soak.sh $(SOAK_DURATION)

clean: ## remove build output
	rm -rf bin
