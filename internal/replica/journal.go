package replica

import (
	"context"
	"sync"

	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
)

// Journal collects the manifest entries of the writes and deletes that committed, to
// write them as one journal object per destination instead of one per key (a chunk
// of a batch). A nil *Journal writes each entry at once.
type Journal struct {
	mu      sync.Mutex
	entries map[string][]state.ManifestEntry
}

func (j *Journal) add(destination string, e state.ManifestEntry) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.entries == nil {
		j.entries = map[string][]state.ManifestEntry{}
	}
	j.entries[destination] = append(j.entries[destination], e)
}

// Flush writes the collected entries, also when ctx has ended, since the writes they
// record did happen.
func (j *Journal) Flush(ctx context.Context, st *state.State, policy string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	ctx = context.WithoutCancel(ctx)
	for dest, entries := range j.entries {
		if err := st.AppendManifest(ctx, policy, dest, entries...); err != nil {
			return err
		}
	}
	j.entries = nil
	return nil
}

// record writes a manifest entry now or into j.
func (e *Engine) record(ctx context.Context, t Target, j *Journal, entry state.ManifestEntry) error {
	if j != nil {
		j.add(t.Name, entry)
		return nil
	}
	return e.State.AppendManifest(ctx, t.Policy.Name, t.Name, entry)
}

// committed records a write that is now visible under its final key: the manifest
// gets the entry and any dead letter of the key on that destination is cleared.
func (e *Engine) committed(ctx context.Context, t Target, j *Journal, key string, sv wire.SourceVersion, obj *store.Object) error {
	entry := state.ManifestEntry{Key: key, SourceVersion: sv.Version, SHA256: sv.SHA256, ETag: obj.ETag, Size: obj.Size}
	if err := e.record(ctx, t, j, entry); err != nil {
		return err
	}
	return e.State.ClearDeadLetter(ctx, t.Policy.Name, t.Name, key)
}
