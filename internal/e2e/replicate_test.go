//go:build integration

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/wire"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudrepl/replicator/internal/store"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func TestFileReplicatedToAllThree(t *testing.T) {
	w := newWorld(t, worldOptions{})
	wk := w.startWorker()
	small := w.writeFile("docs/invoice 1.pdf", randomBytes(1000))
	large := w.writeFile("media/big.bin", randomBytes(40<<20)) // above every driver's single-request threshold
	res, code := w.replicateWait("docs/invoice 1.pdf", "media/big.bin")
	if code != 0 || len(res) != 2 {
		t.Fatalf("exit %d, results %+v", code, res)
	}
	for _, r := range res {
		if r.Outcome != "ok" || len(r.Destinations) != 3 {
			t.Fatalf("result %+v", r)
		}
	}
	for _, d := range []string{"s3", "gcs", "azure"} {
		s := w.destination(d)
		for key, want := range map[string]string{"docs/invoice 1.pdf": small, "media/big.bin": large} {
			if got := readSHA(t, s, key); got != want {
				t.Errorf("%s %s: read back SHA-256 %s, want %s", d, key, got, want)
			}
			a, err := s.Stat(context.Background(), key)
			must(t, err)
			if a.SHA256 != want || a.SourceVersion == "" {
				t.Errorf("%s %s: metadata %+v lacks the SHA-256 or source version", d, key, a)
			}
		}
		if a, _ := s.Stat(context.Background(), "docs/invoice 1.pdf"); a.ContentType != "application/pdf" {
			t.Errorf("%s: content type %q, want application/pdf", d, a.ContentType)
		}
	}
	recordHistory(t, "replicate/"+w.policy+"/media/big.bin", "replicate_file_eventual")
	checkMetrics(t, wk.metricsURL(t), w.policy)
	// Running again moves no bytes.
	res, code = w.replicateWait("docs/invoice 1.pdf")
	if code != 0 || res[0].Outcome != "skipped" {
		t.Fatalf("second run: exit %d, %+v", code, res)
	}
}

// checkMetrics reads the worker's /metrics and /healthz after a replication of 40 MiB
// and 1000 bytes to each destination.
func checkMetrics(t *testing.T, base, policy string) {
	t.Helper()
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d %s", code, body)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	// The lag is per key, once the last destination holds it: two keys.
	if !strings.Contains(body, fmt.Sprintf(`replicator_lag_seconds_count{policy=%q} 2`, policy)) {
		t.Errorf("/metrics lacks the lag of the two keys")
	}
	for _, d := range []string{"s3", "gcs", "azure"} {
		want := fmt.Sprintf(`replicator_bytes_total{destination=%q,policy=%q} %s`, d, policy, strconv.FormatFloat(40<<20+1000, 'g', -1, 64))
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
		if !strings.Contains(body, fmt.Sprintf(`replicator_objects_total{destination=%q,policy=%q,result="copied"} 2`, d, policy)) {
			t.Errorf("/metrics lacks 2 copied objects for %s", d)
		}
	}
	if !strings.Contains(body, "temporal_") {
		t.Error("/metrics lacks the Temporal SDK's metrics")
	}
}

// writeAWSProfiles writes shared AWS files with a good and a refused profile.
func writeAWSProfiles(t *testing.T, w *world) {
	creds := filepath.Join(w.dir, "aws-credentials")
	must(t, os.WriteFile(creds, []byte("[good]\naws_access_key_id = "+os.Getenv("AWS_ACCESS_KEY_ID")+"\naws_secret_access_key = "+os.Getenv("AWS_SECRET_ACCESS_KEY")+
		"\n[refused]\naws_access_key_id = AKIDREFUSED\naws_secret_access_key = refused-secret-e2e\n"), 0o600))
	w.extraEnv = append(w.extraEnv, "AWS_SHARED_CREDENTIALS_FILE="+creds, "AWS_CONFIG_FILE="+filepath.Join(w.dir, "aws-config"))
}

func TestAtomicPermanentFailureLeavesFinalKeysAndNoStage(t *testing.T) {
	w := newWorld(t, worldOptions{consistency: "atomic"})
	key := "contracts/c.bin"
	w.writeFile(key, randomBytes(30<<20))
	wk := w.startWorker()
	if res, code := w.replicateWait(key); code != 0 || res[0].Outcome != "ok" {
		t.Fatalf("first version: exit %d %+v", code, res)
	}
	recordHistory(t, "replicate/"+w.policy+"/"+key, "replicate_file_atomic")
	wk.stop(t)
	before := map[string]string{}
	for _, d := range []string{"s3", "gcs", "azure"} {
		a, err := w.destination(d).Stat(context.Background(), key)
		must(t, err)
		before[d] = a.ETag
	}

	// Second version; Azure now refuses the worker's credentials.
	w.writeFile(key, randomBytes(30<<20))
	bad := strings.Replace(os.Getenv("AZURE_STORAGE_CONNECTION_STRING"), "AccountKey=", "AccountKey=AAAA", 1)
	w.extraEnv = append(w.extraEnv, "AZURE_REFUSED_CONN="+bad)
	cfg, err := os.ReadFile(w.configPath)
	must(t, err)
	must(t, os.WriteFile(w.configPath, bytes.Replace(cfg, []byte("azure_connection_string_env: AZURE_STORAGE_CONNECTION_STRING"), []byte("azure_connection_string_env: AZURE_REFUSED_CONN"), 1), 0o644))
	w.startWorker()
	res, code := w.replicateWait(key)
	if code != 1 || res[0].Outcome != "compensated" || res[0].outcome("azure") != "failed" {
		out, _ := w.starter("status", "replicate/"+w.policy+"/"+key, "--json")
		t.Fatalf("exit %d, %+v; want exit 1 and outcome compensated\n%s", code, res, out)
	}
	for _, d := range []string{"s3", "gcs", "azure"} {
		s := w.destination(d)
		a, err := s.Stat(context.Background(), key)
		must(t, err)
		if a.ETag != before[d] {
			t.Errorf("%s: final key changed from %s to %s", d, before[d], a.ETag)
		}
		for _, k := range listAll(t, s) {
			if strings.HasPrefix(k, store.InternalPrefix+"staging/") {
				t.Errorf("%s: staged object %s left behind", d, k)
			}
		}
	}
	// MinIO lists the uploads of one exact key: ask for the stage of this version.
	stage := w.prefix + "/" + wire.StagingKey(key, res[0].Version)
	ups, err := s3Client(t).ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(s3Bucket), Prefix: aws.String(stage)})
	must(t, err)
	if len(ups.Uploads) != 0 {
		t.Errorf("open multipart uploads left: %+v", ups.Uploads)
	}
	recordHistory(t, "replicate/"+w.policy+"/"+key, "replicate_file_atomic_compensated")
	out, code := w.starter("failed", "list", "--json")
	if code != 0 || !strings.Contains(out, `"destination": "azure"`) {
		t.Errorf("dead letter of azure not listed (exit %d):\n%s", code, out)
	}
}

func TestEventualPermanentFailureIsADeadLetter(t *testing.T) {
	w := newWorld(t, worldOptions{s3Profile: "refused"})
	writeAWSProfiles(t, w)
	key := "photos/p.jpg"
	sum := w.writeFile(key, randomBytes(5000))
	wk := w.startWorker()
	res, code := w.replicateWait(key)
	if code != 1 || res[0].Outcome != "partial" || res[0].outcome("s3") != "failed" || res[0].outcome("gcs") != "copied" || res[0].outcome("azure") != "copied" {
		t.Fatalf("exit %d, %+v; want partial with s3 failed", code, res)
	}
	for _, d := range []string{"gcs", "azure"} {
		if got := readSHA(t, w.destination(d), key); got != sum {
			t.Errorf("%s holds %s, want %s", d, got, sum)
		}
	}
	if _, err := w.destination("s3").Stat(context.Background(), key); !store.IsNotFound(err) {
		t.Errorf("s3 should not hold the key: %v", err)
	}
	recordHistory(t, "replicate/"+w.policy+"/"+key, "replicate_file_eventual_dead_letter")
	out, code := w.starter("failed", "list", "--json")
	var dls []struct{ Key, Destination, Class string }
	must(t, json.Unmarshal([]byte(out), &dls))
	if code != 0 || len(dls) != 1 || dls[0].Destination != "s3" || dls[0].Key != key || dls[0].Class != "Permission" {
		t.Fatalf("dead letters %+v (exit %d)", dls, code)
	}
	resp, err := http.Get(wk.metricsURL(t) + "/metrics")
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`replicator_dead_letters{destination="s3",policy=%q} 1`, w.policy); !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s", want)
	}

	// The operator fixes the credentials and retries: the dead letter clears.
	wk.stop(t)
	cfg, _ := os.ReadFile(w.configPath)
	must(t, os.WriteFile(w.configPath, bytes.Replace(cfg, []byte("aws_profile: refused"), []byte("aws_profile: good"), 1), 0o644))
	w.startWorker()
	if _, code := w.starter("failed", "retry", "--wait", "--json"); code != 0 {
		t.Fatalf("retry exit %d", code)
	}
	if got := readSHA(t, w.destination("s3"), key); got != sum {
		t.Errorf("s3 after retry holds %s", got)
	}
	out, _ = w.starter("failed", "list", "--json")
	if strings.TrimSpace(out) != "[]" {
		t.Errorf("dead letter not cleared: %s", out)
	}
}

func TestConcurrentTriggersWriteOnce(t *testing.T) {
	w := newWorld(t, worldOptions{s3Bucket: s3VersionedBucket})
	w.startWorker()
	key := "hot/key.txt"
	w.writeFile(key, randomBytes(2000))
	trigger := func() {
		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, code := w.starter("replicate", key); code != 0 {
					t.Errorf("trigger exit %d", code)
				}
			}()
		}
		wg.Wait()
		// Wait for the coalesced workflow to finish.
		c := temporalClient(t)
		var r any
		_ = c.GetWorkflow(context.Background(), "replicate/"+w.policy+"/"+key, "").Get(context.Background(), &r)
	}
	trigger()
	versions := func() int {
		out, err := s3Client(t).ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String(s3VersionedBucket), Prefix: aws.String(w.prefix + "/" + key)})
		must(t, err)
		return len(out.Versions)
	}
	if n := versions(); n != 1 {
		t.Fatalf("%d versions in the versioned bucket after 10 triggers, want 1", n)
	}
	gcsA, err := w.destination("gcs").Stat(context.Background(), key)
	must(t, err)
	azA, err := w.destination("azure").Stat(context.Background(), key)
	must(t, err)
	trigger()
	if n := versions(); n != 1 {
		t.Fatalf("%d versions after 10 more triggers, want 1", n)
	}
	gcsB, _ := w.destination("gcs").Stat(context.Background(), key)
	azB, _ := w.destination("azure").Stat(context.Background(), key)
	if gcsA.ETag != gcsB.ETag || azA.ETag != azB.ETag {
		t.Fatalf("a re-trigger rewrote: gcs generation %s→%s, azure etag %s→%s", gcsA.ETag, gcsB.ETag, azA.ETag, azB.ETag)
	}
}

// A file restored from backup (cp -p, rsync -t, a snapshot restore) has older
// content and an older mtime, but a new change time: it is a different state of the
// source, and it must reach every cloud (DESIGN section 4, the version guard orders by
// the change time, never the mtime alone).
func TestRestoredOlderFileReplicates(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.startWorker()
	key := "prices.csv"
	w.writeFile(key, []byte("version 2: newer\n"))
	now := time.Now()
	must(t, os.Chtimes(filepath.Join(w.src, key), now, now))
	if res, code := w.replicateWait(key); code != 0 || res[0].Outcome != "ok" {
		t.Fatalf("newer: exit %d %+v", code, res)
	}
	restored := w.writeFile(key, []byte("version 1: restored from last year's backup\n"))
	old := now.Add(-365 * 24 * time.Hour)
	must(t, os.Chtimes(filepath.Join(w.src, key), old, old))
	res, code := w.replicateWait(key)
	if code != 0 {
		t.Fatalf("restored: exit %d %+v", code, res)
	}
	for _, d := range []string{"s3", "gcs", "azure"} {
		if res[0].outcome(d) != "copied" {
			t.Errorf("%s outcome %q, want copied", d, res[0].outcome(d))
		}
		if got := readSHA(t, w.destination(d), key); got != restored {
			t.Errorf("%s does not hold the restored version", d)
		}
	}
}

func TestMissingSourceInMirrorModeDeletes(t *testing.T) {
	w := newWorld(t, worldOptions{mode: "mirror"})
	w.startWorker()
	key := "gone/soon.txt"
	w.writeFile(key, []byte("short-lived"))
	w.writeFile("stays.txt", []byte("keeps the source present")) // an empty source deletes nothing
	if _, code := w.replicateWait(key); code != 0 {
		t.Fatal("first replication failed")
	}
	must(t, os.Remove(filepath.Join(w.src, key)))
	res, code := w.replicateWait(key)
	if code != 0 || res[0].Outcome != "ok" {
		t.Fatalf("exit %d, %+v", code, res)
	}
	recordHistory(t, "replicate/"+w.policy+"/"+key, "replicate_file_mirror_delete")
	for _, d := range []string{"s3", "gcs", "azure"} {
		if _, err := w.destination(d).Stat(context.Background(), key); !store.IsNotFound(err) {
			t.Errorf("%s still holds the deleted key: %v", d, err)
		}
	}
}

func TestBatchOfSmallFiles(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.startWorker()
	var keys []string
	for i := range 300 {
		k := filepathKey(i)
		w.writeFile(k, randomBytes(512))
		keys = append(keys, k)
	}
	list := filepath.Join(w.dir, "keys.txt")
	must(t, os.WriteFile(list, []byte(strings.Join(keys, "\n")+"\n"), 0o644))
	out, code := w.starter("batch", list, "--wait", "--json", "--id", "b1", "--pages-per-run", "2")
	if code != 0 {
		t.Fatalf("batch exit %d: %s", code, out)
	}
	recordHistory(t, "batch/"+w.policy+"/b1", "replicate_batch")
	var res struct {
		Summary struct {
			Keys         int
			Runs         int
			Destinations []struct {
				Destination string
				Copied      int
				Failed      int
			}
		}
	}
	must(t, json.Unmarshal([]byte(out), &res))
	if res.Summary.Keys != 300 || len(res.Summary.Destinations) != 3 || res.Summary.Runs != 2 {
		t.Fatalf("summary %+v", res.Summary)
	}
	for _, d := range []string{"s3", "gcs", "azure"} {
		got := listAll(t, w.destination(d))
		got = slices.DeleteFunc(got, func(k string) bool { return strings.HasPrefix(k, store.InternalPrefix) })
		sorted := slices.Clone(keys)
		slices.Sort(sorted)
		if !slices.Equal(got, sorted) {
			t.Errorf("%s holds %d keys, want %d", d, len(got), len(keys))
		}
	}
}

func filepathKey(i int) string {
	return "batch/" + string(rune('a'+i%26)) + "/file-" + strings.Repeat("0", 3-len(itoa(i))) + itoa(i) + ".dat"
}

func itoa(i int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
		if i == 0 {
			return string(b)
		}
	}
}

// TestDedicatedQueuePerDestination routes Azure's activities to replication-azure,
// as the history on the server shows.
func TestDedicatedQueuePerDestination(t *testing.T) {
	w := newWorld(t, worldOptions{azureDedicated: true})
	w.startWorker()
	key := "q/file.txt"
	w.writeFile(key, []byte("queued"))
	if res, code := w.replicateWait(key); code != 0 || res[0].Outcome != "ok" {
		t.Fatalf("exit %d %+v", code, res)
	}
	queues := map[string]string{}
	for _, e := range history(t, "replicate/"+w.policy+"/"+key).Events {
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "Transfer" {
			var in struct{ Destination string }
			must(t, json.Unmarshal(a.GetInput().GetPayloads()[0].GetData(), &in))
			queues[in.Destination] = a.GetTaskQueue().GetName()
		}
	}
	want := map[string]string{"s3": "replication", "gcs": "replication", "azure": "replication-azure"}
	for d, q := range want {
		if queues[d] != q {
			t.Errorf("%s transfer ran on task queue %q, want %q", d, queues[d], q)
		}
	}
}
