package state

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLeaseHasOneHolderUntilItExpiresOrIsReleased(t *testing.T) {
	st := newState(t)
	ctx := context.Background()
	now := time.Now()
	hold := func(holder string, at time.Time) bool {
		t.Helper()
		ok, err := st.HoldLease(ctx, "watch-p", holder, at, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !hold("a", now) {
		t.Fatal("a free lease was not taken")
	}
	if hold("b", now.Add(30*time.Second)) {
		t.Fatal("b took a lease a holds")
	}
	if !hold("a", now.Add(50*time.Second)) {
		t.Fatal("a could not renew its lease")
	}
	if hold("b", now.Add(100*time.Second)) {
		t.Fatal("b took the lease before the renewed term ended")
	}
	if !hold("b", now.Add(111*time.Second)) {
		t.Fatal("b could not take an expired lease")
	}
	if err := st.ReleaseLease(ctx, "watch-p", "a"); err != nil {
		t.Fatal(err)
	}
	if hold("a", now.Add(112*time.Second)) {
		t.Fatal("a's release of a lease it no longer held freed it")
	}
	if err := st.ReleaseLease(ctx, "watch-p", "b"); err != nil {
		t.Fatal(err)
	}
	if !hold("a", now.Add(113*time.Second)) {
		t.Fatal("a released lease was not free")
	}
}

func TestLeaseRaceHasOneWinner(t *testing.T) {
	st := newState(t)
	var won atomic.Int32
	var wg sync.WaitGroup
	now := time.Now()
	for i := range 8 {
		wg.Go(func() {
			ok, err := st.HoldLease(context.Background(), "race", string(rune('a'+i)), now, time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d holders got the lease, want 1", won.Load())
	}
}
