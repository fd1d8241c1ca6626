package workflows

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cloudrepl/replicator/internal/wire"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ReplicateBatch replicates every key of a list. Small files go through chunk
// activities that each handle a page of keys, so the Temporal cost per file is a
// fraction of one activity (atomic policies stage a page, commit it key by key and
// then clean up); large files get a ReplicateFile child per key. The run continues as new every PagesPerRun pages so history stays bounded.
func ReplicateBatch(ctx workflow.Context, in wire.ReplicateBatchInput) (*wire.BatchSummary, error) {
	r := &batchRun{in: in}
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	return r.run(ctx)
}

type batchRun struct {
	in wire.ReplicateBatchInput
	// run names this run's stages and undo copies in an atomic batch ("" in runs
	// recorded before they were per run).
	stageRun string
	// direct: atomic pages go through AtomicChunk (see atomicDirectVersion).
	direct bool
	// events are outbound events chunks returned, not yet handed to a DeliverEvents
	// child; eventSinks is the policy's number of sinks; deliveries counts the
	// children started by this run.
	events     []wire.ObjectEvent
	eventSinks int
	deliveries int
}

func (r *batchRun) setup(ctx workflow.Context) error {
	if r.in.LargeThreshold == 0 {
		r.in.LargeThreshold = 64 << 20
	}
	if r.in.Concurrency == 0 {
		r.in.Concurrency = 4
	}
	if r.in.PagesPerRun == 0 {
		r.in.PagesPerRun = 200
	}
	err := workflow.SetQueryHandler(ctx, wire.ProgressQuery, func() (wire.BatchProgress, error) {
		return wire.BatchProgress{PagesDone: r.in.NextPage, Pages: r.in.List.Pages, Summary: r.in.Summary}, nil
	})
	if err != nil || r.in.Description != nil {
		return err
	}
	actx := describeOptions(ctx, r.in.Policy)
	return workflow.ExecuteActivity(actx, wire.DescribePolicyName, wire.DescribePolicyInput{Policy: r.in.Policy}).Get(ctx, &r.in.Description)
}

func (r *batchRun) run(ctx workflow.Context) (*wire.BatchSummary, error) {
	desc := r.in.Description
	stop := min(r.in.List.Pages, r.in.NextPage+r.in.PagesPerRun)
	var err error
	switch {
	case desc.Consistency != "atomic":
		err = r.chunks(ctx, stop)
	case workflow.GetVersion(ctx, atomicChunksVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion:
		err = r.perFile(ctx, stop)
	default:
		err = r.atomicChunks(ctx, min(stop, r.in.NextPage+atomicPagesPerRun))
	}
	if err != nil {
		_ = workflow.UpsertTypedSearchAttributes(ctx, outcomeValue(wire.RunFailed))
		return nil, err
	}
	if r.in.NextPage < r.in.List.Pages {
		r.in.Summary.Runs++
		return nil, workflow.NewContinueAsNewError(ctx, ReplicateBatch, r.in)
	}
	t := r.in.Summary.Totals()
	outcome := wire.RunOK
	switch {
	case t.Failed > 0 && t.Copied+t.Skipped+t.Deleted+t.Superseded == 0:
		outcome = wire.RunFailed
	case t.Failed > 0:
		outcome = wire.RunPartial
	case t.Copied+t.Deleted == 0:
		outcome = wire.RunSkipped
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, outcomeValue(outcome), BytesAttr.ValueSet(t.Bytes))
	return &r.in.Summary, nil
}

// chunks runs ReplicateChunk over pages [NextPage, stop), up to Concurrency at once
// per queue group, collecting large files for their own workflows.
func (r *batchRun) chunks(ctx workflow.Context, stop int) error {
	desc := r.in.Description
	type pending struct {
		page  int
		group int
	}
	sel := workflow.NewSelector(ctx)
	inFlight := 0
	var firstErr error
	var large []string
	handle := func(p pending) func(workflow.Future) {
		return func(f workflow.Future) {
			inFlight--
			var res wire.ChunkResult
			if err := f.Get(ctx, &res); err != nil {
				firstErr = errors.Join(firstErr, fmt.Errorf("page %d: %w", p.page, err))
				return
			}
			for _, d := range res.Destinations {
				r.in.Summary.Add(d.Destination, d.Counts)
			}
			for _, k := range res.Large {
				if !slices.Contains(large, k) { // each queue group reports it
					large = append(large, k)
				}
			}
			if p.group == 0 { // every group reads the same page: count it once
				r.in.Summary.Keys += res.Keys
				r.in.Summary.Excluded += res.Excluded
			}
			r.in.Summary.Rejected += res.Rejected // per group: a destination may refuse a name
			r.events = append(r.events, res.Events...)
			r.eventSinks = max(r.eventSinks, res.EventSinks)
		}
	}
	page := r.in.NextPage
	for page < stop && firstErr == nil {
		for gi, g := range desc.Groups {
			for inFlight >= r.in.Concurrency {
				sel.Select(ctx)
				r.deliverEvents(ctx)
			}
			actx := chunkOptions(ctx, desc, g.TaskQueue, fmt.Sprintf("chunk %d/%d → %v", page+1, r.in.List.Pages, g.Destinations))
			f := workflow.ExecuteActivity(actx, wire.ReplicateChunkName, wire.ChunkInput{
				Policy: r.in.Policy, List: r.in.List, Page: page, Destinations: g.Destinations, LargeThreshold: r.in.LargeThreshold, RecordSkips: r.in.RecordSkips, VerifyContent: r.in.VerifyContent,
			})
			inFlight++
			sel.AddFuture(f, handle(pending{page, gi}))
		}
		page++
	}
	for inFlight > 0 {
		sel.Select(ctx)
		r.deliverEvents(ctx)
	}
	if firstErr != nil {
		return firstErr
	}
	r.in.NextPage = stop
	r.in.Summary.Large += len(large)
	return r.children(ctx, large)
}

// perFile runs a ReplicateFile child for every key of pages [NextPage, stop): how
// atomic batches ran before atomicChunksVersion, kept for the runs that started so.
func (r *batchRun) perFile(ctx workflow.Context, stop int) error {
	actx := readKeysOptions(ctx)
	for page := r.in.NextPage; page < stop; page++ {
		var keys []string
		if err := workflow.ExecuteActivity(actx, wire.ReadKeyPageName, wire.ReadKeyPageInput{List: r.in.List, Page: page}).Get(ctx, &keys); err != nil {
			return err
		}
		r.in.Summary.Keys += len(keys)
		if err := r.children(ctx, keys); err != nil {
			return err
		}
		r.in.NextPage = page + 1
	}
	return nil
}

// children runs ReplicateFile for keys, Concurrency at once, and adds their outcomes.
// A key whose workflow is already running elsewhere is left to it.
func (r *batchRun) children(ctx workflow.Context, keys []string) error {
	sel := workflow.NewSelector(ctx)
	inFlight := 0
	var errs []error
	for _, key := range keys {
		for inFlight >= r.in.Concurrency {
			sel.Select(ctx)
		}
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            wire.FileWorkflowID(r.in.Policy, key),
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
			TypedSearchAttributes: temporal.NewSearchAttributes(PolicyAttr.ValueSet(r.in.Policy), KeyAttr.ValueSet(key)),
			StaticSummary:         fmt.Sprintf("replicate %s (from batch)", summaryKey(key)),
		})
		f := workflow.ExecuteChildWorkflow(cctx, ReplicateFile, wire.ReplicateFileInput{Policy: r.in.Policy, Key: key, RecordSkips: r.in.RecordSkips, VerifyContent: r.in.VerifyContent})
		inFlight++
		sel.AddFuture(f, func(f workflow.Future) {
			inFlight--
			var res wire.ReplicateFileResult
			err := f.Get(ctx, &res)
			var started *temporal.ChildWorkflowExecutionAlreadyStartedError
			switch {
			case errors.As(err, &started):
				return // another run of this key is in progress and will finish it
			case err != nil:
				errs = append(errs, err)
				return
			}
			for _, d := range res.Destinations {
				var c wire.Counts
				c.Record(d.Outcome, d.Bytes)
				r.in.Summary.Add(d.Destination, c)
			}
		})
	}
	for inFlight > 0 {
		sel.Select(ctx)
	}
	return errors.Join(errs...)
}
