package activities

import (
	"context"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/config"
)

func TestKeyRetryFollowsThePolicy(t *testing.T) {
	policy := func(attempts int, interval, expiration time.Duration) *config.Policy {
		p := &config.Policy{}
		p.Retry.MaxAttempts, p.Retry.MaxInterval, p.Retry.Expiration = attempts, config.Duration(interval), config.Duration(expiration)
		return p
	}
	count := func(p *config.Policy) int {
		n := 0
		for r := newKeyRetry(p); r.next(context.Background()); {
			n++
		}
		return n
	}
	if n := count(policy(6, time.Millisecond, time.Hour)); n != 6 {
		t.Errorf("max_attempts 6: %d attempts", n)
	}
	if n := count(policy(1, time.Millisecond, time.Hour)); n != chunkTries {
		t.Errorf("max_attempts 1: %d attempts, want at least %d", n, chunkTries)
	}
	if n := count(policy(1000, 20*time.Millisecond, 100*time.Millisecond)); n < chunkTries || n > 10 {
		t.Errorf("expiration 100ms at intervals up to 20ms: %d attempts", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := newKeyRetry(policy(10, time.Hour, time.Hour))
	// An ended activity still makes its first attempt (which fails on the context):
	// a loop without any attempt would leave neither a result nor an error.
	if !r.next(ctx) || !r.firstTry() {
		t.Fatal("no first attempt")
	}
	if r.next(ctx) {
		t.Error("a second attempt after the activity ended")
	}
}
