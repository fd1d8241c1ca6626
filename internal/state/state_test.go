package state

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/store/localstore"
)

func newState(t *testing.T) *State {
	u, _ := url.Parse("file://" + t.TempDir())
	s, err := localstore.New(context.Background(), store.Options{Name: "state", URL: u})
	if err != nil {
		t.Fatal(err)
	}
	return New(s)
}

func TestDeadLetterLifecycle(t *testing.T) {
	ctx := context.Background()
	st := newState(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	must(t, st.RecordDeadLetter(ctx, DeadLetter{Policy: "p", Key: "a/b.pdf", Destination: "gcs", Class: "permission", Message: "denied", Attempts: 3, Last: t0}))
	must(t, st.RecordDeadLetter(ctx, DeadLetter{Policy: "p", Key: "a/b.pdf", Destination: "gcs", Class: "transient", Message: "503", Attempts: 2, Last: t0.Add(time.Hour)}))
	must(t, st.RecordDeadLetter(ctx, DeadLetter{Policy: "q", Key: "c", Destination: "s3", Attempts: 1}))
	var got []DeadLetter
	for d, err := range st.DeadLetters(ctx, "p") {
		must(t, err)
		got = append(got, d)
	}
	if len(got) != 1 || got[0].Attempts != 5 || !got[0].First.Equal(t0) || !got[0].Last.Equal(t0.Add(time.Hour)) || got[0].Message != "503" {
		t.Fatalf("dead letters of p = %+v", got)
	}
	if n, err := st.CountDeadLetters(ctx, "p"); err != nil || n["gcs"] != 1 || len(n) != 1 {
		t.Fatalf("counts of p = %v, %v", n, err)
	}
	must(t, st.ClearDeadLetter(ctx, "p", "gcs", "a/b.pdf"))
	must(t, st.ClearDeadLetter(ctx, "p", "gcs", "a/b.pdf"))
	n := 0
	for _, err := range st.DeadLetters(ctx, "") {
		must(t, err)
		n++
	}
	if n != 1 {
		t.Fatalf("after clearing, %d dead letters remain, want 1 (policy q)", n)
	}
}

func TestHashCacheIsPerVersion(t *testing.T) {
	ctx := context.Background()
	st := newState(t)
	must(t, st.CacheHash(ctx, "p", "k", HashEntry{Version: "v1", SHA256: "aa", Fingerprint: "0011223344556677"}))
	if h, err := st.CachedHash(ctx, "p", "k", "v1"); err != nil || h == nil || h.SHA256 != "aa" || h.Fingerprint != "0011223344556677" {
		t.Fatalf("cached = %+v, %v", h, err)
	}
	if h, err := st.CachedHash(ctx, "p", "k", "v2"); err != nil || h != nil {
		t.Fatalf("other version = %+v, %v; want a miss", h, err)
	}
}

func TestKeyListPages(t *testing.T) {
	ctx := context.Background()
	st := newState(t)
	var keys []string
	for i := range 25 {
		keys = append(keys, fmt.Sprintf("dir/file %02d.txt", i))
	}
	l, err := st.WriteKeyList(ctx, "p", "b1", slices.Values(keys), 10)
	must(t, err)
	if l.Pages != 3 || l.Count != 25 {
		t.Fatalf("list = %+v", l)
	}
	var all []string
	for i := range l.Pages {
		page, err := st.ReadKeyPage(ctx, l, i)
		must(t, err)
		all = append(all, page...)
	}
	if !slices.Equal(all, keys) {
		t.Fatalf("read back %q", all)
	}
}

func TestManifestJournalBatches(t *testing.T) {
	ctx := context.Background()
	st := newState(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	must(t, st.AppendManifest(ctx, "p", "s3", ManifestEntry{Key: "b", ETag: "1", Time: t0.Add(2)}))
	must(t, st.AppendManifest(ctx, "p", "s3", ManifestEntry{Key: "a", ETag: "2", Time: t0.Add(1)}, ManifestEntry{Key: "c", ETag: "3", Time: t0.Add(1)}))
	j, err := st.ReadJournal(ctx, "p", "s3")
	must(t, err)
	if keys := journalKeys(t, j); !slices.Equal(keys, []string{"a", "b", "c"}) {
		t.Fatalf("journal keys %q", keys)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestManifestCompaction(t *testing.T) {
	ctx := context.Background()
	st := newState(t)
	w, err := st.NewManifest(ctx, "p", "d")
	must(t, err)
	for _, k := range []string{"a", "b", "c", "e"} {
		must(t, w.Add(ManifestEntry{Key: k, ETag: "old-" + k}))
	}
	must(t, w.Commit(ctx, nil))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	must(t, st.AppendManifest(ctx, "p", "d", ManifestEntry{Key: "b", ETag: "new-b", Time: t0}))
	must(t, st.AppendManifest(ctx, "p", "d", ManifestEntry{Key: "c", Deleted: true, Time: t0}))
	must(t, st.AppendManifest(ctx, "p", "d", ManifestEntry{Key: "d", ETag: "new-d", Time: t0}))
	must(t, st.AppendManifest(ctx, "p", "d", ManifestEntry{Key: "d", ETag: "newer-d", Time: t0.Add(time.Second)}))
	j, err := st.ReadJournal(ctx, "p", "d")
	must(t, err)
	var got []string
	w2, err := st.NewManifest(ctx, "p", "d")
	must(t, err)
	for e, err := range j.Merged(st.Manifest(ctx, "p", "d")) {
		must(t, err)
		got = append(got, e.Key+"="+e.ETag)
		must(t, w2.Add(e))
	}
	want := []string{"a=old-a", "b=new-b", "d=newer-d", "e=old-e"}
	if !slices.Equal(got, want) {
		t.Fatalf("merged %q, want %q", got, want)
	}
	must(t, w2.Commit(ctx, j))
	j2, err := st.ReadJournal(ctx, "p", "d")
	must(t, err)
	if keys := journalKeys(t, j2); len(keys) != 0 {
		t.Fatalf("journal not emptied: %q", keys)
	}
	got = nil
	for e, err := range st.Manifest(ctx, "p", "d") {
		must(t, err)
		got = append(got, e.Key+"="+e.ETag)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("stored manifest %q", got)
	}
}

func TestJournalReadsSingleEntryObjects(t *testing.T) {
	ctx := context.Background()
	st := newState(t)
	must(t, st.putJSON(ctx, "manifests/p/d/journal/00000000000000000001-old.json", ManifestEntry{Key: "old", ETag: "e"}))
	must(t, st.AppendManifest(ctx, "p", "d", ManifestEntry{Key: "new", ETag: "f"}))
	j, err := st.ReadJournal(ctx, "p", "d")
	must(t, err)
	if keys := journalKeys(t, j); !slices.Equal(keys, []string{"new", "old"}) {
		t.Fatalf("keys %q", keys)
	}
}
