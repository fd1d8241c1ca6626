package replica

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
)

// SweepGrace is how old a stage or undo copy must be before a sweep removes it: far
// longer than any run that may still commit or roll back with it.
const SweepGrace = 24 * time.Hour

// Sweep removes what runs that ended badly left on a destination: stages and undo
// copies last written before cutoff (a terminated run, a stage that failed for good),
// with every unfinished multipart upload started before cutoff (of a stage that never
// completed, or of a final key whose transfer was given up). Objects and uploads newer
// than cutoff may still belong to a running commit, rollback or resumable transfer and
// are kept.
func (e *Engine) Sweep(ctx context.Context, t Target, cutoff time.Time) (wire.SweepReport, error) {
	rep := wire.SweepReport{Destination: t.Name}
	for _, prefix := range []string{wire.StagingPrefix, wire.UndoPrefix} {
		for o, err := range t.Store.List(ctx, store.ListOptions{Prefix: prefix, IncludeInternal: true}) {
			if err != nil {
				return rep, fmt.Errorf("sweep %s on %s: %w", prefix, t.Name, err)
			}
			if !o.ModTime.Before(cutoff) {
				continue
			}
			if ab, ok := t.Store.(store.UploadAborter); ok && strings.HasPrefix(o.Key, wire.StagingPrefix) {
				if err := ab.AbortUploads(ctx, o.Key); err != nil {
					return rep, fmt.Errorf("sweep %s on %s: %w", o.Key, t.Name, err)
				}
			}
			if err := deleteIfMatch(ctx, t.Store, o.Key, o.ETag); err != nil && !store.IsPrecondition(err) {
				return rep, fmt.Errorf("sweep %s on %s: %w", o.Key, t.Name, err)
			}
			if prefix == wire.StagingPrefix {
				rep.Stages++
			} else {
				rep.Undo++
			}
		}
	}
	if ab, ok := t.Store.(store.UploadAborter); ok {
		n, err := ab.AbortStaleUploads(ctx, cutoff)
		rep.Uploads += n
		if err != nil {
			return rep, fmt.Errorf("sweep unfinished uploads on %s: %w", t.Name, err)
		}
	}
	return rep, nil
}
