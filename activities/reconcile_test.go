package activities

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/wire"

	"go.temporal.io/sdk/activity"
)

// A reconcile that ends folds the journal its run wrote into the manifest, so the
// next plan reads one sorted file; a dry run or a failed run leaves it.
func TestFinishReconcileFoldsTheJournal(t *testing.T) {
	d := newAtomicDirs(t)
	d.env.RegisterActivityWithOptions(d.a.FinishReconcile, activity.RegisterOptions{Name: wire.FinishReconcileName})
	ctx := context.Background()
	st := d.a.State
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, dest := range []string{"one", "two"} {
		if err := st.AppendManifest(ctx, "p", dest, state.ManifestEntry{Key: "a.txt", ETag: "e", Time: t0}); err != nil {
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
		if keys := journal("one"); !slices.Equal(keys, []string{"a.txt"}) {
			t.Fatalf("%+v folded the journal: %q left", in, keys)
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
			got = append(got, e.Key+"="+e.ETag)
		}
		if !slices.Equal(got, []string{"a.txt=e"}) {
			t.Fatalf("manifest of %s: %q", dest, got)
		}
	}
}
