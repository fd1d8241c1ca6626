package workflows

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/cloudrepl/replicator/internal/wire"
)

// sentEvents records the events handed over for delivery, per sink.
type sentEvents struct {
	mu     sync.Mutex
	bySink map[int][]wire.ObjectEvent
}

func (s *sentEvents) record(in wire.SendEventsInput) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bySink[in.Sink] = append(s.bySink[in.Sink], in.Events...)
	return nil
}

// expectDelivery makes the DeliverEvents child record its input, each sink's share.
func expectDelivery(env *testsuite.TestWorkflowEnvironment, sent *sentEvents) {
	env.OnWorkflow(wire.DeliverEventsName, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in wire.DeliverEventsInput) error {
		for i := range in.Sinks {
			_ = sent.record(wire.SendEventsInput{Policy: in.Policy, Sink: i, Events: in.Events})
		}
		return nil
	}).Once()
}

func TestDeliverEventsSendsToEachSink(t *testing.T) {
	env := newEnv(t)
	sent := &sentEvents{bySink: map[int][]wire.ObjectEvent{}}
	env.OnActivity(wire.SendEventsName, mock.Anything, mock.Anything).Return(func(_ context.Context, in wire.SendEventsInput) error { return sent.record(in) }).Times(3)
	events := []wire.ObjectEvent{{ID: "1", Type: wire.EventReplicated}, {ID: "2", Type: wire.EventFailed}}
	env.ExecuteWorkflow(DeliverEvents, wire.DeliverEventsInput{Policy: "p", Sinks: 3, Events: events})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if got := sent.bySink[i]; len(got) != 2 || got[0].ID != "1" || got[1].ID != "2" {
			t.Errorf("sink %d got %+v", i, got)
		}
	}
}

func TestDeliverEventsReportsASinkThatRefuses(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.SendEventsName, mock.Anything, mock.MatchedBy(func(in wire.SendEventsInput) bool { return in.Sink == 0 })).Return(nil).Once()
	env.OnActivity(wire.SendEventsName, mock.Anything, mock.MatchedBy(func(in wire.SendEventsInput) bool { return in.Sink == 1 })).Return(permanent(wire.ErrPermission)).Once()
	env.ExecuteWorkflow(DeliverEvents, wire.DeliverEventsInput{Policy: "p", Sinks: 2, Events: []wire.ObjectEvent{{ID: "1"}}})
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "events_out[1]") {
		t.Fatalf("error %v, want one naming events_out[1]", err)
	}
}

func TestReplicatedAndFailedEventsGoToEverySink(t *testing.T) {
	env := newEnv(t)
	p := prep("eventual", "copy", true)
	p.EventSinks = 2
	env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(p, nil).Once()
	env.OnActivity(wire.TransferName, mock.Anything, dest("s3")).Return(&wire.TransferResult{Outcome: "copied", Bytes: 10}, nil).Once()
	env.OnActivity(wire.TransferName, mock.Anything, dest("gcs")).Return(nil, permanent(wire.ErrPermission)).Once()
	env.OnActivity(wire.TransferName, mock.Anything, dest("azure")).Return(&wire.TransferResult{Outcome: "copied", Bytes: 10}, nil).Once()
	env.OnActivity(wire.RecordDeadLetterName, mock.Anything, dest("gcs")).Return(nil).Once()
	sent := &sentEvents{bySink: map[int][]wire.ObjectEvent{}}
	expectDelivery(env, sent)
	if res := run(t, env); res.Outcome != wire.RunPartial {
		t.Fatalf("outcome %s", res.Outcome)
	}
	for sink := range 2 {
		events := sent.bySink[sink]
		// A partial run replicated the key nowhere in full: only gcs's failure is news.
		if len(events) != 1 || events[0].Type != wire.EventFailed || events[0].Data.Destination != "gcs" || events[0].Data.ErrorClass != wire.ErrPermission ||
			events[0].Data.Key != "k" || events[0].Data.SHA256 != "abc" || events[0].ID == "" {
			t.Errorf("sink %d got %+v", sink, events)
		}
	}
}

func TestReplicatedEventOnlyWhenSomethingWasWritten(t *testing.T) {
	for _, c := range []struct {
		name    string
		outcome wire.Outcome
		events  int
	}{{"copied", wire.OutcomeCopied, 1}, {"already there", wire.OutcomeSkipped, 0}} {
		t.Run(c.name, func(t *testing.T) {
			env := newEnv(t)
			p := prep("eventual", "copy", true)
			p.EventSinks = 1
			env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(p, nil).Once()
			env.OnActivity(wire.TransferName, mock.Anything, mock.Anything).Return(&wire.TransferResult{Outcome: c.outcome}, nil).Times(3)
			sent := &sentEvents{bySink: map[int][]wire.ObjectEvent{}}
			if c.events > 0 {
				expectDelivery(env, sent)
			}
			run(t, env)
			if got := sent.bySink[0]; len(got) != c.events || c.events == 1 && (got[0].Type != wire.EventReplicated || len(got[0].Data.Destinations) != 3) {
				t.Fatalf("events %+v, want %d replicated", got, c.events)
			}
		})
	}
}

func TestBatchHandsItsChunksEventsToDelivery(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.DescribePolicyName, mock.Anything, mock.Anything).Return(describe("eventual"), nil).Once()
	env.OnActivity(wire.ReplicateChunkName, mock.Anything, mock.Anything).Return(func(ctx context.Context, in wire.ChunkInput) (*wire.ChunkResult, error) {
		res, _ := chunk(1)(ctx, in)
		res.Events = []wire.ObjectEvent{{ID: fmt.Sprintf("p%d-%s", in.Page, in.Destinations[0]), Type: wire.EventReplicated}}
		res.EventSinks = 1
		return res, nil
	}).Times(6)
	sent := &sentEvents{bySink: map[int][]wire.ObjectEvent{}}
	env.OnWorkflow(wire.DeliverEventsName, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in wire.DeliverEventsInput) error {
		return sent.record(wire.SendEventsInput{Policy: in.Policy, Sink: 0, Events: in.Events})
	})
	env.ExecuteWorkflow(ReplicateBatch, wire.ReplicateBatchInput{Policy: "p", List: wire.KeyList{Pages: 3, Count: 192, PageSize: 64}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range sent.bySink[0] {
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	if want := []string{"p0-azure", "p0-s3", "p1-azure", "p1-s3", "p2-azure", "p2-s3"}; !slices.Equal(ids, want) {
		t.Fatalf("delivered %v, want %v", ids, want)
	}
}
