package workflows

import (
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/workflow"

	"github.com/cloudrepl/replicator/activities"
	"github.com/cloudrepl/replicator/internal/state"
)

func plan(sync, deletePages int, stopped bool) *activities.PlanResult {
	p := &activities.PlanResult{PlanID: "p1", SourceKeys: 10, Stopped: stopped, Sync: state.KeyList{Count: sync, Pages: (sync + 63) / 64}}
	if stopped {
		p.Reason = "over the limit"
	}
	for _, d := range []string{"s3", "gcs"} {
		p.Destinations = append(p.Destinations, activities.DestinationPlan{Destination: d, Objects: 10, Deletes: state.KeyList{Pages: deletePages, Count: deletePages * 64}})
	}
	return p
}

func runReconcile(t *testing.T, env interface {
	ExecuteWorkflow(any, ...any)
	GetWorkflowError() error
	GetWorkflowResult(any) error
}, in ReconcileInput) *ReconcileResult {
	t.Helper()
	env.ExecuteWorkflow(Reconcile, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res ReconcileResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	return &res
}

func TestReconcileNothingToDo(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PlanReconcileName, mock.Anything, mock.Anything).Return(plan(0, 0, false), nil).Once()
	env.OnActivity(activities.FinishReconcileName, mock.Anything, activities.FinishReconcileInput{Policy: "p", Outcome: "ok", PlanID: "p1"}).Return(nil).Once()
	if res := runReconcile(t, env, ReconcileInput{Policy: "p"}); res.Outcome != OutcomeOK {
		t.Fatalf("outcome %s", res.Outcome)
	}
}

func TestReconcileStoppedDoesNothing(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PlanReconcileName, mock.Anything, mock.Anything).Return(plan(5, 3, true), nil).Once()
	env.OnActivity(activities.FinishReconcileName, mock.Anything, activities.FinishReconcileInput{Policy: "p", Outcome: "stopped", PlanID: "p1"}).Return(nil).Once()
	res := runReconcile(t, env, ReconcileInput{Policy: "p"})
	if res.Outcome != OutcomeStopped || res.Reason == "" {
		t.Fatalf("result %+v", res)
	}
	env.AssertNotCalled(t, activities.DeleteChunkName, mock.Anything, mock.Anything)
}

func TestReconcileDryRunOnlyPlans(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PlanReconcileName, mock.Anything, mock.MatchedBy(func(in activities.PlanInput) bool { return in.DryRun })).Return(plan(5, 3, false), nil).Once()
	env.OnActivity(activities.FinishReconcileName, mock.Anything, mock.Anything).Return(nil).Once()
	if res := runReconcile(t, env, ReconcileInput{Policy: "p", DryRun: true}); res.Outcome != OutcomeSkipped || !res.DryRun {
		t.Fatalf("result %+v", res)
	}
}

func TestReconcileSyncsAndDeletes(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PlanReconcileName, mock.Anything, mock.Anything).Return(plan(100, 2, false), nil).Once()
	env.OnWorkflow(ReplicateBatchName, mock.Anything, mock.MatchedBy(func(in ReplicateBatchInput) bool { return in.RecordSkips && in.List.Count == 100 })).
		Return(&BatchSummary{Keys: 100, Destinations: []activities.DestinationCounts{{Destination: "s3", Counts: activities.Counts{Copied: 100, Bytes: 1000}}}}, nil).Once()
	env.OnActivity(activities.DeleteChunkName, mock.Anything, mock.Anything).Return(&activities.Counts{Deleted: 64}, nil).Times(4)
	env.OnActivity(activities.FinishReconcileName, mock.Anything, activities.FinishReconcileInput{Policy: "p", Outcome: "ok", PlanID: "p1"}).Return(nil).Once()
	res := runReconcile(t, env, ReconcileInput{Policy: "p"})
	if res.Outcome != OutcomeOK || res.Deleted.Deleted != 256 || res.Sync.Totals().Copied != 100 {
		t.Fatalf("result %+v", res)
	}
}

func TestReconcileContinuesAsNewThroughManyDeletes(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PlanReconcileName, mock.Anything, mock.Anything).Return(plan(0, deletePagesPerRun, false), nil).Once()
	env.OnActivity(activities.DeleteChunkName, mock.Anything, mock.Anything).Return(&activities.Counts{Deleted: 64}, nil).Times(deletePagesPerRun)
	env.ExecuteWorkflow(Reconcile, ReconcileInput{Policy: "p"})
	if err := env.GetWorkflowError(); !workflow.IsContinueAsNewError(err) {
		t.Fatalf("err = %v, want continue-as-new", err)
	}
}
