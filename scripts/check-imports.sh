#!/usr/bin/env bash
# Fails on an import that points up the layers (CONVENTIONS: cmd → loop →
# relay → wsframe; never relay → loop), or on the load harness (bench)
# importing the product's packages other than wsframe. Test imports count.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=$(go list -m)
layer() { # the layer of an import path inside the module; empty outside it
	local p=${1#"$mod"/}
	case "$p" in
	"$1") echo "" ;; # not ours
	wsframe | wsframe/*) echo 0 ;;
	relay | relay/*) echo 1 ;;
	loop | loop/*) echo 2 ;;
	cmd/*) echo 3 ;;
	bench | bench/*) echo B ;;
	internal/*) echo I ;;
	*) echo "?" ;;
	esac
}
bad=0
while read -r pkg imports; do
	from=$(layer "$pkg")
	for imp in $imports; do
		to=$(layer "$imp")
		[ -z "$to" ] || [ "$to" = I ] && continue
		[ "$pkg" = "$imp" ] && continue
		case "$from" in
		B) [ "$to" = 0 ] || [ "$to" = B ] || { echo "bench imports the product: $pkg → $imp"; bad=1; } ;;
		I) echo "internal helper imports the product: $pkg → $imp"; bad=1 ;;
		3) ;;
		*) if [ "$to" = B ] || [ "$to" = "?" ] || [ "$to" -gt "$from" ]; then
			echo "upward import: $pkg → $imp"
			bad=1
		fi ;;
		esac
	done
done < <(
	f='{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}'
	go list -f "$f" ./...
	(cd bench && go list -f "$f" ./...) # the harness is its own module
)
if [ "$bad" -ne 0 ]; then
	echo "imports must point down: cmd → loop → relay → wsframe (bench: wsframe only)"
	exit 1
fi
echo "imports: every arrow points down"
