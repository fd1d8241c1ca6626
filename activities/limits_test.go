package activities

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/config"
)

func TestShareDividesTheLimits(t *testing.T) {
	l := newDestLimits(config.Limits{Concurrency: 16, Bandwidth: 100 << 20})
	for _, c := range []struct {
		workers     int
		bandwidth   float64
		concurrency int
	}{{1, 100 << 20, 16}, {2, 50 << 20, 8}, {3, float64(100<<20) / 3, 5}, {40, float64(100<<20) / 40, 1}, {0, 100 << 20, 16}} {
		b, n := l.share(c.workers)
		if b != c.bandwidth || n != c.concurrency || float64(l.limiter.Limit()) != c.bandwidth {
			t.Errorf("%d workers: bandwidth %v (limiter %v), concurrency %d; want %v, %d", c.workers, b, l.limiter.Limit(), n, c.bandwidth, c.concurrency)
		}
	}
	unlimited := newDestLimits(config.Limits{Concurrency: 4})
	if b, n := unlimited.share(2); b != 0 || n != 2 {
		t.Errorf("no bandwidth limit: %v, %d; want 0 (unlimited) and 2", b, n)
	}
}

// A smaller capacity lets running holders finish and admits no one until they are
// under it; a larger one admits waiters at once.
func TestSlotsResize(t *testing.T) {
	s := newSlots(4)
	ctx := context.Background()
	for range 4 {
		if !s.acquire(ctx) {
			t.Fatal("acquire under capacity failed")
		}
	}
	s.resize(2)
	var admitted atomic.Int32
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if s.acquire(ctx) {
				admitted.Add(1)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if n := admitted.Load(); n != 0 {
		t.Fatalf("%d admitted while 4 hold 2 slots", n)
	}
	s.release()
	s.release()
	s.release() // 1 holder left: one more fits under 2
	time.Sleep(50 * time.Millisecond)
	if n := admitted.Load(); n != 1 {
		t.Fatalf("%d admitted with 1 holder and capacity 2; want 1", n)
	}
	s.resize(5)
	wg.Wait()
	if n := admitted.Load(); n != 3 {
		t.Fatalf("%d admitted after growing to 5; want 3", n)
	}
	cctx, cancel := context.WithCancel(ctx)
	s.resize(0)
	go cancel()
	if s.acquire(cctx) {
		t.Error("acquire at capacity 0 succeeded instead of ending with its context")
	}
}
