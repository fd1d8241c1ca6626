#!/usr/bin/env bash
# `make bench`: the replicator beside rclone on the same servers (DESIGN section 9), on
# a stack of its own; prints a table and writes deploy/bench/transfers.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash deploy/local/with-stack.sh bench 2 env REPLICATOR_BENCH=1 REPLICATOR_BENCH_OUT="$PWD/deploy/bench/transfers.md" \
	go test -tags integration -count=1 -timeout 90m -run '^TestBenchTransfers$' -v ./internal/e2e/
