// Package metrics defines the replicator's Prometheus metrics (DESIGN section 7a:
// prefix replicator_, labels policy and destination).
package metrics

import (
	"io"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker's own metrics, beside the Temporal SDK's.
type Metrics struct {
	// Bytes counts bytes written to destinations.
	Bytes *prometheus.CounterVec
	// Objects counts replications by result: copied, skipped, superseded, failed,
	// deleted.
	Objects *prometheus.CounterVec
	// Lag observes, per key, seconds from a source version's modification to its commit
	// on the last of the destinations it is routed to.
	Lag *prometheus.HistogramVec
	// DeadLetters is the number of dead letters per policy and destination.
	DeadLetters *prometheus.GaugeVec
	// Drift is the number of objects a reconcile found to repair, by kind.
	Drift *prometheus.GaugeVec
	// LastReconcile is when a reconcile of a policy last succeeded.
	LastReconcile *prometheus.GaugeVec
	// Requests counts the HTTP requests the drivers send, by store, method and kind
	// (list or object), so an operator sees what a reconcile or a replication costs.
	Requests *prometheus.CounterVec
	// SentBytes counts the request body bytes the drivers send, by store: what
	// actually crossed the network, resent and resumed uploads included, unlike
	// Bytes, which counts the size of completed transfers.
	SentBytes *prometheus.CounterVec
	// Rejected is the number of source entries the last reconcile or batch of a
	// policy could not replicate, by reason (name, special-file, link, unreadable,
	// destination-name).
	Rejected *prometheus.GaugeVec
	// Conflicts counts keys of a bidirectional policy changed on both sides, by kind
	// (concurrent: settled by the policy's rule; modify-delete: the modified version
	// kept).
	Conflicts *prometheus.CounterVec
	// ClusterWorkers is the number of workers polling each task queue, as the
	// membership records in the state location say.
	ClusterWorkers *prometheus.GaugeVec
	// LimitBandwidth and LimitConcurrency are this worker's share of each
	// destination's cluster-wide limits.
	LimitBandwidth   *prometheus.GaugeVec
	LimitConcurrency *prometheus.GaugeVec
}

// New creates the metrics and registers them on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicator_bytes_total", Help: "Bytes written to destinations.",
		}, []string{"policy", "destination"}),
		Objects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicator_objects_total", Help: "Replications per destination by result (copied, skipped, superseded, deleted, failed).",
		}, []string{"policy", "destination", "result"}),
		Lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "replicator_lag_seconds", Help: "Seconds from a source change (its modification time) to its commit on the last of its routed destinations, per key.",
			Buckets: []float64{0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 14400, 86400},
		}, []string{"policy"}),
		DeadLetters: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replicator_dead_letters", Help: "Replications that failed permanently and wait for a retry.",
		}, []string{"policy", "destination"}),
		Drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replicator_drift_objects", Help: "Objects the last reconcile plan found out of sync, by kind (0 once a reconcile succeeded); read from the state location, so every worker reports the same.",
		}, []string{"policy", "destination", "kind"}),
		LastReconcile: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replicator_last_reconcile_success_timestamp_seconds", Help: "Time of the last successful reconcile (0: none yet); read from the state location, so every worker reports the same.",
		}, []string{"policy"}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicator_backend_requests_total", Help: "HTTP requests sent to storage backends, by store, method and kind (list, object).",
		}, []string{"store", "method", "kind"}),
		SentBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicator_backend_sent_bytes_total", Help: "Request body bytes sent to storage backends, by store (retries and resumed uploads as they happen).",
		}, []string{"store"}),
		Rejected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replicator_rejected_objects", Help: "Source entries that cannot be replicated (reported by name in the dead letters, class Rejected), by reason.",
		}, []string{"policy", "reason"}),
		Conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicator_conflicts_total", Help: "Keys of a bidirectional policy changed on both sides, by kind (concurrent, modify-delete).",
		}, []string{"policy", "kind"}),
	}
	m.ClusterWorkers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "replicator_cluster_workers", Help: "Workers polling each task queue, from their membership records in the state location.",
	}, []string{"task_queue"})
	m.LimitBandwidth = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "replicator_limit_bandwidth_bytes_per_second", Help: "This worker's share of a destination's bandwidth limit (0: unlimited).",
	}, []string{"policy", "destination"})
	m.LimitConcurrency = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "replicator_limit_concurrency", Help: "This worker's share of a destination's concurrent transfers.",
	}, []string{"policy", "destination"})
	reg.MustRegister(m.Bytes, m.Objects, m.Lag, m.DeadLetters, m.Drift, m.LastReconcile, m.Requests, m.SentBytes, m.Rejected, m.Conflicts,
		m.ClusterWorkers, m.LimitBandwidth, m.LimitConcurrency)
	return m
}

// CountRequests returns a transport wrapper that counts one store's requests and
// the body bytes they send.
func (m *Metrics) CountRequests(storeName string) func(http.RoundTripper) http.RoundTripper {
	sent := m.SentBytes.WithLabelValues(storeName)
	return func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			m.Requests.WithLabelValues(storeName, r.Method, RequestKind(r)).Inc()
			if r.Body != nil && r.Body != http.NoBody {
				// Counted as the transport reads it, so a request cut short counts
				// what went out. A RoundTripper must not modify its request: the
				// counting body goes on a copy. (A nil or NoBody body is left as
				// it is: a wrapped one would turn a GET into a chunked upload.)
				c := *r
				c.Body = &countingBody{ReadCloser: r.Body, add: sent.Add}
				r = &c
			}
			return next.RoundTrip(r)
		})
	}
}

// countingBody reports the bytes read from a request body.
type countingBody struct {
	io.ReadCloser
	add func(float64)
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.add(float64(n))
	}
	return n, err
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// RequestKind tells listing requests from per-object ones, for S3 (ListObjectsV2,
// ListMultipartUploads, ListObjectVersions), GCS (JSON API objects.list) and Azure
// (List Blobs).
func RequestKind(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case r.Method != http.MethodGet:
		return "object"
	case q.Has("list-type"), q.Has("uploads"), q.Has("versions"), q.Get("comp") == "list",
		strings.HasSuffix(strings.TrimSuffix(r.URL.Path, "/"), "/o"):
		return "list"
	}
	return "object"
}
