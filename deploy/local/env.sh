#!/usr/bin/env bash
# Prints (or, when sourced, sets) the environment that points the project's clients
# at the local stack: `eval "$(deploy/local/env.sh)"` or `. deploy/local/env.sh`.
_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$_here/versions.sh"
_vars=(
	"TEMPORAL_ADDRESS=127.0.0.1:$TEMPORAL_PORT"
	"TEMPORAL_NAMESPACE=default"
	"REPLICATOR_S3_ENDPOINT=http://127.0.0.1:$MINIO_PORT"
	"AWS_ACCESS_KEY_ID=$MINIO_USER"
	"AWS_SECRET_ACCESS_KEY=$MINIO_PASSWORD"
	"AWS_REGION=us-east-1"
	"STORAGE_EMULATOR_HOST=127.0.0.1:$GCS_PORT"
	"REPLICATOR_AZURE_ENDPOINT=http://127.0.0.1:$AZURITE_PORT/$AZURITE_ACCOUNT"
	"AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=http;AccountName=$AZURITE_ACCOUNT;AccountKey=$AZURITE_KEY;BlobEndpoint=http://127.0.0.1:$AZURITE_PORT/$AZURITE_ACCOUNT;"
	"REPLICATOR_TOOLS_BIN=$TOOLS_BIN"
	"REPLICATOR_STACK_DIR=$STACK_DIR"
	# Where MinIO's webhook posts: give it to one worker as --events-addr.
	"REPLICATOR_LOCAL_EVENTS_ADDR=127.0.0.1:$EVENTS_PORT"
	"REPLICATOR_EVENTS_SECRET=$EVENTS_SECRET"
	# The key of MinIO's built-in KMS, for destinations with sse: aws:kms.
	"REPLICATOR_MINIO_KMS_KEY_ID=$MINIO_KMS_KEY_ID"
)
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	for v in "${_vars[@]}"; do printf 'export %q\n' "$v"; done
else
	# Each entry is NAME=value: export takes it whole, as intended.
	# shellcheck disable=SC2163
	for v in "${_vars[@]}"; do export "$v"; done
fi
unset _here _vars
