#!/usr/bin/env bash
# `make chaos`: the fault suite (internal/e2e/chaos_test.go) at full length on a stack
# of its own, whose servers it stops, freezes and restarts; writes the results table
# to deploy/chaos/results.md. REPLICATOR_CHAOS=fast runs the shortened scenarios of the
# test command instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p deploy/chaos
export REPLICATOR_CHAOS=${REPLICATOR_CHAOS:-full}
export REPLICATOR_CHAOS_REPORT=${REPLICATOR_CHAOS_REPORT:-$PWD/deploy/chaos/results.md}
exec bash deploy/local/with-stack.sh chaos 4 \
	go test -tags 'integration chaos' -count=1 -timeout 90m -run TestChaos -v ./internal/e2e/ "$@"
