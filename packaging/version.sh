#!/usr/bin/env bash
# Prints the package version (Debian syntax: it must start with a digit) from git:
#   tag v1.2.0                 -> 1.2.0
#   5 commits after v1.2.0     -> 1.2.0+git20261206.5.f87aa94
#   no tag yet                 -> 0~git20261206.f87aa94 (sorts before any 0.x release)
# The date is the commit's (UTC), so versions rise with history and a rebuild gives the same.
set -euo pipefail
cd "$(dirname "$0")/.."
hash=$(git rev-parse --short=7 HEAD)
date=$(TZ=UTC git log -1 --date=format-local:%Y%m%d --format=%cd HEAD)
if desc=$(git describe --tags --match 'v[0-9]*' --long 2>/dev/null); then
	tag=${desc%-*-g*}
	n=${desc%-g*}
	n=${n##*-}
	if [ "$n" = 0 ]; then
		echo "${tag#v}"
	else
		echo "${tag#v}+git$date.$n.$hash"
	fi
else
	echo "0~git$date.$hash"
fi
