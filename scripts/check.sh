#!/usr/bin/env bash
# make check: the static checks, on both modules (the product at the root,
# the load harness in bench/). Fails on the first finding:
#   gofmt; go vet; staticcheck (STATICCHECK_VERSION, installed by
#   scripts/deps.sh); `go mod tidy` would change nothing; the layout rules
#   (internal/layout: imports point down, Linux-only packages tagged).
set -euo pipefail
cd "$(dirname "$0")/.."
STATICCHECK_VERSION=v0.8.2 # keep in step with scripts/deps.sh
sc="$(go env GOPATH)/bin/staticcheck"
if ! "$sc" -version 2>/dev/null | grep -q "${STATICCHECK_VERSION#v}"; then
	echo "check: installing staticcheck $STATICCHECK_VERSION"
	GOFLAGS= go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi

out="$(gofmt -l .)"
if [ -n "$out" ]; then
	echo "gofmt needed:"
	echo "$out"
	exit 1
fi
for mod in . bench; do
	echo "check: $mod: go vet, staticcheck, go mod tidy"
	(cd "$mod" && go vet ./... && "$sc" ./... && go mod tidy -diff)
done
go test -count=1 ./internal/layout
echo "check: ok"
