package replica

import (
	"context"
	"fmt"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
)

// RestoreRequest asks to copy one replica back from a destination.
type RestoreRequest struct {
	Key string
	// From is the destination holding the replica (or a view of its past).
	From store.Store
	// Overwrite replaces a target object whose content differs; without it such an
	// object is left as it is and reported.
	Overwrite bool
}

// Restore copies a replica from a destination back to the target (the policy's
// source, or another location): the disaster-recovery path. The replica's SHA-256
// (its metadata, else one read) is known first and checked again while the bytes
// stream, so a damaged replica is refused rather than restored. A target that holds
// the same bytes already is skipped; one that holds other bytes is left as it is
// (OutcomeLeft) unless the request overwrites, and then it is replaced only in the
// state it was seen in (what it held goes to the trash when the policy keeps one).
func (e *Engine) Restore(ctx context.Context, t Target, r RestoreRequest) (*wire.TransferResult, error) {
	sv, err := e.Prepare(ctx, t.Policy.Name, r.From, r.Key, nil)
	if err != nil {
		return nil, err
	}
	if !sv.Exists {
		return nil, &Failure{Type: wire.ErrSourceMissing, Msg: fmt.Sprintf("%s is gone from %s since the restore was planned", r.Key, r.From.Name())}
	}
	for looks := 1; ; looks++ {
		current, err := look(ctx, t.Store, r.Key)
		if err != nil {
			return nil, err
		}
		if current != nil {
			same := current.SHA256 == sv.SHA256
			if !same {
				if same, err = contentIs(ctx, t.Store, r.Key, sv.SHA256); err != nil {
					return nil, err
				}
			}
			if same {
				return &wire.TransferResult{Outcome: wire.OutcomeSkipped, ETag: current.ETag}, nil
			}
			if !r.Overwrite {
				return &wire.TransferResult{Outcome: wire.OutcomeLeft, ETag: current.ETag}, nil
			}
			if err := e.Trash(ctx, t, r.Key, current.ETag); err != nil {
				return nil, err
			}
		}
		obj, err := e.put(ctx, t, Body{Source: r.From}, r.Key, r.Key, sv, precondition(current))
		switch {
		case store.IsPrecondition(err) && looks < maxLooks:
			continue // written meanwhile: look again
		case store.IsNotFound(err):
			return nil, sourceMissing(r.Key, err)
		case err != nil:
			return nil, err
		}
		return &wire.TransferResult{Outcome: wire.OutcomeCopied, Bytes: obj.Size, ETag: obj.ETag}, nil
	}
}
