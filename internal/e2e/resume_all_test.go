//go:build integration

package e2e

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"

	"github.com/cloudrepl/replicator/internal/wire"
)

// uploadsInHeartbeats counts the pending activities of a workflow whose last
// heartbeat, as the Temporal server holds it, names an upload: what a retry would
// be handed. The SDK throttles heartbeats (the details of the latest are sent at
// the end of an interval of 0.8 times the heartbeat timeout), so a state reported
// just before a crash may never reach the server; tests wait for it before killing.
func uploadsInHeartbeats(t *testing.T, workflowID string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := temporalClient(t).DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return 0 // not started yet
	}
	n := 0
	for _, a := range d.GetPendingActivities() {
		if a.GetHeartbeatDetails() == nil {
			continue
		}
		var p wire.Progress
		if converter.GetDefaultDataConverter().FromPayloads(a.GetHeartbeatDetails(), &p) == nil && p.Resume.UploadID != "" {
			n++
		}
	}
	return n
}

// sentBytes reads the worker's replicator_backend_sent_bytes_total: store → bytes.
func sentBytes(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	out := map[string]float64{}
	const name = `replicator_backend_sent_bytes_total{store="`
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
		storeName, value, _ := strings.Cut(rest, `"} `)
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		must(t, err)
		out[storeName] = v
	}
	return out
}

// TestWorkerKilledMidUploadResumesEverywhere kills the worker with SIGKILL while a
// 512 MiB file is on its way to S3, GCS and Azure at once; a new worker finishes
// each upload from what the server already holds (S3 parts, the GCS session,
// Azure's uncommitted blocks). Over both workers, each store is sent less than the
// file plus two of its parts (what was in flight at the kill, and slack for the
// part cut short), and every replica reads back with the file's SHA-256.
//
// The killed worker's count is its last scrape, taken just before the kill: bytes
// sent in between (a part at most) are not counted, which can only make a store
// look cheaper by that much; the bound leaves no room for a second full pass.
func TestWorkerKilledMidUploadResumesEverywhere(t *testing.T) {
	const size = 512 << 20
	// Part sizes are the drivers' defaults (S3 8 MiB, Azure 16 MiB, GCS 32 MiB,
	// which keeps fake-gcs-server's rehash of the object at every chunk to 16
	// passes). 25 MiB/s per destination makes a pass take about 20 s, so that the
	// kill lands mid-upload, after a heartbeat has carried each upload's state.
	parts := map[string]float64{"s3": 8 << 20, "gcs": 32 << 20, "azure": 16 << 20}
	w := newWorld(t, worldOptions{extra: "    limits: {bandwidth: 25MiB/s}\n"})
	key := "video/big.mov"
	sum := w.writeFile(key, randomBytes(size))
	first := w.startWorker()
	if _, code := w.starter("replicate", key); code != 0 {
		t.Fatal("trigger failed")
	}
	firstURL := first.metricsURL(t)
	// Kill once each upload has 192 MiB out and its state reached the server.
	var before map[string]float64
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("the uploads never got to 192 MiB each with their state in a heartbeat: sent %v", before)
		}
		time.Sleep(50 * time.Millisecond)
		ready := uploadsInHeartbeats(t, "replicate/"+w.policy+"/"+key) == len(parts)
		before = sentBytes(t, firstURL)
		for s := range parts {
			ready = ready && before[s] >= 192<<20
		}
		if ready {
			break
		}
	}
	first.kill()
	for s := range parts {
		if before[s] >= size {
			t.Fatalf("%s had sent %v bytes before the kill, the whole file: the kill did not land mid-upload", s, before[s])
		}
	}
	t.Logf("killed after sending %v", before)

	second := w.startWorker()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var res struct{ Outcome string }
	must(t, temporalClient(t).GetWorkflow(ctx, "replicate/"+w.policy+"/"+key, "").Get(ctx, &res))
	if res.Outcome != "ok" {
		t.Fatalf("outcome %s", res.Outcome)
	}
	after := sentBytes(t, second.metricsURL(t))
	for s, part := range parts {
		total := before[s] + after[s]
		t.Logf("%s: %.0f bytes before the kill, %.0f after, %.2f times the file", s, before[s], after[s], total/size)
		if limit := float64(size) + 2*part; total >= limit {
			t.Errorf("%s was sent %.0f bytes in all, not below the file plus two parts (%.0f): the retry did not resume", s, total, limit)
		}
		if got := readSHA(t, w.destination(s), key); got != sum {
			t.Errorf("%s replica reads back with SHA-256 %s, want %s", s, got, sum)
		}
	}
}
