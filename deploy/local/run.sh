#!/usr/bin/env bash
# The README's main command: installs (cached) and starts the local stack, builds the
# worker and the starter, prepares a demo policy over sample files, starts a worker
# in the background and replicates the samples to MinIO, fake-gcs-server and
# Azurite, then says where to look.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

bash deploy/local/install.sh
bash deploy/local/start.sh
. deploy/local/env.sh
bin=$STACK_DIR/bin
mkdir -p "$bin"
# --version of both binaries names the commit they were built from (and -dirty for
# uncommitted changes), so a report from a demo run says what it ran.
version=$(git describe --always --dirty 2>/dev/null || echo devel)
ldflags="-X github.com/cloudrepl/replicator/internal/version.Version=$version"
go build -ldflags "$ldflags" -o "$bin/worker" ./worker
go build -ldflags "$ldflags" -o "$bin/starter" ./starter
go run ./deploy/local/demo --dir "$STACK_DIR/demo"
export REPLICATOR_CONFIG=$STACK_DIR/demo/replicator.yaml

# One demo worker at a time.
if [[ -f "$STACK_DIR/run/worker.pid" ]]; then
	kill "$(cat "$STACK_DIR/run/worker.pid")" 2>/dev/null || true
	sleep 1
fi
setsid "$bin/worker" --metrics-addr 127.0.0.1:9464 >"$STACK_DIR/logs/worker.log" 2>&1 </dev/null &
echo $! >"$STACK_DIR/run/worker.pid"
for _ in $(seq 60); do
	curl -fsS -o /dev/null http://127.0.0.1:9464/healthz 2>/dev/null && break
	sleep 0.5
done
curl -fsS -o /dev/null http://127.0.0.1:9464/healthz || { echo "run: the worker did not become healthy; see $STACK_DIR/logs/worker.log" >&2; tail -20 "$STACK_DIR/logs/worker.log" >&2; exit 1; }
echo "run: worker healthy (log $STACK_DIR/logs/worker.log, metrics http://127.0.0.1:9464/metrics)"

echo
echo "run: replicating one video and one invoice, each as its own ReplicateFile workflow"
"$bin/starter" replicate --wait video/launch.mp4 invoices/2026/01/invoice-0000.pdf
echo
echo "run: replicating all samples as one ReplicateBatch (already copied files are skipped)"
"$bin/starter" batch --wait --id "demo-$(date +%H%M%S)" "$STACK_DIR/demo/keys.txt" || true
echo
echo "run: reconciling the demo policy (source, manifests and the three listings merged; what differs is repaired)"
"$bin/starter" reconcile --wait || true
echo
echo "run: scheduling that reconcile every 5 minutes (Temporal Schedule reconcile/demo)"
"$bin/starter" schedule create 2>/dev/null || "$bin/starter" schedule update
echo
"$bin/starter" status --policy demo --limit 5
cat <<EOM

Where to look:
  Temporal Web UI:  http://127.0.0.1:$TEMPORAL_UI_PORT/namespaces/default/workflows?query=ReplicationPolicy%3D%22demo%22
  Worker metrics:   http://127.0.0.1:9464/metrics
  The replicas:     MinIO $REPLICATOR_S3_ENDPOINT (bucket demo), fake-gcs-server http://$STORAGE_EMULATOR_HOST (bucket demo),
                    Azurite $REPLICATOR_AZURE_ENDPOINT (container demo), each under replica/
  Try:              export REPLICATOR_CONFIG=$REPLICATOR_CONFIG; eval "\$(deploy/local/env.sh)"
                    $bin/starter replicate --wait images/products/sku-001.jpg
                    $bin/starter failed list
                    $bin/starter reconcile --dry-run; $bin/starter schedule describe
  Stop everything:  make stack-down
EOM
