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
	qemu-system-x86     # loop/e2e TestSerialQEMU, TestSpiceQEMU: real serial and SPICE consoles
	websockify          # bench: the peer under Nova's proxy, measured side by side
	haproxy             # bench: the plain TCP relay, the physical reference
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
fi

go mod download
echo "deps: ok"
