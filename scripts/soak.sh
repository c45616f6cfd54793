#!/usr/bin/env bash
# `make soak` / scripts/soak.sh [DURATION] (default 10m; CI runs 60s): one
# consoleproxy for DURATION under 50 long-lived mixed sessions (typing,
# screen bursts, idle), 4 sessions churning, and the hostile scenarios
# (pong-flood, frame-storm, reset-storm, slowloris, tls-silent, zero-window,
# upload-slow-host) one after another in a loop. The proxy's RSS, open fds and
# goroutines are read every second into $RESULTS/soak.csv and plotted to
# docs/bench/soak.png. Fails (exit 3) on an upward drift: the floor (lowest
# reading) of the last quarter above the floor from the end of the warm-up
# (the first quarter, or the first pass over the hostile set when longer) to
# the last quarter, by more than 2 fds per churning session + 2, 4 goroutines,
# or max(16 MiB, 10 %) of RSS (DECISIONS.md); also when a compute host
# received bytes no client sent or a long-lived session broke. Other hostile
# failures are printed as warnings (the hostile runs judge them:
# consolebench --scenarios pong-flood,…).
# Extra arguments go to consolebench (e.g. --soak-sessions 100).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10m}"
shift || true
RESULTS="${RESULTS:-bench-results/soak}"
PLOT="${PLOT:-docs/bench/soak.png}"

ulimit -n "$(ulimit -Hn)"
go build -o bin/ ./cmd/consoleproxy
(cd bench && go build -o ../bin/ ./cmd/consolebench) # the harness is its own module
rm -rf "$RESULTS"
mkdir -p "$(dirname "$PLOT")"
exec bin/consolebench --soak "$DURATION" --targets consoleproxy --results "$RESULTS" --soak-plot "$PLOT" "$@"
