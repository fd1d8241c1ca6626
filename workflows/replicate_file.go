package workflows

import (
	"errors"
	"fmt"

	"github.com/cloudrepl/replicator/internal/wire"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// maxPasses bounds how often a key whose source keeps changing is retried in one run;
// the reconcile picks it up after.
const maxPasses = 5

// ReplicateFile replicates one key to every destination its policy routes it to, in
// the policy's consistency mode. Triggers that arrive while it runs (signal
// "trigger", sent with Signal-With-Start) make it look at the key once more before it
// ends, so coalesced triggers never miss a change.
func ReplicateFile(ctx workflow.Context, in wire.ReplicateFileInput) (*wire.ReplicateFileResult, error) {
	r := &fileRun{in: in}
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	return r.run(ctx)
}

type fileRun struct {
	// lastPrep is the last pass's Prepare result.
	lastPrep *wire.PrepareResult
	in       wire.ReplicateFileInput
	triggers workflow.ReceiveChannel
	progress wire.FileProgress
	result   wire.ReplicateFileResult
}

func (r *fileRun) setup(ctx workflow.Context) error {
	r.triggers = workflow.GetSignalChannel(ctx, wire.TriggerSignal)
	r.result = wire.ReplicateFileResult{Policy: r.in.Policy, Key: r.in.Key}
	return workflow.SetQueryHandler(ctx, wire.ProgressQuery, func() (wire.FileProgress, error) { return r.progress, nil })
}

// drainTriggers consumes pending triggers and reports whether there were any.
func (r *fileRun) drainTriggers() bool {
	any := false
	for r.triggers.ReceiveAsync(nil) {
		any = true
	}
	return any
}

func (r *fileRun) run(ctx workflow.Context) (*wire.ReplicateFileResult, error) {
	for pass := 1; ; pass++ {
		r.drainTriggers()
		r.progress = wire.FileProgress{Phase: "prepare", Pass: pass}
		r.result.Passes = pass
		before := r.result.Destinations
		changed, err := r.pass(ctx)
		r.keepEarlierCopies(before)
		if err != nil {
			r.finish(ctx, wire.RunFailed)
			return nil, err
		}
		if changed && pass < maxPasses {
			continue // the source changed during the copy: copy the new version
		}
		if changed && workflow.GetVersion(ctx, keptChangingVersion, workflow.DefaultVersion, 1) == 1 {
			r.keptChanging(ctx, pass)
			r.finish(ctx, r.result.Outcome)
			r.sendEvents(ctx)
			return &r.result, nil
		}
		if r.drainTriggers() && pass < maxPasses*2 {
			continue // triggered during the run: look again (costs a metadata check)
		}
		r.finish(ctx, r.result.Outcome)
		r.observeLag(ctx)
		r.sendEvents(ctx)
		return &r.result, nil
	}
}

// keptChangingVersion marks the change that makes a run whose source changed on every
// pass report that (failed, with a dead letter per destination) instead of the
// outcome an earlier pass left.
const keptChangingVersion = "kept-changing"

// keptChanging ends a run whose source changed during each of its passes: every routed
// destination gets a dead letter saying so, and the next reconcile tries again.
func (r *fileRun) keptChanging(ctx workflow.Context, passes int) {
	prep := r.lastPrep
	r.result.Destinations = nil
	r.result.Outcome = wire.RunFailed
	if prep == nil {
		return // it changed while Prepare hashed it, every time: nothing was routed
	}
	var failed []int
	for i, route := range prep.Routes {
		r.result.Destinations = append(r.result.Destinations, wire.DestinationOutcome{Destination: route.Destination, Outcome: wire.OutcomeFailed,
			ErrorClass: wire.ErrSourceChanged, Error: fmt.Sprintf("the source changed during each of %d passes (a file still being written?): the next reconcile copies it once it is stable", passes)})
		failed = append(failed, i)
	}
	r.recordDeadLetters(ctx, prep, failed)
}

// keepEarlierCopies reports a destination as copied when an earlier pass of this run
// copied it and the later pass found it in place, so the result says what moved.
func (r *fileRun) keepEarlierCopies(before []wire.DestinationOutcome) {
	for i, d := range r.result.Destinations {
		if d.Outcome != wire.OutcomeSkipped {
			continue
		}
		for _, b := range before {
			if b.Destination == d.Destination && b.Outcome == wire.OutcomeCopied {
				r.result.Destinations[i] = b
			}
		}
	}
	if len(before) > 0 && r.result.Outcome == wire.RunSkipped && len(r.result.Destinations) > 0 {
		r.result.Outcome = summarize(r.result.Destinations)
	}
}

func (r *fileRun) finish(ctx workflow.Context, outcome wire.RunOutcome) {
	var bytes int64
	for _, d := range r.result.Destinations {
		bytes += d.Bytes
	}
	r.progress.Phase = "done"
	_ = workflow.UpsertTypedSearchAttributes(ctx, outcomeValue(outcome), BytesAttr.ValueSet(bytes))
}

// pass prepares the key and replicates it once; changed reports a source that
// changed under the copy.
func (r *fileRun) pass(ctx workflow.Context) (changed bool, err error) {
	var prep wire.PrepareResult
	pctx := prepareOptions(ctx, r.in.Key)
	if err := workflow.ExecuteActivity(pctx, wire.PrepareName, wire.PrepareInput{Policy: r.in.Policy, Key: r.in.Key}).Get(ctx, &prep); err != nil {
		if ErrorClass(err) == wire.ErrSourceChanged {
			return true, nil
		}
		return false, fmt.Errorf("prepare %s: %w", r.in.Key, err)
	}
	r.lastPrep = &prep
	r.result.Version, r.result.SHA256, r.result.Size = prep.Source.Version, prep.Source.SHA256, prep.Source.Size
	r.result.Destinations = nil
	switch {
	case prep.Excluded:
		r.result.Outcome = wire.RunSkipped
		return false, nil
	case !prep.Source.Exists:
		return false, r.sourceMissing(ctx, &prep)
	case prep.Consistency == "atomic":
		return r.atomic(ctx, &prep)
	default:
		return r.eventual(ctx, &prep)
	}
}

func (r *fileRun) transferInput(prep *wire.PrepareResult, dest, staging string) wire.TransferInput {
	return wire.TransferInput{Policy: r.in.Policy, Destination: dest, Key: r.in.Key, Source: prep.Source, StagingKey: staging, RecordSkips: r.in.RecordSkips, VerifyContent: r.in.VerifyContent}
}

// eventual writes each destination directly, in parallel; a permanent failure
// becomes that destination's dead letter while the others keep their copies.
func (r *fileRun) eventual(ctx workflow.Context, prep *wire.PrepareResult) (bool, error) {
	r.progress.Phase = "transfer"
	futures := make([]workflow.Future, len(prep.Routes))
	for i, route := range prep.Routes {
		actx := transferOptions(ctx, prep, route, fmt.Sprintf("put %s → %s", summaryKey(r.in.Key), route.Destination), false)
		futures[i] = workflow.ExecuteActivity(actx, wire.TransferName, r.transferInput(prep, route.Destination, ""))
	}
	changed := false
	var failed []int
	for i, f := range futures {
		var res wire.TransferResult
		err := f.Get(ctx, &res)
		out := wire.DestinationOutcome{Destination: prep.Routes[i].Destination, Outcome: res.Outcome, Bytes: res.Bytes}
		if err != nil {
			if ErrorClass(err) == wire.ErrSourceChanged || ErrorClass(err) == wire.ErrSourceMissing {
				changed = true
			}
			out.Outcome, out.ErrorClass, out.Error = wire.OutcomeFailed, ErrorClass(err), rootMessage(err)
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

// atomicUndoVersion marks the change to stages unique per run and commits that keep
// the version they replace, so that a commit failing for good on one destination is
// rolled back on the others; runs that started before it keep the old behaviour.
const atomicUndoVersion = "atomic-undo"

// atomic stages on every destination, then commits everywhere, then removes the
// stages. A permanent staging failure anywhere compensates: every stage is removed
// and unfinished uploads aborted, and no final key changes. A permanent commit
// failure anywhere rolls the committed destinations back to their previous versions
// (created keys removed): the outcome is compensated, never a new version on some
// clouds only.
func (r *fileRun) atomic(ctx workflow.Context, prep *wire.PrepareResult) (bool, error) {
	stage, undo := prep.StagingKey, ""
	if workflow.GetVersion(ctx, atomicUndoVersion, workflow.DefaultVersion, 1) == 1 {
		run := workflow.GetInfo(ctx).WorkflowExecution.RunID
		stage, undo = wire.RunStagingKey(r.in.Key, prep.Source.Version, run), wire.UndoKey(r.in.Key, run)
	}
	r.progress.Phase = "stage"
	n := len(prep.Routes)
	futures := make([]workflow.Future, n)
	for i, route := range prep.Routes {
		actx := transferOptions(ctx, prep, route, fmt.Sprintf("stage %s → %s", summaryKey(r.in.Key), route.Destination), false)
		futures[i] = workflow.ExecuteActivity(actx, wire.TransferName, r.transferInput(prep, route.Destination, stage))
	}
	staged := make([]wire.TransferResult, n)
	var stageErrs []error
	changed := false
	outs := make([]wire.DestinationOutcome, n)
	for i, f := range futures {
		err := f.Get(ctx, &staged[i])
		outs[i] = wire.DestinationOutcome{Destination: prep.Routes[i].Destination, Outcome: staged[i].Outcome}
		if err != nil {
			stageErrs = append(stageErrs, err)
			cls := ErrorClass(err)
			changed = changed || cls == wire.ErrSourceChanged || cls == wire.ErrSourceMissing
			outs[i].Outcome, outs[i].ErrorClass, outs[i].Error = wire.OutcomeFailed, cls, rootMessage(err)
		}
	}
	r.result.Destinations = outs
	r.progress.Destinations = outs
	stageOf := func(int) []string { return []string{stage} }
	if len(stageErrs) > 0 {
		r.progress.Phase = "compensate"
		// Every destination is cleaned: a failed stage may have left a multipart
		// upload. Where the stage failed the cleanup is best effort (the same
		// permission problem usually stops it, and nothing was staged there); where
		// it succeeded the stage must go, or the run fails visibly.
		failedStage := func(i int) bool { return outs[i].Outcome == wire.OutcomeFailed }
		if err := r.cleanup(ctx, prep, stageOf, failedStage); err != nil {
			return false, err
		}
		if changed {
			return true, nil
		}
		var failed []int
		for i := range outs {
			if outs[i].Outcome == wire.OutcomeFailed {
				failed = append(failed, i)
			} else {
				outs[i].Outcome, outs[i].Bytes = wire.OutcomeRolledBack, 0
			}
		}
		r.recordDeadLetters(ctx, prep, failed)
		r.result.Outcome = wire.RunCompensated
		return false, nil
	}

	r.progress.Phase = "commit"
	commits := make([]workflow.Future, n)
	for i, route := range prep.Routes {
		if staged[i].Outcome != wire.OutcomeStaged {
			continue // already held the version, or holds a newer one
		}
		actx := transferOptions(ctx, prep, route, fmt.Sprintf("commit %s → %s", summaryKey(r.in.Key), route.Destination), true)
		in := r.transferInput(prep, route.Destination, stage)
		in.Final, in.Undo = staged[i].Final, undo
		commits[i] = workflow.ExecuteActivity(actx, wire.CommitName, in)
	}
	var failed []int
	undos := make([]*wire.UndoState, n)
	for i, f := range commits {
		if f == nil {
			continue
		}
		var res wire.TransferResult
		if err := f.Get(ctx, &res); err != nil {
			outs[i].Outcome, outs[i].ErrorClass, outs[i].Error = wire.OutcomeFailed, ErrorClass(err), rootMessage(err)
			failed = append(failed, i)
			continue
		}
		outs[i].Outcome, outs[i].Bytes, undos[i] = res.Outcome, staged[i].Bytes, res.Undo
		if res.Outcome != wire.OutcomeCopied {
			outs[i].Bytes = 0
		}
	}
	compensated := len(failed) > 0 && undo != ""
	if compensated {
		r.progress.Phase = "roll back"
		if err := r.rollback(ctx, prep, outs, undos); err != nil {
			return false, err
		}
	}
	r.progress.Phase = "cleanup"
	stagesAndUndo := func(i int) []string {
		var keys []string
		if staged[i].Outcome == wire.OutcomeStaged {
			keys = append(keys, stage)
		}
		if undos[i] != nil && undos[i].Key != "" {
			keys = append(keys, undos[i].Key)
		}
		return keys
	}
	if err := r.cleanup(ctx, prep, stagesAndUndo, func(int) bool { return false }); err != nil {
		return false, err
	}
	r.recordDeadLetters(ctx, prep, failed)
	r.result.Outcome = summarize(outs)
	if compensated {
		r.result.Outcome = wire.RunCompensated
	}
	return false, nil
}

// rollback undoes the commits that succeeded, in parallel, rolled forward until done:
// their destinations get their previous versions back (or lose the key the commit
// created), unless a later write replaced the commit.
func (r *fileRun) rollback(ctx workflow.Context, prep *wire.PrepareResult, outs []wire.DestinationOutcome, undos []*wire.UndoState) error {
	futures := make([]workflow.Future, len(outs))
	for i, route := range prep.Routes {
		if outs[i].Outcome != wire.OutcomeCopied || undos[i] == nil {
			continue
		}
		actx := transferOptions(ctx, prep, route, fmt.Sprintf("roll back %s on %s", summaryKey(r.in.Key), route.Destination), true)
		futures[i] = workflow.ExecuteActivity(actx, wire.RollbackName, wire.RollbackInput{Policy: r.in.Policy, Destination: route.Destination,
			Keys: []wire.RollbackKey{{Key: r.in.Key, Undo: *undos[i]}}})
	}
	var errs []error
	for i, f := range futures {
		if f == nil {
			continue
		}
		var res wire.RollbackResult
		if err := f.Get(ctx, &res); err != nil {
			errs = append(errs, fmt.Errorf("roll back %s on %s: %w", r.in.Key, outs[i].Destination, err))
			continue
		}
		outs[i].Bytes = 0
		if len(res.Outcomes) == 1 {
			outs[i].Outcome = res.Outcomes[0]
		}
	}
	return errors.Join(errs...)
}

// cleanup removes each destination's internal keys (keysOf: its stage, its undo
// copy) in parallel. A failure on a bestEffort destination is not an error of the run.
func (r *fileRun) cleanup(ctx workflow.Context, prep *wire.PrepareResult, keysOf func(int) []string, bestEffort func(int) bool) error {
	futures := make([]workflow.Future, len(prep.Routes))
	for i, route := range prep.Routes {
		keys := keysOf(i)
		if len(keys) == 0 {
			continue
		}
		actx := transferOptions(ctx, prep, route, fmt.Sprintf("clean up stage of %s on %s", summaryKey(r.in.Key), route.Destination), true)
		futures[i] = workflow.ExecuteActivity(actx, wire.CleanupName, wire.CleanupInput{
			Policy: r.in.Policy, Destination: route.Destination, Keys: keys})
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
func (r *fileRun) sourceMissing(ctx workflow.Context, prep *wire.PrepareResult) error {
	if prep.Mode != "mirror" {
		r.result.Outcome = wire.RunSkipped
		return nil
	}
	r.progress.Phase = "delete"
	futures := make([]workflow.Future, len(prep.Routes))
	for i, route := range prep.Routes {
		actx := transferOptions(ctx, prep, route, fmt.Sprintf("delete %s on %s", summaryKey(r.in.Key), route.Destination), false)
		futures[i] = workflow.ExecuteActivity(actx, wire.DeleteReplicaName, wire.DeleteInput{Policy: r.in.Policy, Destination: route.Destination, Key: r.in.Key})
	}
	var failed []int
	for i, f := range futures {
		var res wire.TransferResult
		out := wire.DestinationOutcome{Destination: prep.Routes[i].Destination}
		if err := f.Get(ctx, &res); err != nil {
			out.Outcome, out.ErrorClass, out.Error = wire.OutcomeFailed, ErrorClass(err), rootMessage(err)
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
func (r *fileRun) recordDeadLetters(ctx workflow.Context, prep *wire.PrepareResult, failed []int) {
	if len(failed) == 0 {
		return
	}
	actx := deadLetterOptions(ctx, r.in.Key)
	var futures []workflow.Future
	for _, i := range failed {
		d := r.result.Destinations[i]
		futures = append(futures, workflow.ExecuteActivity(actx, wire.RecordDeadLetterName, wire.DeadLetterInput{
			Policy: r.in.Policy, Key: r.in.Key, Destination: d.Destination, Class: d.ErrorClass, Message: d.Error,
			Attempts: int(max(prep.Retry.MaxAttempts, 1)), WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID,
		}))
	}
	for _, f := range futures {
		_ = f.Get(ctx, nil) // a record that cannot be written must not undo the replication
	}
}

// summarize turns per-destination outcomes into the run's outcome.
func summarize(outs []wire.DestinationOutcome) wire.RunOutcome {
	failed, moved := 0, 0
	for _, o := range outs {
		switch o.Outcome {
		case wire.OutcomeFailed:
			failed++
		case wire.OutcomeCopied, wire.OutcomeDeleted:
			moved++
		}
	}
	switch {
	case failed == len(outs) && failed > 0:
		return wire.RunFailed
	case failed > 0:
		return wire.RunPartial
	case moved == 0:
		return wire.RunSkipped
	}
	return wire.RunOK
}

// rootMessage is the message of an activity error once: what the operator needs,
// without Temporal's wrapping layers, which repeat it.
func rootMessage(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Message()
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return "timed out (" + te.TimeoutType().String() + "): the worker died or the destination stalled; it is retried by the next reconcile"
	}
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}
