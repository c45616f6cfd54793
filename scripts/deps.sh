#!/usr/bin/env bash
# Installs, idempotently, what the tests need on a fresh Debian 12 machine that
# has only Go: Debian packages (apt-get, never interactive) and Go modules (the
# Go module proxy). Safe to run again: it installs only what is missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# Debian packages the tests use. Keep one per line, with the test that needs it.
PACKAGES=(
	novnc # loop/web TestDebianNoVNC; make run serves it with --web
	chromium            # loop/e2e TestBrowserNoVNC: headless browser driven over DevTools
	xvfb                # TestBrowserNoVNC: the virtual display behind the VNC server
	x11vnc              # TestBrowserNoVNC: a real VNC server
	x11-xserver-utils   # TestBrowserNoVNC: xsetroot paints the display a known colour
	tinyproxy           # loop/e2e TestComputeProxyTinyproxy: a real forward proxy for --compute-proxy
	squid               # loop/e2e TestComputeProxySquid: a second real forward proxy for --compute-proxy
	mariadb-server      # relay/tokens and loop/e2e novadb tests: a real MariaDB holding Nova's tables
	postgresql          # relay/tokens novadb tests: a real PostgreSQL holding Nova's tables
	redis-server        # relay/tokens (and loop/e2e) redis tests: a real Redis for tokens and fleet reuse
	redis-sentinel      # loop/e2e TestFleetSentinelFailover: real Sentinels fail the reuse and token store over
	qemu-system-x86     # loop/e2e TestSerialQEMU, TestSpiceQEMU: real serial and SPICE consoles
	websockify          # bench: the peer under Nova's proxy, measured side by side
	haproxy             # bench: the plain TCP relay, the physical reference
	lintian             # scripts/package-test.sh: checks the .deb of make deb
	adduser             # scripts/package-test.sh: the .deb's Depends (its postinst adds the consoleproxy user)
	systemd             # scripts/package-test.sh: systemd-analyze verify and security on the unit
	prometheus          # scripts/package-test.sh: promtool checks and tests the alert rules and dashboard queries
	jq                  # scripts/package-test.sh: reads the Grafana dashboard and the admin API's answers
	curl                # scripts/package-test.sh: the admin API over its unix socket, /metrics
	strace              # scripts/package-test.sh: the system calls the proxy makes, against the unit's SystemCallFilter=
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	echo "deps: installing ${missing[*]}"
	$SUDO apt-get update -q </dev/null
	$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
	# The tests need prometheus' promtool, not the server Debian starts with it.
	if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
		$SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
	fi
fi

go mod download
echo "deps: ok"
