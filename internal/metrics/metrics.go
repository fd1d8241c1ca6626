// Package metrics defines the replicator's Prometheus metrics (DESIGN section 7a:
// prefix replicator_, labels policy and destination).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker's own metrics, beside the Temporal SDK's.
type Metrics struct {
	// Bytes counts bytes written to destinations.
	Bytes *prometheus.CounterVec
	// Objects counts replications by result: copied, skipped, superseded, failed,
	// deleted.
	Objects *prometheus.CounterVec
	// Lag observes seconds from a source version's modification to its commit.
	Lag *prometheus.HistogramVec
	// DeadLetters is the number of dead letters per policy and destination.
	DeadLetters *prometheus.GaugeVec
	// Drift is the number of objects a reconcile found to repair, by kind.
	Drift *prometheus.GaugeVec
	// LastReconcile is when a reconcile of a policy last succeeded.
	LastReconcile *prometheus.GaugeVec
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
			Name: "replicator_lag_seconds", Help: "Seconds from a source change to its commit on a destination.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 16),
		}, []string{"policy", "destination"}),
		DeadLetters: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replicator_dead_letters", Help: "Replications that failed permanently and wait for a retry.",
		}, []string{"policy", "destination"}),
		Drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replicator_drift_objects", Help: "Objects the last reconcile found out of sync, by kind.",
		}, []string{"policy", "destination", "kind"}),
		LastReconcile: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replicator_last_reconcile_success_timestamp_seconds", Help: "Time of the last successful reconcile.",
		}, []string{"policy"}),
	}
	reg.MustRegister(m.Bytes, m.Objects, m.Lag, m.DeadLetters, m.Drift, m.LastReconcile)
	return m
}
