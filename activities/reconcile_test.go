package activities

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/wire"

	"go.temporal.io/sdk/activity"
)

// A reconcile that ends folds a long journal (a first copy's) into the manifest, so
// the next plan reads one sorted file; a dry run or a failed run leaves it.
func TestFinishReconcileFoldsTheJournal(t *testing.T) {
	d := newAtomicDirs(t)
	d.env.RegisterActivityWithOptions(d.a.FinishReconcile, activity.RegisterOptions{Name: wire.FinishReconcileName})
	ctx := context.Background()
	st := d.a.State
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 40000 // more than a journal run
	entries := make([]state.ManifestEntry, n)
	for i := range entries {
		entries[i] = state.ManifestEntry{Key: fmt.Sprintf("k%06d", i), ETag: "e", Time: t0}
	}
	for _, dest := range []string{"one", "two"} {
		if err := st.AppendManifest(ctx, "p", dest, entries...); err != nil {
			t.Fatal(err)
		}
	}
	journal := func(dest string) (keys []string) {
		j, err := st.ReadJournal(ctx, "p", dest)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		for e, err := range j.Latest() {
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, e.Key)
		}
		return keys
	}
	for _, in := range []wire.FinishReconcileInput{
		{Policy: "p", Outcome: wire.RunOK},                     // a dry run: no plan of its own
		{Policy: "p", Outcome: wire.RunFailed, PlanID: "plan"}, // nothing is known to be done
	} {
		if _, err := d.env.ExecuteActivity(wire.FinishReconcileName, in); err != nil {
			t.Fatal(err)
		}
		if keys := journal("one"); len(keys) != n {
			t.Fatalf("%+v folded the journal: %d keys left", in, len(keys))
		}
	}
	if _, err := d.env.ExecuteActivity(wire.FinishReconcileName, wire.FinishReconcileInput{Policy: "p", Outcome: wire.RunPartial, PlanID: "plan"}); err != nil {
		t.Fatal(err)
	}
	for _, dest := range []string{"one", "two"} {
		if keys := journal(dest); len(keys) != 0 {
			t.Fatalf("journal of %s not folded: %q", dest, keys)
		}
		var got []string
		for e, err := range st.Manifest(ctx, "p", dest) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e.Key)
		}
		if len(got) != n || !slices.IsSorted(got) || got[0] != "k000000" {
			t.Fatalf("manifest of %s: %d keys, sorted %v", dest, len(got), slices.IsSorted(got))
		}
	}
}
