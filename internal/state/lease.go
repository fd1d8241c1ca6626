package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cloudrepl/replicator/internal/store"
)

// lease is the record of who holds a named role until when.
type lease struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

func leaseKey(name string) string { return "leases/" + name + ".json" }

// HoldLease takes or renews the lease name for holder until now+ttl, and reports
// whether holder has it: a lease another holder renewed within its ttl is theirs. Every
// write is conditional on the record read (create-only, or the ETag read), so two
// holders racing for one lease never both get it.
func (st *State) HoldLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	key := leaseKey(name)
	pre := store.Precondition{IfNoneMatch: true}
	obj, err := st.s.Stat(ctx, key)
	switch {
	case store.IsNotFound(err):
	case err != nil:
		return false, fmt.Errorf("lease %s: %w", name, err)
	default:
		var cur lease
		if _, err := st.getJSON(ctx, key, &cur); err != nil {
			return false, fmt.Errorf("lease %s: %w", name, err)
		}
		if cur.Holder != holder && now.Before(cur.Expires) {
			return false, nil
		}
		pre = store.Precondition{IfMatch: obj.ETag}
	}
	b, err := json.Marshal(lease{Holder: holder, Expires: now.Add(ttl)})
	if err != nil {
		return false, err
	}
	sum := sha256.Sum256(b)
	_, err = st.s.Put(ctx, key, bytes.NewReader(b), store.PutOptions{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b)), ContentType: "application/json", Precondition: pre})
	if store.IsPrecondition(err) {
		return false, nil // another holder wrote it first
	}
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	return true, nil
}

// ReleaseLease gives the lease up if holder has it, so another holder need not wait
// for it to expire.
func (st *State) ReleaseLease(ctx context.Context, name, holder string) error {
	key := leaseKey(name)
	obj, err := st.s.Stat(ctx, key)
	if store.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	var cur lease
	if _, err := st.getJSON(ctx, key, &cur); err != nil || cur.Holder != holder {
		return err
	}
	if err := st.s.Delete(ctx, key, store.DeleteOptions{IfMatch: obj.ETag}); err != nil && !store.IsNotFound(err) && !store.IsPrecondition(err) {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}
