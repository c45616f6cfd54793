#!/usr/bin/env bash
# `make run`: the proxy on its embedded default token store (./var/) with the
# demo console behind it (a tiny RFB server drawing colour bars); prints a
# ready-to-use URL and token. Extra arguments go to consoleproxy.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec bin/consoleproxy --demo "$@"
