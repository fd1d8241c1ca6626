//go:build integration

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloudrepl/replicator/internal/store"
)

// TestAtomicCommitFailureRollsBack makes each destination in turn deny the commit onto
// the final key (as a bucket policy or a retention lock on the final prefix would),
// after every destination accepted the stage, and checks the all-or-nothing promise
// by reading every destination back: in ReplicateFile and in an atomic batch, for a
// new key and for an existing one, no final key changes anywhere, previous versions
// stay intact, no stage or undo copy is left, the outcome is compensated and the
// failing destination has a dead letter.
func TestAtomicCommitFailureRollsBack(t *testing.T) {
	for _, failing := range []string{"s3", "gcs", "azure"} {
		t.Run(failing, func(t *testing.T) {
			w := newWorld(t, worldOptions{consistency: "atomic"})
			healthy := w.startWorker()
			v1 := map[string]string{
				"existing/file.txt":  w.writeFile("existing/file.txt", []byte("version 1 of the file replicated everywhere")),
				"existing/batch.txt": w.writeFile("existing/batch.txt", []byte("version 1 of the batch file")),
			}
			if res, code := w.replicateWait("existing/file.txt", "existing/batch.txt"); code != 0 {
				t.Fatalf("first replication: exit %d %+v", code, res)
			}
			healthy.stop(t)
			// Commits (server-side copies, the staged path) and puts (the direct path of
			// batches whose destinations share a queue) onto user keys are denied.
			w.startWorker("REPLICATOR_FAULTS=commit@" + failing + ",put@" + failing)

			// ReplicateFile: an existing key changed, and a new key.
			w.writeFile("existing/file.txt", []byte("version 2, which must reach all three or none"))
			w.writeFile("new/file.txt", []byte("a new key, which must appear on all three or none"))
			res, code := w.replicateWait("existing/file.txt", "new/file.txt")
			if code != 1 {
				t.Fatalf("replicate: exit %d, want 1: %+v", code, res)
			}
			if failing == "gcs" {
				recordHistory(t, "replicate/"+w.policy+"/existing/file.txt", "replicate_file_atomic_rolled_back")
			}
			for _, r := range res {
				if r.Outcome != "compensated" {
					t.Errorf("%s: outcome %s, want compensated", r.Key, r.Outcome)
				}
				for _, d := range r.Destinations {
					want := "rolled back"
					if d.Destination == failing {
						want = "failed"
					}
					if d.Outcome != want {
						t.Errorf("%s on %s: %s, want %s (%s)", r.Key, d.Destination, d.Outcome, want, d.Error)
					}
				}
			}

			// An atomic batch: the same for a changed existing key and a new key.
			w.writeFile("existing/batch.txt", []byte("version 2 of the batch file"))
			w.writeFile("new/batch.txt", []byte("a new key in a batch"))
			list := filepath.Join(w.dir, "keys.txt")
			must(t, os.WriteFile(list, []byte("existing/batch.txt\nnew/batch.txt\n"), 0o644))
			out, code := w.starter("batch", list, "--wait", "--json", "--id", "undo")
			if code != 1 {
				t.Fatalf("batch: exit %d, want 1: %s", code, out)
			}
			if failing == "gcs" {
				recordHistory(t, "batch/"+w.policy+"/undo", "replicate_batch_atomic_direct_rolled_back")
			}
			var batch struct {
				Summary struct {
					Destinations []struct {
						Destination    string
						Copied, Failed int
					}
				}
			}
			must(t, json.Unmarshal([]byte(out), &batch))
			for _, d := range batch.Summary.Destinations {
				if d.Copied != 0 || d.Failed != 2 {
					t.Errorf("batch on %s: %d copied, %d failed; want 0 and 2", d.Destination, d.Copied, d.Failed)
				}
			}

			for _, d := range []string{"s3", "gcs", "azure"} {
				s := w.destination(d)
				for k, sum := range v1 {
					if got := readSHA(t, s, k); got != sum {
						t.Errorf("%s: %s changed (%s), want version 1 intact", d, k, got)
					}
				}
				for _, k := range []string{"new/file.txt", "new/batch.txt"} {
					if _, err := s.Stat(t.Context(), k); !store.IsNotFound(err) {
						t.Errorf("%s holds %s after its commit failed elsewhere: %v", d, k, err)
					}
				}
				for _, k := range listAll(t, s) {
					if strings.HasPrefix(k, ".replicator/staging/") || strings.HasPrefix(k, ".replicator/undo/") {
						t.Errorf("%s: %s left behind", d, k)
					}
				}
			}
			var failedOn []string
			for _, dl := range deadLetters(t, w) {
				if dl.Destination == failing && dl.Class == "Permission" {
					failedOn = append(failedOn, dl.Key)
				}
			}
			slices.Sort(failedOn)
			if want := []string{"existing/batch.txt", "existing/file.txt", "new/batch.txt", "new/file.txt"}; !slices.Equal(failedOn, want) {
				t.Errorf("dead letters on %s: %v, want %v", failing, failedOn, want)
			}
		})
	}
}
