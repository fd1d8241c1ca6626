package replica

import (
	"context"
	"fmt"
	"sync"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
)

// DirectTarget is one destination of a direct atomic write, with the bytes' limits.
type DirectTarget struct {
	Target
	Body Body
}

// Direct writes a small source version, held in memory, to all its destinations at
// once or to none: the atomic path without stages. Each destination gets a create-only
// put (one request for a new key, as in eventual mode); one that holds the key is
// looked at and decided like a commit, its current version copied to undo first. If
// any destination fails (for good, or still after tries), every destination already
// written is rolled back (its previous version restored from the undo copy, a created
// key removed, each conditional on what this write made), so no destination keeps
// the new version. Results are in the order of targets; the error is that of the
// first failed destination, whose result says failed. A destination that neither
// failed nor kept the version after a rollback reads rolled back. An error while no
// result says failed means the write is unfinished (a rollback or the removal of an
// undo copy failed): the caller must try the key again, which finds every destination
// where this left it.
func (e *Engine) Direct(ctx context.Context, targets []DirectTarget, r WriteRequest, run string, tries int) ([]wire.KeyDestination, error) {
	out := make([]wire.KeyDestination, len(targets))
	undos := make([]*wire.UndoState, len(targets))
	errs := make([]error, len(targets))
	// Every name is checked before anything is written anywhere.
	for i, t := range targets {
		out[i].Destination = t.Name
		if err := store.CheckKey(t.Store, r.Key); err != nil {
			errs[i] = &store.Error{Code: store.CodeInvalid, Op: "put", Store: t.Name, Key: r.Key, Err: err}
		}
	}
	if failed := firstError(errs); failed >= 0 {
		return e.directFailed(out, errs, failed)
	}
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			for try := 0; try < max(tries, 1); try++ {
				var res *wire.TransferResult
				res, errs[i] = e.directOne(ctx, t, r, run)
				if errs[i] == nil {
					out[i].Outcome, out[i].Bytes, undos[i] = res.Outcome, res.Bytes, res.Undo
					return
				}
				if FailureType(errs[i]) != "" || ctx.Err() != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	failed := firstError(errs)
	if failed < 0 {
		// Everything committed: the undo copies have no use any more.
		for i, t := range targets {
			if undos[i] != nil && undos[i].Key != "" {
				if err := deleteIfMatch(ctx, t.Store, undos[i].Key, ""); err != nil {
					return out, fmt.Errorf("remove the undo copy of %s on %s: %w", r.Key, t.Name, err)
				}
			}
		}
		return out, nil
	}
	// All or nothing: undo what was written.
	for i, t := range targets {
		if errs[i] != nil || out[i].Outcome != wire.OutcomeCopied || undos[i] == nil {
			continue
		}
		o, err := e.Rollback(context.WithoutCancel(ctx), t.Target, r.Key, *undos[i])
		if err != nil {
			return out, fmt.Errorf("roll back %s on %s after %s failed: %w", r.Key, t.Name, targets[failed].Name, err)
		}
		out[i].Outcome, out[i].Bytes = o, 0
	}
	return e.directFailed(out, errs, failed)
}

// directFailed marks the failed destinations and the others rolled back (those that
// held the version before, or a later one, keep it and say so).
func (e *Engine) directFailed(out []wire.KeyDestination, errs []error, failed int) ([]wire.KeyDestination, error) {
	for i := range out {
		switch {
		case errs[i] != nil:
			out[i].Outcome, out[i].ErrorClass, out[i].Error = wire.OutcomeFailed, classOf(errs[i]), errs[i].Error()
		case out[i].Outcome == "" || out[i].Outcome == wire.OutcomeCopied:
			out[i].Outcome = wire.OutcomeRolledBack
		}
		out[i].Bytes = 0
	}
	return out, errs[failed]
}

// directOne puts the version on one destination: create-only first, then, for a key
// that exists, decided like a commit with its current version kept for undo.
func (e *Engine) directOne(ctx context.Context, t DirectTarget, r WriteRequest, run string) (*wire.TransferResult, error) {
	obj, err := e.put(ctx, t.Target, t.Body, r.Key, r.Key, r.Source, store.Precondition{IfNoneMatch: true})
	if err == nil {
		if err := e.committed(ctx, t.Target, r.Journal, r.Key, r.Source, obj); err != nil {
			return nil, err
		}
		return &wire.TransferResult{Outcome: wire.OutcomeCopied, Bytes: obj.Size, ETag: obj.ETag, Undo: &wire.UndoState{ETag: obj.ETag}}, nil
	}
	if !store.IsPrecondition(err) {
		return nil, err
	}
	undoKey := wire.UndoKey(r.Key, run)
	for looks := 1; ; looks++ {
		current, err := look(ctx, t.Store, r.Key)
		if err != nil {
			return nil, err
		}
		if v := decide(t.Policy, current, r.Source); v != write {
			return e.settled(ctx, t.Target, r, v, current)
		}
		undo := &wire.UndoState{}
		if current != nil {
			if err := e.Trash(ctx, t.Target, r.Key, current.ETag); err != nil {
				return nil, err
			}
			if err := e.keepForUndo(ctx, t.Target, r.Key, undoKey); err != nil {
				if store.IsNotFound(err) && looks < maxLooks {
					continue
				}
				return nil, err
			}
			undo.Key = undoKey
		}
		obj, err := e.put(ctx, t.Target, t.Body, r.Key, r.Key, r.Source, precondition(current))
		if err != nil && undo.Key != "" {
			_ = deleteIfMatch(context.WithoutCancel(ctx), t.Store, undo.Key, "")
		}
		if store.IsPrecondition(err) && looks < maxLooks {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := e.committed(ctx, t.Target, r.Journal, r.Key, r.Source, obj); err != nil {
			return nil, err
		}
		undo.ETag = obj.ETag
		return &wire.TransferResult{Outcome: wire.OutcomeCopied, Bytes: obj.Size, ETag: obj.ETag, Undo: undo}, nil
	}
}

func firstError(errs []error) int {
	for i, err := range errs {
		if err != nil {
			return i
		}
	}
	return -1
}

// classOf names an engine or store error's class for a result: its failure type, or
// Transient.
func classOf(err error) string {
	if typ := FailureType(err); typ != "" {
		return typ
	}
	return "Transient"
}
