package replica

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
)

// TrashPrefix is where deleted and overwritten objects are kept when the policy has a
// trash retention: .replicator/trash/<date>/<key>~<time of the delete>.
const TrashPrefix = store.InternalPrefix + "trash/"

// Trash keeps the object under key, as it is with this ETag, in the trash when the
// policy asks for it. Every delete or overwrite gets its own entry (the key plus the
// time of day to the nanosecond), so a key replaced twice in a day keeps both
// versions. A name too long for the destination is kept under a hash of the key.
func (e *Engine) Trash(ctx context.Context, t Target, key, etag string) error {
	if t.Policy.Safety.TrashRetention == 0 {
		return nil
	}
	now := e.now().UTC()
	day, stamp := now.Format("2006-01-02"), now.Format("150405.000000000")
	to := TrashPrefix + day + "/" + key + "~" + stamp
	_, err := t.Store.Copy(ctx, to, key, store.CopyOptions{})
	if store.CodeOf(err) == store.CodeInvalid {
		sum := sha256.Sum256([]byte(key))
		to = TrashPrefix + day + "/#" + hex.EncodeToString(sum[:16]) + "~" + stamp
		_, err = t.Store.Copy(ctx, to, key, store.CopyOptions{})
	}
	if store.IsNotFound(err) {
		return nil // gone already: nothing to keep
	}
	if err != nil {
		return fmt.Errorf("keep %s in the trash before replacing it: %w", key, err)
	}
	return nil
}

// PurgeTrash removes trash entries of days before the policy's retention.
func (e *Engine) PurgeTrash(ctx context.Context, t Target) error {
	if t.Policy.Safety.TrashRetention == 0 {
		return nil
	}
	cutoff := e.now().UTC().Add(-time.Duration(t.Policy.Safety.TrashRetention)).Format("2006-01-02")
	for o, err := range t.Store.List(ctx, store.ListOptions{Prefix: TrashPrefix, IncludeInternal: true}) {
		if err != nil {
			return err
		}
		day := o.Key[len(TrashPrefix):]
		if len(day) >= 10 && day[:10] < cutoff {
			if err := deleteIfMatch(ctx, t.Store, o.Key, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeleteRequest asks to propagate a source delete of Key to one destination.
type DeleteRequest struct {
	Key string
	// Source, when set, is looked at first: a key back at the source is kept, and a
	// source that is missing or empty (an unmounted share) deletes nothing.
	Source store.Store
	// SourceVouched: the caller checked the source as a whole already (a
	// reconcile's plan stops on an empty or unreadable source), so only the key is
	// looked at.
	SourceVouched bool
	// Windowed counts the delete against the policy's max_delete over a sliding
	// window (DeleteWindow): deletes decided outside a reconcile, whose run-wide
	// limits do not apply to them.
	Windowed bool
	// Journal collects the manifest entries; nil writes each at once.
	Journal *Journal
}

// ErrSafety is the wire error type of a delete the safety rules refused.
const ErrSafety = "Safety"

// Delete is the one guarded path every delete of a replica takes, wherever it was
// decided: the source is checked (key back, or source gone as a whole), an object
// the replicator did not write is left when the policy says so, the window's limit
// applies to deletes outside a reconcile, the object is kept in the trash, and the
// delete is conditional on the object the trash copy was made of, so a write that
// came in between is never deleted.
func (e *Engine) Delete(ctx context.Context, t Target, r DeleteRequest) (*wire.TransferResult, error) {
	if r.Source != nil {
		if _, err := r.Source.Stat(ctx, r.Key); err == nil {
			return &wire.TransferResult{Outcome: wire.OutcomeSkipped}, nil // back at the source
		} else if !store.IsNotFound(err) {
			return nil, err
		}
		if !r.SourceVouched {
			if err := sourcePresent(ctx, r.Source); err != nil {
				return nil, err
			}
		}
	}
	current, err := look(ctx, t.Store, r.Key)
	if err != nil {
		return nil, err
	}
	if current == nil {
		return &wire.TransferResult{Outcome: wire.OutcomeSkipped}, nil
	}
	if current.SHA256 == "" && t.Policy.Unmanaged == "leave" {
		return &wire.TransferResult{Outcome: wire.OutcomeLeft, ETag: current.ETag}, nil
	}
	if r.Windowed {
		if err := e.admitDelete(ctx, t); err != nil {
			return nil, err
		}
	}
	if err := e.Trash(ctx, t, r.Key, current.ETag); err != nil {
		return nil, err
	}
	err = deleteIfMatch(ctx, t.Store, r.Key, current.ETag)
	if store.IsPrecondition(err) {
		// Rewritten since it was looked at: a newer write wins over this delete.
		return &wire.TransferResult{Outcome: wire.OutcomeSuperseded}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := e.record(ctx, t, r.Journal, state.ManifestEntry{Key: r.Key, ETag: current.ETag, Deleted: true}); err != nil {
		return nil, err
	}
	return &wire.TransferResult{Outcome: wire.OutcomeDeleted, ETag: current.ETag}, nil
}

// sourcePresent refuses deletes when the source as a whole looks gone: unreadable,
// or holding no entry at all (an unmounted share is an empty directory). A source
// that merely lost one key is present.
func sourcePresent(ctx context.Context, src store.Store) error {
	if err := src.Check(ctx); err != nil {
		return &Failure{Type: ErrSafety, Msg: fmt.Sprintf("the source %s cannot be read (unmounted, missing or denied), so no replica is deleted: %v", src.Name(), err), Err: err}
	}
	for _, err := range src.List(ctx, store.ListOptions{PageSize: 1}) {
		if err != nil {
			return err
		}
		return nil
	}
	return &Failure{Type: ErrSafety, Msg: fmt.Sprintf("the source %s is empty: an unmounted or emptied source must not wipe the destinations, so no replica is deleted (a reconcile with the safety override deletes them if this is intended)", src.Name())}
}

// Cleanup removes internal objects (stages) from a destination and aborts their
// unfinished multipart uploads, some at once.
func (e *Engine) Cleanup(ctx context.Context, t Target, keys []string) error {
	for _, k := range keys {
		if !strings.HasPrefix(k, store.InternalPrefix) {
			return &Failure{Type: wire.ErrInvalid, Msg: fmt.Sprintf("refusing to clean up %q on %s: not a staging key", k, t.Name)}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cleanupConcurrency)
	for _, k := range keys {
		g.Go(func() error {
			if ab, ok := t.Store.(store.UploadAborter); ok {
				if err := ab.AbortUploads(gctx, k); err != nil {
					return err
				}
			}
			return deleteIfMatch(gctx, t.Store, k, "")
		})
	}
	return g.Wait()
}

// cleanupConcurrency is how many stages one Cleanup removes at once: an atomic batch
// cleans a page of them, and a delete costs ~14 ms on Azurite.
const cleanupConcurrency = 16

// deleteIfMatch deletes key, only if its ETag is etag when etag is set: the driver's
// conditional delete, so a write that came in between is never deleted.
func deleteIfMatch(ctx context.Context, s store.Store, key, etag string) error {
	return s.Delete(ctx, key, store.DeleteOptions{IfMatch: etag})
}
