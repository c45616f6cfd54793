#!/usr/bin/env bash
# Builds bin/consoleproxy_<version>_<arch>.deb with dpkg-deb alone (no debhelper, no source
# package) and prints its path. `make deb` runs it.
#   VERSION     upstream version (default: packaging/version.sh, from git)
#   DEBREV      Debian revision (default 1)
#   ARCH        Debian architecture (default: dpkg --print-architecture; another one cross-builds)
#   MAINTAINER  the Maintainer field
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
VERSION=${VERSION:-$(packaging/version.sh)}
DEBVERSION=$VERSION-${DEBREV:-1}
ARCH=${ARCH:-$(dpkg --print-architecture)}
MAINTAINER=${MAINTAINER:-consoleproxy developers <dev@consoleproxy.invalid>}
# The commit's time stamps the changelog and every file (dpkg-deb clamps mtimes to it), so a
# rebuild of one commit gives the same package.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct HEAD)}
export SOURCE_DATE_EPOCH

case $ARCH in
amd64 | arm64 | s390x | riscv64) goarch=$ARCH ;;
i386) goarch=386 ;;
armhf) goarch=arm ;;
ppc64el) goarch=ppc64le ;;
*) echo "build-deb.sh: no Go architecture known for $ARCH" >&2; exit 1 ;;
esac

mkdir -p bin
stage=$(mktemp -d bin/.deb.XXXXXX)
trap 'rm -rf "$stage"' EXIT
umask 022
root=$stage/consoleproxy
doc=$root/usr/share/doc/consoleproxy
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/consoleproxy" \
	"$doc/examples" "$root/usr/share/man/man1" "$root/usr/share/lintian/overrides"

# Static (no cgo: the pure-Go resolver), position-independent, symbols stripped (Go's stack
# traces come from its own tables, not from them), no build paths or build id.
CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=7 $GO build \
	-ldflags='-s -w -buildid=' -o "$root/usr/bin/consoleproxy" ./cmd/consoleproxy

install -m 0644 packaging/consoleproxy.service "$root/lib/systemd/system/"
# The environment file may hold a Redis or database password: only root (systemd) reads it.
install -m 0600 packaging/consoleproxy.env "$root/etc/consoleproxy/"
gzip -9n <packaging/consoleproxy.1 >"$root/usr/share/man/man1/consoleproxy.1.gz"
install -m 0644 packaging/lintian-overrides "$root/usr/share/lintian/overrides/consoleproxy"

packaging/copyright.sh >"$doc/copyright"
gzip -9n <CHANGELOG.md >"$doc/changelog.gz"
{
	printf 'consoleproxy (%s) unstable; urgency=medium\n\n' "$DEBVERSION"
	printf '  * Built from git commit %s.\n' "$(git rev-parse --short=12 HEAD)"
	printf '    The project'"'"'s changes are in /usr/share/doc/consoleproxy/changelog.gz.\n\n'
	printf ' -- %s  %s\n' "$MAINTAINER" "$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/changelog.Debian.gz"
install -m 0644 README.md "$doc/"
install -m 0644 docs/nova.md docs/fleet.md "$doc/"
install -d "$doc/examples/grafana" "$doc/examples/prometheus"
install -m 0644 packaging/grafana/consoleproxy.json "$doc/examples/grafana/"
install -m 0644 packaging/prometheus/consoleproxy-rules.yml "$doc/examples/prometheus/"

install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
echo /etc/consoleproxy/consoleproxy.env >"$root/DEBIAN/conffiles"
cat >"$root/DEBIAN/control" <<EOF
Package: consoleproxy
Version: $DEBVERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: adduser
Suggests: novnc
Section: net
Priority: optional
Description: WebSocket console proxy for OpenStack and other clouds
 consoleproxy accepts browser WebSocket connections that carry a console
 token, looks the token up (Nova's database, Redis, a token file or its own
 embedded store), connects to the compute host the token names and relays
 the console both ways. It replaces nova-novncproxy, nova-serialproxy and
 nova-spicehtml5proxy.
 .
 The package runs it as a hardened systemd service under its own user,
 configured in /etc/consoleproxy/consoleproxy.env, with Prometheus metrics,
 a Grafana dashboard and alert rules among its examples.
EOF
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum >DEBIAN/md5sums)
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control" "$root/DEBIAN/conffiles"

deb=bin/consoleproxy_${DEBVERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
