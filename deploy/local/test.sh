#!/usr/bin/env bash
# The README's test command: on a stack of its own (deploy/local/with-stack.sh, ports
# 17233, 19000, 14443, 20000), checks gofmt, go vet and workflowcheck, then runs every
# test including the integration tests. Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ "${1:-}" != --inside ]]; then
	exec bash deploy/local/with-stack.sh test 1 bash deploy/local/test.sh --inside "$@"
fi
shift
echo "test: gofmt, go vet, workflowcheck"
unformatted=$(git ls-files -z '*.go' | xargs -0 gofmt -l)
if [[ -n "$unformatted" ]]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
go vet -tags integration ./...
go vet -tags "integration chaos" ./internal/e2e/
go vet -tags faultinject ./worker
(cd deploy/validate && go vet ./...)
(cd deploy/compose && go vet ./...)
(cd deploy/helm && go vet ./...)
"$REPLICATOR_TOOLS_BIN/workflowcheck" ./...
# The unit tests (no integration tag: no servers) under the race detector, so a data
# race in workflow logic, the engine or a driver fails the run.
echo "test: go test -race ./... (unit tests)"
go test -race -count=1 -timeout 20m ./...
echo "test: go test -tags integration ./..."
go test -tags integration -count=1 -timeout 45m "$@" ./...
# The fault suite stops, freezes and restarts this stack's servers, so it runs alone,
# after everything else that uses them; shortened here (make chaos runs it in full).
echo "test: fault suite, shortened (make chaos runs it in full)"
REPLICATOR_CHAOS=fast go test -tags 'integration chaos' -count=1 -timeout 30m -run TestChaos "$@" ./internal/e2e/
# The deployment artifacts, checked with the parsers of the tools that read them
# (a module of its own: their dependencies stay out of the replicator's).
echo "test: deploy/compose (Dockerfile, Compose, sample policy, static binaries)"
(cd deploy/compose && go test -count=1 -timeout 20m ./...)
echo "test: deploy/validate (Terraform, alert rules, dashboard, metric names)"
(cd deploy/validate && go test -count=1 -timeout 20m ./...)
echo "test: deploy/helm (the worker's chart, rendered by helm, strictly decoded, and run)"
(cd deploy/helm && go test -count=1 -timeout 20m ./...)
