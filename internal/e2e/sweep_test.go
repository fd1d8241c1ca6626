//go:build integration

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudrepl/replicator/internal/wire"
)

// TestCleanupRemovesWhatATerminatedRunLeft terminates an atomic run while it stages
// (GCS and Azure hold their stages, S3 an unfinished multipart upload, slowed by its
// bandwidth limit) and kills its worker; `starter cleanup` refuses a short grace
// period while the run is alive, and after it removes every stage and aborts the
// upload, which the servers confirm.
func TestCleanupRemovesWhatATerminatedRunLeft(t *testing.T) {
	w := newWorld(t, worldOptions{consistency: "atomic", s3Extra: "\n        limits: {bandwidth: 2MiB/s}"})
	key := "scans/big.bin"
	w.writeFile(key, randomBytes(40<<20))
	wk := w.startWorker()
	if out, code := w.starter("replicate", key); code != 0 {
		t.Fatalf("replicate: exit %d: %s", code, out)
	}
	staged := func(dest string) int {
		n := 0
		for _, k := range listAll(t, w.destination(dest)) {
			if strings.HasPrefix(k, wire.StagingPrefix) {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(2 * time.Minute)
	for staged("gcs") == 0 || staged("azure") == 0 || len(s3Uploads(t, w)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the run did not stage on GCS and Azure while S3 was uploading:\n%s", wk.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}

	id := wire.FileWorkflowID(w.policy, key)
	_, stderr, code := w.starterStreams("cleanup", "--older-than", "0s")
	if code != 2 || !strings.Contains(stderr, id) {
		t.Fatalf("cleanup --older-than 0s while %s runs: exit %d, want 2 naming the run: %s", id, code, stderr)
	}
	wk.kill()
	must(t, temporalClient(t).TerminateWorkflow(t.Context(), id, "", "e2e: a run that ends badly"))

	out, code := w.starter("cleanup", "--older-than", "0s", "--json")
	if code != 0 {
		t.Fatalf("cleanup: exit %d: %s", code, out)
	}
	var res struct{ Swept []wire.SweepReport }
	must(t, json.Unmarshal([]byte(out), &res))
	got := map[string]wire.SweepReport{}
	for _, r := range res.Swept {
		got[r.Destination] = r
	}
	if got["gcs"].Stages != 1 || got["azure"].Stages != 1 || got["s3"].Uploads != 1 {
		t.Errorf("cleanup removed %+v; want the stage on gcs and azure and the upload on s3", res.Swept)
	}
	for _, d := range []string{"s3", "gcs", "azure"} {
		for _, k := range listAll(t, w.destination(d)) {
			t.Errorf("%s still holds %s", d, k)
		}
	}
	if ups := s3Uploads(t, w); len(ups) > 0 {
		t.Errorf("unfinished uploads left on s3: %v", ups)
	}
}

// s3Uploads lists the unfinished multipart uploads under the world's S3 prefix (the
// whole bucket is listed: MinIO matches a prefix against whole key names only).
func s3Uploads(t *testing.T, w *world) []string {
	t.Helper()
	bucket := s3Bucket
	out, err := s3Client(t).ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: &bucket})
	must(t, err)
	var keys []string
	for _, u := range out.Uploads {
		if strings.HasPrefix(*u.Key, w.prefix+"/") {
			keys = append(keys, *u.Key)
		}
	}
	return keys
}
