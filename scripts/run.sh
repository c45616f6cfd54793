#!/usr/bin/env bash
# `make run`: the proxy on its embedded default with a demo console behind it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! bin/consoleproxy --help 2>&1 | grep -q -- '--demo'; then
	echo "consoleproxy is not built yet: the proxy itself lands with the end-to-end issue." >&2
	exit 1
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec bin/consoleproxy --demo "$@"
