package bisync

import (
	"errors"
	"iter"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestVectorRoundTripAndOrder(t *testing.T) {
	v, err := ParseVector("a:3,b:2")
	if err != nil || v != (Vector{3, 2}) || v.String() != "a:3,b:2" {
		t.Fatalf("ParseVector = %v, %v", v, err)
	}
	if z, err := ParseVector(""); err != nil || !z.IsZero() || z.String() != "" {
		t.Errorf("empty vector = %v, %v", z, err)
	}
	for _, bad := range []string{"a3", "a:x", "c:1", "a:1,b"} {
		if _, err := ParseVector(bad); err == nil {
			t.Errorf("ParseVector(%q) accepted", bad)
		}
	}
	cases := []struct {
		v, o Vector
		want Order
	}{
		{Vector{1, 1}, Vector{1, 1}, Equal},
		{Vector{2, 1}, Vector{1, 1}, Descends},
		{Vector{1, 1}, Vector{1, 2}, Precedes},
		{Vector{2, 1}, Vector{1, 2}, Concurrent},
	}
	for _, c := range cases {
		if got := c.v.Compare(c.o); got != c.want {
			t.Errorf("%v.Compare(%v) = %v; want %v", c.v, c.o, got, c.want)
		}
	}
}

func TestDecideScenarioTable(t *testing.T) {
	l := func(etag string) *Listed { return &Listed{Key: "k", Size: 1, ETag: etag} }
	s := func(etag string) *Synced { return &Synced{Key: "k", Size: 1, ETag: etag} }
	cases := []struct {
		name         string
		a, b         *Listed
		sa, sb       *Synced
		want         Action
		wantConflict string
	}{
		{"in sync", l("1"), l("x"), s("1"), s("x"), Nothing, ""},
		{"created on A", l("1"), nil, nil, nil, CopyToB, ""},
		{"created on B", nil, l("x"), nil, nil, CopyToA, ""},
		{"modified on A", l("2"), l("x"), s("1"), s("x"), CopyToB, ""},
		{"modified on B", l("1"), l("y"), s("1"), s("x"), CopyToA, ""},
		{"modified on both", l("2"), l("y"), s("1"), s("x"), BothChanged, ""},
		{"created on both", l("1"), l("x"), nil, nil, BothChanged, ""},
		{"deleted on A", nil, l("x"), s("1"), s("x"), DeleteOnB, ""},
		{"deleted on B", l("1"), nil, s("1"), s("x"), DeleteOnA, ""},
		{"deleted on A, modified on B", nil, l("y"), s("1"), s("x"), CopyToA, ConflictModifyDelete},
		{"modified on A, deleted on B", l("2"), nil, s("1"), s("x"), CopyToB, ConflictModifyDelete},
		{"deleted on both", nil, nil, s("1"), s("x"), Forget, ""},
		{"record of B lost, B gone", l("1"), nil, s("1"), nil, CopyToB, ""},
		{"record of A lost, A gone", nil, l("x"), nil, s("x"), CopyToA, ""},
		{"A deleted, B record lost", nil, nil, s("1"), nil, Forget, ""},
	}
	for _, c := range cases {
		got := Decide(Item{Key: "k", A: c.a, B: c.b, SyncedA: c.sa, SyncedB: c.sb})
		if got.Action != c.want || got.Conflict != c.wantConflict {
			t.Errorf("%s: Decide = %+v; want %s %q", c.name, got, c.want, c.wantConflict)
		}
	}
	if d := Decide(Item{Key: "k", A: l("2"), Held: true, SyncedA: s("1"), SyncedB: s("x")}); d.Action != Nothing {
		t.Errorf("held key planned %v", d)
	}
}

func TestResolve(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	base := Vector{1, 1}
	userA := Version{SHA256: "aa", ModTime: t0}
	userB := Version{SHA256: "bb", ModTime: t0.Add(time.Minute)}
	for _, c := range []struct {
		rule     Rule
		winner   Side
		keepBoth bool
	}{{NewerWins, SideB, false}, {PreferA, SideA, false}, {PreferB, SideB, false}, {KeepBoth, SideB, true}} {
		r := Resolve(c.rule, userA, userB, base)
		if !r.Conflict || r.InSync || r.Winner != c.winner || r.KeepLoser != c.keepBoth || r.Vector != (Vector{2, 2}) {
			t.Errorf("%s: concurrent edits resolved as %+v", c.rule, r)
		}
	}
	// The same bytes on both sides are in sync, whatever the rule.
	if r := Resolve(PreferB, userA, Version{SHA256: "aa"}, base); !r.InSync || r.Conflict {
		t.Errorf("same content resolved as %+v", r)
	}
	// A replica written from A's change (a run that crashed before recording it)
	// meets a later edit on A: the edit has seen the replica, no conflict.
	replicaB := Version{SHA256: "r", Replica: true, Carried: Vector{2, 1}, ModTime: t0.Add(time.Hour)}
	if r := Resolve(NewerWins, userA, replicaB, base); r.Conflict || r.Winner != SideA || r.Vector != (Vector{3, 1}) {
		t.Errorf("edit after a replica resolved as %+v; want A to win without a conflict", r)
	}
	// A tie in time goes to A under newer-wins.
	if r := Resolve(NewerWins, userA, Version{SHA256: "bb", ModTime: t0}, base); r.Winner != SideA {
		t.Errorf("tie went to %s", r.Winner)
	}
}

func TestConflictName(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 15, 0, 0, time.FixedZone("CET", 3600))
	for key, want := range map[string]string{
		"docs/report.pdf": "docs/report.conflict-b-20261203T091500Z.pdf",
		"README":          "README.conflict-b-20261203T091500Z",
		"a/.profile":      "a/.profile.conflict-b-20261203T091500Z",
	} {
		if got := ConflictName(key, SideB, at); got != want {
			t.Errorf("ConflictName(%q) = %q; want %q", key, got, want)
		}
	}
}

func seqOf[T any](items []T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for _, it := range items {
			if !yield(it, nil) {
				return
			}
		}
	}
}

// TestMergeAgainstReference merges random sorted streams and compares every item
// with a reference built from maps.
func TestMergeAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		pick := func() []string {
			var keys []string
			for i := 0; i < 30; i++ {
				if rng.IntN(2) == 0 {
					keys = append(keys, string(rune('a'+i/6))+"/"+string(rune('a'+i%6)))
				}
			}
			return keys
		}
		ka, kb, ksa, ksb := pick(), pick(), pick(), pick()
		var a, b []Listed
		var sa, sb []Synced
		for _, k := range ka {
			a = append(a, Listed{Key: k, ETag: "a"})
		}
		for _, k := range kb {
			b = append(b, Listed{Key: k, ETag: "b"})
		}
		for _, k := range ksa {
			sa = append(sa, Synced{Key: k})
		}
		for _, k := range ksb {
			sb = append(sb, Synced{Key: k})
		}
		want := slices.Compact(slices.Sorted(slices.Values(slices.Concat(ka, kb, ksa, ksb))))
		var got []string
		err := Merge(seqOf(a), seqOf(b), seqOf(sa), seqOf(sb), func(it Item) error {
			got = append(got, it.Key)
			if (it.A != nil) != slices.Contains(ka, it.Key) || (it.B != nil) != slices.Contains(kb, it.Key) ||
				(it.SyncedA != nil) != slices.Contains(ksa, it.Key) || (it.SyncedB != nil) != slices.Contains(ksb, it.Key) {
				t.Fatalf("round %d: item %+v does not match the streams", round, it)
			}
			return nil
		})
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("round %d: merged %v, %v; want %v", round, got, err, want)
		}
	}
}

func TestMergeStopsOutOfOrderAndHoldsSubtrees(t *testing.T) {
	err := Merge(seqOf([]Listed{{Key: "b"}, {Key: "a"}}), seqOf[Listed](nil), seqOf[Synced](nil), seqOf[Synced](nil), func(Item) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "out of key order") {
		t.Errorf("out-of-order listing merged: %v", err)
	}
	wantErr := errors.New("listing failed")
	failing := func(yield func(Listed, error) bool) { yield(Listed{}, wantErr) }
	if err := Merge(failing, seqOf[Listed](nil), seqOf[Synced](nil), seqOf[Synced](nil), func(Item) error { return nil }); !errors.Is(err, wantErr) {
		t.Errorf("listing error = %v", err)
	}
	held := map[string]bool{}
	err = Merge(seqOf([]Listed{{Key: "d/", Held: true, Subtree: true}, {Key: "e"}}),
		seqOf([]Listed{{Key: "d/x"}}), seqOf([]Synced{{Key: "d/y"}}), seqOf[Synced](nil), func(it Item) error {
			held[it.Key] = it.Held
			return nil
		})
	if err != nil || !held["d/"] || !held["d/x"] || !held["d/y"] || held["e"] {
		t.Errorf("held = %v, %v; want everything under d/ held and e not", held, err)
	}
}
