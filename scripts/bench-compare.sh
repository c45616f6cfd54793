#!/usr/bin/env bash
# `make bench-compare`: consoleproxy, Debian's websockify and haproxy (TCP
# mode, the reference) side by side, every scenario at 1, 100 and the
# largest session count that fits this machine (websockify capped at 500:
# past ~507 sessions per listener it silently drops connections, so it also
# runs, with the others, at 500), alternating targets over several rounds.
# Writes BENCHMARKS.md at the repo root (plots in docs/bench/) and the full
# results (JSON Lines, Markdown, proxy logs) in bench-results/. Its TLS
# section (wss:// and haproxy's TLS next to plain, handshakes per second)
# comes from scripts/bench-tls.sh, run first.
#
# Sizes and time: ROUNDS (3), DURATION (measured phase per run, 800ms; streams warm up for a quarter of it first), LARGE
# (9000; two fds per session in a proxy under the 20,000 open-file limit).
# Extra arguments go to consolebench.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-800ms}"
LARGE="${LARGE:-9000}"
RESULTS="${RESULTS:-bench-results}"

missing=0
command -v websockify >/dev/null || [ -x /usr/bin/websockify ] || missing=1
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing=1
if ((missing)); then
	scripts/deps.sh
fi
ulimit -n "$(ulimit -Hn)"
go build -o bin/ ./cmd/consoleproxy
(cd bench && go build -o ../bin/ ./cmd/consolebench) # the harness is its own module

args=(
	--targets consoleproxy,websockify,tcp-relay --reference tcp-relay
	--scenarios hold,echo,stream-down,stream-up,churn,mixed
	--sessions "1,100,${LARGE}" --cap websockify=500
	--rounds "$ROUNDS" --duration "$DURATION"
	--echo-rate 10 --echo-max-total 10000
	--results "$RESULTS" --benchmarks-md BENCHMARKS.md
)
cmd="ROUNDS=$ROUNDS DURATION=$DURATION LARGE=$LARGE make bench-compare  # = bin/consolebench ${args[*]} $*"
rm -rf "$RESULTS"
# TLS first, into its own section (the run below keeps it): scripts/bench-tls.sh.
ROUNDS="$ROUNDS" DURATION="$DURATION" RESULTS="$RESULTS/tls" scripts/bench-tls.sh
exec bin/consolebench "${args[@]}" --command "$cmd" "$@"
