#!/usr/bin/env bash
# Stops the parts of the local stack that start.sh started. Data stays in $STACK_DIR.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
parts=("$@")
((${#parts[@]})) || parts=(temporal minio gcs azurite)
for part in "${parts[@]}"; do
	pidfile="$STACK_DIR/run/$part.pid"
	[[ -f "$pidfile" ]] || continue
	pid=$(cat "$pidfile")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		kill -KILL -- "-$pid" 2>/dev/null || true
		echo "stop: $part stopped"
	fi
	rm -f "$pidfile"
done
