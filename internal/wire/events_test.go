package wire

import (
	"testing"
	"time"
)

func TestKeyEvents(t *testing.T) {
	run := EventRun{Policy: "p", WorkflowID: "w", RunID: "r"}
	sv := SourceVersion{Exists: true, Version: "v1", SHA256: "abc", Size: 3}
	at := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	types := func(events []ObjectEvent) []string {
		var out []string
		for _, e := range events {
			out = append(out, e.Type+":"+e.Data.Destination)
		}
		return out
	}
	for _, c := range []struct {
		name      string
		dests     []DestinationOutcome
		allRoutes bool
		want      []string
	}{
		{"written everywhere", []DestinationOutcome{{Destination: "a", Outcome: OutcomeCopied}, {Destination: "b", Outcome: OutcomeSkipped}}, true, []string{EventReplicated + ":"}},
		{"nothing written", []DestinationOutcome{{Destination: "a", Outcome: OutcomeSkipped}}, true, nil},
		{"not every route in view", []DestinationOutcome{{Destination: "a", Outcome: OutcomeCopied}}, false, nil},
		{"one failed", []DestinationOutcome{{Destination: "a", Outcome: OutcomeCopied}, {Destination: "b", Outcome: OutcomeFailed, ErrorClass: "Permission"}}, true, []string{EventFailed + ":b"}},
		{"a rejected name is no event", []DestinationOutcome{{Destination: "a", Outcome: OutcomeFailed, ErrorClass: ErrRejected}}, true, nil},
	} {
		got := types(KeyEvents(run, "k", sv, RunOK, c.dests, c.allRoutes, at))
		if len(got) != len(c.want) || len(got) > 0 && got[0] != c.want[0] {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	// A retried attempt finds the earlier attempt's writes in place: the event is
	// still due, with the ID the earlier attempt would have given it.
	retried := run
	retried.Retried = true
	skipped := []DestinationOutcome{{Destination: "a", Outcome: OutcomeSkipped}, {Destination: "b", Outcome: OutcomeSkipped}}
	if got := types(KeyEvents(retried, "k", sv, RunOK, skipped, true, at)); len(got) != 1 || got[0] != EventReplicated+":" {
		t.Errorf("retried attempt, everything in place: %v, want one replicated event", got)
	}
	first := KeyEvents(run, "k", sv, RunOK, []DestinationOutcome{{Destination: "a", Outcome: OutcomeCopied}, {Destination: "b", Outcome: OutcomeCopied}}, true, at)
	if again := KeyEvents(retried, "k", sv, RunOK, skipped, true, at); again[0].ID != first[0].ID {
		t.Errorf("the retried attempt's event has ID %s, the first attempt's %s", again[0].ID, first[0].ID)
	}
	if got := types(KeyEvents(retried, "k", sv, RunOK, []DestinationOutcome{{Destination: "a", Outcome: OutcomeSkipped}, {Destination: "b", Outcome: OutcomeFailed, ErrorClass: "Permission"}}, true, at)); len(got) != 1 || got[0] != EventFailed+":b" {
		t.Errorf("retried attempt with a failure: %v, want only the failed event", got)
	}
	a := KeyEvents(run, "k", sv, RunOK, []DestinationOutcome{{Destination: "a", Outcome: OutcomeCopied}}, true, at)
	b := KeyEvents(run, "k", sv, RunOK, []DestinationOutcome{{Destination: "a", Outcome: OutcomeCopied}}, true, at.Add(time.Hour))
	if a[0].ID != b[0].ID || a[0].Data.SHA256 != "abc" {
		t.Errorf("building the events again gave another ID (%s, %s) or lost the hash", a[0].ID, b[0].ID)
	}
}
