#!/usr/bin/env bash
# The operator's side, as `make test` checks it (issue 15):
#   1. the Grafana dashboard is valid JSON and each of its queries parses as PromQL;
#   2. the Prometheus alert rules pass `promtool check rules` and their unit tests;
#   3. `make deb` builds the package and lintian finds no error and no warning (overrides in
#      packaging/lintian-overrides carry their reasons);
#   4. as root: `dpkg -i` installs it (twice: the maintainer scripts are idempotent), the files
#      land, `systemd-analyze verify` accepts the unit without a word and `systemd-analyze
#      security` rates it;
#   5. the installed binary runs as the package's user with the unit's environment, paths and
#      umask, under strace: it creates its store and admin secret under /var/lib/consoleproxy,
#      mints a token through /run/consoleproxy/admin.sock, finds that token on a WebSocket
#      handshake, serves /metrics with TYPE lines and every series the dashboard and the rules
#      read, and exits 0 on SIGTERM; every system call it made passes the unit's
#      SystemCallFilter=, every socket its RestrictAddressFamilies=;
#   6. `dpkg --purge` removes it all.
# The service itself is never started (no systemctl start). A consoleproxy package installed
# before the test is left alone: steps 4-6 are skipped, as they are when not root.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
step() { echo "package-test: $* [$((SECONDS - start))s]"; }
fail() {
	echo "package-test: FAIL: $*" >&2
	exit 1
}
for tool in dpkg-deb lintian promtool jq systemd-analyze curl setpriv strace; do
	command -v "$tool" >/dev/null || fail "$tool is missing (scripts/deps.sh installs it)"
done
work=$(mktemp -d)
pid=""
installed_here=""
cleanup() {
	if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
	if [ -n "$installed_here" ]; then
		dpkg --purge consoleproxy >/dev/null 2>&1 || true
		rm -rf /run/consoleproxy
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# syscall_set prints the system calls of a systemd set (systemd-analyze syscall-filter), nested
# sets expanded.
syscall_set() {
	local x
	systemd-analyze syscall-filter "$1" | tail -n +2 | sed -e 's/^ *//' -e '/^#/d' -e '/^$/d' |
		while read -r x; do
			case $x in
			@*) syscall_set "$x" ;;
			*) echo "$x" ;;
			esac
		done
}

# metric_names prints the metric names a PromQL text reads (histogram series by family).
metric_names() {
	grep -oE '\b(consoleproxy|process|go)_[a-z0-9_]+' | sed -E 's/_(bucket|sum|count)$//' | sort -u
}

# --- 1. the dashboard -------------------------------------------------------------------
dash=packaging/grafana/consoleproxy.json
jq -e '.title and (.panels | length > 0)' "$dash" >/dev/null || fail "$dash: not a dashboard"
dups=$(jq -r '[.panels[].id] | group_by(.) | map(select(length > 1))[0][0] // empty' "$dash")
[ -z "$dups" ] || fail "$dash: panel id $dups used twice"
# Each query as a recording rule, Grafana's variables replaced, so promtool parses it.
{
	echo "groups: [{name: dashboard, rules: ["
	jq -r '[.panels[].targets[]?.expr] | to_entries[] | "{record: \"dashboard:q\(.key)\", expr: \(.value | tojson)},"' "$dash" |
		sed -e 's/\$__rate_interval/5m/g' -e 's/\$job/.*/g' -e 's/\$instance/.*/g'
	echo "]}]"
} >"$work/dashboard-rules.yml"
promtool check rules "$work/dashboard-rules.yml" >"$work/out" 2>&1 || { cat "$work/out"; fail "$dash: a query does not parse"; }
step "dashboard: $(jq '[.panels[].targets[]?] | length' "$dash") queries parse"

# --- 2. the alert rules -------------------------------------------------------------------
rules=packaging/prometheus/consoleproxy-rules.yml
promtool check rules "$rules" >"$work/out" 2>&1 || { cat "$work/out"; fail "$rules"; }
(cd packaging/prometheus && promtool test rules consoleproxy-rules.test.yml) >"$work/out" 2>&1 ||
	{ cat "$work/out"; fail "the alert rules' unit tests"; }
step "rules: $(grep -c '^ *- alert:' "$rules") alerts pass promtool check and their unit tests"

# --- 3. the package and lintian -------------------------------------------------------------
deb=$(make -s deb | tail -1)
[ -f "$deb" ] || fail "make deb did not print a package path"
step "built $deb ($(du -k "$deb" | cut -f1) KiB)"
lintian --fail-on error,warning --display-info --pedantic "$deb" >"$work/lintian" 2>&1 || {
	cat "$work/lintian"
	fail "lintian"
}
grep -v 'running with root privileges' "$work/lintian" || true
step "lintian: $(grep -c '^[EW]:' "$work/lintian" || true) errors or warnings, $(grep -c '^[IP]:' "$work/lintian" || true) info"

if [ "$(id -u)" -ne 0 ]; then
	step "not root: install, unit and smoke run skipped"
	exit 0
fi
if dpkg-query -W -f='${Status}' consoleproxy 2>/dev/null | grep -q 'install ok installed'; then
	step "a consoleproxy package is already installed here: install, unit and smoke run skipped"
	exit 0
fi

# --- 4. install -------------------------------------------------------------------------
installed_here=1
dpkg -i "$deb" >"$work/out" 2>&1 || { cat "$work/out"; fail "dpkg -i"; }
dpkg -i "$deb" >"$work/out" 2>&1 || { cat "$work/out"; fail "dpkg -i over itself"; }
for f in /usr/bin/consoleproxy /lib/systemd/system/consoleproxy.service /etc/consoleproxy/consoleproxy.env \
	/usr/share/doc/consoleproxy/copyright /usr/share/doc/consoleproxy/changelog.Debian.gz \
	/usr/share/man/man1/consoleproxy.1.gz /usr/share/doc/consoleproxy/examples/grafana/consoleproxy.json \
	/usr/share/doc/consoleproxy/examples/prometheus/consoleproxy-rules.yml; do
	[ -f "$f" ] || fail "$f not installed"
done
[ -x /usr/bin/consoleproxy ] || fail "/usr/bin/consoleproxy not executable"
[ "$(stat -c '%a %U' /etc/consoleproxy/consoleproxy.env)" = "600 root" ] || fail "consoleproxy.env is not 0600 root"
dpkg-query -W -f='${Conffiles}\n' consoleproxy | grep -q '/etc/consoleproxy/consoleproxy.env' || fail "consoleproxy.env is not a conffile"
getent passwd consoleproxy >/dev/null || fail "postinst did not create the consoleproxy user"
grep -q 'Apache License' /usr/share/doc/consoleproxy/copyright || fail "copyright lacks gnet's Apache-2.0"
/usr/bin/consoleproxy --help 2>&1 | grep -q -- '-token-store' || fail "the installed binary does not run"
unit=/lib/systemd/system/consoleproxy.service
systemd-analyze verify "$unit" >"$work/verify" 2>&1 || { cat "$work/verify"; fail "systemd-analyze verify"; }
[ ! -s "$work/verify" ] || { cat "$work/verify"; fail "systemd-analyze verify has remarks"; }
# `security` grades 0 (locked down) to 10 (exposed); 2.0 and under is "OK".
systemd-analyze security --offline=true --threshold=20 "$unit" >"$work/security" 2>&1 || {
	cat "$work/security"
	fail "systemd-analyze security: exposure over 2.0"
}
step "installed; systemd-analyze verify silent; $(grep -o 'Overall exposure level.*' "$work/security")"

# --- 5. a smoke run as the service would run --------------------------------------------------
# free_port prints a loopback port nothing listens on now, below the
# ephemeral range (32768–60999): a port some outgoing connection holds as its
# local port cannot be bound by a listener either.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 12000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	fail "no free port"
}
port=$(free_port)
mport=$(free_port)
deadport=$(free_port)
[ -n "$port" ] && [ -n "$mport" ] && [ -n "$deadport" ] || fail "no free loopback port"
# What StateDirectory=, RuntimeDirectory= and WorkingDirectory= give the service.
install -d -o consoleproxy -g consoleproxy -m 0700 /var/lib/consoleproxy
install -d -o consoleproxy -g consoleproxy -m 0750 /run/consoleproxy
envs=(PATH=/usr/sbin:/usr/bin:/sbin:/bin)
while IFS= read -r kv; do envs+=("$kv"); done < <(sed -n 's/^Environment=//p' "$unit")
while IFS= read -r kv; do envs+=("$kv"); done < <(grep -E '^[A-Z_]+=' /etc/consoleproxy/consoleproxy.env || true)
envs+=("CONSOLEPROXY_LISTEN=127.0.0.1:$port" "CONSOLEPROXY_METRICS_LISTEN=127.0.0.1:$mport"
	CONSOLEPROXY_MAX_SESSIONS_PER_IP=100 CONSOLEPROXY_AUTH_FAILURES_PER_IP=100)
# Under strace when it works here: every system call the run makes must pass the unit's
# SystemCallFilter=, every socket its RestrictAddressFamilies=.
tracer=()
if strace -f -qq -o /dev/null true 2>/dev/null; then
	tracer=(strace -f -qq -o /run/consoleproxy/trace)
fi
(
	cd /var/lib/consoleproxy
	umask 0077
	exec env -i "${envs[@]}" setpriv --reuid=consoleproxy --regid=consoleproxy --clear-groups \
		"${tracer[@]}" /usr/bin/consoleproxy 2>"$work/stderr"
) &
pid=$!
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1 && break
	kill -0 "$pid" 2>/dev/null || { cat "$work/stderr"; fail "the proxy exited at start"; }
	sleep 0.1
done
curl -sf "http://127.0.0.1:$mport/readyz" >/dev/null || { cat "$work/stderr"; fail "not ready within 10 s"; }
secret=/var/lib/consoleproxy/admin.secret
[ "$(stat -c '%a %U' "$secret")" = "600 consoleproxy" ] || fail "$secret is not 0600 consoleproxy"
[ -S /run/consoleproxy/admin.sock ] || fail "no admin socket in /run/consoleproxy"
curl -sS --max-time 10 --unix-socket /run/consoleproxy/admin.sock -o "$work/mint" -w '%{http_code}' \
	-H "Authorization: Bearer $(head -n1 "$secret")" -H 'Content-Type: application/json' \
	-d "{\"host\":\"127.0.0.1\",\"port\":$deadport,\"console_type\":\"novnc\",\"instance_uuid\":\"2f1c3b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b\",\"ttl_seconds\":60}" \
	http://localhost/v1/tokens >"$work/code" || fail "admin API: $(cat "$work/code")"
[ "$(cat "$work/code")" = 201 ] || fail "admin API answered $(cat "$work/code"): $(cat "$work/mint")"
token=$(jq -er .token "$work/mint") || fail "no token in the admin API's answer"
# The token is found (not 403) and the proxy dials its host, which listens nowhere: 502.
code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
	-H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
	"http://127.0.0.1:$port/websockify?token=$token")
[ "$code" = 502 ] || fail "a handshake with the minted token got $code, want 502 (host unreachable)"
curl -sf "http://127.0.0.1:$mport/metrics" >"$work/metrics" || fail "/metrics"
grep -q '^# TYPE consoleproxy_sessions_total counter$' "$work/metrics" || fail "/metrics has no TYPE lines"
grep -q '^consoleproxy_sessions_total{result="host_unreachable"} 1$' "$work/metrics" || fail "the 502 is not counted"
sed -n 's/^# TYPE \([^ ]*\) .*/\1/p' "$work/metrics" | sort -u >"$work/families"
# The reuse-store series exist only with a Redis --reuse-store.
missing=$({
	jq -r '.. | .expr? // empty' "$dash"
	grep -v '^ *#' "$rules"
} | metric_names | grep -v '^consoleproxy_reuse_' | comm -23 - "$work/families")
[ -z "$missing" ] || fail "the dashboard or the rules read series /metrics does not have: $missing"
# promtool parses the exposition; the Go runtime's and process's families lack HELP texts and
# some names (the library's), so only a parse error (exit 1) or a consoleproxy_ remark fails.
set +e
promtool check metrics <"$work/metrics" >"$work/lint" 2>&1
rc=$?
set -e
[ "$rc" -ne 1 ] || { cat "$work/lint"; fail "promtool cannot parse /metrics"; }
! grep '^consoleproxy_' "$work/lint" || fail "promtool remarks on consoleproxy_ metrics"
! grep -qF "$token" "$work/stderr" || fail "the token reached the log"
proxy=$pid
if ((${#tracer[@]})); then
	proxy=$(ps -o pid= --ppid "$pid" | tr -d ' ') # strace's child
fi
kill -TERM "$proxy"
set +e
wait "$pid"
rc=$?
set -e
pid=""
[ "$rc" -eq 0 ] || { cat "$work/stderr"; fail "exit status $rc after SIGTERM, want 0"; }
filtered=""
if ((${#tracer[@]})); then
	mv /run/consoleproxy/trace "$work/trace"
	sed -nE 's/^[0-9]+ +([a-z0-9_]+)\(.*/\1/p' "$work/trace" | sort -u >"$work/used"
	# SystemCallFilter=@system-service, then ~@privileged: the allowed set.
	syscall_set "@system-service" | sort -u >"$work/allowed"
	syscall_set "@privileged" | sort -u | comm -23 "$work/allowed" - >"$work/allowed.tmp"
	mv "$work/allowed.tmp" "$work/allowed"
	denied=$(comm -23 "$work/used" "$work/allowed" | tr '\n' ' ')
	[ -z "$denied" ] || fail "the unit's SystemCallFilter= would refuse: $denied"
	families=$(grep -oE '\bsocket(pair)?\(AF_[A-Z0-9]+' "$work/trace" | sed 's/.*(//' | sort -u | tr '\n' ' ')
	for f in $families; do
		case $f in AF_INET | AF_INET6 | AF_UNIX | AF_NETLINK) ;; *) fail "the unit's RestrictAddressFamilies= would refuse $f" ;; esac
	done
	filtered="; its $(wc -l <"$work/used") system calls pass SystemCallFilter=, its sockets ($families) RestrictAddressFamilies="
fi
step "smoke run as user consoleproxy: admin API minted, handshake 502, /metrics typed, SIGTERM exit 0$filtered"

# --- 6. purge ---------------------------------------------------------------------------
dpkg --purge consoleproxy >"$work/out" 2>&1 || { cat "$work/out"; fail "dpkg --purge"; }
installed_here=""
rm -rf /run/consoleproxy # systemd's RuntimeDirectory= would have gone with the service
for f in /usr/bin/consoleproxy /lib/systemd/system/consoleproxy.service /etc/consoleproxy /var/lib/consoleproxy; do
	[ ! -e "$f" ] || fail "$f left after purge"
done
step "purged; ok"
