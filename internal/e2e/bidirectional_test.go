//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gcs "cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/store"
)

// userSide is one side of a bidirectional policy as its users see it: they write and
// delete through the cloud's own SDK (or the file system), never through the
// replicator, so what they write carries none of its metadata.
type userSide struct {
	t      *testing.T
	kind   string // local, s3, gcs, azure
	url    string
	creds  string // YAML credentials of the location, if any
	dir    string // local
	bucket string
	prefix string
	store  store.Store // the replicator's driver, to read evidence back
}

func newUserSide(t *testing.T, w *world, kind, side string) *userSide {
	u := &userSide{t: t, kind: kind, prefix: w.prefix + "-" + side}
	switch kind {
	case "local":
		u.dir = filepath.Join(w.dir, "side-"+side)
		must(t, os.MkdirAll(u.dir, 0o755))
		u.url = "file://" + u.dir
	case "s3":
		u.bucket = s3Bucket
		u.url = fmt.Sprintf("s3://%s/%s?region=us-east-1&endpoint=%s", s3Bucket, u.prefix, os.Getenv("REPLICATOR_S3_ENDPOINT"))
	case "gcs":
		u.bucket = gcsBucket
		u.url = fmt.Sprintf("gs://%s/%s", gcsBucket, u.prefix)
	case "azure":
		u.bucket = azContainer
		u.url = fmt.Sprintf("azblob://devstoreaccount1/%s/%s?endpoint=%s", azContainer, u.prefix, os.Getenv("REPLICATOR_AZURE_ENDPOINT"))
		u.creds = "{azure_connection_string_env: AZURE_STORAGE_CONNECTION_STRING}"
	}
	opts := store.Options{Name: "side-" + side}
	if kind == "azure" {
		opts.Credentials.AzureConnectionStringEnv = "AZURE_STORAGE_CONNECTION_STRING"
	}
	s, err := backends.Open(context.Background(), opts, u.url)
	must(t, err)
	t.Cleanup(func() { s.Close() })
	u.store = s
	return u
}

// write stores data under key as a user would.
func (u *userSide) write(key, data string) {
	u.t.Helper()
	ctx := context.Background()
	switch u.kind {
	case "local":
		p := filepath.Join(u.dir, filepath.FromSlash(key))
		must(u.t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(u.t, os.WriteFile(p, []byte(data), 0o644))
	case "s3":
		_, err := s3Client(u.t).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(u.bucket), Key: aws.String(u.prefix + "/" + key), Body: strings.NewReader(data)})
		must(u.t, err)
	case "gcs":
		c, err := gcs.NewClient(ctx)
		must(u.t, err)
		defer c.Close()
		wr := c.Bucket(u.bucket).Object(u.prefix + "/" + key).NewWriter(ctx)
		_, _ = io.WriteString(wr, data)
		must(u.t, wr.Close())
	case "azure":
		c, err := azblob.NewClientFromConnectionString(os.Getenv("AZURE_STORAGE_CONNECTION_STRING"), nil)
		must(u.t, err)
		_, err = c.UploadBuffer(ctx, u.bucket, u.prefix+"/"+key, []byte(data), nil)
		must(u.t, err)
	}
}

// remove deletes key as a user would.
func (u *userSide) remove(key string) {
	u.t.Helper()
	ctx := context.Background()
	switch u.kind {
	case "local":
		must(u.t, os.Remove(filepath.Join(u.dir, filepath.FromSlash(key))))
	case "s3":
		_, err := s3Client(u.t).DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(u.bucket), Key: aws.String(u.prefix + "/" + key)})
		must(u.t, err)
	case "gcs":
		c, err := gcs.NewClient(ctx)
		must(u.t, err)
		defer c.Close()
		must(u.t, c.Bucket(u.bucket).Object(u.prefix+"/"+key).Delete(ctx))
	case "azure":
		c, err := azblob.NewClientFromConnectionString(os.Getenv("AZURE_STORAGE_CONNECTION_STRING"), nil)
		must(u.t, err)
		_, err = c.DeleteBlob(ctx, u.bucket, u.prefix+"/"+key, nil)
		must(u.t, err)
	}
}

// contents reads every object of the side back from its server.
func (u *userSide) contents() map[string]string {
	u.t.Helper()
	m := map[string]string{}
	for o, err := range u.store.List(context.Background(), store.ListOptions{}) {
		must(u.t, err)
		r, err := u.store.Open(context.Background(), o.Key, 0)
		must(u.t, err)
		var b bytes.Buffer
		_, err = io.Copy(&b, r)
		r.Close()
		must(u.t, err)
		m[o.Key] = b.String()
	}
	return m
}

// bidiWorld is a world whose policy syncs side A and side B both ways.
func bidiWorld(t *testing.T, kindA, kindB, rule string) (*world, *userSide, *userSide) {
	w := newWorld(t, worldOptions{})
	a, b := newUserSide(t, w, kindA, "a"), newUserSide(t, w, kindB, "b")
	srcCreds, dstCreds := "", ""
	if a.creds != "" {
		srcCreds = "\n    source_credentials: " + a.creds
	}
	if b.creds != "" {
		dstCreds = "\n        credentials: " + b.creds
	}
	cfg := fmt.Sprintf(`state: file://%s/state
policies:
  - name: %s
    source: %s%s
    mode: bidirectional
    conflict: %s
    retry: {max_attempts: 3, max_interval: 1s, heartbeat_timeout: 5s}
    safety: {max_delete: 100, max_delete_percent: 100}
    destinations:
      - name: b
        url: %s%s
`, w.dir, w.policy, a.url, srcCreds, rule, b.url, dstCreds)
	must(t, os.WriteFile(w.configPath, []byte(cfg), 0o644))
	return w, a, b
}

// syncOutput is the JSON of `starter reconcile --wait --json` for a bidirectional
// policy.
type syncOutput struct {
	WorkflowID string `json:"workflow_id"`
	Result     struct {
		Outcome       string
		Reason        string
		Bidirectional *struct {
			A, B                           struct{ Objects, Copy, Delete int }
			BothChanged, Forget, Conflicts int
		}
		Synced *struct {
			CopiedToA, CopiedToB, DeletedOnA, DeletedOnB, InSync, Changed, Conflicts, Failed int
			Kept                                                                             []string
		}
	} `json:"result"`
	Plan []struct {
		Key      string            `json:"key"`
		Actions  map[string]string `json:"actions"`
		Conflict string            `json:"conflict"`
	} `json:"plan"`
}

func (w *world) sync(args ...string) syncOutput {
	w.t.Helper()
	out, code := w.starter(append([]string{"reconcile", "--wait", "--json"}, args...)...)
	var r syncOutput
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		w.t.Fatalf("reconcile output is not JSON (exit %d): %v\n%s", code, err, out)
	}
	if code != 0 && !strings.Contains(strings.Join(args, " "), "--dry-run") {
		w.t.Fatalf("reconcile exited %d: %+v", code, r.Result)
	}
	return r
}

// TestBidirectionalScenarios runs the scenario table (create, modify and delete on
// each side, on both, delete against modify, the same new content on both, a rename)
// under every conflict rule, between a local directory and MinIO and between GCS and
// Azure, reading both sides back from their servers; a second run is a no-op.
func TestBidirectionalScenarios(t *testing.T) {
	for _, pair := range [][2]string{{"local", "s3"}, {"gcs", "azure"}} {
		for _, rule := range []string{"newer-wins", "prefer-a", "prefer-b", "keep-both"} {
			t.Run(pair[0]+"-"+pair[1]+"/"+rule, func(t *testing.T) {
				w, a, b := bidiWorld(t, pair[0], pair[1], rule)
				w.startWorker()
				keys := []string{"mod-a", "mod-b", "mod-both", "del-a", "del-b", "del-a-mod-b", "del-b-mod-a", "del-both", "same", "docs/old-name.txt"}
				for _, k := range keys {
					a.write(k, "v1 "+k)
				}
				r := w.sync()
				if r.Result.Outcome != "ok" || r.Result.Synced == nil || r.Result.Synced.CopiedToB != len(keys) {
					t.Fatalf("first sync: %+v %+v", r.Result, r.Result.Synced)
				}
				a.write("new-a", "created on A")
				b.write("new-b", "created on B")
				a.write("mod-a", "v2 from A")
				b.write("mod-b", "v2 from B")
				a.write("mod-both", "v2 from A")
				a.remove("del-a")
				b.remove("del-b")
				a.remove("del-a-mod-b")
				b.write("del-a-mod-b", "v2 kept from B")
				b.remove("del-b-mod-a")
				a.write("del-b-mod-a", "v2 kept from A")
				a.remove("del-both")
				b.remove("del-both")
				a.write("both-new", "same new bytes")
				b.write("both-new", "same new bytes")
				a.remove("docs/old-name.txt")
				a.write("docs/new-name.txt", "v1 docs/old-name.txt")
				time.Sleep(1100 * time.Millisecond) // B's edit is newer, to the second
				b.write("mod-both", "v2 from B")

				dry := w.sync("--dry-run")
				planned := map[string]string{}
				for _, l := range dry.Plan {
					planned[l.Key] = l.Conflict
				}
				if _, ok := planned["mod-both"]; !ok || planned["del-a-mod-b"] != "modify-delete" || len(dry.Plan) != 13 {
					t.Errorf("dry run plan: %+v", dry.Plan)
				}

				r = w.sync()
				if r.Result.Outcome != "ok" || r.Result.Synced.Failed != 0 {
					t.Fatalf("sync: %+v %+v", r.Result, r.Result.Synced)
				}
				if pair[0] == "local" && rule == "keep-both" {
					recordHistory(t, r.WorkflowID, "reconcile_bidirectional")
				}
				// Two modify/delete conflicts and the concurrent edit.
				if r.Result.Synced.Conflicts != 3 {
					t.Errorf("conflicts = %d; want 3", r.Result.Synced.Conflicts)
				}
				ca, cb := a.contents(), b.contents()
				if fmt.Sprint(ca) != fmt.Sprint(cb) {
					t.Fatalf("the sides differ after the sync:\nA %v\nB %v", ca, cb)
				}
				want := map[string]string{"new-a": "created on A", "new-b": "created on B", "mod-a": "v2 from A", "mod-b": "v2 from B",
					"del-a-mod-b": "v2 kept from B", "del-b-mod-a": "v2 kept from A", "both-new": "same new bytes",
					"docs/new-name.txt": "v1 docs/old-name.txt", "same": "v1 same", "mod-both": "v2 from B"}
				if rule == "prefer-a" {
					want["mod-both"] = "v2 from A"
				}
				for k, v := range want {
					if ca[k] != v {
						t.Errorf("%s = %q; want %q", k, ca[k], v)
					}
				}
				for _, gone := range []string{"del-a", "del-b", "del-both", "docs/old-name.txt"} {
					if _, ok := ca[gone]; ok {
						t.Errorf("%s survived its delete", gone)
					}
				}
				var kept []string
				for k, v := range ca {
					if strings.HasPrefix(k, "mod-both.conflict-a-") && v == "v2 from A" {
						kept = append(kept, k)
					}
				}
				if rule == "keep-both" && len(kept) != 1 || rule != "keep-both" && len(kept) != 0 {
					t.Errorf("%s: conflict copies %v", rule, kept)
				}
				if len(ca) != len(want)+len(kept) {
					t.Errorf("side A holds %d keys; want %d: %v", len(ca), len(want)+len(kept), ca)
				}
				again := w.sync()
				if bp := again.Result.Bidirectional; bp == nil || bp.A.Copy+bp.B.Copy+bp.A.Delete+bp.B.Delete+bp.BothChanged+bp.Forget != 0 {
					t.Errorf("second sync is not a no-op: %+v", again.Result.Bidirectional)
				}
			})
		}
	}
}

// TestBidirectionalSafety: an emptied side stops the sync, and nothing is deleted on
// the other.
func TestBidirectionalSafety(t *testing.T) {
	w, a, b := bidiWorld(t, "local", "s3", "newer-wins")
	w.startWorker()
	for i := range 5 {
		a.write(fmt.Sprintf("f%d", i), "data")
	}
	w.sync()
	for i := range 5 {
		a.remove(fmt.Sprintf("f%d", i))
	}
	out, code := w.starter("reconcile", "--wait", "--json")
	if code != 1 || !strings.Contains(out, "lists no objects") {
		t.Fatalf("an emptied side A: exit %d\n%s", code, out)
	}
	if n := len(b.contents()); n != 5 {
		t.Errorf("side B holds %d objects after a stopped run; want all 5", n)
	}
	// A one-way copy could overwrite an edit on side B: refused, saying what to use.
	if _, stderr, code := w.starterErr("replicate", "--wait", "f0"); code != 2 || !strings.Contains(stderr, "starter reconcile") {
		t.Errorf("replicate on a bidirectional policy: exit %d, stderr %s", code, stderr)
	}
}

// TestBidirectionalCrashBetweenSides kills the worker (SIGKILL) right after it wrote a
// key to side B, before the key's records: the next run completes, and neither
// side's change is lost.
func TestBidirectionalCrashBetweenSides(t *testing.T) {
	w, a, b := bidiWorld(t, "local", "s3", "newer-wins")
	worker := w.startWorker()
	a.write("from-a.txt", "v1 a")
	a.write("from-b.txt", "v1 b")
	w.sync()
	worker.stop(t)

	a.write("from-a.txt", "v2 edited on A")
	b.write("from-b.txt", "v2 edited on B")
	crashing := w.startWorker("REPLICATOR_FAULTS=crash@b")
	out, code := w.starter("reconcile", "--json")
	if code != 0 {
		t.Fatalf("start reconcile: exit %d %s", code, out)
	}
	var started struct {
		WorkflowID string `json:"workflow_id"`
	}
	must(t, json.Unmarshal([]byte(out), &started))
	select {
	case <-crashing.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the worker did not crash after writing side B:\n%s", crashing.out.String())
	}
	if got := b.contents()["from-a.txt"]; got != "v2 edited on A" {
		t.Fatalf("side B holds %q after the crash; want A's edit written before it", got)
	}
	// The operator gives up on the run that lost its worker and starts another.
	must(t, temporalClient(t).TerminateWorkflow(context.Background(), started.WorkflowID, "", "its worker was killed"))

	w.startWorker()
	r := w.sync()
	if r.Result.Synced == nil || r.Result.Synced.CopiedToA != 1 || r.Result.Synced.Conflicts != 0 {
		t.Errorf("run after the crash: %+v; want B's edit copied to A, no conflict", r.Result.Synced)
	}
	ca, cb := a.contents(), b.contents()
	for k, want := range map[string]string{"from-a.txt": "v2 edited on A", "from-b.txt": "v2 edited on B"} {
		if ca[k] != want || cb[k] != want {
			t.Errorf("%s: A %q, B %q; want %q on both", k, ca[k], cb[k], want)
		}
	}
	if again := w.sync(); again.Result.Bidirectional.BothChanged+again.Result.Bidirectional.A.Copy+again.Result.Bidirectional.B.Copy != 0 {
		t.Errorf("third run is not a no-op: %+v", again.Result.Bidirectional)
	}
}
