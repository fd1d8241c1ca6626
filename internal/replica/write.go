package replica

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
)

// WriteRequest is one source version to write to one destination.
type WriteRequest struct {
	Key    string
	Source wire.SourceVersion
	Body   Body
	// RecordSkips records a destination that already holds the version in its
	// manifest (a reconcile adopting existing replicas).
	RecordSkips bool
	// VerifyContent reads and hashes a destination object whose metadata claims the
	// source's SHA-256 before skipping it (a reconcile with the checksum option).
	VerifyContent bool
	// Journal collects manifest entries; nil writes each at once.
	Journal *Journal
	// Seen is, for a commit, what the stage found under the final key: the first try
	// writes with that as its precondition instead of looking again.
	Seen *wire.FinalState
	// KeepAlive, for a commit, is called around the server-side copy, which reports
	// no progress (the activity heartbeats meanwhile); it returns the stop function.
	KeepAlive func() (stop func())
	// Undo, for a commit, is where the final key's previous version is copied before
	// it is replaced (wire.UndoKey), so that a rollback can restore it; "" keeps none.
	Undo string
}

// optimisticCreateMax is the largest source a write puts create-only before it looks
// at the destination: most small keys of a batch are new, and a create-only put
// settles them in one request instead of a stat and a put. Beyond it, a key that
// turns out to exist would have cost a large upload for nothing.
const optimisticCreateMax = 1 << 20

// lookFirstAfter is how many create-only puts in a row must find the key taken
// before a destination's small writes look first. A reconcile that updates changed
// files meets existing keys only; there the create-only try is a wasted request
// (a third of an update's).
const lookFirstAfter = 2

// createGuess is whether a destination's writes are meeting new keys or existing
// ones, learnt from the last writes: a first copy keeps it on create-only puts, a
// run of updates turns it to looking first, and the first key a look finds missing
// turns it back.
type createGuess struct{ taken atomic.Int32 }

func (g *createGuess) optimistic() bool { return g.taken.Load() < lookFirstAfter }

func (g *createGuess) sawNew() { g.taken.Store(0) }

func (g *createGuess) sawTaken() {
	if g.taken.Load() < lookFirstAfter {
		g.taken.Add(1)
	}
}

func (e *Engine) guess(t Target) *createGuess {
	var key string
	if t.Policy != nil {
		key = t.Policy.Name
	}
	key += "\x00" + t.Name
	if g, ok := e.guesses.Load(key); ok {
		return g.(*createGuess)
	}
	g, _ := e.guesses.LoadOrStore(key, &createGuess{})
	return g.(*createGuess)
}

// Write makes the source version visible under its key on the destination, directly
// (eventual mode): skipped when the destination holds the SHA-256, left when it holds
// a later version or an unmanaged object the policy leaves, otherwise written
// create-only or if-match on what it saw (the overwritten object kept in the trash
// first), looking again when another writer came in between. A small source is put
// create-only before any look while the destination's recent writes met new keys.
func (e *Engine) Write(ctx context.Context, t Target, r WriteRequest) (*wire.TransferResult, error) {
	g, small := e.guess(t), r.Source.Size <= optimisticCreateMax
	tried := small && !r.VerifyContent && g.optimistic()
	if tried {
		obj, err := e.put(ctx, t, r.Body, r.Key, r.Key, r.Source, store.Precondition{IfNoneMatch: true})
		switch {
		case err == nil:
			g.sawNew()
			if err := e.committed(ctx, t, r.Journal, r.Key, r.Source, obj); err != nil {
				return nil, err
			}
			return &wire.TransferResult{Outcome: wire.OutcomeCopied, Bytes: obj.Size, ETag: obj.ETag}, nil
		case store.IsNotFound(err):
			return nil, sourceMissing(r.Key, err)
		case !store.IsPrecondition(err):
			return nil, err
		}
		g.sawTaken()
	}
	for looks := 1; ; looks++ {
		current, err := e.current(ctx, t, r)
		if err != nil {
			return nil, err
		}
		if looks == 1 && small && !tried {
			if current == nil {
				g.sawNew()
			} else {
				g.sawTaken()
			}
		}
		if v := decide(t.Policy, current, r.Source); v != write {
			return e.settled(ctx, t, r, v, current)
		}
		if current != nil {
			if err := e.Trash(ctx, t, r.Key, current.ETag); err != nil {
				return nil, err
			}
		}
		obj, err := e.put(ctx, t, r.Body, r.Key, r.Key, r.Source, precondition(current))
		if store.IsPrecondition(err) && looks < maxLooks {
			continue // another writer got there first: look again and decide again
		}
		if store.IsNotFound(err) {
			return nil, sourceMissing(r.Key, err)
		}
		if err != nil {
			return nil, err
		}
		if err := e.committed(ctx, t, r.Journal, r.Key, r.Source, obj); err != nil {
			return nil, err
		}
		return &wire.TransferResult{Outcome: wire.OutcomeCopied, Bytes: obj.Size, ETag: obj.ETag}, nil
	}
}

// settled reports a verdict that writes nothing, recording a destination that already
// holds the version in its manifest when the request adopts replicas.
func (e *Engine) settled(ctx context.Context, t Target, r WriteRequest, v verdict, current *store.Attributes) (*wire.TransferResult, error) {
	if v == skip && r.RecordSkips {
		if err := e.committed(ctx, t, r.Journal, r.Key, r.Source, &current.Object); err != nil {
			return nil, err
		}
	}
	return outcomeOf(v, current), nil
}

// current is what the destination holds under the key, with a replica whose metadata
// claims the source's SHA-256 read and hashed first when the request asks for it.
func (e *Engine) current(ctx context.Context, t Target, r WriteRequest) (*store.Attributes, error) {
	current, err := look(ctx, t.Store, r.Key)
	if err != nil || current == nil || !r.VerifyContent || current.SHA256 != r.Source.SHA256 {
		return current, err
	}
	same, err := contentIs(ctx, t.Store, r.Key, r.Source.SHA256)
	if err != nil {
		return nil, err
	}
	if !same {
		current.SHA256 = "" // its metadata lies about its bytes: rewrite it
	}
	return current, nil
}

// Stage puts the source version under stagingKey on the destination (atomic mode),
// unless the final key already holds it or a later version: nothing becomes visible.
// The result's Final is what the stage saw under the final key, the precondition its
// commit writes with.
func (e *Engine) Stage(ctx context.Context, t Target, r WriteRequest, stagingKey string) (*wire.TransferResult, error) {
	// The final key's name is checked now: a name problem must never reach the
	// commit phase, where one destination refusing it would break all-or-nothing.
	if err := store.CheckKey(t.Store, r.Key); err != nil {
		return nil, &store.Error{Code: store.CodeInvalid, Op: "stage", Store: t.Name, Key: r.Key, Err: err}
	}
	current, err := e.current(ctx, t, r)
	if err != nil {
		return nil, err
	}
	if v := decide(t.Policy, current, r.Source); v != write {
		return e.settled(ctx, t, r, v, current)
	}
	obj, err := e.put(ctx, t, r.Body, r.Key, stagingKey, r.Source, store.Precondition{})
	if store.IsNotFound(err) {
		return nil, sourceMissing(r.Key, err)
	}
	if err != nil {
		return nil, err
	}
	final := &wire.FinalState{Exists: current != nil}
	if current != nil {
		final.ETag = current.ETag
	}
	return &wire.TransferResult{Outcome: wire.OutcomeStaged, Bytes: obj.Size, ETag: obj.ETag, Final: final}, nil
}

// Commit makes a staged version visible under its final key with a server-side copy
// decided and guarded like a direct write. A retry after a lost answer finds the final
// key holding the hash and reports it skipped. With an undo key, the version it
// replaces is copied there first, and the result says how to undo the commit. A stage
// that is gone while the final key lacks the version fails with wire.ErrStageMissing:
// no retry brings the stage back, the key must be staged again.
func (e *Engine) Commit(ctx context.Context, t Target, r WriteRequest, stagingKey string) (*wire.TransferResult, error) {
	attrs := &store.Attributes{ContentType: r.Source.ContentType, SHA256: r.Source.SHA256, SourceVersion: r.Source.Version,
		SourceSize: r.Source.Size, Metadata: r.Source.Metadata, CacheControl: r.Source.CacheControl, Tags: r.Source.Tags}
	for looks := 1; ; looks++ {
		var current *store.Attributes
		if looks == 1 && r.Seen != nil {
			// What the stage saw: a precondition failure below means another writer
			// came in between, and the next look decides again.
			if r.Seen.Exists {
				current = &store.Attributes{Object: store.Object{ETag: r.Seen.ETag}}
			}
		} else {
			var err error
			if current, err = look(ctx, t.Store, r.Key); err != nil {
				return nil, err
			}
		}
		if current != nil && (looks > 1 || r.Seen == nil) {
			if v := decide(t.Policy, current, r.Source); v == skip || v == superseded {
				return outcomeOf(v, current), nil
			}
		}
		undo := &wire.UndoState{}
		if current != nil {
			if err := e.Trash(ctx, t, r.Key, current.ETag); err != nil {
				return nil, err
			}
			if r.Undo != "" {
				if err := e.keepForUndo(ctx, t, r.Key, r.Undo); store.IsNotFound(err) && looks < maxLooks {
					continue // deleted meanwhile: look again
				} else if err != nil {
					return nil, err
				}
				undo.Key = r.Undo
			}
		}
		stop := func() {}
		if r.KeepAlive != nil {
			stop = r.KeepAlive()
		}
		obj, err := t.Store.Copy(ctx, r.Key, stagingKey, store.CopyOptions{Attributes: attrs, Precondition: precondition(current)})
		stop()
		if err != nil && undo.Key != "" {
			// Nothing was replaced: the copy kept for a rollback has no use. Best
			// effort; the sweeper removes what a failure here leaves.
			_ = deleteIfMatch(context.WithoutCancel(ctx), t.Store, undo.Key, "")
		}
		if store.IsPrecondition(err) && looks < maxLooks {
			continue
		}
		if store.IsNotFound(err) {
			return e.stageMissing(ctx, t, r, stagingKey, err)
		}
		if err != nil {
			return nil, err
		}
		if err := e.committed(ctx, t, r.Journal, r.Key, r.Source, obj); err != nil {
			return nil, err
		}
		res := &wire.TransferResult{Outcome: wire.OutcomeCopied, Bytes: obj.Size, ETag: obj.ETag}
		if r.Undo != "" {
			undo.ETag = obj.ETag
			res.Undo = undo
		}
		return res, nil
	}
}

// keepForUndo copies the final key's current version to the undo key.
func (e *Engine) keepForUndo(ctx context.Context, t Target, key, undoKey string) error {
	if _, err := t.Store.Copy(ctx, undoKey, key, store.CopyOptions{}); err != nil {
		return fmt.Errorf("keep the previous version of %s for a rollback: %w", key, err)
	}
	return nil
}

// stageMissing decides a commit whose stage is gone: done if the final key holds the
// version (another run committed it), else the key must be staged again.
func (e *Engine) stageMissing(ctx context.Context, t Target, r WriteRequest, stagingKey string, cause error) (*wire.TransferResult, error) {
	current, err := look(ctx, t.Store, r.Key)
	if err != nil {
		return nil, err
	}
	if current != nil && current.SHA256 == r.Source.SHA256 {
		return &wire.TransferResult{Outcome: wire.OutcomeSkipped, ETag: current.ETag}, nil
	}
	return nil, &Failure{Type: wire.ErrStageMissing, Err: cause,
		Msg: fmt.Sprintf("the stage %s of %s on %s is gone and the final key does not hold the version: it must be staged again (the next reconcile does)", stagingKey, r.Key, t.Name)}
}

// Rollback undoes one commit on a destination: a key the commit created is deleted,
// a key it replaced gets its previous version back from the undo copy, which is then
// removed. Each step is conditional on the object the commit wrote, so a later write
// is never clobbered: the result is then superseded and the later write stays.
func (e *Engine) Rollback(ctx context.Context, t Target, key string, u wire.UndoState) (wire.Outcome, error) {
	if u.Key == "" {
		err := deleteIfMatch(ctx, t.Store, key, u.ETag)
		switch {
		case store.IsPrecondition(err):
			return wire.OutcomeSuperseded, nil
		case err != nil:
			return "", fmt.Errorf("roll back %s: delete the committed key: %w", key, err)
		}
		if err := e.record(ctx, t, nil, state.ManifestEntry{Key: key, ETag: u.ETag, Deleted: true}); err != nil {
			return "", err
		}
		return wire.OutcomeRolledBack, nil
	}
	obj, err := t.Store.Copy(ctx, key, u.Key, store.CopyOptions{Precondition: store.Precondition{IfMatch: u.ETag}})
	switch {
	case store.IsPrecondition(err):
		return wire.OutcomeSuperseded, deleteIfMatch(ctx, t.Store, u.Key, "")
	case store.IsNotFound(err):
		// Restored by an earlier attempt whose answer was lost, or the undo copy was
		// swept: the final key says which.
		current, lerr := look(ctx, t.Store, key)
		if lerr != nil {
			return "", lerr
		}
		if current != nil && current.ETag != u.ETag {
			return wire.OutcomeRolledBack, nil
		}
		return "", &Failure{Type: wire.ErrInvalid, Err: err,
			Msg: fmt.Sprintf("cannot roll back %s on %s: its undo copy %s is gone; the previous version may be in the trash", key, t.Name, u.Key)}
	case err != nil:
		return "", fmt.Errorf("roll back %s: restore the previous version: %w", key, err)
	}
	if restored, err := t.Store.Stat(ctx, key); err == nil {
		entry := state.ManifestEntry{Key: key, SourceVersion: restored.SourceVersion, SHA256: restored.SHA256, ETag: obj.ETag, Size: obj.Size}
		if err := e.record(ctx, t, nil, entry); err != nil {
			return "", err
		}
	}
	return wire.OutcomeRolledBack, deleteIfMatch(ctx, t.Store, u.Key, "")
}

// contentIs reads an object and reports whether its bytes have the given SHA-256.
func contentIs(ctx context.Context, s store.Store, key, sha string) (bool, error) {
	r, err := s.Open(ctx, key, 0)
	if err != nil {
		return false, err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return false, fmt.Errorf("verify %s: %w", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)) == sha, nil
}
