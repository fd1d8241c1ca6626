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

	"github.com/cloudrepl/replicator/internal/store"
)

// TestAtomicBatchOfSmallFiles runs an atomic batch of 150 small files (three pages)
// and one key that Azure refuses (a path segment ending in '.'): the good keys are
// committed everywhere, the refused one is nowhere (its stages on S3 and GCS are
// removed, no final key is written), and no stage is left on any server.
func TestAtomicBatchOfSmallFiles(t *testing.T) {
	w := newWorld(t, worldOptions{consistency: "atomic"})
	w.startWorker()
	var keys []string
	sums := map[string]string{}
	for i := range 150 {
		k := filepathKey(i)
		sums[k] = w.writeFile(k, randomBytes(700+i))
		keys = append(keys, k)
	}
	bad := "refused./by-azure.dat"
	w.writeFile(bad, []byte("Azure cannot hold this key"))
	keys = append(keys, bad)
	list := filepath.Join(w.dir, "keys.txt")
	must(t, os.WriteFile(list, []byte(strings.Join(keys, "\n")+"\n"), 0o644))
	out, code := w.starter("batch", list, "--wait", "--json", "--id", "atomic")
	if code != 1 {
		t.Fatalf("batch exit %d, want 1 (one key failed): %s", code, out)
	}
	recordHistory(t, "batch/"+w.policy+"/atomic", "replicate_batch_atomic_direct")
	var res struct {
		Summary struct {
			Keys         int
			Rejected     int
			Destinations []struct {
				Destination string
				Copied      int
				Failed      int
				Bytes       int64
			}
		}
	}
	must(t, json.Unmarshal([]byte(out), &res))
	if res.Summary.Keys != 151 || len(res.Summary.Destinations) != 3 {
		t.Fatalf("summary %+v", res.Summary)
	}
	// The refused key is rejected on Azure (counted as rejected, not failed there)
	// and so written nowhere: rolled back, a failure, on the other two.
	if res.Summary.Rejected != 1 {
		t.Errorf("rejected %d, want 1", res.Summary.Rejected)
	}
	for _, d := range res.Summary.Destinations {
		wantFailed := 1
		if d.Destination == "azure" {
			wantFailed = 0
		}
		if d.Copied != 150 || d.Failed != wantFailed {
			t.Errorf("%s: %d copied, %d failed; want 150 and %d", d.Destination, d.Copied, d.Failed, wantFailed)
		}
	}
	want := slices.Clone(keys[:150])
	slices.Sort(want)
	for _, d := range []string{"s3", "gcs", "azure"} {
		s := w.destination(d)
		var got []string
		for _, k := range listAll(t, s) {
			if strings.HasPrefix(k, store.InternalPrefix+"staging/") {
				t.Errorf("%s: stage %s left behind", d, k)
			}
			if !strings.HasPrefix(k, store.InternalPrefix) {
				got = append(got, k)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s holds %d user keys, want the 150 good ones (refused key present: %v)", d, len(got), slices.Contains(got, bad))
		}
		for _, k := range []string{keys[0], keys[77], keys[149]} {
			if got := readSHA(t, s, k); got != sums[k] {
				t.Errorf("%s: %s holds %s, want %s", d, k, got, sums[k])
			}
			a, err := s.Stat(context.Background(), k)
			must(t, err)
			if a.SHA256 != sums[k] {
				t.Errorf("%s: %s carries SHA-256 metadata %q, want %s", d, k, a.SHA256, sums[k])
			}
		}
	}
	out, code = w.starter("failed", "list", "--json")
	var dls []struct{ Key, Destination, Class string }
	must(t, json.Unmarshal([]byte(out), &dls))
	if code != 0 || len(dls) != 1 || dls[0].Key != bad || dls[0].Destination != "azure" || dls[0].Class != "Rejected" {
		t.Fatalf("dead letters %+v (exit %d), want one for %s on azure", dls, code, bad)
	}

	// Again: everything is in place, so nothing moves and nothing is staged.
	out, code = w.starter("batch", list, "--wait", "--json", "--id", "atomic-again")
	must(t, json.Unmarshal([]byte(out), &res))
	for _, d := range res.Summary.Destinations {
		if d.Copied != 0 || d.Bytes != 0 {
			t.Errorf("second batch moved %d objects (%d bytes) to %s", d.Copied, d.Bytes, d.Destination)
		}
	}
	if code != 1 { // the refused key fails again
		t.Errorf("second batch exit %d, want 1", code)
	}
}
