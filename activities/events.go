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

// keyEvents are a chunk key's outbound events (wire.KeyEvents), for policies with
// sinks: the batch run's, so a retried chunk builds the same IDs.
func keyEvents(ctx context.Context, p *config.Policy, key string, sv wire.SourceVersion, results []wire.DestinationOutcome, allRoutes bool) []wire.ObjectEvent {
	if len(p.EventsOut) == 0 || !sv.Exists {
		return nil
	}
	outcome := wire.RunOK
	failed := 0
	for _, r := range results {
		switch r.Outcome {
		case wire.OutcomeRolledBack:
			outcome = wire.RunCompensated
		case wire.OutcomeFailed:
			failed++
		}
	}
	switch {
	case outcome == wire.RunCompensated:
	case failed == len(results):
		outcome = wire.RunFailed
	case failed > 0:
		outcome = wire.RunPartial
	}
	ai := activity.GetInfo(ctx)
	info := ai.WorkflowExecution
	// An attempt after one that timed out (its writes done, its result lost) finds
	// those writes in place: their events must still go out, at least once.
	run := wire.EventRun{Policy: p.Name, WorkflowID: info.ID, RunID: info.RunID, Retried: ai.Attempt > 1}
	return wire.KeyEvents(run, key, sv, outcome, results, allRoutes, time.Now().UTC())
}
