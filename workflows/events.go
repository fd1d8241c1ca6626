package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cloudrepl/replicator/internal/wire"
)

// DeliverEvents sends a run's outbound events to each of the policy's sinks, each sink
// on its own so that one that is down delays only its own deliveries. It runs apart
// from the run that wrote the events (started by it, abandoned when it ends): the
// replication never waits for a sink.
func DeliverEvents(ctx workflow.Context, in wire.DeliverEventsInput) error {
	futures := make([]workflow.Future, in.Sinks)
	for i := range futures {
		actx := sendEventsOptions(ctx, len(in.Events))
		futures[i] = workflow.ExecuteActivity(actx, wire.SendEventsName, wire.SendEventsInput{Policy: in.Policy, Sink: i, Events: in.Events})
	}
	var errs []error
	for i, f := range futures {
		if err := f.Get(ctx, nil); err != nil {
			errs = append(errs, fmt.Errorf("events_out[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// eventsOutVersion marks the change that makes ReplicateFile send events to the
// policy's events_out sinks.
const eventsOutVersion = "events-out"

// sendEvents starts the delivery of this run's events when the policy has sinks:
// a replicated event when every routed destination holds the version and this run
// wrote at least one, and a failed event per destination that failed. It waits only
// for the delivery workflow to start.
func (r *fileRun) sendEvents(ctx workflow.Context) {
	prep := r.lastPrep
	if prep == nil || prep.EventSinks == 0 {
		return
	}
	info := workflow.GetInfo(ctx).WorkflowExecution
	events := wire.KeyEvents(wire.EventRun{Policy: r.in.Policy, WorkflowID: info.ID, RunID: info.RunID}, r.in.Key, prep.Source,
		r.result.Outcome, r.result.Destinations, true, workflow.Now(ctx).UTC())
	if len(events) == 0 || workflow.GetVersion(ctx, eventsOutVersion, workflow.DefaultVersion, 1) != 1 {
		return
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:        wire.DeliverEventsWorkflowID(info.ID, info.RunID),
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		StaticSummary:     fmt.Sprintf("deliver %d events of %s", len(events), summaryKey(r.in.Key)),
	})
	child := workflow.ExecuteChildWorkflow(cctx, wire.DeliverEventsName, wire.DeliverEventsInput{Policy: r.in.Policy, Sinks: prep.EventSinks, Events: events})
	if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("events of this run could not be handed over for delivery", "error", err)
	}
}

// lagPerKeyVersion marks the change that makes ReplicateFile report a key's lag once,
// when its last routed destination holds it.
const lagPerKeyVersion = "lag-per-key"

// observeLag reports the key's lag (source change to the last destination holding
// it) to the worker's metrics, when this run wrote it and every routed destination
// holds it. A local activity: it only touches the worker's metrics.
func (r *fileRun) observeLag(ctx workflow.Context) {
	prep := r.lastPrep
	if prep == nil || r.result.Outcome != wire.RunOK || !slices.ContainsFunc(r.result.Destinations, func(d wire.DestinationOutcome) bool { return d.Outcome == wire.OutcomeCopied }) {
		return
	}
	if workflow.GetVersion(ctx, lagPerKeyVersion, workflow.DefaultVersion, 1) != 1 {
		return
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1}})
	in := wire.LagInput{Policy: r.in.Policy, Changed: prep.Source.ModTime, Done: workflow.Now(ctx)}
	if err := workflow.ExecuteLocalActivity(lctx, wire.ObserveLagName, in).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("could not record the key's lag", "error", err)
	}
}

// batchEventsVersion marks the change that makes ReplicateBatch deliver the events its
// chunks return.
const batchEventsVersion = "batch-events"

// maxEventsPerDelivery bounds one DeliverEvents input, far below Temporal's payload
// limit.
const maxEventsPerDelivery = 1000

// deliverEvents hands the events chunks returned so far to DeliverEvents children
// (abandoned: the batch never waits for a sink), waiting only for them to start.
func (r *batchRun) deliverEvents(ctx workflow.Context) {
	if len(r.events) == 0 || workflow.GetVersion(ctx, batchEventsVersion, workflow.DefaultVersion, 1) != 1 {
		r.events = nil
		return
	}
	info := workflow.GetInfo(ctx).WorkflowExecution
	for len(r.events) > 0 {
		n := min(len(r.events), maxEventsPerDelivery)
		part := r.events[:n]
		r.events = r.events[n:]
		r.deliveries++
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:        fmt.Sprintf("%s/%d", wire.DeliverEventsWorkflowID(info.ID, info.RunID), r.deliveries),
			ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
			StaticSummary:     fmt.Sprintf("deliver %d events of batch %s", len(part), info.ID),
		})
		child := workflow.ExecuteChildWorkflow(cctx, wire.DeliverEventsName, wire.DeliverEventsInput{Policy: r.in.Policy, Sinks: r.eventSinks, Events: part})
		if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("events of this batch could not be handed over for delivery", "error", err)
		}
	}
	r.events = nil
}

// stagedKeyEvents adds the events of a key of a staged atomic batch, from its final
// outcome on each destination. Only for policies with sinks.
func (r *batchRun) stagedKeyEvents(ctx workflow.Context, k *keyRoute, final []wire.KeyDestination, outcome wire.RunOutcome) {
	if r.in.Description == nil || r.in.Description.EventSinks == 0 || !k.source.Exists {
		return
	}
	dests := make([]wire.DestinationOutcome, len(final))
	for i, d := range final {
		dests[i] = wire.DestinationOutcome{Destination: d.Destination, Outcome: d.Outcome, Bytes: d.Bytes, ErrorClass: d.ErrorClass, Error: d.Error}
	}
	info := workflow.GetInfo(ctx).WorkflowExecution
	r.events = append(r.events, wire.KeyEvents(wire.EventRun{Policy: r.in.Policy, WorkflowID: info.ID, RunID: info.RunID}, k.key, k.source,
		outcome, dests, true, workflow.Now(ctx).UTC())...)
}
