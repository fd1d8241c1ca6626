package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cloudrepl/replicator/activities"
)

// ReplicateFileInput names one key of one policy.
type ReplicateFileInput struct {
	Policy string
	Key    string
	// RecordSkips records destinations already in place in their manifests (set by
	// reconciles, which adopt existing replicas).
	RecordSkips bool `json:",omitempty"`
	// VerifyContent hashes replicas whose metadata claims the version before skipping
	// them (reconciles with the checksum option).
	VerifyContent bool `json:",omitempty"`
}

// DestinationOutcome is what happened on one destination.
type DestinationOutcome struct {
	Destination string
	Outcome     string
	Bytes       int64
	ErrorClass  string `json:",omitempty"`
	Error       string `json:",omitempty"`
}

// ReplicateFileResult is the result of a ReplicateFile run.
type ReplicateFileResult struct {
	Policy       string
	Key          string
	Version      string `json:",omitempty"`
	SHA256       string `json:",omitempty"`
	Size         int64
	Outcome      string
	Destinations []DestinationOutcome `json:",omitempty"`
	// Passes counts how often the key was looked at: more than one when the source
	// changed during a copy or triggers arrived during a run.
	Passes int
}

// FileProgress is the answer to the progress query of ReplicateFile.
type FileProgress struct {
	Phase        string
	Pass         int
	Destinations []DestinationOutcome
}

// maxPasses bounds how often a key whose source keeps changing is retried in one run;
// the reconcile picks it up after.
const maxPasses = 5

// ReplicateFile replicates one key to every destination its policy routes it to, in
// the policy's consistency mode. Triggers that arrive while it runs (signal
// "trigger", sent with Signal-With-Start) make it look at the key once more before it
// ends, so coalesced triggers never miss a change.
func ReplicateFile(ctx workflow.Context, in ReplicateFileInput) (*ReplicateFileResult, error) {
	r := &fileRun{in: in}
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	return r.run(ctx)
}

type fileRun struct {
	in       ReplicateFileInput
	triggers workflow.ReceiveChannel
	progress FileProgress
	result   ReplicateFileResult
}

var acts *activities.Activities // method values name the activities; never called

func (r *fileRun) setup(ctx workflow.Context) error {
	r.triggers = workflow.GetSignalChannel(ctx, TriggerSignal)
	r.result = ReplicateFileResult{Policy: r.in.Policy, Key: r.in.Key}
	return workflow.SetQueryHandler(ctx, ProgressQuery, func() (FileProgress, error) { return r.progress, nil })
}

// drainTriggers consumes pending triggers and reports whether there were any.
func (r *fileRun) drainTriggers() bool {
	any := false
	for r.triggers.ReceiveAsync(nil) {
		any = true
	}
	return any
}

func (r *fileRun) run(ctx workflow.Context) (*ReplicateFileResult, error) {
	for pass := 1; ; pass++ {
		r.drainTriggers()
		r.progress = FileProgress{Phase: "prepare", Pass: pass}
		r.result.Passes = pass
		before := r.result.Destinations
		changed, err := r.pass(ctx)
		r.keepEarlierCopies(before)
		if err != nil {
			r.finish(ctx, OutcomeFailed)
			return nil, err
		}
		if changed && pass < maxPasses {
			continue // the source changed during the copy: copy the new version
		}
		if r.drainTriggers() && pass < maxPasses*2 {
			continue // triggered during the run: look again (costs a metadata check)
		}
		r.finish(ctx, r.result.Outcome)
		return &r.result, nil
	}
}

// keepEarlierCopies reports a destination as copied when an earlier pass of this run
// copied it and the later pass found it in place, so the result says what moved.
func (r *fileRun) keepEarlierCopies(before []DestinationOutcome) {
	for i, d := range r.result.Destinations {
		if d.Outcome != activities.OutcomeSkipped {
			continue
		}
		for _, b := range before {
			if b.Destination == d.Destination && b.Outcome == activities.OutcomeCopied {
				r.result.Destinations[i] = b
			}
		}
	}
	if len(before) > 0 && r.result.Outcome == OutcomeSkipped && len(r.result.Destinations) > 0 {
		r.result.Outcome = summarize(r.result.Destinations)
	}
}

func (r *fileRun) finish(ctx workflow.Context, outcome string) {
	var bytes int64
	for _, d := range r.result.Destinations {
		bytes += d.Bytes
	}
	r.progress.Phase = "done"
	_ = workflow.UpsertTypedSearchAttributes(ctx, OutcomeAttr.ValueSet(outcome), BytesAttr.ValueSet(bytes))
}

// pass prepares the key and replicates it once; changed reports a source that
// changed under the copy.
func (r *fileRun) pass(ctx workflow.Context) (changed bool, err error) {
	var prep activities.PrepareResult
	pctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, MaximumInterval: time.Minute, NonRetryableErrorTypes: activities.NonRetryable},
		Summary:             "prepare " + r.in.Key,
	})
	if err := workflow.ExecuteActivity(pctx, acts.Prepare, activities.PrepareInput{Policy: r.in.Policy, Key: r.in.Key}).Get(ctx, &prep); err != nil {
		if activities.ErrorClass(err) == activities.ErrSourceChanged {
			return true, nil
		}
		return false, fmt.Errorf("prepare %s: %w", r.in.Key, err)
	}
	r.result.Version, r.result.SHA256, r.result.Size = prep.Source.Version, prep.Source.SHA256, prep.Source.Size
	r.result.Destinations = nil
	switch {
	case prep.Excluded:
		r.result.Outcome = OutcomeSkipped
		return false, nil
	case !prep.Source.Exists:
		return false, r.sourceMissing(ctx, &prep)
	case prep.Consistency == "atomic":
		return r.atomic(ctx, &prep)
	default:
		return r.eventual(ctx, &prep)
	}
}

// transferOptions are the options of one destination's activities.
func transferOptions(ctx workflow.Context, prep *activities.PrepareResult, route activities.Route, summary string, unlimited bool) workflow.Context {
	rs := prep.Retry
	rp := &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        rs.MaxInterval,
		MaximumAttempts:        rs.MaxAttempts,
		NonRetryableErrorTypes: activities.NonRetryable,
	}
	opts := workflow.ActivityOptions{
		TaskQueue: route.TaskQueue,
		// Room for a slow link: an hour plus one second per MiB.
		StartToCloseTimeout: time.Hour + time.Duration(prep.Source.Size>>20)*time.Second,
		HeartbeatTimeout:    rs.HeartbeatTimeout,
		RetryPolicy:         rp,
		Summary:             summary,
	}
	if unlimited {
		// Commit and cleanup roll forward: retried until done, except what no
		// retry can fix.
		rp.MaximumAttempts = 0
		rp.NonRetryableErrorTypes = []string{activities.ErrPermission, activities.ErrInvalid}
	} else if rs.Expiration > 0 {
		opts.ScheduleToCloseTimeout = rs.Expiration
	}
	return workflow.WithActivityOptions(ctx, opts)
}

func (r *fileRun) transferInput(prep *activities.PrepareResult, dest, staging string) activities.TransferInput {
	return activities.TransferInput{Policy: r.in.Policy, Destination: dest, Key: r.in.Key, Source: prep.Source, StagingKey: staging, RecordSkips: r.in.RecordSkips, VerifyContent: r.in.VerifyContent}
}

// eventual writes each destination directly, in parallel; a permanent failure
// becomes that destination's dead letter while the others keep their copies.
func (r *fileRun) eventual(ctx workflow.Context, prep *activities.PrepareResult) (bool, error) {
	r.progress.Phase = "transfer"
	futures := make([]workflow.Future, len(prep.Routes))
	for i, route := range prep.Routes {
		actx := transferOptions(ctx, prep, route, fmt.Sprintf("put %s → %s", r.in.Key, route.Destination), false)
		futures[i] = workflow.ExecuteActivity(actx, acts.Transfer, r.transferInput(prep, route.Destination, ""))
	}
	changed := false
	var failed []int
	for i, f := range futures {
		var res activities.TransferResult
		err := f.Get(ctx, &res)
		out := DestinationOutcome{Destination: prep.Routes[i].Destination, Outcome: res.Outcome, Bytes: res.Bytes}
		if err != nil {
			if activities.ErrorClass(err) == activities.ErrSourceChanged || activities.ErrorClass(err) == activities.ErrSourceMissing {
				changed = true
			}
			out.Outcome, out.ErrorClass, out.Error = activities.OutcomeFailed, activities.ErrorClass(err), rootMessage(err)
			failed = append(failed, i)
		}
		r.result.Destinations = append(r.result.Destinations, out)
		r.progress.Destinations = r.result.Destinations
	}
	if changed {
		return true, nil
	}
	r.recordDeadLetters(ctx, prep, failed)
	r.result.Outcome = summarize(r.result.Destinations)
	return false, nil
}

// atomic stages on every destination, then commits everywhere, then removes the
// stages. A permanent staging failure anywhere compensates: every stage is removed
// and unfinished uploads aborted, and no final key changes.
func (r *fileRun) atomic(ctx workflow.Context, prep *activities.PrepareResult) (bool, error) {
	r.progress.Phase = "stage"
	n := len(prep.Routes)
	futures := make([]workflow.Future, n)
	for i, route := range prep.Routes {
		actx := transferOptions(ctx, prep, route, fmt.Sprintf("stage %s → %s", r.in.Key, route.Destination), false)
		futures[i] = workflow.ExecuteActivity(actx, acts.Transfer, r.transferInput(prep, route.Destination, prep.StagingKey))
	}
	staged := make([]activities.TransferResult, n)
	var stageErrs []error
	changed := false
	outs := make([]DestinationOutcome, n)
	for i, f := range futures {
		err := f.Get(ctx, &staged[i])
		outs[i] = DestinationOutcome{Destination: prep.Routes[i].Destination, Outcome: staged[i].Outcome}
		if err != nil {
			stageErrs = append(stageErrs, err)
			cls := activities.ErrorClass(err)
			changed = changed || cls == activities.ErrSourceChanged || cls == activities.ErrSourceMissing
			outs[i].Outcome, outs[i].ErrorClass, outs[i].Error = activities.OutcomeFailed, cls, rootMessage(err)
		}
	}
	r.result.Destinations = outs
	r.progress.Destinations = outs
	if len(stageErrs) > 0 {
		r.progress.Phase = "compensate"
		// Every destination is cleaned: a failed stage may have left a multipart
		// upload. Where the stage failed the cleanup is best effort (the same
		// permission problem usually stops it, and nothing was staged there); where
		// it succeeded the stage must go, or the run fails visibly.
		failedStage := func(i int) bool { return outs[i].Outcome == activities.OutcomeFailed }
		if err := r.cleanup(ctx, prep, func(int) bool { return true }, failedStage); err != nil {
			return false, err
		}
		if changed {
			return true, nil
		}
		var failed []int
		for i := range outs {
			if outs[i].Outcome == activities.OutcomeFailed {
				failed = append(failed, i)
			} else {
				outs[i].Outcome, outs[i].Bytes = "rolled back", 0
			}
		}
		r.recordDeadLetters(ctx, prep, failed)
		r.result.Outcome = OutcomeCompensated
		return false, nil
	}

	r.progress.Phase = "commit"
	commits := make([]workflow.Future, n)
	for i, route := range prep.Routes {
		if staged[i].Outcome != activities.OutcomeStaged {
			continue // already held the version, or holds a newer one
		}
		actx := transferOptions(ctx, prep, route, fmt.Sprintf("commit %s → %s", r.in.Key, route.Destination), true)
		in := r.transferInput(prep, route.Destination, prep.StagingKey)
		in.Final = staged[i].Final
		commits[i] = workflow.ExecuteActivity(actx, acts.Commit, in)
	}
	var failed []int
	for i, f := range commits {
		if f == nil {
			continue
		}
		var res activities.TransferResult
		if err := f.Get(ctx, &res); err != nil {
			outs[i].Outcome, outs[i].ErrorClass, outs[i].Error = activities.OutcomeFailed, activities.ErrorClass(err), rootMessage(err)
			failed = append(failed, i)
			continue
		}
		outs[i].Outcome, outs[i].Bytes = res.Outcome, staged[i].Bytes
		if res.Outcome != activities.OutcomeCopied {
			outs[i].Bytes = 0
		}
	}
	r.progress.Phase = "cleanup"
	if err := r.cleanup(ctx, prep, func(i int) bool { return staged[i].Outcome == activities.OutcomeStaged }, func(int) bool { return false }); err != nil {
		return false, err
	}
	r.recordDeadLetters(ctx, prep, failed)
	r.result.Outcome = summarize(outs)
	return false, nil
}

// cleanup removes the staging key from the selected destinations, in parallel. A
// failure on a bestEffort destination is not an error of the run.
func (r *fileRun) cleanup(ctx workflow.Context, prep *activities.PrepareResult, selected, bestEffort func(int) bool) error {
	futures := make([]workflow.Future, len(prep.Routes))
	for i, route := range prep.Routes {
		if !selected(i) {
			continue
		}
		actx := transferOptions(ctx, prep, route, fmt.Sprintf("clean up stage of %s on %s", r.in.Key, route.Destination), true)
		futures[i] = workflow.ExecuteActivity(actx, acts.Cleanup, activities.CleanupInput{
			Policy: r.in.Policy, Destination: route.Destination, Keys: []string{prep.StagingKey}})
	}
	var errs []error
	for i, f := range futures {
		if f == nil {
			continue
		}
		if err := f.Get(ctx, nil); err != nil && !bestEffort(i) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up staging of %s: %w", r.in.Key, err)
	}
	return nil
}

// sourceMissing handles a key whose source is gone: mirror mode propagates the delete,
// copy mode ends the run as skipped.
func (r *fileRun) sourceMissing(ctx workflow.Context, prep *activities.PrepareResult) error {
	if prep.Mode != "mirror" {
		r.result.Outcome = OutcomeSkipped
		return nil
	}
	r.progress.Phase = "delete"
	futures := make([]workflow.Future, len(prep.Routes))
	for i, route := range prep.Routes {
		actx := transferOptions(ctx, prep, route, fmt.Sprintf("delete %s on %s", r.in.Key, route.Destination), false)
		futures[i] = workflow.ExecuteActivity(actx, acts.DeleteReplica, activities.DeleteInput{Policy: r.in.Policy, Destination: route.Destination, Key: r.in.Key})
	}
	var failed []int
	for i, f := range futures {
		var res activities.TransferResult
		out := DestinationOutcome{Destination: prep.Routes[i].Destination}
		if err := f.Get(ctx, &res); err != nil {
			out.Outcome, out.ErrorClass, out.Error = activities.OutcomeFailed, activities.ErrorClass(err), rootMessage(err)
			failed = append(failed, i)
		} else {
			out.Outcome = res.Outcome
		}
		r.result.Destinations = append(r.result.Destinations, out)
	}
	r.recordDeadLetters(ctx, prep, failed)
	r.result.Outcome = summarize(r.result.Destinations)
	return nil
}

// recordDeadLetters writes a dead letter for each failed destination.
func (r *fileRun) recordDeadLetters(ctx workflow.Context, prep *activities.PrepareResult, failed []int) {
	if len(failed) == 0 {
		return
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: time.Minute},
		Summary:             "record dead letters of " + r.in.Key,
	})
	var futures []workflow.Future
	for _, i := range failed {
		d := r.result.Destinations[i]
		futures = append(futures, workflow.ExecuteActivity(actx, acts.RecordDeadLetter, activities.DeadLetterInput{
			Policy: r.in.Policy, Key: r.in.Key, Destination: d.Destination, Class: d.ErrorClass, Message: d.Error,
			Attempts: int(max(prep.Retry.MaxAttempts, 1)), WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID,
		}))
	}
	for _, f := range futures {
		_ = f.Get(ctx, nil) // a record that cannot be written must not undo the replication
	}
}

// summarize turns per-destination outcomes into the run's outcome.
func summarize(outs []DestinationOutcome) string {
	failed, moved := 0, 0
	for _, o := range outs {
		switch o.Outcome {
		case activities.OutcomeFailed:
			failed++
		case activities.OutcomeCopied, activities.OutcomeDeleted:
			moved++
		}
	}
	switch {
	case failed == len(outs) && failed > 0:
		return OutcomeFailed
	case failed > 0:
		return OutcomePartial
	case moved == 0:
		return OutcomeSkipped
	}
	return OutcomeOK
}

// rootMessage is the innermost message of an activity error: what the operator needs,
// without the wrapping layers.
func rootMessage(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Error()
	}
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}
