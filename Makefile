# The two commands of the README are `make run` and `make test`.
SHELL := /bin/bash

.PHONY: run test unit stack-up stack-down stack-health tools lint

## run: install the local stack (cached), start it on 127.0.0.1 and report each part.
run: tools
	bash deploy/local/start.sh
	@echo
	@echo "Local stack is up. Temporal Web UI: http://127.0.0.1:$${REPLICATOR_TEMPORAL_UI_PORT:-8233}"
	@echo "Environment for the clients: eval \"\$$(deploy/local/env.sh)\"; stop with: make stack-down"

## test: everything, integration tests on real servers included (what CI runs).
test:
	bash deploy/local/test.sh

## unit: the fast tests that need no server.
unit:
	go test ./...

tools:
	bash deploy/local/install.sh

stack-up: tools
	bash deploy/local/start.sh

stack-down:
	bash deploy/local/stop.sh

stack-health:
	bash deploy/local/health.sh

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	go vet -tags integration ./...
