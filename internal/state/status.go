package state

import (
	"context"
	"fmt"
	"time"
)

// ReconcileStatus is what the last reconciles of a policy found and when one last
// succeeded: the source of the drift and last-success gauges, kept in the state
// location so that every worker reports the same values, after a restart too,
// whichever worker ran the reconcile.
type ReconcileStatus struct {
	// LastSuccess is when a reconcile of the policy last ended with outcome ok; zero
	// when none has.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// Drift is, per destination and kind (copy, update, delete, adopt, extra, and for
	// a bidirectional policy copy-to-source, delete-on-source, both-changed), what the
	// last plan found out of sync; a successful reconcile leaves none.
	Drift map[string]map[string]int `json:"drift,omitempty"`
}

func reconcileStatusKey(policy string) string {
	return fmt.Sprintf("reconciles/%s/status.json", policy)
}

// ReconcileStatus reads a policy's reconcile status; a policy never reconciled has a
// zero status.
func (st *State) ReconcileStatus(ctx context.Context, policy string) (*ReconcileStatus, error) {
	s := &ReconcileStatus{}
	if _, err := st.getJSON(ctx, reconcileStatusKey(policy), s); err != nil {
		return nil, err
	}
	return s, nil
}

// UpdateReconcileStatus changes a policy's reconcile status with update. Reconciles of
// one policy do not overlap in practice; when two did, the last write wins, which is
// what a gauge shows anyway.
func (st *State) UpdateReconcileStatus(ctx context.Context, policy string, update func(*ReconcileStatus)) error {
	s, err := st.ReconcileStatus(ctx, policy)
	if err != nil {
		return err
	}
	update(s)
	return st.putJSON(ctx, reconcileStatusKey(policy), s)
}
