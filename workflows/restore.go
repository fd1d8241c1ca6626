package workflows

import (
	"errors"
	"fmt"
	"time"

	"github.com/cloudrepl/replicator/internal/wire"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// restorePagesPerRun bounds the chunk activities of one run before it continues as new.
const restorePagesPerRun = 300

// restorePagesInFlight is how many pages restore at once.
const restorePagesInFlight = 8

// Restore copies a destination's replicas back to the policy's source or to another
// location (disaster recovery, failback): PlanRestore lists the destination (as it
// is, or as it was at a time) into a key list in the state location, and
// RestoreChunk activities copy it page by page, each file verified by its SHA-256.
func Restore(ctx workflow.Context, in wire.RestoreInput) (*wire.RestoreResult, error) {
	r := &restoreRun{in: in}
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	return r.run(ctx)
}

type restoreRun struct {
	in    wire.RestoreInput
	phase string
}

func (r *restoreRun) setup(ctx workflow.Context) error {
	if r.in.Result == nil {
		r.in.Result = &wire.RestoreResult{Policy: r.in.Policy, From: r.in.From, To: r.in.To}
	}
	return workflow.SetQueryHandler(ctx, wire.ProgressQuery, func() (wire.RestoreProgress, error) {
		p := wire.RestoreProgress{Phase: r.phase, Done: r.in.NextPage, Result: r.in.Result}
		if r.in.List != nil {
			p.Pages = r.in.List.Pages
		}
		return p, nil
	})
}

func (r *restoreRun) run(ctx workflow.Context) (*wire.RestoreResult, error) {
	res := r.in.Result
	if r.in.List == nil {
		r.phase = "plan"
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 6 * time.Hour,
			HeartbeatTimeout:    2 * time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5, MaximumInterval: time.Minute, NonRetryableErrorTypes: wire.NonRetryable},
			Summary:             "list " + r.in.From,
		})
		var plan wire.PlanRestoreResult
		if err := workflow.ExecuteActivity(actx, wire.PlanRestoreName, r.in).Get(ctx, &plan); err != nil {
			return nil, r.fail(ctx, fmt.Errorf("list %s: %w", r.in.From, err))
		}
		r.in.List = &plan.List
		res.Keys = plan.List.Count
	}
	r.phase = "restore"
	launched := 0
	for r.in.NextPage < r.in.List.Pages {
		if launched >= restorePagesPerRun {
			return nil, workflow.NewContinueAsNewError(ctx, Restore, r.in)
		}
		var futures []workflow.Future
		for r.in.NextPage < r.in.List.Pages && len(futures) < restorePagesInFlight {
			page := r.in.NextPage
			actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
				StartToCloseTimeout: 6 * time.Hour,
				HeartbeatTimeout:    2 * time.Minute,
				RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, MaximumInterval: time.Minute, NonRetryableErrorTypes: wire.NonRetryable},
				Summary:             fmt.Sprintf("restore page %d/%d", page+1, r.in.List.Pages),
			})
			futures = append(futures, workflow.ExecuteActivity(actx, wire.RestoreChunkName, wire.RestoreChunkInput{RestoreSpec: r.in.RestoreSpec, List: *r.in.List, Page: page}))
			r.in.NextPage++
			launched++
		}
		var errs []error
		for _, f := range futures {
			var c wire.RestoreResult
			if err := f.Get(ctx, &c); err != nil {
				errs = append(errs, err)
				continue
			}
			res.Add(c)
		}
		if err := errors.Join(errs...); err != nil {
			return nil, r.fail(ctx, fmt.Errorf("restore: %w", err))
		}
	}
	r.phase = "done"
	res.Outcome = wire.RunOK
	if res.Failed > 0 {
		res.Outcome = wire.RunPartial
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, outcomeValue(res.Outcome), BytesAttr.ValueSet(res.Bytes))
	return res, nil
}

func (r *restoreRun) fail(ctx workflow.Context, err error) error {
	_ = workflow.UpsertTypedSearchAttributes(ctx, outcomeValue(wire.RunFailed))
	return err
}
