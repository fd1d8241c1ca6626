package replica

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRestoreFromReplicas(t *testing.T) {
	d := newDirs(t)
	ctx := context.Background()
	sv := d.writeSource(t, "docs/a.txt", "replicated bytes", time.Time{})
	if _, err := d.engine.Write(ctx, d.target(), WriteRequest{Key: "docs/a.txt", Source: sv, Body: Body{Source: d.src}}); err != nil {
		t.Fatal(err)
	}
	target := Target{Policy: d.policy, Name: "rebuilt", Store: open(t, filepath.Join(d.root, "rebuilt"), "rebuilt")}
	restore := func(overwrite bool) (string, error) {
		res, err := d.engine.Restore(ctx, target, RestoreRequest{Key: "docs/a.txt", From: d.dst, Overwrite: overwrite})
		if err != nil {
			return "", err
		}
		return string(res.Outcome), nil
	}
	read := func() string {
		b, _ := os.ReadFile(filepath.Join(d.root, "rebuilt", "docs/a.txt"))
		return string(b)
	}
	if out, err := restore(false); err != nil || out != "copied" || read() != "replicated bytes" {
		t.Fatalf("restore into an empty target: %s, %v, %q", out, err, read())
	}
	if out, err := restore(false); err != nil || out != "skipped" {
		t.Fatalf("second restore: %s, %v", out, err)
	}
	must(t, os.WriteFile(filepath.Join(d.root, "rebuilt", "docs/a.txt"), []byte("edited at the target"), 0o644))
	if out, err := restore(false); err != nil || out != "left" || read() != "edited at the target" {
		t.Fatalf("restore over an edit: %s, %v, %q", out, err, read())
	}
	if out, err := restore(true); err != nil || out != "copied" || read() != "replicated bytes" {
		t.Fatalf("restore --overwrite: %s, %v, %q", out, err, read())
	}
	// A replica damaged on its store, its record untouched (same size and time):
	// the stream's SHA-256 check refuses it, and the target keeps what it had.
	replica := filepath.Join(d.root, "dst", "docs/a.txt")
	fi, err := os.Stat(replica)
	must(t, err)
	must(t, os.WriteFile(replica, []byte("REPLICATED BYTES"), 0o644))
	must(t, os.Chtimes(replica, fi.ModTime(), fi.ModTime()))
	must(t, os.Remove(filepath.Join(d.root, "rebuilt", "docs/a.txt")))
	if out, err := restore(false); err == nil || FailureType(err) != "SourceChanged" {
		t.Fatalf("restore of a damaged replica: %s, %v; want it refused", out, err)
	}
	if _, err := os.Stat(filepath.Join(d.root, "rebuilt", "docs/a.txt")); !os.IsNotExist(err) {
		t.Errorf("a damaged replica was restored: %v", err)
	}
}
