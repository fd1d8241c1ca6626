# shellcheck shell=bash
# The variables are used by the scripts that source this file, which shellcheck
# checks one at a time.
# shellcheck disable=SC2034

# Pinned versions of the local stack (DESIGN section 8) and where they live.
# Sourced by the other scripts in this folder.
TEMPORAL_CLI_VERSION=v1.5.1
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
FAKE_GCS_VERSION=v1.56.1
RCLONE_VERSION=v1.76.0
AZURITE_VERSION=3.35.0
WORKFLOWCHECK_VERSION=v0.6.0
# promtool checks and unit-tests the Prometheus alert rules (deploy/observability).
PROMTOOL_VERSION=v0.316.0
# helm renders and lints the worker's chart (deploy/helm).
HELM_VERSION=v4.3.2

# Built tools are kept outside the clone so that fresh clones (CI) reuse them.
TOOLS_DIR=${REPLICATOR_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/replicator-tools}
TOOLS_BIN=$TOOLS_DIR/bin

# Where the running stack keeps data, logs and pid files, and its loopback ports.
STACK_DIR=${REPLICATOR_STACK_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.stack}
TEMPORAL_PORT=${REPLICATOR_TEMPORAL_PORT:-7233}
TEMPORAL_UI_PORT=${REPLICATOR_TEMPORAL_UI_PORT:-8233}
MINIO_PORT=${REPLICATOR_MINIO_PORT:-9000}
MINIO_CONSOLE_PORT=${REPLICATOR_MINIO_CONSOLE_PORT:-9001}
GCS_PORT=${REPLICATOR_GCS_PORT:-4443}
AZURITE_PORT=${REPLICATOR_AZURITE_PORT:-10000}
# Where a worker started with --events-addr takes notifications; MinIO's webhook target
# "replicator" posts there, with this secret (a local one, like MinIO's password).
EVENTS_PORT=${REPLICATOR_EVENTS_PORT:-9470}
EVENTS_SECRET=${REPLICATOR_EVENTS_SECRET:-replicator-local-events-secret}
MINIO_USER=replicator
MINIO_PASSWORD=${REPLICATOR_MINIO_PASSWORD:-replicator-local-secret}
# MinIO's built-in KMS key (the static-key KMS: one named key), so that SSE-S3 and
# SSE-KMS can be tested; its secret is generated per stack and kept under its
# directory (an object encrypted under it is unreadable without it).
MINIO_KMS_KEY_ID=replicator-key
# Azurite's published development account (not a secret: it is in Azure's docs).
AZURITE_ACCOUNT=devstoreaccount1
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
# Custom search attributes the workflows use (DESIGN section 7a).
SEARCH_ATTRIBUTES=(ReplicationPolicy=Keyword ReplicationKey=Keyword ReplicationOutcome=Keyword ReplicationBytes=Int ReplicationConflicts=Int)
