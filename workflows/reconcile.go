package workflows

import (
	"errors"
	"fmt"

	"github.com/cloudrepl/replicator/internal/wire"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// deletePagesPerRun bounds the delete activities of one run before it continues as new.
const deletePagesPerRun = 300

// Reconcile diffs a policy's source against every destination and repairs the drift:
// a PlanReconcile activity merges the sorted listings with the manifests and writes
// the plan to the state location; a ReplicateBatch child copies what is missing or
// changed; DeleteChunk activities propagate deletes (mirror mode) within the safety
// limits. A reconcile that finds nothing to do writes the same few events whatever
// the number of files.
func Reconcile(ctx workflow.Context, in wire.ReconcileInput) (*wire.ReconcileResult, error) {
	r := &reconcileRun{in: in}
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	return r.run(ctx)
}

type reconcileRun struct {
	in    wire.ReconcileInput
	phase string
}

func (r *reconcileRun) setup(ctx workflow.Context) error {
	if r.in.Result == nil {
		r.in.Result = &wire.ReconcileResult{Policy: r.in.Policy, DryRun: r.in.DryRun}
	}
	return workflow.SetQueryHandler(ctx, wire.ProgressQuery, func() (wire.ReconcileProgress, error) {
		return wire.ReconcileProgress{Phase: r.phase, Result: r.in.Result}, nil
	})
}

func (r *reconcileRun) run(ctx workflow.Context) (*wire.ReconcileResult, error) {
	res := r.in.Result
	if r.in.Plan == nil {
		r.phase = "plan"
		actx := planOptions(ctx, r.in.Policy)
		planID := workflow.GetInfo(ctx).WorkflowExecution.RunID
		var plan wire.PlanResult
		err := workflow.ExecuteActivity(actx, wire.PlanReconcileName, wire.PlanInput{
			Policy: r.in.Policy, PlanID: planID, DryRun: r.in.DryRun, OverrideSafety: r.in.OverrideSafety, Checksum: r.in.Checksum,
		}).Get(ctx, &plan)
		if err != nil {
			return nil, r.fail(ctx, fmt.Errorf("plan: %w", err))
		}
		r.in.Plan = &plan
		res.PlanID, res.Plan, res.SourceKeys, res.Destinations, res.Reason = plan.PlanID, plan.Plan, plan.SourceKeys, plan.Destinations, plan.Reason
		res.Rejected, res.Unknown = plan.Rejected, plan.Unknown
		res.Bidirectional = plan.Bidirectional
		r.in.NextDelete = make([]int, len(plan.Destinations))
		switch {
		case plan.Stopped:
			return r.finish(ctx, wire.RunStopped)
		case r.in.DryRun:
			return r.finish(ctx, wire.RunSkipped)
		}
		if plan.Sync.Count > 0 {
			r.phase = "sync"
			cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
				WorkflowID:            wire.BatchWorkflowID(r.in.Policy, "reconcile-"+planID),
				TypedSearchAttributes: temporal.NewSearchAttributes(PolicyAttr.ValueSet(r.in.Policy)),
				StaticSummary:         fmt.Sprintf("reconcile: sync %d keys", plan.Sync.Count),
				ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_TERMINATE,
			})
			var sum wire.BatchSummary
			if err := workflow.ExecuteChildWorkflow(cctx, ReplicateBatch, wire.ReplicateBatchInput{Policy: r.in.Policy, List: plan.Sync, RecordSkips: true, VerifyContent: plan.Checksum}).Get(ctx, &sum); err != nil {
				return nil, r.fail(ctx, fmt.Errorf("sync: %w", err))
			}
			res.Sync = &sum
		}
	}
	if r.in.Plan.Bidirectional != nil {
		return r.syncBoth(ctx)
	}
	if done, err := r.deletes(ctx); err != nil {
		return nil, r.fail(ctx, err)
	} else if !done {
		return nil, workflow.NewContinueAsNewError(ctx, Reconcile, r.in)
	}
	outcome := wire.RunOK
	if res.Sync != nil && res.Sync.Totals().Failed > 0 || res.Deleted.Failed > 0 {
		outcome = wire.RunPartial
	}
	return r.finish(ctx, outcome)
}

// deletes runs the plan's delete pages, a bounded number per run; done reports that
// none is left.
func (r *reconcileRun) deletes(ctx workflow.Context) (done bool, err error) {
	r.phase = "delete"
	plan := r.in.Plan
	launched := 0
	var errs []error
	for i, d := range plan.Destinations {
		var futures []workflow.Future
		for r.in.NextDelete[i] < d.Deletes.Pages && launched < deletePagesPerRun {
			page := r.in.NextDelete[i]
			dctx := deleteChunkOptions(ctx, fmt.Sprintf("delete page %d/%d on %s", page+1, d.Deletes.Pages, d.Destination))
			futures = append(futures, workflow.ExecuteActivity(dctx, wire.DeleteChunkName, wire.DeleteChunkInput{
				Policy: r.in.Policy, Destination: d.Destination, List: d.Deletes, Page: page}))
			r.in.NextDelete[i]++
			launched++
		}
		for _, f := range futures {
			var c wire.Counts
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

// syncPagesInFlight is how many pages of a bidirectional plan sync at once.
const syncPagesInFlight = 8

// syncBoth carries out a bidirectional plan, page by page (SyncChunk), a bounded
// number of pages per run before it continues as new.
func (r *reconcileRun) syncBoth(ctx workflow.Context) (*wire.ReconcileResult, error) {
	r.phase = "sync"
	res := r.in.Result
	items := r.in.Plan.Bidirectional.Items
	if res.Synced == nil {
		res.Synced = &wire.SyncCounts{}
	}
	launched := 0
	for res.NextSyncPage < items.Pages {
		if launched >= deletePagesPerRun {
			return nil, workflow.NewContinueAsNewError(ctx, Reconcile, r.in)
		}
		var futures []workflow.Future
		for res.NextSyncPage < items.Pages && len(futures) < syncPagesInFlight {
			page := res.NextSyncPage
			actx := syncChunkOptions(ctx, fmt.Sprintf("sync page %d/%d", page+1, items.Pages))
			futures = append(futures, workflow.ExecuteActivity(actx, wire.SyncChunkName, wire.SyncChunkInput{Policy: r.in.Policy, List: items, Page: page}))
			res.NextSyncPage++
			launched++
		}
		var errs []error
		for _, f := range futures {
			var c wire.SyncCounts
			if err := f.Get(ctx, &c); err != nil {
				errs = append(errs, err)
				continue
			}
			res.Synced.Add(c)
		}
		if err := errors.Join(errs...); err != nil {
			return nil, r.fail(ctx, fmt.Errorf("sync: %w", err))
		}
	}
	outcome := wire.RunOK
	if res.Synced.Failed > 0 {
		outcome = wire.RunPartial
	}
	return r.finish(ctx, outcome)
}

func (r *reconcileRun) finish(ctx workflow.Context, outcome wire.RunOutcome) (*wire.ReconcileResult, error) {
	r.phase = "done"
	r.in.Result.Outcome = outcome
	actx := finishOptions(ctx, outcome)
	finish := wire.FinishReconcileInput{Policy: r.in.Policy, Outcome: outcome}
	if !r.in.DryRun && r.in.Result.PlanID != "" {
		finish.PlanID = r.in.Result.PlanID
	}
	if err := workflow.ExecuteActivity(actx, wire.FinishReconcileName, finish).Get(ctx, nil); err != nil {
		return nil, r.fail(ctx, err)
	}
	var bytes int64
	if r.in.Result.Sync != nil {
		bytes = r.in.Result.Sync.Totals().Bytes
	}
	if s := r.in.Result.Synced; s != nil {
		_ = workflow.UpsertTypedSearchAttributes(ctx, outcomeValue(outcome), BytesAttr.ValueSet(s.Bytes), ConflictsAttr.ValueSet(int64(s.Conflicts)))
		return r.in.Result, nil
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, outcomeValue(outcome), BytesAttr.ValueSet(bytes))
	return r.in.Result, nil
}

func (r *reconcileRun) fail(ctx workflow.Context, err error) error {
	_ = workflow.UpsertTypedSearchAttributes(ctx, outcomeValue(wire.RunFailed))
	return err
}
