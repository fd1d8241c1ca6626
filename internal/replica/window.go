package replica

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/cloudrepl/replicator/internal/store"
)

// DeleteWindow is the sliding window over which a policy's safety.max_delete bounds
// the deletes of each destination decided outside a reconcile (per-file runs,
// batches, events): a burst of missing sources can delete at most that many
// replicas per window, whichever workers decide them.
const DeleteWindow = time.Hour

// windowRecord is the state location's record of one destination's recent deletes.
type windowRecord struct {
	// Times of the deletes within the window, oldest first.
	Times []time.Time `json:"times"`
}

func windowKey(policy, destination string) string {
	return fmt.Sprintf("deletes/%s/%s.json", policy, destination)
}

// admitDelete counts one delete against the destination's window, or refuses it when
// the window is full. The record is updated under a precondition, so workers that
// delete at once each count.
func (e *Engine) admitDelete(ctx context.Context, t Target) error {
	limit := t.Policy.Safety.MaxDelete
	if limit <= 0 {
		return nil
	}
	s := e.State.Store()
	key := windowKey(t.Policy.Name, t.Name)
	for looks := 1; ; looks++ {
		var rec windowRecord
		pre := store.Precondition{IfNoneMatch: true}
		if a, err := s.Stat(ctx, key); err == nil {
			pre = store.Precondition{IfMatch: a.ETag}
			r, err := s.Open(ctx, key, 0)
			if err != nil {
				return err
			}
			b, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				return fmt.Errorf("read %s: %w", key, err)
			}
			if err := json.Unmarshal(b, &rec); err != nil {
				return fmt.Errorf("read %s: %w", key, err)
			}
		} else if !store.IsNotFound(err) {
			return err
		}
		now := e.now()
		kept := rec.Times[:0]
		for _, at := range rec.Times {
			if now.Sub(at) < DeleteWindow {
				kept = append(kept, at)
			}
		}
		rec.Times = kept
		if len(rec.Times) >= limit {
			return &Failure{Type: ErrSafety, Msg: fmt.Sprintf("%d replicas were deleted on %s in the last %s, the policy's safety.max_delete: this delete waits for the next reconcile, whose plan shows it (check the source if this is unexpected)",
				len(rec.Times), t.Name, DeleteWindow)}
		}
		rec.Times = append(rec.Times, now)
		b, _ := json.Marshal(rec)
		sum := sha256.Sum256(b)
		_, err := s.Put(ctx, key, bytes.NewReader(b), store.PutOptions{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b)), ContentType: "application/json", Precondition: pre})
		if store.IsPrecondition(err) && looks < 20 {
			continue // another worker counted a delete meanwhile
		}
		return err
	}
}
