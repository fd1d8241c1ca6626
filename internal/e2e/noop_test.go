//go:build integration

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cloudrepl/replicator/internal/store/azstore"
	"github.com/cloudrepl/replicator/internal/store/gcsstore"
	"github.com/cloudrepl/replicator/internal/store/s3store"
)

// scrape reads the worker's counters of backend requests: store → kind → count.
func scrape(t *testing.T, base string) map[string]map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "replicator_backend_requests_total{") {
			continue
		}
		labels := line[strings.Index(line, "{")+1 : strings.Index(line, "}")]
		val, err := strconv.ParseFloat(strings.TrimSpace(line[strings.Index(line, "}")+1:]), 64)
		must(t, err)
		var storeName, kind string
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			v = strings.Trim(v, `"`)
			switch k {
			case "store":
				storeName = v
			case "kind":
				kind = v
			}
		}
		if out[storeName] == nil {
			out[storeName] = map[string]float64{}
		}
		out[storeName][kind] += val
	}
	return out
}

// writeTree fills the source with n small files in 100 directories.
func (w *world) writeTree(n int) {
	for i := range n {
		p := filepath.Join(w.src, fmt.Sprintf("d%03d", i%100), fmt.Sprintf("f%05d.txt", i))
		if i < 100 {
			must(w.t, os.MkdirAll(filepath.Dir(p), 0o755))
		}
		must(w.t, os.WriteFile(p, []byte(fmt.Sprintf("file %d\n", i)), 0o644))
	}
}

// noopReconcile builds a tree of n files, replicates it with a reconcile, folds the
// journal with a second one, and returns the history length of a third, which has
// nothing to do, and the requests each destination served during it.
func noopReconcile(t *testing.T, n int) (events int, requests map[string]map[string]float64) {
	w := newWorld(t, worldOptions{mode: "mirror"})
	w.writeTree(n)
	wk := w.startWorker()
	defer wk.stop(t) // workers share the task queue: the next world brings its own
	r, code := w.reconcile()
	if code != 0 || r.dest("s3").Copy != n {
		t.Fatalf("initial reconcile of %d files: exit %d %+v", n, code, r.Result)
	}
	if r, code = w.reconcile(); code != 0 || r.dest("azure").Unchanged != n {
		t.Fatalf("second reconcile: exit %d %+v", code, r.Result)
	}
	before := scrape(t, wk.metricsURL(t))
	r, code = w.reconcile()
	if code != 0 {
		t.Fatalf("no-op reconcile: exit %d", code)
	}
	for _, d := range r.Result.Destinations {
		if d.Unchanged != n || d.Objects != n || d.Copy+d.Update+d.Delete+d.Adopt+d.Extra != 0 {
			t.Fatalf("no-op reconcile planned work on %s: %+v", d.Destination, d)
		}
	}
	after := scrape(t, wk.metricsURL(t))
	resp, err := http.Get(wk.metricsURL(t) + "/metrics")
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`replicator_drift_objects{destination="gcs",kind="copy",policy=%q} 0`, w.policy),
		fmt.Sprintf(`replicator_last_reconcile_success_timestamp_seconds{policy=%q} 1.`, w.policy),
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	requests = map[string]map[string]float64{}
	for _, d := range []string{"s3", "gcs", "azure"} {
		requests[d] = map[string]float64{"list": after[d]["list"] - before[d]["list"], "object": after[d]["object"] - before[d]["object"]}
	}
	recordHistory(t, r.WorkflowID, fmt.Sprintf("reconcile_noop_%d", n))
	return len(history(t, r.WorkflowID).Events), requests
}

// TestNoopReconcileIsConstant shows that a reconcile with nothing to do writes as many
// history events for 20,000 files as for 10, and sends listing requests only: no
// per-object request to any destination.
func TestNoopReconcileIsConstant(t *testing.T) {
	n := 20000
	if v := os.Getenv("REPLICATOR_E2E_NOOP_FILES"); v != "" {
		n, _ = strconv.Atoi(v) // a smaller tree while developing
	}
	small, smallReq := noopReconcile(t, 10)
	large, largeReq := noopReconcile(t, n)
	if small != large {
		t.Errorf("no-op reconcile history: %d events for 10 files, %d for %d", small, large, n)
	}
	for _, req := range []map[string]map[string]float64{smallReq, largeReq} {
		for d, kinds := range req {
			if kinds["object"] != 0 {
				t.Errorf("%s served %v per-object requests during a no-op reconcile", d, kinds["object"])
			}
			if kinds["list"] < 1 {
				t.Errorf("%s served no listing request: the counters do not see the reconcile", d)
			}
		}
	}
	// Each driver asks for its server's largest page (GCS caps at 1000 itself; its
	// emulator serves what is asked).
	pages := map[string]int{"s3": s3store.DefaultPageSize, "gcs": gcsstore.DefaultPageSize, "azure": azstore.DefaultPageSize}
	for d, kinds := range largeReq {
		if kinds["list"] < float64(n/pages[d]) {
			t.Errorf("%s: %v listing requests for %d objects, want at least one per %d", d, kinds["list"], n, pages[d])
		}
	}
	t.Logf("history events: %d for 10 files and for %d; requests for %d: %v", large, n, n, largeReq)
}
