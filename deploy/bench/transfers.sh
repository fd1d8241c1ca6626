#!/usr/bin/env bash
# `make bench-transfers`: the replicator beside rclone and the SDK-only limit on the
# same servers (DESIGN section 9); prints tables and writes deploy/bench/transfers.md.
# Each case gets a fresh stack: Azurite keeps blobs in memory and does not give the
# memory of deleted ones back soon enough (it refused writes at 12 GiB otherwise).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$PWD/deploy/bench/transfers.md
cases=${REPLICATOR_BENCH_CASES:-one-1GiB,2000x16KiB,200x8MiB}
# Azurite keeps every byte written during a case (its extent GC runs every 10 minutes):
# 200 x 8 MiB writes ~13 GiB there in two runs, one of them with atomic rows.
export REPLICATOR_AZURITE_MEMORY_MB=${REPLICATOR_AZURITE_MEMORY_MB:-16384}
parts=()
for c in ${cases//,/ }; do
	part=$(mktemp)
	parts+=("$part")
	# A failed case keeps the others' sections.
	REPLICATOR_BENCH_CASES=$c bash deploy/local/with-stack.sh bench 2 env REPLICATOR_BENCH=1 REPLICATOR_BENCH_OUT="$part" \
		go test -tags integration -count=1 -timeout 90m -run '^TestBenchTransfers$' -v ./internal/e2e/ || failed=1
done
for part in "${parts[@]}"; do cat "$part"; echo; done | sed '$d' >"$out"
rm -f "${parts[@]}"
echo "wrote $out"
exit "${failed:-0}"
