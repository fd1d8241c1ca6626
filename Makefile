# The two commands of the README are `make run` and `make test`.
SHELL := /bin/bash

.PHONY: run test unit bench bench-transfers bench-reconcile bench-lag bench-scale stack-up stack-down stack-health tools lint fuzz chaos

## run: the demo on the embedded default: local stack, worker, replication of samples.
run:
	bash deploy/local/run.sh

## test: everything, integration tests on real servers included (what CI runs).
test:
	bash deploy/local/test.sh

## bench: every benchmark case (DESIGN section 9): transfers, the no-op reconcile, the watch lag (deploy/bench/*.md).
bench: bench-transfers bench-reconcile bench-lag

## bench-transfers: one 1 GiB file, 2000 x 16 KiB and 200 x 8 MiB beside rclone and the SDK limit (deploy/bench/transfers.md).
bench-transfers:
	bash deploy/bench/transfers.sh

## bench-reconcile: no-op reconcile of 20,000 files beside rclone (deploy/bench/reconcile.md).
bench-reconcile:
	bash deploy/bench/reconcile.sh

## bench-lag: lag from a file's write to its last destination at steady rates under worker --watch (deploy/bench/lag.md).
bench-lag:
	bash deploy/bench/lag.sh

## bench-scale: 10,000 to 1,000,000 files of 1 KiB to MinIO and a directory, beside rclone (hours at a million); writes deploy/bench/scale.md.
bench-scale:
	bash deploy/bench/scale.sh

## unit: the fast tests that need no server.
unit:
	go test ./...

tools:
	bash deploy/local/install.sh

stack-up: tools
	bash deploy/local/start.sh

stack-down:
	-[ -f .stack/run/worker.pid ] && kill $$(cat .stack/run/worker.pid) 2>/dev/null; rm -f .stack/run/worker.pid
	bash deploy/local/stop.sh

stack-health:
	bash deploy/local/health.sh

## fuzz: every fuzz target (policy parser, key and driver name rules, key lists, the reconcile and bidirectional merges, event payloads) for FUZZTIME each (default 60s).
fuzz:
	bash deploy/local/fuzz.sh

## chaos: the fault suite at full length on a stack of its own (workers killed, emulators frozen and restarted, Temporal restarted, buckets removed, disks full, a 5.5 GiB file); writes deploy/chaos/results.md.
chaos:
	bash deploy/local/chaos.sh

## lint: gofmt, go vet, and shellcheck on every deploy/**/*.sh (fails when shellcheck is missing).
lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	go vet -tags integration ./...
	@command -v shellcheck >/dev/null || { echo "lint: shellcheck is not installed, so the scripts under deploy/ cannot be checked: apt-get install shellcheck (Debian, Ubuntu) or brew install shellcheck" >&2; exit 1; }
	find deploy -name '*.sh' -exec shellcheck -x -P SCRIPTDIR {} +
