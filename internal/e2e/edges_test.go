//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestMirrorBatchOverUnmountedSourceDeletesNothing: a batch in mirror mode whose
// source was unmounted (an empty directory) deletes no replica: every delete goes
// through the guarded path, which refuses over an empty source.
func TestMirrorBatchOverUnmountedSourceDeletesNothing(t *testing.T) {
	w := newWorld(t, worldOptions{mode: "mirror"})
	w.startWorker()
	keys := []string{"a.pdf", "b/c.pdf", "b/d.pdf"}
	sums := map[string]string{}
	for _, k := range keys {
		sums[k] = w.writeFile(k, []byte("invoice "+k))
	}
	list := filepath.Join(w.dir, "keys.txt")
	must(t, os.WriteFile(list, []byte(strings.Join(keys, "\n")+"\n"), 0o644))
	if out, code := w.starter("batch", list, "--wait", "--json", "--id", "first"); code != 0 {
		t.Fatalf("first batch: exit %d %s", code, out)
	}
	// The share goes away: its mount point is an empty directory.
	must(t, os.RemoveAll(w.src))
	must(t, os.MkdirAll(w.src, 0o755))
	out, code := w.starter("batch", list, "--wait", "--json", "--id", "unmounted")
	if code != 1 {
		t.Fatalf("batch over an empty source: exit %d, want 1 (deletes refused): %s", code, out)
	}
	for _, d := range []string{"s3", "gcs", "azure"} {
		for k, sum := range sums {
			if got := readSHA(t, w.destination(d), k); got != sum {
				t.Errorf("%s lost %s over an unmounted source", d, k)
			}
		}
	}
	safety := 0
	for _, dl := range deadLetters(t, w) {
		if dl.Class == "Safety" && strings.Contains(dl.Message, "empty") {
			safety++
		}
	}
	if safety != 9 {
		t.Errorf("%d dead letters of class Safety, want 9 (three keys on three destinations)", safety)
	}
}

// TestBucketSourceKeyWithNewline: a bucket source may hold a key with a newline, which
// no key list line and no destination can carry: it is rejected by name, never split
// into two made-up keys, and the other keys replicate.
func TestBucketSourceKeyWithNewline(t *testing.T) {
	w := newWorld(t, worldOptions{mode: "mirror"})
	ctx := context.Background()
	c := s3Client(t)
	srcPrefix := w.prefix + "-source"
	put := func(key, body string) {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s3Bucket), Key: aws.String(srcPrefix + "/" + key), Body: bytes.NewReader([]byte(body))})
		must(t, err)
	}
	put("ok/report.csv", "a,b\n1,2\n")
	odd := "split\nhere.csv"
	put(odd, "a key with a newline")
	cfg, err := os.ReadFile(w.configPath)
	must(t, err)
	source := fmt.Sprintf("source: s3://%s/%s?region=us-east-1&endpoint=%s", s3Bucket, srcPrefix, os.Getenv("REPLICATOR_S3_ENDPOINT"))
	must(t, os.WriteFile(w.configPath, []byte(strings.Replace(string(cfg), "source: file://"+w.src, source, 1)), 0o644))
	w.startWorker()
	r, code := w.reconcile()
	if code != 0 {
		t.Fatalf("reconcile: exit %d %+v", code, r.Result)
	}
	for _, d := range []string{"s3", "gcs", "azure"} {
		keys := listAll(t, w.destination(d))
		if !slices.Contains(keys, "ok/report.csv") {
			t.Errorf("%s lacks ok/report.csv: %v", d, keys)
		}
		for _, k := range keys {
			if strings.HasPrefix(k, "split") || strings.HasPrefix(k, "here") {
				t.Errorf("%s holds %q: the newline key was split or copied", d, k)
			}
		}
	}
	found := 0
	for _, dl := range deadLetters(t, w) {
		if dl.Class == "Rejected" && strings.HasPrefix(dl.Message, strconv.Quote(odd)) {
			found++
		}
	}
	if found != 3 {
		t.Errorf("%d Rejected dead letters name %q, want one per destination", found, odd)
	}
}

// TestKey1000 (a short name: the destination prefix, made from it, counts against
// the 1,024-byte limit too) replicates a 65 MiB file whose key is 1,000 bytes
// through a batch, which gives large files a ReplicateFile workflow of their own: its
// workflow ID, "replicate/<policy>/<key>", would pass Temporal's 1,000-byte limit,
// so it ends in a hash of the key instead, and the file arrives everywhere.
func TestKey1000(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.startWorker()
	seg := strings.Repeat("s", 200)
	key := seg + "/" + seg + "/" + seg + "/" + seg + "/" + strings.Repeat("f", 192) + ".bin"
	if len(key) != 1000 {
		t.Fatalf("key is %d bytes", len(key))
	}
	sum := w.writeFile(key, randomBytes(65<<20))
	list := filepath.Join(w.dir, "keys.txt")
	must(t, os.WriteFile(list, []byte(key+"\n"), 0o644))
	out, code := w.starter("batch", list, "--wait", "--json", "--id", "long")
	if code != 0 {
		t.Fatalf("batch: exit %d %s", code, out)
	}
	var res struct{ Summary struct{ Large int } }
	must(t, json.Unmarshal([]byte(out), &res))
	if res.Summary.Large != 1 {
		t.Fatalf("the file did not go through its own workflow: %s", out)
	}
	for _, d := range []string{"s3", "gcs", "azure"} {
		if got := readSHA(t, w.destination(d), key); got != sum {
			t.Errorf("%s: %s, want %s", d, got, sum)
		}
	}
}

// TestNonASCIIKeyThroughItsOwnWorkflow: a key with non-ASCII characters gets a
// workflow of its own (its ID escaped to the printable ASCII a gRPC header carries)
// and arrives byte for byte, NFC and NFD forms of one name side by side.
func TestNonASCIIKeyThroughItsOwnWorkflow(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.startWorker()
	nfc, nfd := "résumés/café.pdf", "résumés/cafe\u0301.pdf"
	sums := map[string]string{nfc: w.writeFile(nfc, []byte("composed")), nfd: w.writeFile(nfd, []byte("decomposed"))}
	res, code := w.replicateWait(nfc, nfd)
	if code != 0 {
		t.Fatalf("exit %d %+v", code, res)
	}
	for _, d := range []string{"s3", "gcs", "azure"} {
		for k, sum := range sums {
			if got := readSHA(t, w.destination(d), k); got != sum {
				t.Errorf("%s: %q reads back %s, want %s", d, k, got, sum)
			}
		}
	}
}
