#!/usr/bin/env bash
# Starts the local stack on 127.0.0.1: Temporal dev server (with Web UI and the
# project's search attributes), MinIO, fake-gcs-server and Azurite, with all their data
# under one folder ($STACK_DIR). Parts already running and healthy are left alone.
# Usage: start.sh [temporal|minio|gcs|azurite ...]   (default: all)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
mkdir -p "$STACK_DIR/logs" "$STACK_DIR/run"

running() { [[ -f "$STACK_DIR/run/$1.pid" ]] && kill -0 "$(cat "$STACK_DIR/run/$1.pid")" 2>/dev/null; }

# launch NAME CMD...: starts CMD in its own process group, logging under $STACK_DIR/logs.
launch() {
	local name=$1
	shift
	if running "$name" && "$here/health.sh" "$name" >/dev/null 2>&1; then
		echo "start: $name already running"
		return 0
	fi
	[[ -x "$1" ]] || { echo "start: $1 is missing: run deploy/local/install.sh first" >&2; exit 1; }
	setsid "$@" >"$STACK_DIR/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$STACK_DIR/run/$name.pid"
	echo "start: $name (pid $!, log $STACK_DIR/logs/$name.log)"
}

wanted=("$@")
((${#wanted[@]})) || wanted=(temporal minio gcs azurite)
for part in "${wanted[@]}"; do
	case $part in
	temporal)
		mkdir -p "$STACK_DIR/temporal"
		sa=()
		for a in "${SEARCH_ATTRIBUTES[@]}"; do sa+=(--search-attribute "$a"); done
		launch temporal "$TOOLS_BIN/temporal" server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" \
			--ui-port "$TEMPORAL_UI_PORT" --db-filename "$STACK_DIR/temporal/temporal.db" --log-level warn "${sa[@]}"
		;;
	minio)
		mkdir -p "$STACK_DIR/minio" "$STACK_DIR/minio-events"
		if [[ ! -s "$STACK_DIR/minio-kms-key" ]]; then
			(umask 077 && head -c 32 /dev/urandom | base64 >"$STACK_DIR/minio-kms-key")
		fi
		# The webhook target "replicator" (ARN arn:minio:sqs::replicator:webhook) posts
		# bucket notifications to a worker's --events-addr; its queue directory keeps
		# them while no worker listens.
		MINIO_ROOT_USER=$MINIO_USER MINIO_ROOT_PASSWORD=$MINIO_PASSWORD MINIO_BROWSER=off MINIO_UPDATE=off \
			MINIO_NOTIFY_WEBHOOK_ENABLE_REPLICATOR=on \
			MINIO_NOTIFY_WEBHOOK_ENDPOINT_REPLICATOR="http://127.0.0.1:$EVENTS_PORT/events/s3" \
			MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_REPLICATOR="Bearer $EVENTS_SECRET" \
			MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_REPLICATOR="$STACK_DIR/minio-events" \
			MINIO_KMS_SECRET_KEY="$MINIO_KMS_KEY_ID:$(cat "$STACK_DIR/minio-kms-key")" \
			launch minio "$TOOLS_BIN/minio" server --quiet --address "127.0.0.1:$MINIO_PORT" \
			--console-address "127.0.0.1:$MINIO_CONSOLE_PORT" "$STACK_DIR/minio"
		;;
	gcs)
		mkdir -p "$STACK_DIR/gcs"
		# Not its memory backend: it slows down with every object a bucket holds
		# (20,000 objects took more than twice as long as on the filesystem backend).
		launch gcs "$TOOLS_BIN/fake-gcs-server" -scheme http -host 127.0.0.1 -port "$GCS_PORT" \
			-public-host "127.0.0.1:$GCS_PORT" -backend filesystem -filesystem-root "$STACK_DIR/gcs" -log-level warn
		;;
	azurite)
		mkdir -p "$STACK_DIR/azurite"
		# Azurite's disk persistence costs ~25 ms per request here and serializes
		# them; stacks for tests and benchmarks keep data in memory instead.
		persist=(--location "$STACK_DIR/azurite")
		[[ "${REPLICATOR_EMULATORS_IN_MEMORY:-}" == 1 ]] && persist=(--inMemoryPersistence)
		# Deleted blobs' memory comes back only at Azurite's extent GC (every 10
		# minutes), so a benchmark that writes many GiB raises the cap (default: half
		# the machine's memory).
		if [[ "${REPLICATOR_EMULATORS_IN_MEMORY:-}" == 1 && -n "${REPLICATOR_AZURITE_MEMORY_MB:-}" ]]; then
			persist+=(--extentMemoryLimit "$REPLICATOR_AZURITE_MEMORY_MB")
		fi
		(cd "$STACK_DIR/azurite" && launch azurite "$TOOLS_DIR/azurite/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 \
			--blobPort "$AZURITE_PORT" "${persist[@]}" --skipApiVersionCheck --disableTelemetry --silent)
		;;
	*) echo "start: unknown part $part (known: temporal minio gcs azurite)" >&2; exit 2 ;;
	esac
done
"$here/health.sh" --wait "${wanted[@]}"
