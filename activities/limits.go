package activities

import (
	"context"
	"sync"

	"golang.org/x/time/rate"

	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/wire"
)

// destLimits bound one destination's transfers in this worker: its share of the
// policy's cluster-wide limits (ApplyShare).
type destLimits struct {
	full    config.Limits
	slots   *slots
	limiter *rate.Limiter
}

// newDestLimits starts with the whole limits: a worker alone takes them all, and the
// first membership refresh shares them.
func newDestLimits(full config.Limits) *destLimits {
	l := &destLimits{full: full, slots: newSlots(max(full.Concurrency, 1)), limiter: rate.NewLimiter(rate.Inf, 0)}
	if full.Bandwidth > 0 {
		l.limiter = rate.NewLimiter(rate.Limit(full.Bandwidth), burstOf(float64(full.Bandwidth)))
	}
	return l
}

// burstOf is the limiter's burst for a rate: a second's worth, at most 4 MiB (the
// largest read a transfer makes at once).
func burstOf(bytesPerSecond float64) int {
	return int(max(min(bytesPerSecond, 4<<20), 1))
}

// share sets this worker's part when workers poll the destination's queue: the
// bandwidth divided by workers, and the concurrency too, rounded down but at least
// one transfer (so more workers than the concurrency limit each still run one).
func (l *destLimits) share(workers int) (bandwidth float64, concurrency int) {
	workers = max(workers, 1)
	concurrency = max(max(l.full.Concurrency, 1)/workers, 1)
	l.slots.resize(concurrency)
	if l.full.Bandwidth > 0 {
		bandwidth = float64(l.full.Bandwidth) / float64(workers)
		l.limiter.SetLimit(rate.Limit(bandwidth))
		l.limiter.SetBurst(burstOf(bandwidth))
	}
	return bandwidth, concurrency
}

// withSlot runs fn within one of the destination's transfer slots on this worker,
// shared with every other activity; it returns false when ctx ended first.
func (l *destLimits) withSlot(ctx context.Context, fn func()) bool {
	if !l.slots.acquire(ctx) {
		return false
	}
	defer l.slots.release()
	fn()
	return true
}

// slots is a counting semaphore whose capacity can change while it is held: a
// smaller capacity lets running holders finish and admits no one until they are
// under it.
type slots struct {
	mu       sync.Mutex
	capacity int
	used     int
	changed  chan struct{}
}

func newSlots(capacity int) *slots {
	return &slots{capacity: capacity, changed: make(chan struct{})}
}

func (s *slots) acquire(ctx context.Context) bool {
	for {
		s.mu.Lock()
		if s.used < s.capacity {
			s.used++
			s.mu.Unlock()
			return true
		}
		wait := s.changed
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return false
		}
	}
}

func (s *slots) release() {
	s.mu.Lock()
	s.used--
	s.wake()
	s.mu.Unlock()
}

func (s *slots) resize(capacity int) {
	s.mu.Lock()
	s.capacity = capacity
	s.wake()
	s.mu.Unlock()
}

// wake lets every waiter look again; s.mu is held.
func (s *slots) wake() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// ApplyShare divides every policy's per-destination limits between the workers that
// poll the destination's task queue (workers, by queue name, this worker included):
// the limits in replicator.yaml hold for the cluster, not for each worker. It creates
// the limits of destinations no activity has used yet, so the share is in place
// before the first transfer.
func (a *Activities) ApplyShare(workers map[string]int) {
	for i := range a.Config.Policies {
		p := &a.Config.Policies[i]
		for j := range p.Destinations {
			d := &p.Destinations[j]
			n := max(workers[d.TaskQueue(wire.DefaultTaskQueue)], 1)
			bandwidth, concurrency := a.limitsFor(p, d).share(n)
			if a.Metrics != nil {
				a.Metrics.LimitBandwidth.WithLabelValues(p.Name, d.Name).Set(bandwidth)
				a.Metrics.LimitConcurrency.WithLabelValues(p.Name, d.Name).Set(float64(concurrency))
			}
		}
	}
}
