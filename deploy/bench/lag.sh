#!/usr/bin/env bash
# `make bench-lag`: 1 KiB files written at steady rates into a directory a worker
# watches (--watch), replicated to MinIO, fake-gcs-server and Azurite; prints p50 and
# p99 of replicator_lag_seconds and the workflows started per file for each rate, and
# writes deploy/bench/lag.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash deploy/local/with-stack.sh bench 2 env REPLICATOR_BENCH=1 REPLICATOR_BENCH_OUT="$PWD/deploy/bench/lag.md" \
	go test -tags integration -count=1 -timeout 30m -run '^TestBenchLag$' -v ./internal/e2e/
