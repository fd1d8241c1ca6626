package activities

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/version"
	"github.com/cloudrepl/replicator/internal/wire"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body under the
// sink's secret, when the sink has one (events_out[].secret_env).
const SignatureHeader = "X-Replicator-Signature"

// eventTimeout bounds one POST to a sink; a slow sink is retried, not waited for.
const eventTimeout = 10 * time.Second

// cloudEvent is the CloudEvents 1.0 structured JSON form of an event.
type cloudEvent struct {
	SpecVersion     string               `json:"specversion"`
	ID              string               `json:"id"`
	Source          string               `json:"source"`
	Type            string               `json:"type"`
	Subject         string               `json:"subject"`
	Time            time.Time            `json:"time"`
	DataContentType string               `json:"datacontenttype"`
	Data            wire.ObjectEventData `json:"data"`
}

// SendEvents POSTs each event, in order, to one of the policy's sinks as a CloudEvents
// 1.0 structured JSON event. A 2xx answer is delivery; a sink that is unreachable,
// slow or answering 408, 429 or 5xx is retried by Temporal (the heartbeat records how
// many were delivered, so a retry resumes after them); any other answer means the
// sink will never take the event, and fails for good, naming the status.
func (a *Activities) SendEvents(ctx context.Context, in wire.SendEventsInput) error {
	p, err := a.policy(in.Policy)
	if err != nil {
		return err
	}
	if in.Sink < 0 || in.Sink >= len(p.EventsOut) {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("policy %s has no events_out[%d]: the worker's config differs from the one the run started with", p.Name, in.Sink), wire.ErrPermission, nil)
	}
	sink := p.EventsOut[in.Sink]
	var secret []byte
	if sink.SecretEnv != "" {
		v, ok := os.LookupEnv(sink.SecretEnv)
		if !ok || v == "" {
			return temporal.NewApplicationError(fmt.Sprintf("the signing secret of events_out[%d] is not set: set %s in the worker's environment", in.Sink, sink.SecretEnv), wire.ErrPermission)
		}
		secret = []byte(v)
	}
	start := 0
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &start)
	}
	for i := start; i < len(in.Events); i++ {
		if err := postEvent(ctx, sink.URL, secret, p.Name, in.Events[i]); err != nil {
			return err
		}
		activity.RecordHeartbeat(ctx, i+1)
	}
	return nil
}

// postEvent sends one event; its error says whether a retry can help.
func postEvent(ctx context.Context, sinkURL string, secret []byte, policy string, e wire.ObjectEvent) error {
	body, err := json.Marshal(cloudEvent{SpecVersion: "1.0", ID: e.ID, Source: "/replicator/policies/" + url.PathEscape(policy), Type: e.Type,
		Subject: e.Data.Key, Time: e.Time, DataContentType: "application/json", Data: e.Data})
	if err != nil {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("encode event %s: %v", e.ID, err), wire.ErrInvalid, nil)
	}
	ctx, cancel := context.WithTimeout(ctx, eventTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sinkURL, bytes.NewReader(body))
	if err != nil {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("event sink %s: %v", redactedSink(sinkURL), err), wire.ErrInvalid, nil)
	}
	req.Header.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
	req.Header.Set("User-Agent", "replicator/"+version.String())
	if secret != nil {
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		req.Header.Set(SignatureHeader, "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("send event %s to %s (retried until it answers): %w", e.ID, redactedSink(sinkURL), err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("send event %s to %s: the sink answered %s (retried): %q", e.ID, redactedSink(sinkURL), resp.Status, msg)
	default:
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("send event %s to %s: the sink refused it with %s: %q; fix the sink (or the policy's events_out) and replicate the key again",
			e.ID, redactedSink(sinkURL), resp.Status, msg), wire.ErrPermission, nil)
	}
}

// redactedSink is the sink's URL without its query, which may hold a token.
func redactedSink(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery, u.User = "", nil
	return u.String()
}

// keyResult is one destination's result for a key in a chunk.
type keyResult struct {
	destination string
	outcome     wire.Outcome // "" or failed when it failed
	bytes       int64
	// class and message of a failure ("" when it did not fail, or the activity ended
	// before the destination was done).
	class, message string
}

// keyEvents builds a chunk key's outbound events, as ReplicateFile does for its key: a
// replicated event when every routed destination holds the version and one was
// written now (all routes must be in this chunk), a failed event per destination that
// failed for good. IDs derive from the batch run, key, version and destination, so a
// retried chunk repeats them.
func keyEvents(ctx context.Context, p *config.Policy, key string, sv wire.SourceVersion, results []keyResult, allRoutes bool) []wire.ObjectEvent {
	if len(p.EventsOut) == 0 || !sv.Exists {
		return nil
	}
	info := activity.GetInfo(ctx).WorkflowExecution
	now := time.Now().UTC()
	compensated := slices.ContainsFunc(results, func(r keyResult) bool { return r.outcome == wire.OutcomeRolledBack })
	data := func(outcome wire.RunOutcome) wire.ObjectEventData {
		return wire.ObjectEventData{Policy: p.Name, Key: key, Version: sv.Version, SHA256: sv.SHA256, Size: sv.Size, Outcome: string(outcome), WorkflowID: info.ID, RunID: info.RunID}
	}
	var events []wire.ObjectEvent
	outs := make([]wire.Outcome, len(results))
	var failed []keyResult
	for i, r := range results {
		outs[i] = r.outcome
		if r.class != "" && r.class != wire.ErrRejected {
			failed = append(failed, r)
		}
	}
	if allRoutes && everyDestinationHolds(outs) {
		d := data(wire.RunOK)
		for _, r := range results {
			d.Destinations = append(d.Destinations, wire.EventDestination{Destination: r.destination, Outcome: string(r.outcome), Bytes: r.bytes})
		}
		events = append(events, wire.ObjectEvent{ID: wire.EventID(info.RunID, wire.EventReplicated, key, sv.Version, ""), Type: wire.EventReplicated, Time: now, Data: d})
	}
	for _, r := range failed {
		outcome := wire.RunPartial
		switch {
		case compensated:
			outcome = wire.RunCompensated
		case len(failed) == len(results):
			outcome = wire.RunFailed
		}
		d := data(outcome)
		d.Destination, d.ErrorClass, d.Error = r.destination, r.class, r.message
		events = append(events, wire.ObjectEvent{ID: wire.EventID(info.RunID, wire.EventFailed, key, sv.Version, r.destination), Type: wire.EventFailed, Time: now, Data: d})
	}
	return events
}
