#!/usr/bin/env bash
# Runs a command against a fresh local stack of its own: with-stack.sh NAME OFFSET CMD...
# installs the pinned servers (cached), starts them on 127.0.0.1 with ports shifted by
# OFFSET*10000 (so they never meet `make run`'s) and data under .stack/NAME, exports the
# clients' environment, runs CMD, and stops the stack whatever CMD did.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
name=$1 offset=$2
shift 2

export REPLICATOR_STACK_DIR=$repo/.stack/$name
export REPLICATOR_TEMPORAL_PORT=$((7233 + offset * 10000)) REPLICATOR_TEMPORAL_UI_PORT=$((8233 + offset * 10000))
export REPLICATOR_MINIO_PORT=$((9000 + offset * 10000)) REPLICATOR_MINIO_CONSOLE_PORT=$((9001 + offset * 10000))
export REPLICATOR_GCS_PORT=$((4443 + offset * 10000)) REPLICATOR_AZURITE_PORT=$((10000 + offset * 10000))
export REPLICATOR_EVENTS_PORT=$((9470 + offset * 10000))
# Azurite's data in memory: its disk persistence costs ~25 ms per request here and
# serializes requests.
export REPLICATOR_EMULATORS_IN_MEMORY=1
# A fresh S3 secret per run, so tests can prove it never reaches a workflow history.
REPLICATOR_MINIO_PASSWORD=secret-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
export REPLICATOR_MINIO_PASSWORD

start=$SECONDS
bash deploy/local/install.sh
echo "$name: tools ready after $((SECONDS - start)) s"
bash deploy/local/stop.sh >/dev/null 2>&1 || true
rm -rf "$REPLICATOR_STACK_DIR"
trap 'bash deploy/local/stop.sh >/dev/null 2>&1 || true' EXIT
bash deploy/local/start.sh
. deploy/local/env.sh
echo "$name: stack healthy after $((SECONDS - start)) s"
"$@"
echo "$name: done after $((SECONDS - start)) s"
