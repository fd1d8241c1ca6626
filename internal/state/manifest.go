package state

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"

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

// ManifestWriter writes a new manifest in key order through a temporary file, so that
// its SHA-256 is known before it is stored.
type ManifestWriter struct {
	st                  *State
	policy, destination string
	f                   *os.File
	w                   *bufio.Writer
	n                   int
	// base is the manifest this one replaces, as it was before anything was read.
	base store.Precondition
}

// ErrManifestMoved is what Commit returns when another run stored the destination's
// manifest since this one was started: that run folded the journal too, and this
// manifest is dropped so that no journal entry folded by the other is lost.
var ErrManifestMoved = errors.New("the manifest was replaced by another run since this one read it")

// NewManifest starts a new manifest for the destination. Call it before reading the
// manifest and the journal it replaces: its Commit succeeds only if no other run has
// stored the destination's manifest in between.
func (st *State) NewManifest(ctx context.Context, policy, destination string) (*ManifestWriter, error) {
	base := store.Precondition{IfNoneMatch: true}
	switch cur, err := st.s.Stat(ctx, manifestKey(policy, destination)); {
	case store.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("manifest of %s/%s: %w", policy, destination, err)
	default:
		base = store.Precondition{IfMatch: cur.ETag}
	}
	f, err := os.CreateTemp("", "replicator-manifest-*.jsonl")
	if err != nil {
		return nil, fmt.Errorf("new manifest: %w", err)
	}
	return &ManifestWriter{st: st, policy: policy, destination: destination, f: f, w: bufio.NewWriter(f), base: base}, nil
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

// Commit stores the manifest and removes the journal objects folded into it; it
// returns ErrManifestMoved, and removes nothing, when another run stored one first.
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
	_, err = m.st.s.Put(ctx, manifestKey(m.policy, m.destination), m.f, store.PutOptions{
		SHA256: hex.EncodeToString(h.Sum(nil)), Size: size, ContentType: "application/x-ndjson", Precondition: m.base,
	})
	if store.IsPrecondition(err) {
		return ErrManifestMoved
	}
	if err != nil {
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

// CompactManifest folds the destination's journal into its manifest, when the journal
// is long enough for the next plan to sort it on disk, and reports how many journal
// objects it folded. A reconcile does it when it ends, so that the next one, often
// with nothing to do, reads one sorted manifest instead of every record a first copy
// wrote; a short journal is left for the next plan, which rewrites the manifest
// anyway. Another run storing the manifest first is not an error: it folded the
// journal itself.
func (st *State) CompactManifest(ctx context.Context, policy, destination string) (int, error) {
	return st.compactManifest(ctx, policy, destination, journalRunEntries)
}

func (st *State) compactManifest(ctx context.Context, policy, destination string, minEntries int) (int, error) {
	mw, err := st.NewManifest(ctx, policy, destination)
	if err != nil {
		return 0, err
	}
	defer mw.Discard()
	j, err := st.ReadJournal(ctx, policy, destination)
	if err != nil {
		return 0, err
	}
	defer j.Close()
	if len(j.objects) == 0 || j.read < minEntries {
		return 0, nil
	}
	for e, err := range j.Merged(st.Manifest(ctx, policy, destination)) {
		if err != nil {
			return 0, err
		}
		if err := mw.Add(e); err != nil {
			return 0, err
		}
	}
	switch err := mw.Commit(ctx, j); {
	case errors.Is(err, ErrManifestMoved):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("compact manifest of %s/%s: %w", policy, destination, err)
	}
	return len(j.objects), nil
}
