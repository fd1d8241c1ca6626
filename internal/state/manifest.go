package state

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strings"

	"github.com/cloudrepl/replicator/internal/store"
)

func manifestKey(policy, destination string) string {
	return fmt.Sprintf("manifests/%s/%s/manifest.jsonl", policy, destination)
}

// Manifest yields the destination's compacted manifest in key order, one line at a
// time; a missing manifest is empty.
func (st *State) Manifest(ctx context.Context, policy, destination string) iter.Seq2[ManifestEntry, error] {
	return func(yield func(ManifestEntry, error) bool) {
		r, err := st.s.Open(ctx, manifestKey(policy, destination), 0)
		if store.IsNotFound(err) {
			return
		}
		if err != nil {
			yield(ManifestEntry{}, err)
			return
		}
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var e ManifestEntry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				yield(ManifestEntry{}, fmt.Errorf("manifest of %s/%s: %w", policy, destination, err))
				return
			}
			if !yield(e, nil) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			yield(ManifestEntry{}, fmt.Errorf("read manifest of %s/%s: %w", policy, destination, err))
		}
	}
}

// Journal is a snapshot of a destination's journal: the latest entry per key, sorted,
// and the journal objects it was read from (removed once folded into the manifest).
type Journal struct {
	Entries []ManifestEntry
	objects []string
}

// ReadJournal reads the destination's journal entries written so far. Entries are
// held in memory: the journal holds only what changed since the last reconcile.
func (st *State) ReadJournal(ctx context.Context, policy, destination string) (*Journal, error) {
	j := &Journal{}
	latest := map[string]ManifestEntry{}
	for obj, err := range st.s.List(ctx, store.ListOptions{Prefix: fmt.Sprintf("manifests/%s/%s/journal/", policy, destination)}) {
		if err != nil {
			return nil, err
		}
		var raw json.RawMessage
		if _, err := st.getJSON(ctx, obj.Key, &raw); err != nil {
			return nil, err
		}
		entries, err := journalEntries(raw)
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", obj.Key, err)
		}
		j.objects = append(j.objects, obj.Key)
		for _, e := range entries {
			if old, ok := latest[e.Key]; !ok || !e.Time.Before(old.Time) {
				latest[e.Key] = e
			}
		}
	}
	for _, e := range latest {
		j.Entries = append(j.Entries, e)
	}
	slices.SortFunc(j.Entries, func(a, b ManifestEntry) int { return strings.Compare(a.Key, b.Key) })
	return j, nil
}

// journalEntries decodes a journal object: an array of entries, or the single entry
// that journals written before batching hold.
func journalEntries(raw json.RawMessage) ([]ManifestEntry, error) {
	var entries []ManifestEntry
	if err := json.Unmarshal(raw, &entries); err == nil {
		return entries, nil
	}
	var e ManifestEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, err
	}
	return []ManifestEntry{e}, nil
}

// Merged yields the manifest with the journal applied: a journal entry replaces the
// manifest's record of its key, and a delete removes it.
func (j *Journal) Merged(manifest iter.Seq2[ManifestEntry, error]) iter.Seq2[ManifestEntry, error] {
	return func(yield func(ManifestEntry, error) bool) {
		i := 0
		emitJournal := func(upTo string, inclusive bool) bool {
			for i < len(j.Entries) && (j.Entries[i].Key < upTo || inclusive && j.Entries[i].Key == upTo) {
				e := j.Entries[i]
				i++
				if !e.Deleted && !yield(e, nil) {
					return false
				}
			}
			return true
		}
		for m, err := range manifest {
			if err != nil {
				yield(ManifestEntry{}, err)
				return
			}
			if !emitJournal(m.Key, false) {
				return
			}
			if i < len(j.Entries) && j.Entries[i].Key == m.Key {
				continue // replaced (or deleted) by the journal, emitted next round
			}
			if !yield(m, nil) {
				return
			}
		}
		for ; i < len(j.Entries); i++ {
			if e := j.Entries[i]; !e.Deleted && !yield(e, nil) {
				return
			}
		}
	}
}

// ManifestWriter writes a new manifest in key order through a temporary file, so that
// its SHA-256 is known before it is stored.
type ManifestWriter struct {
	st                  *State
	policy, destination string
	f                   *os.File
	w                   *bufio.Writer
	n                   int
}

// NewManifest starts a new manifest for the destination.
func (st *State) NewManifest(policy, destination string) (*ManifestWriter, error) {
	f, err := os.CreateTemp("", "replicator-manifest-*.jsonl")
	if err != nil {
		return nil, fmt.Errorf("new manifest: %w", err)
	}
	return &ManifestWriter{st: st, policy: policy, destination: destination, f: f, w: bufio.NewWriter(f)}, nil
}

// Add appends an entry; entries must come in key order.
func (m *ManifestWriter) Add(e ManifestEntry) error {
	e.Deleted = false
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	m.n++
	b = append(b, '\n')
	_, err = m.w.Write(b)
	return err
}

// Len is the number of entries added.
func (m *ManifestWriter) Len() int { return m.n }

// Commit stores the manifest and removes the journal objects folded into it.
func (m *ManifestWriter) Commit(ctx context.Context, folded *Journal) error {
	defer m.Discard()
	if err := m.w.Flush(); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if _, err := m.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	size, err := io.Copy(h, m.f)
	if err != nil {
		return err
	}
	if _, err := m.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := m.st.s.Put(ctx, manifestKey(m.policy, m.destination), m.f, store.PutOptions{
		SHA256: hex.EncodeToString(h.Sum(nil)), Size: size, ContentType: "application/x-ndjson",
	}); err != nil {
		return err
	}
	if folded != nil {
		for _, o := range folded.objects {
			if err := m.st.s.Delete(ctx, o, store.DeleteOptions{}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Discard drops an uncommitted manifest.
func (m *ManifestWriter) Discard() {
	if m.f != nil {
		m.f.Close()
		os.Remove(m.f.Name())
		m.f = nil
	}
}
