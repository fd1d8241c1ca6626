#!/usr/bin/env bash
# Reports whether each part of the local stack answers on loopback.
# Usage: health.sh [--wait] [temporal|minio|gcs|azurite ...]   (--wait: up to 120 s)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
wait=0
if [[ "${1:-}" == --wait ]]; then wait=1; shift; fi

probe() {
	case $1 in
	temporal) "$TOOLS_BIN/temporal" operator cluster health --address "127.0.0.1:$TEMPORAL_PORT" 2>/dev/null | grep -q SERVING &&
		curl -fsS -o /dev/null "http://127.0.0.1:$TEMPORAL_UI_PORT/" ;;
	minio) curl -fsS -o /dev/null "http://127.0.0.1:$MINIO_PORT/minio/health/ready" ;;
	gcs) curl -fsS -o /dev/null "http://127.0.0.1:$GCS_PORT/storage/v1/b?project=health" ;;
	azurite) # Any HTTP answer (403 without a signature) means the blob service is up.
		[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$AZURITE_PORT/$AZURITE_ACCOUNT?comp=list") != 000 ]] ;;
	*) echo "health: unknown part $1" >&2; return 2 ;;
	esac
}
where() {
	case $1 in
	temporal) echo "127.0.0.1:$TEMPORAL_PORT, Web UI http://127.0.0.1:$TEMPORAL_UI_PORT" ;;
	minio) echo "http://127.0.0.1:$MINIO_PORT" ;;
	gcs) echo "http://127.0.0.1:$GCS_PORT" ;;
	azurite) echo "http://127.0.0.1:$AZURITE_PORT/$AZURITE_ACCOUNT" ;;
	esac
}

status=0
parts=("$@")
((${#parts[@]})) || parts=(temporal minio gcs azurite)
for part in "${parts[@]}"; do
	deadline=$((SECONDS + 120))
	until probe "$part"; do
		if ((!wait || SECONDS >= deadline)); then
			echo "health: $part NOT healthy at $(where "$part") (log: $STACK_DIR/logs/$part.log)"
			[[ -f "$STACK_DIR/logs/$part.log" ]] && tail -5 "$STACK_DIR/logs/$part.log" | sed 's/^/    /'
			status=1
			continue 2
		fi
		sleep 0.5
	done
	echo "health: $part healthy at $(where "$part")"
done
exit $status
