#!/usr/bin/env bash
# make fuzz: runs every fuzz target for FUZZTIME each (default 60s). A failure stops
# the run; Go writes the failing input under the package's testdata/fuzz/<target>/,
# where `go test` replays it from then on as a regression case (commit it with the fix).
set -euo pipefail
cd "$(dirname "$0")/../.."
fuzztime=${FUZZTIME:-60s}
targets=(
	"./internal/config FuzzParse"
	"./internal/store FuzzValidateKey"
	"./internal/store/s3store FuzzS3Name"
	"./internal/store/azstore FuzzAzureName"
	"./starter FuzzKeyLines"
	"./internal/reconcile FuzzDiff"
	"./internal/bisync FuzzMergeAndDecide"
	"./internal/inbound FuzzParsers"
)
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "fuzz: $name in $pkg for $fuzztime"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"
done
echo "fuzz: every target ran $fuzztime without a failure"
