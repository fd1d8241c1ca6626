//go:build integration

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/state"
)

// messyShare fills a source with what a NAS share holds on its first day beside
// normal files: names no cloud takes, a FIFO, links out of the root and to nothing,
// a name only Azure refuses, and an excluded snapshot tree. It returns the SHA-256
// of each normal file and the bad entries' names.
func messyShare(t *testing.T, w *world) (good map[string]string, bad []string) {
	good = map[string]string{}
	for _, k := range []string{"docs/a.pdf", "docs/b.txt", "images/c.jpg", "prices.csv"} {
		good[k] = w.writeFile(k, []byte("content of "+k+" "+strings.Repeat("x", len(k)*100)))
	}
	for _, name := range []string{"bad\x01control.txt", "bad-\xff-utf8.txt"} {
		must(t, os.WriteFile(filepath.Join(w.src, name), []byte("odd name"), 0o644))
		bad = append(bad, name)
	}
	must(t, syscall.Mkfifo(filepath.Join(w.src, "docs", "pipe"), 0o644))
	must(t, os.Symlink("/etc/hostname", filepath.Join(w.src, "escape")))
	must(t, os.Symlink("nowhere", filepath.Join(w.src, "dangling")))
	bad = append(bad, "docs/pipe", "escape", "dangling")
	w.writeFile(".snapshot/hourly/docs/a.pdf", []byte("a snapshot, excluded"))
	return good, bad
}

func deadLetters(t *testing.T, w *world) []state.DeadLetter {
	t.Helper()
	out, code := w.starter("failed", "list", "--json")
	if code != 0 {
		t.Fatalf("failed list: exit %d %s", code, out)
	}
	var dls []state.DeadLetter
	must(t, json.Unmarshal([]byte(out), &dls))
	return dls
}

// TestRealShareMirrorReconcile: one odd entry never stops a run. A mirror reconcile
// of a messy share replicates every normal file to the three clouds (read back),
// reports each bad entry by name with its reason (class Rejected) and leaves it out
// of every cloud, stores a backslash name where the cloud keeps it byte for byte and
// refuses it on Azure; the next reconcile plans nothing; and a file restored from
// backup (older content and mtime) replicates.
func TestRealShareMirrorReconcile(t *testing.T) {
	w := newWorld(t, worldOptions{mode: "mirror", extra: "    exclude: [\".snapshot/**\"]\n"})
	w.startWorker()
	good, bad := messyShare(t, w)
	backslash := `reports\2026.csv`
	backslashSum := w.writeFile(backslash, []byte("Azure would store this under reports/2026.csv"))

	r, code := w.reconcile()
	if code != 0 || r.Result.Outcome != "ok" {
		out, _ := w.starter("failed", "list")
		t.Fatalf("reconcile: exit %d, outcome %q; dead letters:\n%s", code, r.Result.Outcome, out)
	}
	for _, d := range []string{"s3", "gcs", "azure"} {
		s := w.destination(d)
		for k, sum := range good {
			if got := readSHA(t, s, k); got != sum {
				t.Errorf("%s: %s reads back %s, want %s", d, k, got, sum)
			}
		}
		keys := listAll(t, s)
		for _, b := range append(slices.Clone(bad), ".snapshot/hourly/docs/a.pdf") {
			if slices.Contains(keys, b) {
				t.Errorf("%s holds %q, which must not be replicated", d, b)
			}
		}
		switch d {
		case "azure":
			if slices.Contains(keys, backslash) || slices.Contains(keys, "reports/2026.csv") {
				t.Errorf("azure holds the backslash name under some name: %v", keys)
			}
		default:
			if got := readSHA(t, s, backslash); got != backslashSum {
				t.Errorf("%s: the backslash name is not stored byte for byte", d)
			}
		}
	}
	// Records are JSON, which cannot hold invalid UTF-8 in a key: the message names
	// the entry quoted, byte for byte.
	rejected := map[string][]string{}
	for _, dl := range deadLetters(t, w) {
		if dl.Class != "Rejected" {
			continue
		}
		for _, b := range append(slices.Clone(bad), backslash) {
			if strings.HasPrefix(dl.Message, strconv.Quote(b)+" cannot be replicated: ") || dl.Key == b && strings.Contains(dl.Message, "Azure") {
				rejected[b] = append(rejected[b], dl.Destination)
			}
		}
	}
	for _, b := range bad {
		if len(rejected[b]) != 3 {
			t.Errorf("bad entry %q: rejected on %v, want all three destinations", b, rejected[b])
		}
	}
	if !slices.Contains(rejected[backslash], "azure") || slices.Contains(rejected[backslash], "s3") || slices.Contains(rejected[backslash], "gcs") {
		t.Errorf("backslash name rejected on %v, want azure only", rejected[backslash])
	}

	// Nothing left to do: the bad entries are reported again, but nothing is planned.
	r, code = w.reconcile()
	for _, d := range r.Result.Destinations {
		if code != 0 || d.Copy+d.Update+d.Delete+d.Adopt != 0 {
			t.Errorf("second reconcile (exit %d) plans work on %s: %+v", code, d.Destination, d)
		}
	}

	// A restore from backup: older content, mtime a year ago, new ctime.
	restored := w.writeFile("docs/a.pdf", []byte("the version of last year, restored"))
	old := time.Now().Add(-365 * 24 * time.Hour)
	must(t, os.Chtimes(filepath.Join(w.src, "docs/a.pdf"), old, old))
	if _, code := w.reconcile(); code != 0 {
		t.Fatalf("reconcile after the restore: exit %d", code)
	}
	for _, d := range []string{"s3", "gcs", "azure"} {
		if got := readSHA(t, w.destination(d), "docs/a.pdf"); got != restored {
			t.Errorf("%s does not hold the restored file", d)
		}
	}
}

// TestRealShareAtomicBatch: an atomic batch over the same share, its key list made
// by `find`: lines no key can be are reported with their line numbers and the rest
// runs; entries that are not regular files are rejected by name; the normal files
// are committed on every cloud; the command exits 1 because some lines failed.
func TestRealShareAtomicBatch(t *testing.T) {
	w := newWorld(t, worldOptions{consistency: "atomic"})
	w.startWorker()
	good, bad := messyShare(t, w)
	var keys []string
	for k := range good {
		keys = append(keys, k)
	}
	keys = append(keys, bad...)
	slices.Sort(keys)
	list := filepath.Join(w.dir, "keys.txt")
	must(t, os.WriteFile(list, []byte(strings.Join(keys, "\n")+"\n"), 0o644))
	out, code := w.starter("batch", list, "--wait", "--json", "--id", "messy")
	if code != 1 {
		t.Fatalf("batch exit %d, want 1 (bad lines and rejected entries): %s", code, out)
	}
	var res struct {
		Summary struct {
			Keys     int
			Rejected int
		}
		Rejected []struct {
			Line   int
			Key    string
			Reason string
		} `json:"rejected"`
	}
	must(t, json.Unmarshal([]byte(out), &res))
	if len(res.Rejected) != 2 {
		t.Errorf("refused lines %+v, want the two names no key can be", res.Rejected)
	}
	if res.Summary.Rejected != 3 {
		t.Errorf("summary rejected %d, want 3 (the FIFO and both links)", res.Summary.Rejected)
	}
	for _, d := range []string{"s3", "gcs", "azure"} {
		s := w.destination(d)
		for k, sum := range good {
			if got := readSHA(t, s, k); got != sum {
				t.Errorf("%s: %s reads back %s, want %s", d, k, got, sum)
			}
		}
		for _, k := range listAll(t, s) {
			if slices.Contains(bad, k) || strings.HasPrefix(k, ".replicator/staging/") {
				t.Errorf("%s holds %q after the batch", d, k)
			}
		}
	}
	rejected := 0
	for _, dl := range deadLetters(t, w) {
		if dl.Class == "Rejected" && slices.Contains(bad, dl.Key) && strings.Contains(dl.Message, dl.Key) {
			rejected++
		}
	}
	if rejected != 9 {
		t.Errorf("%d dead letters of class Rejected, want 9 (three entries on three destinations)", rejected)
	}
}
