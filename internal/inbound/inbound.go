// Package inbound is the worker's endpoint for object-change notifications from the
// clouds (worker --events-addr): S3 event notifications (MinIO's webhook target, or
// AWS through EventBridge), GCS Pub/Sub push messages and Azure Event Grid blob
// events. Each request is authenticated with the shared secret, size-limited and
// parsed; each change is deduplicated by its event ID, put in order per key by what
// the cloud provides (S3 and Azure sequencers, GCS generations), matched to the
// policies whose source holds the object, and turned into a trigger of that key's
// ReplicateFile. The reconcile repairs whatever never arrives.
package inbound

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/cloudrepl/replicator/internal/config"
)

// MaxBody bounds a notification's body: larger requests are refused with 413.
const MaxBody = 1 << 20

// Trigger starts (or joins) the replication of one key of a policy.
type Trigger func(ctx context.Context, policy, key string) error

// Handler serves the notification endpoint.
type Handler struct {
	cfg     *config.File
	secret  []byte
	trigger Trigger
	log     *slog.Logger
	seen    *recent
	mu      sync.Mutex
	// last is the latest sequencer seen per policy and key: an older one is stale.
	last map[string]string
}

// New returns the endpoint's handler. secret authenticates every request: as
// "Authorization: Bearer <secret>" (or the bare secret, as MinIO sends its auth_token)
// or as the query parameter token=<secret> (GCS Pub/Sub push and Event Grid
// subscriptions carry it in the URL they are given).
func New(cfg *config.File, secret string, trigger Trigger, log *slog.Logger) *Handler {
	return &Handler{cfg: cfg, secret: []byte(secret), trigger: trigger, log: log, seen: newRecent(100000), last: map[string]string{}}
}

// change is one object change a notification reports.
type change struct {
	// id identifies the event for deduplication.
	id string
	// location is what the object is stored under: scheme, bucket (or account and
	// container) and key.
	scheme, bucket, key string
	// sequencer orders the changes of one object; "" when the cloud gives none.
	sequencer string
}

// ServeHTTP routes /events/s3, /events/gcs and /events/azure.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := strings.TrimPrefix(r.URL.Path, "/events/")
	parse, ok := map[string]func([]byte, http.Header) ([]change, []byte, error){"s3": parseS3, "gcs": parseGCS, "azure": parseAzure}[kind]
	if !ok {
		http.Error(w, "unknown path: post S3 notifications to /events/s3, GCS Pub/Sub push messages to /events/gcs, Event Grid events to /events/azure", http.StatusNotFound)
		return
	}
	if r.Method == http.MethodHead || r.Method == http.MethodGet {
		w.WriteHeader(http.StatusOK) // MinIO checks a webhook target this way before it uses it
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	if !h.authenticated(r) {
		http.Error(w, "unauthenticated: send the shared secret as Authorization: Bearer <secret> or ?token=<secret>", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("body larger than %d bytes", MaxBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	changes, reply, err := parse(body, r.Header)
	if err != nil {
		http.Error(w, fmt.Sprintf("not a %s notification: %v", kind, err), http.StatusBadRequest)
		return
	}
	if reply != nil { // Event Grid's subscription validation handshake
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(reply)
		return
	}
	for _, c := range changes {
		if err := h.apply(r.Context(), c); err != nil {
			h.log.Warn("events: could not start replication; the sender retries", "kind", kind, "key", c.key, "err", err)
			http.Error(w, "could not start replication, try again: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// authenticated compares the request's secret with the endpoint's in constant time.
func (h *Handler) authenticated(r *http.Request) bool {
	got := r.URL.Query().Get("token")
	if auth := r.Header.Get("Authorization"); auth != "" {
		got = strings.TrimPrefix(auth, "Bearer ")
	}
	return len(h.secret) > 0 && subtle.ConstantTimeCompare([]byte(got), h.secret) == 1
}

// apply triggers every policy whose source holds the changed object, unless the event
// was seen before or an event with a later sequencer was.
func (h *Handler) apply(ctx context.Context, c change) error {
	if c.id != "" && h.seen.has(c.id) {
		return nil
	}
	for _, p := range h.cfg.Policies {
		if p.Mode == config.ModeBidirectional {
			continue // synced both ways by its reconcile, never copied one way
		}
		key, ok := keyUnder(p.Source, c)
		if !ok || !p.Selected(key) {
			continue
		}
		if c.sequencer != "" && h.stale(p.Name+"\x00"+key, c.sequencer) {
			continue
		}
		if err := h.trigger(ctx, p.Name, key); err != nil {
			return err
		}
	}
	if c.id != "" {
		h.seen.add(c.id)
	}
	return nil
}

// stale reports whether a later sequencer than seq was seen for id, and records seq
// otherwise. Sequencers are hexadecimal or decimal strings of varying length: the
// shorter is padded with zeros before comparing.
func (h *Handler) stale(id, seq string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	last := h.last[id]
	n := max(len(last), len(seq))
	if strings.Repeat("0", n-len(seq))+strings.ToLower(seq) < strings.Repeat("0", n-len(last))+strings.ToLower(last) {
		return true
	}
	if len(h.last) > 100000 {
		clear(h.last) // bounded memory; ordering across such a gap is the reconcile's
	}
	h.last[id] = seq
	return false
}

// keyUnder is the policy key of the changed object when source (a policy's source
// URL) holds it.
func keyUnder(source string, c change) (string, bool) {
	u, err := url.Parse(source)
	if err != nil || u.Scheme != c.scheme {
		return "", false
	}
	bucket, prefix := u.Host, strings.Trim(u.Path, "/")
	if c.scheme == "azblob" {
		container, rest, _ := strings.Cut(prefix, "/")
		bucket, prefix = u.Host+"/"+container, rest
	}
	if bucket != c.bucket {
		return "", false
	}
	if prefix == "" {
		return c.key, c.key != ""
	}
	key, ok := strings.CutPrefix(c.key, prefix+"/")
	return key, ok && key != ""
}

// recent remembers the last n event IDs.
type recent struct {
	mu   sync.Mutex
	ids  map[string]struct{}
	ring []string
	next int
}

func newRecent(n int) *recent { return &recent{ids: map[string]struct{}{}, ring: make([]string, n)} }

func (r *recent) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.ids[id]
	return ok
}

func (r *recent) add(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.ids[id]; ok {
		return
	}
	delete(r.ids, r.ring[r.next])
	r.ring[r.next] = id
	r.ids[id] = struct{}{}
	r.next = (r.next + 1) % len(r.ring)
}

// decode unmarshals body strictly enough to tell a notification from anything else.
func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("JSON: %w", err)
	}
	return nil
}
