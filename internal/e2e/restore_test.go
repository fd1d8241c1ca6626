//go:build integration

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// restoreOutput is the JSON of `starter restore --wait --json`.
type restoreOutput struct {
	WorkflowID string `json:"workflow_id"`
	Result     struct {
		Outcome                               string
		Keys, Restored, Skipped, Left, Failed int
		LeftKeys                              []string
		Failures                              []string
	} `json:"result"`
}

func (w *world) restore(args ...string) (restoreOutput, int) {
	w.t.Helper()
	out, code := w.starter(append([]string{"restore", "--wait", "--json"}, args...)...)
	var r restoreOutput
	if code != 2 && json.Unmarshal([]byte(out), &r) != nil && code == 0 {
		w.t.Fatalf("restore output is not JSON: %s", out)
	}
	return r, code
}

// tree hashes every file under dir by its slash-separated path.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	must(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".replicator" {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		m[filepath.ToSlash(rel)] = sha(b)
		return nil
	}))
	return m
}

// emptyShare replaces the source with an empty directory: the share was lost and a
// new one mounted in its place.
func (w *world) emptyShare() {
	w.t.Helper()
	must(w.t, os.RemoveAll(w.src))
	must(w.t, os.MkdirAll(w.src, 0o755))
}

// TestRestoreRebuildsTheShareFromEachCloud deletes the source and restores it from
// each emulator in turn, comparing every file's SHA-256 with the original.
func TestRestoreRebuildsTheShareFromEachCloud(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.startWorker()
	big := make([]byte, 9<<20)
	_, _ = rand.Read(big)
	w.writeFile("media/big.bin", big)
	w.writeFile("invoices/2026/12/inv-001.pdf", []byte("%PDF invoice 1"))
	w.writeFile("invoices/2026/12/inv 002 é.pdf", []byte("%PDF invoice 2"))
	w.writeFile("empty.txt", nil)
	for i := range 40 {
		w.writeFile("docs/note-"+strings.Repeat("x", i%3)+string(rune('a'+i%26))+"-"+time.Duration(i).String()+".txt", []byte(strings.Repeat("n", i*100)))
	}
	original := tree(t, w.src)
	if r, code := w.reconcile(); code != 0 || r.Result.Outcome != "ok" {
		t.Fatalf("reconcile: exit %d %+v", code, r.Result)
	}
	for _, from := range []string{"s3", "gcs", "azure"} {
		t.Run(from, func(t *testing.T) {
			w.emptyShare()
			r, code := w.restore("--from", from)
			if code != 0 || r.Result.Outcome != "ok" || r.Result.Restored != len(original) || r.Result.Keys != len(original) {
				t.Fatalf("restore from %s: exit %d %+v; want %d restored", from, code, r.Result, len(original))
			}
			if from == "s3" {
				recordHistory(t, r.WorkflowID, "restore")
			}
			got := tree(t, w.src)
			if len(got) != len(original) {
				t.Errorf("restored %d files; want %d", len(got), len(original))
			}
			for k, want := range original {
				if got[k] != want {
					t.Errorf("%s: SHA-256 %s after the restore; want %s", k, got[k], want)
				}
			}
			// A second restore finds every file in place.
			if r, code := w.restore("--from", from); code != 0 || r.Result.Skipped != len(original) || r.Result.Restored != 0 {
				t.Errorf("second restore: exit %d %+v; want everything skipped", code, r.Result)
			}
		})
	}

	// A file changed at the target is left as it is, and named, unless --overwrite.
	w.writeFile("invoices/2026/12/inv-001.pdf", []byte("edited locally"))
	r, code := w.restore("--from", "gcs", "--prefix", "invoices/")
	if code != 1 || r.Result.Left != 1 || len(r.Result.LeftKeys) != 1 || r.Result.LeftKeys[0] != "invoices/2026/12/inv-001.pdf" || r.Result.Keys != 2 {
		t.Fatalf("restore over a changed file: exit %d %+v; want it left and named", code, r.Result)
	}
	if b, _ := os.ReadFile(filepath.Join(w.src, "invoices/2026/12/inv-001.pdf")); string(b) != "edited locally" {
		t.Fatalf("a local edit was overwritten without --overwrite: %q", b)
	}
	if r, code := w.restore("--from", "gcs", "--prefix", "invoices/", "--overwrite"); code != 0 || r.Result.Restored != 1 {
		t.Fatalf("restore --overwrite: exit %d %+v", code, r.Result)
	}
	if got := tree(t, w.src)["invoices/2026/12/inv-001.pdf"]; got != original["invoices/2026/12/inv-001.pdf"] {
		t.Errorf("--overwrite did not bring the replica back")
	}

	// --to another location, with a prefix.
	other := filepath.Join(w.dir, "rebuilt")
	must(t, os.MkdirAll(other, 0o755))
	if r, code := w.restore("--from", "azure", "--to", "file://"+other, "--prefix", "media/"); code != 0 || r.Result.Restored != 1 {
		t.Fatalf("restore --to: exit %d %+v", code, r.Result)
	}
	if got := tree(t, other); len(got) != 1 || got["media/big.bin"] != original["media/big.bin"] {
		t.Errorf("restore --to wrote %v", got)
	}

	// Usage errors name what is wrong.
	out, code := w.starter("restore", "--from", "nowhere")
	if code != 2 {
		t.Errorf("--from an unknown destination: exit %d %s", code, out)
	}
	if _, code := w.starter("restore", "--from", "s3", "--as-of", "yesterday"); code != 2 {
		t.Errorf("--as-of yesterday: exit %d; want a usage error", code)
	}
}

// TestRestoreAsOf restores the versions current at a past time from a versioned S3
// bucket, and refuses --as-of where the destination keeps no versions.
func TestRestoreAsOf(t *testing.T) {
	w := newWorld(t, worldOptions{s3Bucket: s3VersionedBucket})
	w.startWorker()
	w.writeFile("report.txt", []byte("version 1"))
	w.writeFile("gone-later.txt", []byte("deleted after the point in time"))
	if r, code := w.reconcile(); code != 0 || r.Result.Outcome != "ok" {
		t.Fatalf("reconcile: exit %d %+v", code, r.Result)
	}
	time.Sleep(1100 * time.Millisecond)
	pointInTime := time.Now().UTC().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond)
	w.writeFile("report.txt", []byte("version 2"))
	w.writeFile("new-later.txt", []byte("created after the point in time"))
	if r, code := w.replicateWait("report.txt", "new-later.txt"); code != 0 {
		t.Fatalf("replicate: exit %d %+v", code, r)
	}
	// Someone deletes a replica in the bucket: a delete marker hides it now.
	_, err := s3Client(t).DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(s3VersionedBucket), Key: aws.String(w.prefix + "/gone-later.txt")})
	must(t, err)
	// A target that does not exist is refused before anything is copied.
	if _, stderr, code := w.starterErr("restore", "--wait", "--from", "s3", "--to", "file://"+filepath.Join(w.dir, "missing")); code != 1 || !strings.Contains(stderr, "create or mount it first") {
		t.Errorf("restore to a missing directory: exit %d, stderr %s", code, stderr)
	}

	dir := filepath.Join(w.dir, "as-of")
	must(t, os.MkdirAll(dir, 0o755))
	r, code := w.restore("--from", "s3", "--to", "file://"+dir, "--as-of", pointInTime.Format(time.RFC3339))
	if code != 0 || r.Result.Restored != 2 {
		t.Fatalf("restore --as-of: exit %d %+v", code, r.Result)
	}
	want := map[string]string{"report.txt": sha([]byte("version 1")), "gone-later.txt": sha([]byte("deleted after the point in time"))}
	if got := tree(t, dir); len(got) != 2 || got["report.txt"] != want["report.txt"] || got["gone-later.txt"] != want["gone-later.txt"] {
		t.Errorf("restored as of %s: %v; want %v", pointInTime, got, want)
	}
	_, stderr, code := w.starterErr("restore", "--wait", "--from", "gcs", "--to", "file://"+dir, "--as-of", pointInTime.Format(time.RFC3339))
	if code != 1 || !strings.Contains(stderr, "only S3 destinations with bucket versioning") {
		t.Errorf("--as-of from GCS: exit %d, stderr %s; want a failure that says why", code, stderr)
	}
}
