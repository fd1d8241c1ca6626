//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/store"
)

// reconcileOutput is the JSON of `starter reconcile --wait --json`.
type reconcileOutput struct {
	WorkflowID string `json:"workflow_id"`
	Result     struct {
		Outcome      string
		Reason       string
		SourceKeys   int
		Destinations []struct {
			Destination                                            string
			Objects, Unchanged, Copy, Update, Delete, Adopt, Extra int
		}
		Deleted struct{ Deleted int }
	} `json:"result"`
	Plan []struct {
		Key     string            `json:"key"`
		Actions map[string]string `json:"actions"`
	} `json:"plan"`
}

func (w *world) reconcile(args ...string) (reconcileOutput, int) {
	w.t.Helper()
	out, code := w.starter(append([]string{"reconcile", "--wait", "--json"}, args...)...)
	var r reconcileOutput
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		w.t.Fatalf("reconcile output is not JSON (exit %d): %v\n%s", code, err, out)
	}
	return r, code
}

func (r reconcileOutput) dest(name string) (d struct {
	Destination                                            string
	Objects, Unchanged, Copy, Update, Delete, Adopt, Extra int
}) {
	for _, x := range r.Result.Destinations {
		if x.Destination == name {
			return x
		}
	}
	return d
}

// snapshot lists a destination's keys with their ETags, the replicator's subtree too.
func snapshot(t *testing.T, s store.Store) map[string]string {
	m := map[string]string{}
	for o, err := range s.List(context.Background(), store.ListOptions{IncludeInternal: true}) {
		must(t, err)
		m[o.Key] = o.ETag
	}
	return m
}

func TestReconcileRepairsDrift(t *testing.T) {
	for _, mode := range []string{"mirror", "copy"} {
		t.Run(mode, func(t *testing.T) {
			w := newWorld(t, worldOptions{mode: mode, extra: "    safety: {max_delete: 10, max_delete_percent: 100, trash_retention: 24h}\n"})
			w.startWorker()
			w.writeFile("a/unchanged.txt", []byte("unchanged"))
			w.writeFile("b/modified.txt", []byte("first version"))
			w.writeFile("c/deleted.txt", []byte("soon gone"))
			if r, code := w.reconcile(); code != 0 || r.Result.Outcome != "ok" || r.dest("s3").Copy != 3 {
				t.Fatalf("initial reconcile: exit %d %+v", code, r.Result)
			}
			before := map[string]*store.Attributes{}
			for _, d := range []string{"s3", "gcs", "azure"} {
				a, err := w.destination(d).Stat(context.Background(), "a/unchanged.txt")
				must(t, err)
				before[d] = a
			}
			// Drift: a modified file, a deleted one, a new one, and an object on GCS the
			// replicator never wrote.
			newB := w.writeFile("b/modified.txt", []byte("second version, longer"))
			future := time.Now().Add(time.Minute)
			must(t, os.Chtimes(filepath.Join(w.src, "b/modified.txt"), future, future))
			must(t, os.Remove(filepath.Join(w.src, "c/deleted.txt")))
			newD := w.writeFile("d/new.txt", []byte("new file"))
			extra := []byte("placed by hand")
			if _, err := w.destination("gcs").Put(context.Background(), "x/extra.txt", strings.NewReader(string(extra)),
				store.PutOptions{SHA256: sha(extra), Size: int64(len(extra))}); err != nil {
				t.Fatal(err)
			}

			r, code := w.reconcile()
			if code != 0 || r.Result.Outcome != "ok" {
				t.Fatalf("exit %d %+v", code, r.Result)
			}
			recordHistory(t, r.WorkflowID, "reconcile_repair_"+mode)
			wantDeletes := map[string]int{"s3": 1, "gcs": 2, "azure": 1}
			for _, d := range []string{"s3", "gcs", "azure"} {
				p := r.dest(d)
				if p.Copy != 1 || p.Update != 1 || p.Unchanged != 1 {
					t.Errorf("%s plan %+v: want 1 copy, 1 update, 1 unchanged", d, p)
				}
				if mode == "mirror" && p.Delete != wantDeletes[d] {
					t.Errorf("%s plan %+v: want %d deletes", d, p, wantDeletes[d])
				}
				if mode == "copy" && (p.Delete != 0 || p.Extra != wantDeletes[d]) {
					t.Errorf("%s plan %+v: want no deletes and %d extras", d, p, wantDeletes[d])
				}
				s := w.destination(d)
				a, err := s.Stat(context.Background(), "a/unchanged.txt")
				must(t, err)
				if a.ETag != before[d].ETag {
					t.Errorf("%s: the unchanged file was rewritten", d)
				}
				if got := readSHA(t, s, "b/modified.txt"); got != newB {
					t.Errorf("%s: modified file not updated", d)
				}
				if got := readSHA(t, s, "d/new.txt"); got != newD {
					t.Errorf("%s: new file not copied", d)
				}
				_, err = s.Stat(context.Background(), "c/deleted.txt")
				if mode == "mirror" && !store.IsNotFound(err) {
					t.Errorf("%s: deleted file still there (%v)", d, err)
				}
				if mode == "copy" && err != nil {
					t.Errorf("%s: copy mode deleted a file: %v", d, err)
				}
			}
			_, err := w.destination("gcs").Stat(context.Background(), "x/extra.txt")
			if mode == "mirror" && !store.IsNotFound(err) {
				t.Errorf("mirror kept the extra object: %v", err)
			}
			if mode == "copy" && err != nil {
				t.Errorf("copy mode removed the extra object: %v", err)
			}
			// The deleted and the overwritten versions wait in the trash.
			day := time.Now().UTC().Format("2006-01-02")
			for _, d := range []string{"s3", "gcs", "azure"} {
				trash := w.destination(d)
				// Each trashed version is the key plus the time it was replaced.
				modified := trashed(t, trash, ".replicator/trash/"+day+"/b/modified.txt~")
				if len(modified) != 1 || readSHA(t, trash, modified[0]) != sha([]byte("first version")) {
					t.Errorf("%s: overwritten version not in the trash: %q", d, modified)
				}
				if deleted := trashed(t, trash, ".replicator/trash/"+day+"/c/deleted.txt~"); mode == "mirror" && len(deleted) != 1 {
					t.Errorf("%s: deleted file not in the trash: %q", d, deleted)
				}
			}
			// Nothing left to do: the next reconcile changes nothing.
			r, code = w.reconcile()
			for _, d := range r.Result.Destinations {
				if d.Copy+d.Update+d.Delete+d.Adopt != 0 {
					t.Errorf("second reconcile still plans work on %s: %+v", d.Destination, d)
				}
			}
			if code != 0 {
				t.Fatalf("second reconcile exit %d", code)
			}
		})
	}
}

func TestReconcileSafetyStops(t *testing.T) {
	w := newWorld(t, worldOptions{mode: "mirror", extra: "    safety: {max_delete: 2, max_delete_percent: 100}\n"})
	w.startWorker()
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		w.writeFile(k, []byte(k))
	}
	if _, code := w.reconcile(); code != 0 {
		t.Fatal("initial reconcile failed")
	}
	all := func() {
		t.Helper()
		for _, d := range []string{"s3", "gcs", "azure"} {
			for _, k := range []string{"k1", "k2", "k3", "k4"} {
				if _, err := w.destination(d).Stat(context.Background(), k); err != nil {
					t.Fatalf("%s lost %s: %v", d, k, err)
				}
			}
		}
	}
	for _, k := range []string{"k1", "k2", "k3"} {
		must(t, os.Remove(filepath.Join(w.src, k)))
	}
	r, code := w.reconcile()
	if code != 1 || r.Result.Outcome != "stopped" || !strings.Contains(r.Result.Reason, "max_delete") {
		t.Fatalf("over the limit: exit %d %+v", code, r.Result)
	}
	all()
	must(t, os.Remove(filepath.Join(w.src, "k4")))
	r, code = w.reconcile()
	if code != 1 || r.Result.Outcome != "stopped" || !strings.Contains(r.Result.Reason, "source is empty") {
		t.Fatalf("empty source: exit %d %+v", code, r.Result)
	}
	all()
	must(t, os.Rename(w.src, w.src+".unmounted"))
	r, code = w.reconcile()
	if code != 1 || r.Result.Outcome != "stopped" || !strings.Contains(r.Result.Reason, "cannot be read") {
		t.Fatalf("unmounted source: exit %d %+v", code, r.Result)
	}
	all()
	// The operator says it is intended.
	must(t, os.Rename(w.src+".unmounted", w.src))
	r, code = w.reconcile("--override-safety")
	if code != 0 || r.Result.Deleted.Deleted != 12 {
		t.Fatalf("override: exit %d %+v", code, r.Result)
	}
	for _, d := range []string{"s3", "gcs", "azure"} {
		if keys := slices.DeleteFunc(listAll(t, w.destination(d)), store.IsInternal); len(keys) != 0 {
			t.Errorf("%s still holds %q", d, keys)
		}
	}
}

func TestReconcileDryRunChangesNothing(t *testing.T) {
	w := newWorld(t, worldOptions{mode: "mirror", extra: "    safety: {max_delete: 10, max_delete_percent: 100}\n"})
	w.startWorker()
	w.writeFile("keep.txt", []byte("keep"))
	w.writeFile("drop.txt", []byte("drop"))
	if _, code := w.reconcile(); code != 0 {
		t.Fatal("initial reconcile failed")
	}
	must(t, os.Remove(filepath.Join(w.src, "drop.txt")))
	w.writeFile("add.txt", []byte("add"))
	before := map[string]map[string]string{}
	for _, d := range []string{"s3", "gcs", "azure"} {
		before[d] = snapshot(t, w.destination(d))
	}
	r, code := w.reconcile("--dry-run")
	if code != 0 || r.Result.Outcome != "skipped" {
		t.Fatalf("dry run: exit %d %+v", code, r.Result)
	}
	plan := map[string]map[string]string{}
	for _, l := range r.Plan {
		plan[l.Key] = l.Actions
	}
	for _, d := range []string{"s3", "gcs", "azure"} {
		if plan["add.txt"][d] != "copy" || plan["drop.txt"][d] != "delete" {
			t.Errorf("%s: plan %v", d, plan)
		}
		after := snapshot(t, w.destination(d))
		if len(after) != len(before[d]) {
			t.Errorf("%s changed: %v → %v", d, before[d], after)
		}
		for k, etag := range before[d] {
			if after[k] != etag {
				t.Errorf("%s: %s changed", d, k)
			}
		}
	}
	// Plans do not pile up in the state location, shown or run.
	left, _ := filepath.Glob(filepath.Join(w.dir, "state", "plans", "*", "*"))
	pages, _ := filepath.Glob(filepath.Join(w.dir, "state", "batches", "*", "*", "*", "*"))
	if len(left)+len(pages) != 0 {
		t.Errorf("plan files left in the state location: %q %q", left, pages)
	}
}

func TestScheduleFiresAndPausedDoesNot(t *testing.T) {
	w := newWorld(t, worldOptions{extra: "    schedule: {every: 2s}\n"})
	w2 := newWorld(t, worldOptions{extra: "    schedule: {every: 2s}\n"})
	w.startWorker()
	w.writeFile("s.txt", []byte("scheduled"))
	if _, code := w.starter("schedule", "create"); code != 0 {
		t.Fatal("create failed")
	}
	t.Cleanup(func() { w.starter("schedule", "delete") })
	if _, code := w2.starter("schedule", "create", "--paused", "--note", "maintenance"); code != 0 {
		t.Fatal("create paused failed")
	}
	t.Cleanup(func() { w2.starter("schedule", "delete") })
	type desc struct {
		Actions int  `json:"actions"`
		Paused  bool `json:"paused"`
		Recent  []struct {
			WorkflowID string `json:"workflow_id"`
		} `json:"recent"`
	}
	describe := func(w *world) desc {
		out, code := w.starter("schedule", "describe", "--json")
		if code != 0 {
			t.Fatalf("describe exit %d", code)
		}
		var d desc
		must(t, json.Unmarshal([]byte(out), &d))
		return d
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		d := describe(w)
		if d.Actions >= 2 {
			// The scheduled reconcile really ran: the file is on every destination.
			for _, dst := range []string{"s3", "gcs", "azure"} {
				if _, err := w.destination(dst).Stat(context.Background(), "s.txt"); err != nil {
					t.Errorf("%s: the scheduled reconcile did not copy s.txt: %v", dst, err)
				}
			}
			if !strings.HasPrefix(d.Recent[0].WorkflowID, "reconcile/"+w.policy) {
				t.Errorf("scheduled run ID %s", d.Recent[0].WorkflowID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the schedule ran %d times in a minute", d.Actions)
		}
		time.Sleep(time.Second)
	}
	if d := describe(w2); d.Actions != 0 || !d.Paused {
		t.Fatalf("the paused schedule ran: %+v", d)
	}
	out, _ := w.starter("schedule", "list", "--json")
	if !strings.Contains(out, "reconcile/"+w.policy) || !strings.Contains(out, "reconcile/"+w2.policy) {
		t.Errorf("schedule list lacks ours: %s", out)
	}
	// Pausing stops it; unpausing and triggering run it again.
	if _, code := w.starter("schedule", "pause", "--note", "test"); code != 0 {
		t.Fatal("pause failed")
	}
	time.Sleep(3 * time.Second) // let a run already started finish
	n := describe(w).Actions
	time.Sleep(5 * time.Second)
	if m := describe(w).Actions; m != n {
		t.Errorf("a paused schedule ran %d more times", m-n)
	}
	// Trigger runs it now even while paused.
	if _, code := w.starter("schedule", "trigger"); code != 0 {
		t.Fatal("trigger failed")
	}
	deadline = time.Now().Add(30 * time.Second)
	for describe(w).Actions <= n {
		if time.Now().After(deadline) {
			t.Fatal("trigger did not run the reconcile")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestVerifyFindsDifferencesAndChecksumReconcileRepairs(t *testing.T) {
	w := newWorld(t, worldOptions{mode: "mirror", extra: "    safety: {max_delete: 10, max_delete_percent: 100}\n"})
	w.startWorker()
	for _, k := range []string{"v/1.txt", "v/2.txt", "v/3.txt"} {
		w.writeFile(k, []byte("content of "+k))
	}
	if _, code := w.reconcile(); code != 0 {
		t.Fatal("initial reconcile failed")
	}
	type verifyOut struct {
		Checked     int
		Differences []struct{ Key, Destination, Status string }
	}
	verify := func() (verifyOut, int) {
		out, code := w.starter("verify", "--json")
		var v verifyOut
		must(t, json.Unmarshal([]byte(out), &v))
		return v, code
	}
	if v, code := verify(); code != 0 || v.Checked != 9 || len(v.Differences) != 0 {
		t.Fatalf("verify of a good replication: exit %d %+v", code, v)
	}
	bad := []byte("corrupted bytes")
	_, err := w.destination("gcs").Put(context.Background(), "v/1.txt", strings.NewReader(string(bad)), store.PutOptions{SHA256: sha(bad), Size: int64(len(bad))})
	must(t, err)
	must(t, w.destination("azure").Delete(context.Background(), "v/2.txt", store.DeleteOptions{}))
	_, err = w.destination("s3").Put(context.Background(), "v/extra.txt", strings.NewReader(string(bad)), store.PutOptions{SHA256: sha(bad), Size: int64(len(bad))})
	must(t, err)
	v, code := verify()
	got := map[string]string{}
	for _, d := range v.Differences {
		got[d.Destination+" "+d.Key] = d.Status
	}
	if code != 1 || got["gcs v/1.txt"] != "differs" || got["azure v/2.txt"] != "missing" || got["s3 v/extra.txt"] != "extra" || len(got) != 3 {
		t.Fatalf("verify: exit %d %v", code, got)
	}
	r, code := w.reconcile("--checksum")
	if code != 0 || r.dest("gcs").Adopt != 1 || r.dest("azure").Copy != 1 || r.dest("s3").Delete != 1 {
		t.Fatalf("checksum reconcile: exit %d %+v", code, r.Result)
	}
	if v, code := verify(); code != 0 || len(v.Differences) != 0 {
		t.Fatalf("verify after the repair: exit %d %+v", code, v)
	}
}

// trashed lists the trash entries under prefix.
func trashed(t *testing.T, s store.Store, prefix string) []string {
	t.Helper()
	var keys []string
	for o, err := range s.List(context.Background(), store.ListOptions{Prefix: prefix, IncludeInternal: true}) {
		if err != nil {
			t.Fatalf("list %s: %v", prefix, err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}
