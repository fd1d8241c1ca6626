package workflows

import (
	"context"
	"sync"
	"testing"

	"github.com/cloudrepl/replicator/internal/wire"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/workflow"
)

func plan(sync, deletePages int, stopped bool) *wire.PlanResult {
	p := &wire.PlanResult{PlanID: "p1", SourceKeys: 10, Stopped: stopped, Sync: wire.KeyList{Count: sync, Pages: (sync + 63) / 64}}
	if stopped {
		p.Reason = "over the limit"
	}
	for _, d := range []string{"s3", "gcs"} {
		p.Destinations = append(p.Destinations, wire.DestinationPlan{Destination: d, Objects: 10, Deletes: wire.KeyList{Pages: deletePages, Count: deletePages * 64}})
	}
	return p
}

func runReconcile(t *testing.T, env interface {
	ExecuteWorkflow(any, ...any)
	GetWorkflowError() error
	GetWorkflowResult(any) error
}, in wire.ReconcileInput) *wire.ReconcileResult {
	t.Helper()
	env.ExecuteWorkflow(Reconcile, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res wire.ReconcileResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	return &res
}

func TestReconcileNothingToDo(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PlanReconcileName, mock.Anything, mock.Anything).Return(plan(0, 0, false), nil).Once()
	env.OnActivity(wire.FinishReconcileName, mock.Anything, wire.FinishReconcileInput{Policy: "p", Outcome: "ok", PlanID: "p1"}).Return(&wire.FinishReconcileResult{}, nil).Once()
	if res := runReconcile(t, env, wire.ReconcileInput{Policy: "p"}); res.Outcome != wire.RunOK {
		t.Fatalf("outcome %s", res.Outcome)
	}
}

func TestReconcileStoppedDoesNothing(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PlanReconcileName, mock.Anything, mock.Anything).Return(plan(5, 3, true), nil).Once()
	env.OnActivity(wire.FinishReconcileName, mock.Anything, wire.FinishReconcileInput{Policy: "p", Outcome: "stopped", PlanID: "p1"}).Return(&wire.FinishReconcileResult{}, nil).Once()
	res := runReconcile(t, env, wire.ReconcileInput{Policy: "p"})
	if res.Outcome != wire.RunStopped || res.Reason == "" {
		t.Fatalf("result %+v", res)
	}
	env.AssertNotCalled(t, wire.DeleteChunkName, mock.Anything, mock.Anything)
}

func TestReconcileDryRunOnlyPlans(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PlanReconcileName, mock.Anything, mock.MatchedBy(func(in wire.PlanInput) bool { return in.DryRun })).Return(plan(5, 3, false), nil).Once()
	env.OnActivity(wire.FinishReconcileName, mock.Anything, mock.Anything).Return(&wire.FinishReconcileResult{}, nil).Once()
	if res := runReconcile(t, env, wire.ReconcileInput{Policy: "p", DryRun: true}); res.Outcome != wire.RunSkipped || !res.DryRun {
		t.Fatalf("result %+v", res)
	}
}

func TestReconcileSyncsAndDeletes(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PlanReconcileName, mock.Anything, mock.Anything).Return(plan(100, 2, false), nil).Once()
	env.OnWorkflow(wire.ReplicateBatchName, mock.Anything, mock.MatchedBy(func(in wire.ReplicateBatchInput) bool { return in.RecordSkips && in.List.Count == 100 })).
		Return(&wire.BatchSummary{Keys: 100, Destinations: []wire.DestinationCounts{{Destination: "s3", Counts: wire.Counts{Copied: 100, Bytes: 1000}}}}, nil).Once()
	env.OnActivity(wire.DeleteChunkName, mock.Anything, mock.Anything).Return(&wire.Counts{Deleted: 64}, nil).Times(4)
	env.OnActivity(wire.FinishReconcileName, mock.Anything, wire.FinishReconcileInput{Policy: "p", Outcome: "ok", PlanID: "p1"}).Return(&wire.FinishReconcileResult{}, nil).Once()
	res := runReconcile(t, env, wire.ReconcileInput{Policy: "p"})
	if res.Outcome != wire.RunOK || res.Deleted.Deleted != 256 || res.Sync.Totals().Copied != 100 {
		t.Fatalf("result %+v", res)
	}
}

func TestReconcileContinuesAsNewThroughManyDeletes(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PlanReconcileName, mock.Anything, mock.Anything).Return(plan(0, deletePagesPerRun, false), nil).Once()
	env.OnActivity(wire.DeleteChunkName, mock.Anything, mock.Anything).Return(&wire.Counts{Deleted: 64}, nil).Times(deletePagesPerRun)
	env.ExecuteWorkflow(Reconcile, wire.ReconcileInput{Policy: "p"})
	if err := env.GetWorkflowError(); !workflow.IsContinueAsNewError(err) {
		t.Fatalf("err = %v, want continue-as-new", err)
	}
}

func bidirectionalPlan(pages int) *wire.PlanResult {
	return &wire.PlanResult{PlanID: "p1", SourceKeys: 10, Bidirectional: &wire.BidirectionalPlan{Destination: "b",
		A: wire.SidePlan{Objects: 10, Copy: 2}, B: wire.SidePlan{Objects: 9, Copy: 3}, Items: wire.KeyList{Pages: pages, Count: pages * 64}}}
}

func TestReconcileBidirectionalSyncsEveryPage(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PlanReconcileName, mock.Anything, mock.Anything).Return(bidirectionalPlan(11), nil).Once()
	var mu sync.Mutex // the test environment runs activities concurrently
	pages := map[int]bool{}
	env.OnActivity(wire.SyncChunkName, mock.Anything, mock.Anything).Return(func(_ context.Context, in wire.SyncChunkInput) (*wire.SyncCounts, error) {
		mu.Lock()
		defer mu.Unlock()
		pages[in.Page] = true
		return &wire.SyncCounts{CopiedToA: 1, Conflicts: 1, Bytes: 10}, nil
	})
	env.OnActivity(wire.FinishReconcileName, mock.Anything, wire.FinishReconcileInput{Policy: "p", Outcome: "ok", PlanID: "p1"}).Return(&wire.FinishReconcileResult{}, nil).Once()
	res := runReconcile(t, env, wire.ReconcileInput{Policy: "p"})
	if res.Outcome != wire.RunOK || res.Synced == nil || res.Synced.CopiedToA != 11 || res.Synced.Conflicts != 11 || len(pages) != 11 {
		t.Fatalf("result %+v synced %+v pages %v", res, res.Synced, pages)
	}
	env.AssertNotCalled(t, wire.DeleteChunkName, mock.Anything, mock.Anything)
}

func TestReconcileBidirectionalFailedKeysArePartial(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PlanReconcileName, mock.Anything, mock.Anything).Return(bidirectionalPlan(1), nil).Once()
	env.OnActivity(wire.SyncChunkName, mock.Anything, mock.Anything).Return(&wire.SyncCounts{CopiedToB: 3, Failed: 1}, nil).Once()
	env.OnActivity(wire.FinishReconcileName, mock.Anything, wire.FinishReconcileInput{Policy: "p", Outcome: "partial", PlanID: "p1"}).Return(&wire.FinishReconcileResult{}, nil).Once()
	if res := runReconcile(t, env, wire.ReconcileInput{Policy: "p"}); res.Outcome != wire.RunPartial {
		t.Fatalf("outcome %s", res.Outcome)
	}
}
