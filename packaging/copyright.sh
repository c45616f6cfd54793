#!/usr/bin/env bash
# Writes the package's debian/copyright (DEP-5) to standard output: the project, the vendored
# gnet (internal/gnet, Apache-2.0), Go's standard library and every Go module linked into
# cmd/consoleproxy, each with its own license text (MIT and BSD ask for their notice to travel
# with the binary). A module whose license is not recognised stops the build: read it, then
# add its short name below.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

# indent prints a license text as a DEP-5 continuation: one leading space, "." for blank lines.
indent() { sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /' "$1"; }

# shortname names a license text by its wording.
shortname() {
	local f=$1
	if grep -q 'Apache License' "$f" && grep -q 'Version 2.0' "$f"; then echo Apache-2.0
	elif grep -q 'Mozilla Public License Version 2.0' "$f"; then echo MPL-2.0
	elif grep -q 'Permission is hereby granted, free of charge' "$f"; then echo Expat
	elif grep -q 'Neither the name' "$f"; then echo BSD-3-clause
	elif grep -q 'Redistributions in binary form' "$f"; then echo BSD-2-clause
	else return 1
	fi
}

# copyrights prints a license file's copyright lines, or a fallback.
copyrights() {
	local lines
	lines=$(grep -E '^[[:space:]]*Copyright ' "$1" | grep -v 'Copyright \[yyyy\]' | sed -e 's/^[[:space:]]*Copyright[[:space:]]*//' -e 's/^([cC])[[:space:]]*//' -e 's/[[:space:]]*$//' || true)
	if [ -z "$lines" ]; then lines="$2"; fi
	# Continuation lines of a multi-line field start with a space.
	sed -e '1!s/^/ /' <<<"$lines"
}

cat <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: consoleproxy
Comment: This is the copyright of the binary /usr/bin/consoleproxy: the project's own code,
 the event loop it vendors (internal/gnet) and every Go module statically linked into it.

Files: *
Copyright: the consoleproxy authors
License: consoleproxy
 The consoleproxy project has not chosen a license yet: no LICENSE file is in
 its repository. Until it does, its authors reserve all rights to their code;
 the third-party code listed below keeps its own license.

Files: internal/gnet/*
Copyright: 2019-2025 The Gnet Authors
 2026 The consoleproxy authors (the patches)
Comment: github.com/panjf2000/gnet/v2 v2.9.7, vendored with patches (internal/gnet/PATCH.md);
 the patches are under gnet's license.
License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License"); you may not
 use this file except in compliance with the License. You may obtain a copy of
 the License at http://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
 WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
 License for the specific language governing permissions and limitations
 under the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0 can be
 found in "/usr/share/common-licenses/Apache-2.0".
EOF

goroot=$($GO env GOROOT)
printf '\nFiles: go/src/*\nCopyright: %s\nComment: the Go standard library and runtime, %s\nLicense: BSD-3-clause\n' \
	"$(copyrights "$goroot/LICENSE" "The Go Authors")" "$($GO env GOVERSION)"
indent "$goroot/LICENSE"

# Every module the binary links, but the project and the vendored gnet (above).
$GO list -deps -f '{{with .Module}}{{.Path}}|{{.Version}}|{{.Dir}}{{end}}' ./cmd/consoleproxy |
	sort -u | while IFS='|' read -r path version dir; do
	[ -n "$version" ] || continue # the main module
	case "$dir" in "$PWD"/*) continue ;; esac # vendored in this repository
	lic=$(find "$dir" -maxdepth 1 -type f \( -iname 'LICEN[CS]E*' -o -iname 'COPYING*' \) | sort | head -1)
	if [ -z "$lic" ]; then
		echo "copyright.sh: $path $version has no license file" >&2
		exit 1
	fi
	if ! short=$(shortname "$lic"); then
		echo "copyright.sh: $path $version: license in $lic not recognised" >&2
		exit 1
	fi
	printf '\nFiles: go/pkg/mod/%s/*\nCopyright: %s\nComment: Go module %s %s, statically linked.\nLicense: %s\n' \
		"$path" "$(copyrights "$lic" "the $path authors")" "$path" "$version" "$short"
	case $short in
	Apache-2.0 | MPL-2.0)
		echo " On Debian systems, the complete text of the license can be found in"
		echo " \"/usr/share/common-licenses/$short\"."
		;;
	*) indent "$lic" ;;
	esac
done
