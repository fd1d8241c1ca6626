package activities

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/wire"
)

// sink is an HTTP receiver of events that answers with the statuses it is given, in
// turn (then 204), and keeps what it took.
type sink struct {
	mu       sync.Mutex
	statuses []int
	bodies   [][]byte
	headers  []http.Header
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	status := http.StatusNoContent
	if len(s.statuses) > 0 {
		status, s.statuses = s.statuses[0], s.statuses[1:]
	}
	if status/100 == 2 {
		s.bodies = append(s.bodies, body)
		s.headers = append(s.headers, r.Header.Clone())
	}
	w.WriteHeader(status)
}

func sendEnv(t *testing.T, sinkURL, secretEnv string) *testsuite.TestActivityEnvironment {
	t.Helper()
	cfg, err := config.Parse(strings.NewReader(fmt.Sprintf(`state: file://%[1]s/state
policies:
  - name: p
    source: file://%[1]s/src
    destinations: [{name: one, url: "file://%[1]s/one"}]
    events_out: [{url: %q, secret_env: %q}]
`, t.TempDir(), sinkURL, secretEnv)))
	if err != nil {
		t.Fatal(err)
	}
	a := New(cfg, nil, nil, nil)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivityWithOptions(a.SendEvents, activity.RegisterOptions{Name: wire.SendEventsName})
	return env
}

var twoEvents = []wire.ObjectEvent{
	{ID: "e1", Type: wire.EventReplicated, Time: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), Data: wire.ObjectEventData{Policy: "p", Key: "invoices/1.pdf", SHA256: "abc", Outcome: "ok"}},
	{ID: "e2", Type: wire.EventFailed, Data: wire.ObjectEventData{Policy: "p", Key: "invoices/2.pdf", Destination: "one", ErrorClass: "Permission"}},
}

func TestSendEventsPostsSignedCloudEvents(t *testing.T) {
	s := &sink{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	t.Setenv("SINK_SECRET", "s3cret")
	env := sendEnv(t, srv.URL+"/hook", "SINK_SECRET")
	if _, err := env.ExecuteActivity(wire.SendEventsName, wire.SendEventsInput{Policy: "p", Events: twoEvents}); err != nil {
		t.Fatal(err)
	}
	if len(s.bodies) != 2 {
		t.Fatalf("%d events delivered, want 2", len(s.bodies))
	}
	var e struct {
		SpecVersion, ID, Source, Type, Subject string
		Data                                   wire.ObjectEventData
	}
	if err := json.Unmarshal(s.bodies[0], &e); err != nil {
		t.Fatal(err)
	}
	if e.SpecVersion != "1.0" || e.ID != "e1" || e.Type != wire.EventReplicated || e.Subject != "invoices/1.pdf" || e.Source != "/replicator/policies/p" || e.Data.SHA256 != "abc" {
		t.Errorf("event %+v", e)
	}
	if ct := s.headers[0].Get("Content-Type"); !strings.HasPrefix(ct, "application/cloudevents+json") {
		t.Errorf("content type %q", ct)
	}
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write(s.bodies[0])
	if got, want := s.headers[0].Get(SignatureHeader), "sha256="+hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Errorf("signature %q, want %q", got, want)
	}
}

func TestSendEventsRetriesASinkThatIsDownAndStopsAtARefusal(t *testing.T) {
	s := &sink{statuses: []int{http.StatusServiceUnavailable}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	env := sendEnv(t, srv.URL, "")
	_, err := env.ExecuteActivity(wire.SendEventsName, wire.SendEventsInput{Policy: "p", Events: twoEvents})
	var ae *temporal.ApplicationError
	if err == nil || errors.As(err, &ae) && ae.NonRetryable() || !strings.Contains(err.Error(), "503") {
		t.Fatalf("a sink answering 503: %v, want a retryable error naming the status", err)
	}

	s.statuses = []int{http.StatusNoContent, http.StatusForbidden}
	_, err = env.ExecuteActivity(wire.SendEventsName, wire.SendEventsInput{Policy: "p", Events: twoEvents})
	if err == nil || !errors.As(err, &ae) || !ae.NonRetryable() || !strings.Contains(err.Error(), "403") {
		t.Fatalf("a sink answering 403: %v, want a non-retryable error naming the status", err)
	}
}

func TestSendEventsWithoutItsSecretSaysWhichVariable(t *testing.T) {
	env := sendEnv(t, "http://127.0.0.1:1/", "UNSET_SINK_SECRET_E2E")
	_, err := env.ExecuteActivity(wire.SendEventsName, wire.SendEventsInput{Policy: "p", Events: twoEvents})
	if err == nil || !strings.Contains(err.Error(), "UNSET_SINK_SECRET_E2E") {
		t.Fatalf("error %v, want one naming the variable", err)
	}
}
