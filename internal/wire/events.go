package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Outbound CloudEvents types (DESIGN section 7a).
const (
	// EventReplicated: a key's version is on every destination it is routed to, at
	// least one of which was written by this run.
	EventReplicated = "io.replicator.object.replicated"
	// EventFailed: a key could not be written to one destination; a dead letter
	// records it.
	EventFailed = "io.replicator.object.failed"
)

// ObjectEvent is one outbound event, built by a workflow and sent as a CloudEvents
// 1.0 event to each of the policy's events_out sinks.
type ObjectEvent struct {
	// ID is the CloudEvents id: the same for every delivery of one event, so a
	// consumer drops duplicates by it.
	ID   string
	Type string
	Time time.Time
	Data ObjectEventData
}

// ObjectEventData is an event's data member.
type ObjectEventData struct {
	Policy  string `json:"policy"`
	Key     string `json:"key"`
	Version string `json:"version,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	Size    int64  `json:"size"`
	// Outcome is the run's outcome (ok, partial, failed, compensated).
	Outcome string `json:"outcome"`
	// Destinations are the per-destination outcomes of a replicated event.
	Destinations []EventDestination `json:"destinations,omitempty"`
	// Destination, ErrorClass and Error describe a failed event.
	Destination string `json:"destination,omitempty"`
	ErrorClass  string `json:"error_class,omitempty"`
	Error       string `json:"error,omitempty"`
	// WorkflowID and RunID name the run that wrote it.
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
}

// EventDestination is one destination's outcome in a replicated event.
type EventDestination struct {
	Destination string `json:"destination"`
	Outcome     string `json:"outcome"`
	Bytes       int64  `json:"bytes"`
}

// EventID is the id of the event of type typ about key's version on destination
// ("" for a replicated event) written by run: stable across deliveries and retries.
func EventID(run, typ, key, version, destination string) string {
	h := sha256.New()
	for _, part := range []string{run, typ, key, version, destination} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// EventRun names the run whose events are built: its policy, workflow and run ID.
type EventRun struct {
	Policy, WorkflowID, RunID string
	// Retried says an earlier attempt of the same activity may have written what
	// this one finds in place and ended before it could report it: a key every
	// destination holds then gets its replicated event although nothing was written
	// now (its ID is the one the earlier attempt would have given it, so a sink
	// that saw both keeps one).
	Retried bool
}

// KeyEvents builds the outbound events of one key a run handled, the same way wherever
// it was handled: a replicated event when every destination it is routed to (allRoutes:
// dests covers them all) holds the version and at least one was written now, and a
// failed event for each destination that failed for good (a rejected name is not news:
// the reconcile reports it). outcome is the key's outcome in the run. IDs derive from
// the run, key, version and destination, so building them again gives the same IDs.
func KeyEvents(run EventRun, key string, sv SourceVersion, outcome RunOutcome, dests []DestinationOutcome, allRoutes bool, at time.Time) []ObjectEvent {
	data := func() ObjectEventData {
		return ObjectEventData{Policy: run.Policy, Key: key, Version: sv.Version, SHA256: sv.SHA256, Size: sv.Size, Outcome: string(outcome), WorkflowID: run.WorkflowID, RunID: run.RunID}
	}
	wrote, holds := false, true
	var summary []EventDestination
	for _, d := range dests {
		summary = append(summary, EventDestination{Destination: d.Destination, Outcome: string(d.Outcome), Bytes: d.Bytes})
		wrote = wrote || d.Outcome == OutcomeCopied
		holds = holds && (d.Outcome == OutcomeCopied || d.Outcome == OutcomeSkipped)
	}
	var events []ObjectEvent
	if allRoutes && (wrote || run.Retried) && holds {
		d := data()
		d.Destinations = summary
		events = append(events, ObjectEvent{ID: EventID(run.RunID, EventReplicated, key, sv.Version, ""), Type: EventReplicated, Time: at, Data: d})
	}
	for _, o := range dests {
		if o.Outcome != OutcomeFailed || o.ErrorClass == ErrRejected {
			continue
		}
		d := data()
		d.Destination, d.ErrorClass, d.Error = o.Destination, o.ErrorClass, o.Error
		events = append(events, ObjectEvent{ID: EventID(run.RunID, EventFailed, key, sv.Version, o.Destination), Type: EventFailed, Time: at, Data: d})
	}
	return events
}

// DeliverEventsInput is the input of the DeliverEvents workflow.
type DeliverEventsInput struct {
	Policy string
	// Sinks is the number of the policy's events_out sinks.
	Sinks  int
	Events []ObjectEvent
}

// SendEventsInput asks to send events to one of the policy's sinks (its index in
// events_out).
type SendEventsInput struct {
	Policy string
	Sink   int
	Events []ObjectEvent
}

// DeliverEventsWorkflowID is the ID of the DeliverEvents workflow of one run of
// another workflow.
func DeliverEventsWorkflowID(workflowID, runID string) string {
	return "events/" + workflowID + "/" + runID
}
