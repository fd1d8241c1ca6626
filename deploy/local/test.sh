#!/usr/bin/env bash
# The README's test command: installs the pinned servers (cached), starts a stack of
# its own on 127.0.0.1 (separate ports and data from `make run`'s, so a running demo is
# left alone), runs every test including the integration tests, and stops the stack.
# Extra arguments go to `go test` (for example -run Conformance).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

export REPLICATOR_STACK_DIR=${REPLICATOR_TEST_STACK_DIR:-$repo/.stack/test}
export REPLICATOR_TEMPORAL_PORT=17233 REPLICATOR_TEMPORAL_UI_PORT=18233
export REPLICATOR_MINIO_PORT=19000 REPLICATOR_MINIO_CONSOLE_PORT=19001
export REPLICATOR_GCS_PORT=14443 REPLICATOR_AZURITE_PORT=20000
export REPLICATOR_AZURITE_IN_MEMORY=1
# A fresh S3 secret per run, so tests can prove it never reaches a workflow history.
export REPLICATOR_MINIO_PASSWORD=secret-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')

start=$SECONDS
bash deploy/local/install.sh
. deploy/local/versions.sh
echo "test: tools ready after $((SECONDS - start)) s"

# A previous run's data would only slow the servers down: start clean.
bash deploy/local/stop.sh >/dev/null 2>&1 || true
rm -rf "$REPLICATOR_STACK_DIR"
trap 'bash deploy/local/stop.sh >/dev/null 2>&1 || true' EXIT
bash deploy/local/start.sh
. deploy/local/env.sh
echo "test: stack healthy after $((SECONDS - start)) s"

echo "test: gofmt and go vet"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [[ -n "$unformatted" ]]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
go vet -tags integration ./...
echo "test: workflowcheck"
"$TOOLS_BIN/workflowcheck" ./...

echo "test: go test -tags integration ./..."
go test -tags integration -count=1 -timeout 45m "$@" ./...
echo "test: done after $((SECONDS - start)) s"
