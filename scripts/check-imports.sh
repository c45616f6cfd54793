#!/usr/bin/env bash
# Fails on an import that points up the layers (cmd → loop → relay → wsframe;
# never relay → loop), on the load harness (bench) importing the product
# beyond wsframe, or on a test helper (internal/) importing the product. Test
# imports count. The rules and their own tests are in internal/layout.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go test -count=1 -run 'TestImportsPointDown|TestCheckFindsUpwardImport' ./internal/layout
