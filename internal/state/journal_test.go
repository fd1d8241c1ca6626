package state

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func journalKeys(t *testing.T, j *Journal) []string {
	t.Helper()
	var keys []string
	for e, err := range j.Latest() {
		must(t, err)
		keys = append(keys, e.Key)
	}
	return keys
}

func journalEntriesOf(t *testing.T, j *Journal) []ManifestEntry {
	t.Helper()
	var out []ManifestEntry
	for e, err := range j.Latest() {
		must(t, err)
		out = append(out, e)
	}
	return out
}

// A journal longer than a run is sorted on disk and merged back: the result is the
// same as the one read in memory, the latest entry of each key winning across runs
// and a tie going to the entry written later.
func TestJournalSpillsToSortedRuns(t *testing.T) {
	ctx := context.Background()
	st := newState(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	for obj := range 40 {
		var entries []ManifestEntry
		for range 7 {
			k := fmt.Sprintf("k%03d", rng.IntN(120))
			entries = append(entries, ManifestEntry{Key: k, ETag: fmt.Sprintf("%d", obj), Time: t0.Add(time.Duration(rng.IntN(5)) * time.Second), Deleted: rng.IntN(6) == 0})
		}
		// Objects are read in name order: name them so that obj is that order.
		must(t, st.putJSON(ctx, fmt.Sprintf("manifests/p/d/journal/%020d-x.json", obj), entries))
	}
	w, err := st.NewManifest(ctx, "p", "d")
	must(t, err)
	for k := 0; k < 130; k += 2 {
		must(t, w.Add(ManifestEntry{Key: fmt.Sprintf("k%03d", k), ETag: "manifest"}))
	}
	must(t, w.Commit(ctx, nil))
	inMemory, err := st.readJournal(ctx, "p", "d", 1<<20)
	must(t, err)
	if len(inMemory.runs) != 0 {
		t.Fatalf("a short journal spilled %d runs", len(inMemory.runs))
	}
	spilled, err := st.readJournal(ctx, "p", "d", 9)
	must(t, err)
	defer spilled.Close()
	if len(spilled.runs) < 20 {
		t.Fatalf("expected many runs, got %d", len(spilled.runs))
	}
	want, got := journalEntriesOf(t, inMemory), journalEntriesOf(t, spilled)
	if !slices.EqualFunc(want, got, func(a, b ManifestEntry) bool {
		return a.Key == b.Key && a.ETag == b.ETag && a.Deleted == b.Deleted && a.Time.Equal(b.Time)
	}) {
		t.Fatalf("spilled journal differs:\n got %+v\nwant %+v", got, want)
	}
	// The reference: the latest per key over every entry in read order.
	latest := map[string]ManifestEntry{}
	for obj := range 40 {
		var entries []ManifestEntry
		_, err := st.getJSON(ctx, fmt.Sprintf("manifests/p/d/journal/%020d-x.json", obj), &entries)
		must(t, err)
		for _, e := range entries {
			if old, ok := latest[e.Key]; !ok || !e.Time.Before(old.Time) {
				latest[e.Key] = e
			}
		}
	}
	if len(latest) != len(got) {
		t.Fatalf("%d keys, want %d", len(got), len(latest))
	}
	for _, e := range got {
		if r := latest[e.Key]; r.ETag != e.ETag || !r.Time.Equal(e.Time) {
			t.Fatalf("%s: got %+v, want %+v", e.Key, e, r)
		}
	}
	// Merged over the runs applies deletes and replacements like the in-memory one.
	var mergedMem, mergedRuns []string
	for e, err := range inMemory.Merged(st.Manifest(ctx, "p", "d")) {
		must(t, err)
		mergedMem = append(mergedMem, e.Key+"="+e.ETag)
	}
	for e, err := range spilled.Merged(st.Manifest(ctx, "p", "d")) {
		must(t, err)
		mergedRuns = append(mergedRuns, e.Key+"="+e.ETag)
	}
	if !slices.Equal(mergedMem, mergedRuns) || len(mergedRuns) == 0 {
		t.Fatalf("merged differ: %q vs %q", mergedMem, mergedRuns)
	}
}

// Two runs folding the same journal: the one that stores its manifest second drops
// it and removes nothing, so an entry only the first one read is never lost.
func TestManifestCommitLosesNoFoldedEntry(t *testing.T) {
	ctx := context.Background()
	st := newState(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	must(t, st.AppendManifest(ctx, "p", "d", ManifestEntry{Key: "a", ETag: "1", Time: t0}))
	slow, err := st.NewManifest(ctx, "p", "d")
	must(t, err)
	defer slow.Discard()
	slowJournal, err := st.ReadJournal(ctx, "p", "d")
	must(t, err)
	// Another run folds a and a newer b first.
	must(t, st.AppendManifest(ctx, "p", "d", ManifestEntry{Key: "b", ETag: "2", Time: t0}))
	if n, err := st.CompactManifest(ctx, "p", "d"); err != nil || n != 0 {
		t.Fatalf("a journal of two entries was folded (%d objects, %v): the next plan folds it", n, err)
	}
	n, err := st.compactManifest(ctx, "p", "d", 0)
	must(t, err)
	if n != 2 {
		t.Fatalf("folded %d journal objects, want 2", n)
	}
	for e, err := range slowJournal.Merged(st.Manifest(ctx, "p", "d")) {
		must(t, err)
		must(t, slow.Add(e))
	}
	if err := slow.Commit(ctx, slowJournal); !errors.Is(err, ErrManifestMoved) {
		t.Fatalf("commit over a newer manifest: %v, want ErrManifestMoved", err)
	}
	var got []string
	for e, err := range st.Manifest(ctx, "p", "d") {
		must(t, err)
		got = append(got, e.Key+"="+e.ETag)
	}
	if want := []string{"a=1", "b=2"}; !slices.Equal(got, want) {
		t.Fatalf("manifest %q, want %q", got, want)
	}
	j, err := st.ReadJournal(ctx, "p", "d")
	must(t, err)
	if keys := journalKeys(t, j); len(keys) != 0 {
		t.Fatalf("journal left %q", keys)
	}
	// With nothing in the journal, compaction stores nothing.
	if n, err := st.compactManifest(ctx, "p", "d", 0); err != nil || n != 0 {
		t.Fatalf("compact an empty journal: %d, %v", n, err)
	}
}

// A long list of entries with the longest keys is stored in objects small enough to be
// read back.
func TestAppendManifestSplitsLongLists(t *testing.T) {
	ctx := context.Background()
	st := newState(t)
	entries := make([]ManifestEntry, 3000)
	for i := range entries {
		entries[i] = ManifestEntry{Key: fmt.Sprintf("%04d/%s", i, strings.Repeat("k", 1019)), ETag: `"0123456789abcdef0123456789abcdef"`,
			SHA256: strings.Repeat("a", 64), SourceVersion: strings.Repeat("v", 40), Size: 1 << 40}
	}
	must(t, st.AppendManifest(ctx, "p", "d", entries...))
	j, err := st.ReadJournal(ctx, "p", "d")
	must(t, err)
	defer j.Close()
	if keys := journalKeys(t, j); len(keys) != len(entries) {
		t.Fatalf("read back %d of %d entries", len(keys), len(entries))
	}
}
