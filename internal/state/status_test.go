package state

import (
	"context"
	"testing"
	"time"
)

func TestReconcileStatusRoundTrip(t *testing.T) {
	st := newState(t)
	ctx := context.Background()
	s, err := st.ReconcileStatus(ctx, "p")
	if err != nil || !s.LastSuccess.IsZero() || s.Drift != nil {
		t.Fatalf("status of a policy never reconciled: %+v, %v", s, err)
	}
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	must(t, st.UpdateReconcileStatus(ctx, "p", func(s *ReconcileStatus) { s.Drift = map[string]map[string]int{"s3": {"copy": 4}} }))
	must(t, st.UpdateReconcileStatus(ctx, "p", func(s *ReconcileStatus) { s.LastSuccess = at }))
	s, err = st.ReconcileStatus(ctx, "p")
	if err != nil || !s.LastSuccess.Equal(at) || s.Drift["s3"]["copy"] != 4 {
		t.Fatalf("status after two updates: %+v, %v; want both kept", s, err)
	}
	if other, _ := st.ReconcileStatus(ctx, "q"); other.Drift != nil {
		t.Errorf("another policy sees p's status: %+v", other)
	}
}
