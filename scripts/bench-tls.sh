#!/usr/bin/env bash
# The TLS part of `make bench-compare` (issue 13's figures): consoleproxy's
# wss:// next to its plain ws://, and haproxy terminating TLS next to plain
# TCP, in the same run, targets alternating: throughput both ways at 1 and
# 100 sessions, and full handshakes per second with an ECDSA P-256 and an
# RSA 2048 certificate (HANDSHAKES at most per run, 16 in flight). Replaces
# the "TLS" section of BENCHMARKS.md; results in $RESULTS.
#
# ROUNDS (3), DURATION (800ms), HANDSHAKES (2000), RESULTS
# (bench-results/tls); binaries already built (bench-compare.sh builds them).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-800ms}"
HANDSHAKES="${HANDSHAKES:-2000}"
RESULTS="${RESULTS:-bench-results/tls}"

args=(
	--targets consoleproxy,tcp-relay --reference tcp-relay
	--scenarios ws-stream-down,wss-stream-down,ws-stream-up,wss-stream-up,tls-handshakes-ecdsa,tls-handshakes-rsa
	--sessions 1,100 --rounds "$ROUNDS" --duration "$DURATION" --handshakes "$HANDSHAKES"
	--results "$RESULTS" --benchmarks-md BENCHMARKS.md
)
cmd="ROUNDS=$ROUNDS DURATION=$DURATION HANDSHAKES=$HANDSHAKES scripts/bench-tls.sh  # (in make bench-compare) = bin/consolebench ${args[*]}"
rm -rf "$RESULTS"
bin/consolebench "${args[@]}" --command "$cmd"
