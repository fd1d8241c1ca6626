#!/usr/bin/env bash
# `make bench-reconcile`: a no-op reconcile of 20,000 files beside rclone sync
# --dry-run, on a stack of its own; prints a table and writes deploy/bench/reconcile.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash deploy/local/with-stack.sh bench 2 env REPLICATOR_BENCH=1 REPLICATOR_BENCH_OUT="$PWD/deploy/bench/reconcile.md" \
	go test -tags integration -count=1 -timeout 60m -run '^TestBenchNoopReconcile$' -v ./internal/e2e/
