package replica

import (
	"context"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/bisync"
	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
)

// pair is a bidirectional policy between two real directories.
type pair struct {
	root   string
	a, b   Target
	engine *Engine
}

func newPair(t *testing.T, rule string) *pair {
	t.Helper()
	root := t.TempDir()
	p := &config.Policy{Name: "p", Mode: config.ModeBidirectional, Conflict: rule, Unmanaged: "overwrite"}
	return &pair{root: root,
		a:      Target{Policy: p, Name: "source", Store: open(t, filepath.Join(root, "a"), "a")},
		b:      Target{Policy: p, Name: "b", Store: open(t, filepath.Join(root, "b"), "b")},
		engine: New(state.New(open(t, filepath.Join(root, "state"), "state")))}
}

func (p *pair) write(t *testing.T, side, key, content string, mtime time.Time) {
	t.Helper()
	f := filepath.Join(p.root, side, key)
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(f, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

func (p *pair) remove(t *testing.T, side, key string) {
	t.Helper()
	if err := os.Remove(filepath.Join(p.root, side, key)); err != nil {
		t.Fatal(err)
	}
}

// contents reads every file of a side.
func (p *pair) contents(t *testing.T, side string) map[string]string {
	t.Helper()
	m := map[string]string{}
	dir := filepath.Join(p.root, side)
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			if d != nil && d.Name() == ".replicator" {
				return filepath.SkipDir
			}
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		m[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func listed(s store.Store) iter.Seq2[bisync.Listed, error] {
	return func(yield func(bisync.Listed, error) bool) {
		for o, err := range s.List(context.Background(), store.ListOptions{}) {
			if !yield(bisync.Listed{Key: o.Key, Size: o.Size, ETag: o.ETag}, err) || err != nil {
				return
			}
		}
	}
}

func (p *pair) records(t *testing.T, side bisync.Side) iter.Seq2[bisync.Synced, error] {
	st := p.engine.State
	j, err := st.ReadJournal(context.Background(), "p", SideManifest(side))
	if err != nil {
		t.Fatal(err)
	}
	return func(yield func(bisync.Synced, error) bool) {
		for e, err := range j.Merged(st.Manifest(context.Background(), "p", SideManifest(side))) {
			v, _ := bisync.ParseVector(e.Vector)
			if !yield(bisync.Synced{Key: e.Key, SHA256: e.SHA256, ETag: e.ETag, Size: e.Size, Vector: v}, err) || err != nil {
				return
			}
		}
	}
}

// plan merges both sides with their records and decides every key that needs work.
func (p *pair) plan(t *testing.T) []Planned {
	t.Helper()
	var planned []Planned
	err := bisync.Merge(listed(p.a.Store), listed(p.b.Store), p.records(t, bisync.SideA), p.records(t, bisync.SideB), func(it bisync.Item) error {
		if d := bisync.Decide(it); d.Action != bisync.Nothing {
			planned = append(planned, Planned{Item: it, Decision: d})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return planned
}

// sync plans and runs one bidirectional pass, returning what each key did.
func (p *pair) sync(t *testing.T) map[string]*SyncOutcome {
	t.Helper()
	out := map[string]*SyncOutcome{}
	for _, pl := range p.plan(t) {
		o, err := p.engine.SyncKey(context.Background(), p.a, p.b, pl, bisync.Rule(p.a.Policy.Conflict))
		if err != nil {
			t.Fatalf("sync %s: %v", pl.Key, err)
		}
		out[pl.Key] = o
	}
	return out
}

func TestSyncScenarios(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, rule := range []string{config.ConflictNewerWins, config.ConflictPreferA, config.ConflictPreferB, config.ConflictKeepBoth} {
		t.Run(rule, func(t *testing.T) {
			p := newPair(t, rule)
			for _, k := range []string{"mod-a", "mod-b", "mod-both", "del-a", "del-b", "del-a-mod-b", "del-both", "same", "old-name"} {
				p.write(t, "a", k, "v1 "+k, t0)
			}
			p.sync(t)
			if got := p.contents(t, "b"); len(got) != 9 || got["mod-a"] != "v1 mod-a" {
				t.Fatalf("first sync: side B holds %v", got)
			}
			p.write(t, "a", "new-a", "created on A", t0)
			p.write(t, "b", "new-b", "created on B", t0)
			p.write(t, "a", "mod-a", "v2 from A", t0.Add(time.Hour))
			p.write(t, "b", "mod-b", "v2 from B", t0.Add(time.Hour))
			p.write(t, "a", "mod-both", "v2 from A", t0.Add(time.Hour))
			p.write(t, "b", "mod-both", "v2 from B", t0.Add(2*time.Hour)) // B is newer
			p.remove(t, "a", "del-a")
			p.remove(t, "b", "del-b")
			p.remove(t, "a", "del-a-mod-b")
			p.write(t, "b", "del-a-mod-b", "v2 kept", t0.Add(time.Hour))
			p.remove(t, "a", "del-both")
			p.remove(t, "b", "del-both")
			p.write(t, "a", "both-new", "same bytes", t0)
			p.write(t, "b", "both-new", "same bytes", t0.Add(time.Minute))
			p.remove(t, "a", "old-name")
			p.write(t, "a", "new-name", "v1 old-name", t0)
			out := p.sync(t)

			a, b := p.contents(t, "a"), p.contents(t, "b")
			if !maps.Equal(a, b) {
				t.Fatalf("sides differ after the sync:\nA %v\nB %v", a, b)
			}
			want := map[string]string{"new-a": "created on A", "new-b": "created on B", "mod-a": "v2 from A", "mod-b": "v2 from B",
				"del-a-mod-b": "v2 kept", "both-new": "same bytes", "new-name": "v1 old-name", "same": "v1 same"}
			switch rule {
			case config.ConflictPreferA:
				want["mod-both"] = "v2 from A"
			default:
				want["mod-both"] = "v2 from B"
			}
			for k, v := range want {
				if a[k] != v {
					t.Errorf("%s = %q; want %q", k, a[k], v)
				}
			}
			for _, gone := range []string{"del-a", "del-b", "del-both", "old-name"} {
				if _, ok := a[gone]; ok {
					t.Errorf("%s survived its delete", gone)
				}
			}
			kept := bisync.ConflictName("mod-both", bisync.SideA, t0.Add(time.Hour))
			if rule == config.ConflictKeepBoth {
				if a[kept] != "v2 from A" || out["mod-both"].Kept != kept {
					t.Errorf("keep-both: %s = %q (outcome %+v); want A's losing version", kept, a[kept], out["mod-both"])
				}
			} else if _, ok := a[kept]; ok {
				t.Errorf("%s kept a conflict copy", rule)
			}
			if out["mod-both"].Conflict != ConflictBoth || out["del-a-mod-b"].Conflict != bisync.ConflictModifyDelete || out["both-new"].Conflict != "" {
				t.Errorf("conflicts: mod-both %+v, del-a-mod-b %+v, both-new %+v", out["mod-both"], out["del-a-mod-b"], out["both-new"])
			}
			if again := p.sync(t); len(again) != 0 {
				t.Errorf("second sync is not a no-op: %v", slices.Collect(maps.Keys(again)))
			}
		})
	}
}

// A sync that stops after writing side B but before recording the key (a worker
// killed between the two) loses neither side's change: the next run finds the same
// bytes on both sides, records them, and a later edit on either side still syncs.
func TestSyncCrashBetweenWritesAndRecords(t *testing.T) {
	p := newPair(t, config.ConflictNewerWins)
	p.write(t, "a", "k", "v1", time.Time{})
	p.sync(t)
	p.write(t, "a", "k", "v2 from A", time.Time{})
	// What a sync would do up to the crash: side B written, no records.
	planned := p.plan(t)
	if len(planned) != 1 || planned[0].Action != bisync.CopyToB {
		t.Fatalf("planned %+v", planned)
	}
	var before []string
	for o, lerr := range p.engine.State.Store().List(context.Background(), store.ListOptions{}) {
		must(t, lerr)
		before = append(before, o.Key)
	}
	if _, err := p.engine.SyncKey(context.Background(), p.a, p.b, planned[0], bisync.NewerWins); err != nil {
		t.Fatal(err)
	}
	for o, lerr := range p.engine.State.Store().List(context.Background(), store.ListOptions{}) {
		must(t, lerr)
		if !slices.Contains(before, o.Key) {
			must(t, p.engine.State.Store().Delete(context.Background(), o.Key, store.DeleteOptions{})) // the records never made it
		}
	}
	out := p.sync(t)
	if o := out["k"]; o == nil || o.Did != SyncInSync {
		t.Fatalf("after the crash: %+v; want the key recorded as in sync", out)
	}
	if again := p.sync(t); len(again) != 0 {
		t.Fatalf("third sync not a no-op: %+v", again)
	}
	p.write(t, "b", "k", "v3 from B", time.Time{})
	p.sync(t)
	if a := p.contents(t, "a"); a["k"] != "v3 from B" {
		t.Errorf("B's later edit did not reach A: %q", a["k"])
	}
}

// A side whose file changed again after the plan is left alone: the write is
// conditional on what the plan saw.
func TestSyncLeavesKeysChangedSincePlan(t *testing.T) {
	p := newPair(t, config.ConflictNewerWins)
	p.write(t, "a", "k", "v1", time.Time{})
	p.sync(t)
	p.write(t, "b", "k", "v2 from B", time.Time{})
	planned := p.plan(t)
	p.write(t, "a", "k", "v3 edited on A meanwhile", time.Time{})
	o, err := p.engine.SyncKey(context.Background(), p.a, p.b, planned[0], bisync.NewerWins)
	if err != nil || o.Did != SyncChanged {
		t.Fatalf("outcome %+v, %v; want changed", o, err)
	}
	if a := p.contents(t, "a"); !strings.HasPrefix(a["k"], "v3") {
		t.Errorf("A's newer edit was overwritten: %q", a["k"])
	}
}
