package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cloudrepl/replicator/activities"
)

// ReconcileName is the workflow type of the reconcile.
const ReconcileName = "Reconcile"

// ReconcileWorkflowID is the ID of a reconcile started by hand; scheduled ones are
// named by their schedule (ScheduleID) plus the time Temporal appends.
func ReconcileWorkflowID(policy string, t time.Time) string {
	return "reconcile/" + policy + "/" + t.UTC().Format("20060102T150405Z")
}

// ScheduleID is the ID of a policy's reconcile schedule.
func ScheduleID(policy string) string { return "reconcile/" + policy }

// ReconcileInput starts a reconcile of one policy.
type ReconcileInput struct {
	Policy string
	// DryRun plans and reports without changing anything.
	DryRun bool `json:",omitempty"`
	// OverrideSafety runs a plan the safety limits stopped.
	OverrideSafety bool `json:",omitempty"`
	// Checksum compares the content of every object on both sides.
	Checksum bool `json:",omitempty"`

	// Plan and NextDelete carry the execution across continue-as-new.
	Plan       *activities.PlanResult `json:",omitempty"`
	NextDelete []int                  `json:",omitempty"`
	Result     *ReconcileResult       `json:",omitempty"`
}

// ReconcileResult sums up a reconcile.
type ReconcileResult struct {
	Policy  string
	Outcome string
	// Reason explains a stopped run.
	Reason       string `json:",omitempty"`
	DryRun       bool   `json:",omitempty"`
	PlanID       string
	Plan         string
	SourceKeys   int
	Destinations []activities.DestinationPlan
	// Sync and Deletes are what the execution did.
	Sync    *BatchSummary     `json:",omitempty"`
	Deleted activities.Counts `json:",omitzero"`
}

// ReconcileProgress answers the progress query of Reconcile.
type ReconcileProgress struct {
	Phase  string
	Result *ReconcileResult
}

// deletePagesPerRun bounds the delete activities of one run before it continues as new.
const deletePagesPerRun = 300

// Reconcile diffs a policy's source against every destination and repairs the drift:
// a PlanReconcile activity merges the sorted listings with the manifests and writes
// the plan to the state location; a ReplicateBatch child copies what is missing or
// changed; DeleteChunk activities propagate deletes (mirror mode) within the safety
// limits. A reconcile that finds nothing to do writes the same few events whatever
// the number of files.
func Reconcile(ctx workflow.Context, in ReconcileInput) (*ReconcileResult, error) {
	r := &reconcileRun{in: in}
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	return r.run(ctx)
}

type reconcileRun struct {
	in    ReconcileInput
	phase string
}

func (r *reconcileRun) setup(ctx workflow.Context) error {
	if r.in.Result == nil {
		r.in.Result = &ReconcileResult{Policy: r.in.Policy, DryRun: r.in.DryRun}
	}
	return workflow.SetQueryHandler(ctx, ProgressQuery, func() (ReconcileProgress, error) {
		return ReconcileProgress{Phase: r.phase, Result: r.in.Result}, nil
	})
}

func (r *reconcileRun) run(ctx workflow.Context) (*ReconcileResult, error) {
	res := r.in.Result
	if r.in.Plan == nil {
		r.phase = "plan"
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 6 * time.Hour,
			HeartbeatTimeout:    2 * time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5, MaximumInterval: time.Minute, NonRetryableErrorTypes: activities.NonRetryable},
			Summary:             "plan reconcile of " + r.in.Policy,
		})
		planID := workflow.GetInfo(ctx).WorkflowExecution.RunID
		var plan activities.PlanResult
		err := workflow.ExecuteActivity(actx, acts.PlanReconcile, activities.PlanInput{
			Policy: r.in.Policy, PlanID: planID, DryRun: r.in.DryRun, OverrideSafety: r.in.OverrideSafety, Checksum: r.in.Checksum,
		}).Get(ctx, &plan)
		if err != nil {
			return nil, r.fail(ctx, fmt.Errorf("plan: %w", err))
		}
		r.in.Plan = &plan
		res.PlanID, res.Plan, res.SourceKeys, res.Destinations, res.Reason = plan.PlanID, plan.Plan, plan.SourceKeys, plan.Destinations, plan.Reason
		r.in.NextDelete = make([]int, len(plan.Destinations))
		switch {
		case plan.Stopped:
			return r.finish(ctx, OutcomeStopped)
		case r.in.DryRun:
			return r.finish(ctx, OutcomeSkipped)
		}
		if plan.Sync.Count > 0 {
			r.phase = "sync"
			cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
				WorkflowID:            BatchWorkflowID(r.in.Policy, "reconcile-"+planID),
				TypedSearchAttributes: temporal.NewSearchAttributes(PolicyAttr.ValueSet(r.in.Policy)),
				StaticSummary:         fmt.Sprintf("reconcile: sync %d keys", plan.Sync.Count),
				ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_TERMINATE,
			})
			var sum BatchSummary
			if err := workflow.ExecuteChildWorkflow(cctx, ReplicateBatch, ReplicateBatchInput{Policy: r.in.Policy, List: plan.Sync, RecordSkips: true, VerifyContent: plan.Checksum}).Get(ctx, &sum); err != nil {
				return nil, r.fail(ctx, fmt.Errorf("sync: %w", err))
			}
			res.Sync = &sum
		}
	}
	if done, err := r.deletes(ctx); err != nil {
		return nil, r.fail(ctx, err)
	} else if !done {
		return nil, workflow.NewContinueAsNewError(ctx, Reconcile, r.in)
	}
	outcome := OutcomeOK
	if res.Sync != nil && res.Sync.Totals().Failed > 0 || res.Deleted.Failed > 0 {
		outcome = OutcomePartial
	}
	return r.finish(ctx, outcome)
}

// deletes runs the plan's delete pages, a bounded number per run; done reports that
// none is left.
func (r *reconcileRun) deletes(ctx workflow.Context) (done bool, err error) {
	r.phase = "delete"
	plan := r.in.Plan
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, MaximumInterval: time.Minute, NonRetryableErrorTypes: activities.NonRetryable},
	})
	launched := 0
	var errs []error
	for i, d := range plan.Destinations {
		var futures []workflow.Future
		for r.in.NextDelete[i] < d.Deletes.Pages && launched < deletePagesPerRun {
			page := r.in.NextDelete[i]
			dctx := workflow.WithActivityOptions(actx, workflow.ActivityOptions{
				StartToCloseTimeout: time.Hour, HeartbeatTimeout: time.Minute,
				RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 10, MaximumInterval: time.Minute, NonRetryableErrorTypes: activities.NonRetryable},
				Summary:     fmt.Sprintf("delete page %d/%d on %s", page+1, d.Deletes.Pages, d.Destination),
			})
			futures = append(futures, workflow.ExecuteActivity(dctx, acts.DeleteChunk, activities.DeleteChunkInput{
				Policy: r.in.Policy, Destination: d.Destination, List: d.Deletes, Page: page}))
			r.in.NextDelete[i]++
			launched++
		}
		for _, f := range futures {
			var c activities.Counts
			if err := f.Get(ctx, &c); err != nil {
				errs = append(errs, fmt.Errorf("delete on %s: %w", d.Destination, err))
				continue
			}
			r.in.Result.Deleted.Add(c)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return false, err
	}
	for i, d := range plan.Destinations {
		if r.in.NextDelete[i] < d.Deletes.Pages {
			return false, nil
		}
	}
	return true, nil
}

func (r *reconcileRun) finish(ctx workflow.Context, outcome string) (*ReconcileResult, error) {
	r.phase = "done"
	r.in.Result.Outcome = outcome
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5, NonRetryableErrorTypes: activities.NonRetryable},
		Summary:             "finish reconcile: " + outcome,
	})
	finish := activities.FinishReconcileInput{Policy: r.in.Policy, Outcome: outcome}
	if !r.in.DryRun && r.in.Result.PlanID != "" {
		finish.PlanID = r.in.Result.PlanID
	}
	if err := workflow.ExecuteActivity(actx, acts.FinishReconcile, finish).Get(ctx, nil); err != nil {
		return nil, r.fail(ctx, err)
	}
	var bytes int64
	if r.in.Result.Sync != nil {
		bytes = r.in.Result.Sync.Totals().Bytes
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, OutcomeAttr.ValueSet(outcome), BytesAttr.ValueSet(bytes))
	return r.in.Result, nil
}

func (r *reconcileRun) fail(ctx workflow.Context, err error) error {
	_ = workflow.UpsertTypedSearchAttributes(ctx, OutcomeAttr.ValueSet(OutcomeFailed))
	return err
}
