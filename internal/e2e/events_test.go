//go:build integration

package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/activities"
	"github.com/cloudrepl/replicator/internal/wire"
)

// eventSink is an HTTP receiver of the worker's events on loopback: down (503) for
// its first requests, then taking every event whose signature checks.
type eventSink struct {
	mu     sync.Mutex
	down   int
	secret []byte
	events []receivedEvent
	bad    int
}

type receivedEvent struct {
	ID, Type, Subject string
	Data              wire.ObjectEventData
}

func (s *eventSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down > 0 {
		s.down--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	mac := hmac.New(sha256.New, s.secret)
	mac.Write(body)
	var e receivedEvent
	if r.Header.Get(activities.SignatureHeader) != "sha256="+hex.EncodeToString(mac.Sum(nil)) || json.Unmarshal(body, &e) != nil {
		s.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	s.events = append(s.events, e)
	w.WriteHeader(http.StatusNoContent)
}

func (s *eventSink) received() []receivedEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// TestEventsOutReachASinkThatWasDown replicates two keys, one of which one
// destination refuses, to a policy with an events_out sink that is down at first:
// the replications finish without waiting for it, and once it answers it holds
// exactly the run's events (a replicated event for the key every destination took,
// with its SHA-256; a failed event for the refusal), each signed, none twice.
func TestEventsOutReachASinkThatWasDown(t *testing.T) {
	sink := &eventSink{down: 3, secret: []byte("e2e-sink-secret")}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	w := newWorld(t, worldOptions{extra: "    events_out: [{url: \"" + srv.URL + "/events\", secret_env: E2E_SINK_SECRET}]\n    rules: [{match: \"refused/**\", to: [s3, gcs]}, {match: \"**\", to: [gcs, azure]}]\n", s3Profile: "refused"})
	writeAWSProfiles(t, w)
	w.extraEnv = append(w.extraEnv, "E2E_SINK_SECRET=e2e-sink-secret")
	sum := w.writeFile("ok/invoice.pdf", randomBytes(4000))
	w.writeFile("refused/invoice.pdf", randomBytes(4000))
	wk := w.startWorker()
	res, code := w.replicateWait("ok/invoice.pdf", "refused/invoice.pdf")
	if code != 1 || res[0].Outcome != "ok" || res[1].Outcome != "partial" {
		t.Fatalf("replicate: exit %d %+v; want ok and partial", code, res)
	}
	deadline := time.Now().Add(90 * time.Second)
	for len(sink.received()) < 2 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a duplicate or an extra event would arrive by now
	got := sink.received()
	if len(got) != 2 || sink.bad != 0 {
		t.Fatalf("sink received %+v (%d badly signed), want 2 events", got, sink.bad)
	}
	slices.SortFunc(got, func(a, b receivedEvent) int { return strings.Compare(a.Type, b.Type) })
	failed, replicated := got[0], got[1]
	if replicated.Type != wire.EventReplicated || replicated.Subject != "ok/invoice.pdf" || replicated.Data.SHA256 != sum || len(replicated.Data.Destinations) != 2 {
		t.Errorf("replicated event %+v", replicated)
	}
	if failed.Type != wire.EventFailed || failed.Subject != "refused/invoice.pdf" || failed.Data.Destination != "s3" || failed.Data.ErrorClass != "Permission" {
		t.Errorf("failed event %+v", failed)
	}
	if replicated.ID == failed.ID {
		t.Errorf("two events share the id %s", failed.ID)
	}
	recordHistory(t, "replicate/"+w.policy+"/ok/invoice.pdf", "replicate_file_events_out")
	// The lag is the key's, once every routed destination holds it: one key did.
	resp, err := http.Get(wk.metricsURL(t) + "/metrics")
	must(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`replicator_lag_seconds_count{policy=%q} 1`, w.policy); !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// TestEventsOutOfABatch: every key a batch replicated everywhere reaches the sink as one
// replicated event with its SHA-256.
func TestEventsOutOfABatch(t *testing.T) {
	w := checkBatchEvents(t, worldOptions{}, 5, "events")
	recordHistory(t, "batch/"+w.policy+"/events", "replicate_batch_events_out")
}

// TestEventsOutOfAStagedAtomicBatch: an atomic batch whose destinations are on two task
// queues takes the staged path; each key it committed everywhere is one replicated
// event.
func TestEventsOutOfAStagedAtomicBatch(t *testing.T) {
	checkBatchEvents(t, worldOptions{consistency: "atomic", azureDedicated: true}, 3, "staged")
}

// checkBatchEvents runs a batch of n new files on a world made with o plus a signed
// events_out sink, and checks that the sink gets exactly one replicated event per key,
// with its SHA-256 and all three destinations. It returns the world.
func checkBatchEvents(t *testing.T, o worldOptions, n int, id string) *world {
	t.Helper()
	sink := &eventSink{secret: []byte(id + "-secret")}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	o.extra += "    events_out: [{url: \"" + srv.URL + "\", secret_env: E2E_SINK_SECRET}]\n"
	w := newWorld(t, o)
	w.extraEnv = append(w.extraEnv, "E2E_SINK_SECRET="+id+"-secret")
	sums := map[string]string{}
	var keys []string
	for i := range n {
		k := fmt.Sprintf("%s/file-%d.txt", id, i)
		sums[k] = w.writeFile(k, randomBytes(1000+i))
		keys = append(keys, k)
	}
	list := w.dir + "/keys.txt"
	must(t, os.WriteFile(list, []byte(strings.Join(keys, "\n")+"\n"), 0o644))
	w.startWorker()
	if out, code := w.starter("batch", list, "--wait", "--json", "--id", id); code != 0 {
		t.Fatalf("batch: exit %d %s", code, out)
	}
	deadline := time.Now().Add(time.Minute)
	for len(sink.received()) < n && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // a duplicate or an extra event would arrive by now
	got := sink.received()
	if len(got) != n || sink.bad != 0 {
		t.Fatalf("sink received %d events (%d badly signed), want %d: %+v", len(got), sink.bad, n, got)
	}
	for _, e := range got {
		if e.Type != wire.EventReplicated || sums[e.Subject] == "" || e.Data.SHA256 != sums[e.Subject] || len(e.Data.Destinations) != 3 {
			t.Errorf("event %+v", e)
		}
		delete(sums, e.Subject) // a second event for one key finds no sum
	}
	return w
}

// TestEventsOutOfARetriedChunk: a worker dies right after a chunk's first write (the
// key's only destination holds it), before the chunk could report; the chunk's next
// attempt, on another worker, finds every key in place. Each key must still reach the
// sink as one replicated event: the first key's write would otherwise never be told.
func TestEventsOutOfARetriedChunk(t *testing.T) {
	sink := &eventSink{secret: []byte("retried-secret")}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	w := newWorld(t, worldOptions{extra: "    events_out: [{url: \"" + srv.URL + "\", secret_env: E2E_SINK_SECRET}]\n    rules: [{match: \"**\", to: [azure]}]\n    limits: {concurrency: 1}\n"})
	w.extraEnv = append(w.extraEnv, "E2E_SINK_SECRET=retried-secret")
	sums := map[string]string{}
	var keys []string
	for i := range 4 {
		k := fmt.Sprintf("retried/file-%d.txt", i)
		sums[k] = w.writeFile(k, randomBytes(2000+i))
		keys = append(keys, k)
	}
	list := w.dir + "/keys.txt"
	must(t, os.WriteFile(list, []byte(strings.Join(keys, "\n")+"\n"), 0o644))
	crashing := w.startWorker("REPLICATOR_FAULTS=crash@azure")
	if _, code := w.starter("batch", list, "--id", "retried"); code != 0 {
		t.Fatal("starting the batch failed")
	}
	select {
	case <-crashing.done:
	case <-time.After(time.Minute):
		t.Fatal("the worker did not crash after its first write")
	}
	w.startWorker()
	var sum wire.BatchSummary
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	must(t, temporalClient(t).GetWorkflow(ctx, wire.BatchWorkflowID(w.policy, "retried"), "").Get(ctx, &sum))
	deadline := time.Now().Add(time.Minute)
	for len(sink.received()) < len(keys) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // a duplicate would arrive by now
	got := sink.received()
	if len(got) != len(keys) || sink.bad != 0 {
		t.Fatalf("sink received %d events (%d badly signed), want %d: %+v", len(got), sink.bad, len(keys), got)
	}
	for _, e := range got {
		if e.Type != wire.EventReplicated || sums[e.Subject] == "" || e.Data.SHA256 != sums[e.Subject] {
			t.Errorf("event %+v", e)
		}
		delete(sums, e.Subject)
	}
}
