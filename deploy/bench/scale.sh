#!/usr/bin/env bash
# `make bench-scale`: the scale benchmark (internal/e2e/bench_scale_test.go) on a stack
# of its own: 10,000, 100,000 and 1,000,000 files (REPLICATOR_SCALE_SIZES) to MinIO and
# to a directory, beside rclone; prints the table and writes deploy/bench/scale.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash deploy/local/with-stack.sh scale 5 env REPLICATOR_BENCH=1 REPLICATOR_BENCH_OUT="${REPLICATOR_BENCH_OUT:-$PWD/deploy/bench/scale.md}" \
	go test -tags integration -count=1 -timeout 600m -run '^TestBenchScale$' -v ./internal/e2e/
