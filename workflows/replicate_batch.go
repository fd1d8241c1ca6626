package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cloudrepl/replicator/activities"
	"github.com/cloudrepl/replicator/internal/state"
)

// ReplicateBatchInput describes a batch: a key list in the state location, and where
// a continued run resumes.
type ReplicateBatchInput struct {
	Policy string
	List   state.KeyList
	// LargeThreshold: files above it get their own ReplicateFile workflow; 0 means
	// 64 MiB.
	LargeThreshold int64
	// Concurrency is the number of chunk activities in flight; 0 means 4.
	Concurrency int
	// PagesPerRun bounds the pages one run handles before it continues as new; 0
	// means 200.
	PagesPerRun int
	// RecordSkips and VerifyContent: see ReplicateFileInput (set by reconciles).
	RecordSkips   bool `json:",omitempty"`
	VerifyContent bool `json:",omitempty"`

	// NextPage and Summary carry the state across continue-as-new.
	NextPage int
	Summary  BatchSummary
	// Policy description, fetched once.
	Description *activities.PolicyDescription `json:",omitempty"`
}

// BatchSummary adds up a batch.
type BatchSummary struct {
	Keys         int
	Excluded     int
	Large        int
	Destinations []activities.DestinationCounts
	// Runs counts the continued runs.
	Runs int
}

func (s *BatchSummary) add(dest string, c activities.Counts) {
	for i := range s.Destinations {
		if s.Destinations[i].Destination == dest {
			s.Destinations[i].Add(c)
			return
		}
	}
	s.Destinations = append(s.Destinations, activities.DestinationCounts{Destination: dest, Counts: c})
}

// Totals sums the destinations.
func (s *BatchSummary) Totals() activities.Counts {
	var t activities.Counts
	for _, d := range s.Destinations {
		t.Add(d.Counts)
	}
	return t
}

// BatchProgress answers the progress query of ReplicateBatch.
type BatchProgress struct {
	PagesDone int
	Pages     int
	Summary   BatchSummary
}

// ReplicateBatch replicates every key of a list. Small files go through chunk
// activities that each handle a page of keys, so the Temporal cost per file is a
// fraction of one activity (atomic policies stage a page, commit it key by key and
// then clean up); large files get a ReplicateFile child per key. The run continues as new every PagesPerRun pages so history stays bounded.
func ReplicateBatch(ctx workflow.Context, in ReplicateBatchInput) (*BatchSummary, error) {
	r := &batchRun{in: in}
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	return r.run(ctx)
}

type batchRun struct {
	in ReplicateBatchInput
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
	err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (BatchProgress, error) {
		return BatchProgress{PagesDone: r.in.NextPage, Pages: r.in.List.Pages, Summary: r.in.Summary}, nil
	})
	if err != nil || r.in.Description != nil {
		return err
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5, NonRetryableErrorTypes: activities.NonRetryable},
		Summary:             "describe policy " + r.in.Policy,
	})
	return workflow.ExecuteActivity(actx, acts.DescribePolicy, activities.DescribePolicyInput{Policy: r.in.Policy}).Get(ctx, &r.in.Description)
}

func (r *batchRun) run(ctx workflow.Context) (*BatchSummary, error) {
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
		_ = workflow.UpsertTypedSearchAttributes(ctx, OutcomeAttr.ValueSet(OutcomeFailed))
		return nil, err
	}
	if r.in.NextPage < r.in.List.Pages {
		r.in.Summary.Runs++
		return nil, workflow.NewContinueAsNewError(ctx, ReplicateBatch, r.in)
	}
	t := r.in.Summary.Totals()
	outcome := OutcomeOK
	switch {
	case t.Failed > 0 && t.Copied+t.Skipped+t.Deleted+t.Superseded == 0:
		outcome = OutcomeFailed
	case t.Failed > 0:
		outcome = OutcomePartial
	case t.Copied+t.Deleted == 0:
		outcome = OutcomeSkipped
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, OutcomeAttr.ValueSet(outcome), BytesAttr.ValueSet(t.Bytes))
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
			var res activities.ChunkResult
			if err := f.Get(ctx, &res); err != nil {
				firstErr = errors.Join(firstErr, fmt.Errorf("page %d: %w", p.page, err))
				return
			}
			for _, d := range res.Destinations {
				r.in.Summary.add(d.Destination, d.Counts)
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
		}
	}
	page := r.in.NextPage
	for page < stop && firstErr == nil {
		for gi, g := range desc.Groups {
			for inFlight >= r.in.Concurrency {
				sel.Select(ctx)
			}
			actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
				TaskQueue:           g.TaskQueue,
				StartToCloseTimeout: 2 * time.Hour,
				HeartbeatTimeout:    desc.Retry.HeartbeatTimeout,
				RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: desc.Retry.MaxAttempts, MaximumInterval: desc.Retry.MaxInterval,
					NonRetryableErrorTypes: activities.NonRetryable},
				Summary: fmt.Sprintf("chunk %d/%d → %v", page+1, r.in.List.Pages, g.Destinations),
			})
			f := workflow.ExecuteActivity(actx, acts.ReplicateChunk, activities.ChunkInput{
				Policy: r.in.Policy, List: r.in.List, Page: page, Destinations: g.Destinations, LargeThreshold: r.in.LargeThreshold, RecordSkips: r.in.RecordSkips, VerifyContent: r.in.VerifyContent,
			})
			inFlight++
			sel.AddFuture(f, handle(pending{page, gi}))
		}
		page++
	}
	for inFlight > 0 {
		sel.Select(ctx)
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
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, NonRetryableErrorTypes: activities.NonRetryable},
		Summary:             "read keys",
	})
	for page := r.in.NextPage; page < stop; page++ {
		var keys []string
		if err := workflow.ExecuteActivity(actx, acts.ReadKeyPage, activities.ReadKeyPageInput{List: r.in.List, Page: page}).Get(ctx, &keys); err != nil {
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
			WorkflowID:            FileWorkflowID(r.in.Policy, key),
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
			TypedSearchAttributes: temporal.NewSearchAttributes(PolicyAttr.ValueSet(r.in.Policy), KeyAttr.ValueSet(key)),
			StaticSummary:         fmt.Sprintf("replicate %s (from batch)", key),
		})
		f := workflow.ExecuteChildWorkflow(cctx, ReplicateFile, ReplicateFileInput{Policy: r.in.Policy, Key: key, RecordSkips: r.in.RecordSkips, VerifyContent: r.in.VerifyContent})
		inFlight++
		sel.AddFuture(f, func(f workflow.Future) {
			inFlight--
			var res ReplicateFileResult
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
				var c activities.Counts
				c.Record(d.Outcome, d.Bytes)
				if d.Outcome == "rolled back" {
					c.Failed++
				}
				r.in.Summary.add(d.Destination, c)
			}
		})
	}
	for inFlight > 0 {
		sel.Select(ctx)
	}
	return errors.Join(errs...)
}
