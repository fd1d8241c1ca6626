#!/usr/bin/env bash
# `make bench-transfers`: the replicator beside rclone and the SDK-only limit on the
# same servers (DESIGN section 9); prints tables and writes deploy/bench/transfers.md.
# The benchmark restarts the emulators empty before every run of every tool.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$PWD/deploy/bench/transfers.md
part=$(mktemp)
trap 'rm -f "$part"' EXIT
bash deploy/local/with-stack.sh bench 2 env REPLICATOR_BENCH=1 REPLICATOR_BENCH_OUT="$part" \
	go test -tags integration -count=1 -timeout 150m -run '^TestBenchTransfers$' -v ./internal/e2e/
if [[ -n "${REPLICATOR_BENCH_CASES:-}${REPLICATOR_BENCH_RUNS:-}${REPLICATOR_BENCH_TOOLS:-}" ]]; then
	echo "a narrowed run: $out is left as it was"
else
	cp "$part" "$out"
	echo "wrote $out"
fi
