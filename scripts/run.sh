#!/usr/bin/env bash
# `make run`: the proxy on its embedded default token store (./var/) with the
# demo console behind it (a tiny RFB server drawing colour bars); prints a
# ready-to-use URL and token. When Debian's noVNC is installed
# (apt-get install novnc), it is served with --web, so the printed browser URL
# opens the console. Extra arguments go to consoleproxy.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
web=()
if [ -d /usr/share/novnc ]; then
	web=(--web /usr/share/novnc)
fi
exec bin/consoleproxy --demo "${web[@]}" "$@"
