package reconcile

import (
	"errors"
	"iter"
	"slices"
	"strings"
	"testing"
)

func seq[T any](items ...T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for _, it := range items {
			if !yield(it, nil) {
				return
			}
		}
	}
}

type row struct {
	key     string
	actions []Action
	kept    []bool
}

func run(t *testing.T, src []SourceEntry, dests []Destination, opts Options) []row {
	t.Helper()
	var rows []row
	err := Diff(seq(src...), dests, opts, func(d *Decision) error {
		r := row{key: d.Key, actions: d.Actions}
		for _, m := range d.Manifest {
			r.kept = append(r.kept, m != nil)
		}
		rows = append(rows, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestEveryCase(t *testing.T) {
	src := []SourceEntry{
		{Key: "a-new", Size: 1, Version: "1:a"},
		{Key: "b-same", Size: 2, Version: "1:b"},
		{Key: "c-changed", Size: 3, Version: "2:c"},
		{Key: "d-vanished-replica", Size: 4, Version: "1:d"},
		{Key: "e-unmanaged", Size: 5, Version: "1:e"},
		{Key: "f-etag-drift", Size: 6, Version: "1:f"},
	}
	man := []ManifestEntry{
		{Key: "b-same", SourceVersion: "1:b", ETag: "eb", Size: 2},
		{Key: "c-changed", SourceVersion: "1:c", ETag: "ec", Size: 3},
		{Key: "d-vanished-replica", SourceVersion: "1:d", ETag: "ed", Size: 4},
		{Key: "f-etag-drift", SourceVersion: "1:f", ETag: "ef", Size: 6},
		{Key: "g-deleted-at-source", SourceVersion: "1:g", ETag: "eg", Size: 7},
		{Key: "h-stale-record", SourceVersion: "1:h", ETag: "eh", Size: 8},
	}
	list := []DestEntry{
		{Key: "b-same", ETag: "eb", Size: 2},
		{Key: "c-changed", ETag: "ec", Size: 3},
		{Key: "e-unmanaged", ETag: "ee", Size: 5},
		{Key: "f-etag-drift", ETag: "somebody-else", Size: 6},
		{Key: "g-deleted-at-source", ETag: "eg", Size: 7},
		{Key: "z-extra", ETag: "ez", Size: 9},
	}
	want := map[string]Action{
		"a-new": Copy, "b-same": Unchanged, "c-changed": Update, "d-vanished-replica": Copy,
		"e-unmanaged": Adopt, "f-etag-drift": Adopt, "g-deleted-at-source": Delete, "h-stale-record": Unchanged, "z-extra": Delete,
	}
	for _, mirror := range []bool{true, false} {
		rows := run(t, src, []Destination{{Name: "d", Manifest: seq(man...), Listing: seq(list...)}}, Options{Mirror: mirror})
		if len(rows) != len(want) {
			t.Fatalf("%d decisions, want %d", len(rows), len(want))
		}
		for _, r := range rows {
			w := want[r.key]
			if !mirror && w == Delete {
				w = Extra
			}
			if r.actions[0] != w {
				t.Errorf("mirror=%v %s: %q, want %q", mirror, r.key, r.actions[0], w)
			}
		}
		kept := map[string]bool{}
		for _, r := range rows {
			kept[r.key] = r.kept[0]
		}
		if !kept["b-same"] || kept["c-changed"] || kept["h-stale-record"] || kept["d-vanished-replica"] {
			t.Errorf("manifest records kept: %v", kept)
		}
	}
}

func TestRoutingAndSeveralDestinations(t *testing.T) {
	src := []SourceEntry{{Key: "eu/a", Version: "1"}, {Key: "nl/b", Version: "1"}}
	rows := run(t, src, []Destination{
		{Name: "s3", Manifest: seq[ManifestEntry](), Listing: seq[DestEntry]()},
		{Name: "gcs", Manifest: seq[ManifestEntry](), Listing: seq(DestEntry{Key: "nl/b", ETag: "x"})},
	}, Options{Mirror: true, Routed: func(key, dest string) bool { return dest == "s3" || !strings.HasPrefix(key, "nl/") }})
	if !slices.Equal(rows[0].actions, []Action{Copy, Copy}) || !slices.Equal(rows[1].actions, []Action{Copy, Delete}) {
		t.Fatalf("rows %+v", rows)
	}
}

func TestChecksumVerifiesUnchanged(t *testing.T) {
	rows := run(t, []SourceEntry{{Key: "k", Version: "1", Size: 1}},
		[]Destination{{Name: "d", Manifest: seq(ManifestEntry{Key: "k", SourceVersion: "1", ETag: "e", Size: 1}), Listing: seq(DestEntry{Key: "k", ETag: "e", Size: 1})}},
		Options{Checksum: true})
	if rows[0].actions[0] != Verify {
		t.Fatalf("action %q", rows[0].actions[0])
	}
}

func TestOutOfOrderStops(t *testing.T) {
	for name, dests := range map[string][]Destination{
		"listing":  {{Name: "d", Manifest: seq[ManifestEntry](), Listing: seq(DestEntry{Key: "a/b"}, DestEntry{Key: "a-b"})}},
		"manifest": {{Name: "d", Manifest: seq(ManifestEntry{Key: "b"}, ManifestEntry{Key: "b"}), Listing: seq[DestEntry]()}},
	} {
		deletes := 0
		err := Diff(seq[SourceEntry](), dests, Options{Mirror: true}, func(d *Decision) error {
			if d.Actions[0] == Delete {
				deletes++
			}
			return nil
		})
		if !errors.Is(err, ErrOutOfOrder) {
			t.Errorf("%s: err %v, want ErrOutOfOrder", name, err)
		}
		if deletes > 1 {
			t.Errorf("%s: planned %d deletes past the disorder", name, deletes)
		}
	}
	err := Diff(seq(SourceEntry{Key: "b"}, SourceEntry{Key: "a"}), nil, Options{}, func(*Decision) error { return nil })
	if !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("source out of order: %v", err)
	}
}

func TestStreamErrorStops(t *testing.T) {
	boom := errors.New("listing failed")
	failing := func(yield func(DestEntry, error) bool) { yield(DestEntry{}, boom) }
	err := Diff(seq[SourceEntry](), []Destination{{Name: "d", Manifest: seq[ManifestEntry](), Listing: failing}}, Options{}, func(*Decision) error { return nil })
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
}

func TestPrefetchKeepsOrderAndStops(t *testing.T) {
	var keys []string
	for i := range 5000 {
		keys = append(keys, string(rune('a'+i%26))+strings.Repeat("x", i/26))
	}
	var got []string
	for k, err := range Prefetch(seq(keys...), 100) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
	}
	if !slices.Equal(got, keys) {
		t.Fatal("prefetch changed the stream")
	}
	n := 0
	for range Prefetch(seq(keys...), 10) {
		n++
		if n == 3 {
			break
		}
	}
	boom := errors.New("boom")
	failing := func(yield func(string, error) bool) { yield("a", nil); yield("", boom) }
	var last error
	for _, err := range Prefetch(iter.Seq2[string, error](failing), 4) {
		last = err
	}
	if !errors.Is(last, boom) {
		t.Fatalf("error lost: %v", last)
	}
}

// A rejected source entry and an unreadable directory are held: no destination loses
// or gains anything under them in mirror mode, while a truly deleted key next to them
// is still deleted.
func TestHeldEntriesAndSubtreesChangeNothing(t *testing.T) {
	src := []SourceEntry{
		{Key: "a/fifo", Held: true},
		{Key: "b/", Held: true, Subtree: true},
		{Key: "c", Size: 1, Version: "1:c"},
	}
	man := []ManifestEntry{
		{Key: "a/fifo", SourceVersion: "1:x", ETag: "ex", Size: 1},
		{Key: "b-sibling", SourceVersion: "1:s", ETag: "es", Size: 1},
		{Key: "b/deep/file", SourceVersion: "1:f", ETag: "ef", Size: 1},
		{Key: "b/z", SourceVersion: "1:z", ETag: "ez", Size: 1},
		{Key: "c", SourceVersion: "1:c", ETag: "ec", Size: 1},
	}
	list := []DestEntry{
		{Key: "a/fifo", ETag: "ex", Size: 1},
		{Key: "b-sibling", ETag: "es", Size: 1},
		{Key: "b/deep/file", ETag: "ef", Size: 1},
		{Key: "b/z", ETag: "ez", Size: 1},
		{Key: "b0", ETag: "e0", Size: 1},
		{Key: "c", ETag: "ec", Size: 1},
	}
	rows := run(t, src, []Destination{{Name: "s3", Manifest: seq(man...), Listing: seq(list...)}}, Options{Mirror: true})
	got := map[string]Action{}
	for _, r := range rows {
		got[r.key] = r.actions[0]
	}
	want := map[string]Action{"a/fifo": Unchanged, "b/": Unchanged, "b-sibling": Delete, "b/deep/file": Unchanged, "b/z": Unchanged, "b0": Delete, "c": Unchanged}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	for _, r := range rows {
		if (r.key == "b/deep/file" || r.key == "a/fifo") && !r.kept[0] {
			t.Errorf("%s: its manifest record was dropped", r.key)
		}
	}
}
