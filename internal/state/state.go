// Package state keeps the replicator's own records in the policy's state location (a
// directory or bucket, DESIGN section 4): the hash cache, the per-destination
// manifest journal and the dead letters. Each record is a small JSON object, written
// whole through a store driver, so the state location can be any backend.
package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
)

// State is the state location of a config.
type State struct {
	s store.Store
}

// New wraps the state location's store.
func New(s store.Store) *State { return &State{s: s} }

// Store is the underlying store.
func (st *State) Store() store.Store { return st.s }

// keyID turns a user key into a fixed-length name, so records never hit key-length
// limits and never reveal the key in a path.
func keyID(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

func (st *State) putJSON(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	sum := sha256.Sum256(b)
	_, err = st.s.Put(ctx, key, bytes.NewReader(b), store.PutOptions{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b)), ContentType: "application/json"})
	return err
}

// getJSON reads a record; found is false when it does not exist.
func (st *State) getJSON(ctx context.Context, key string, v any) (found bool, err error) {
	r, err := st.s.Open(ctx, key, 0)
	if store.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return false, fmt.Errorf("read %s: %w", key, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decode %s: %w", key, err)
	}
	return true, nil
}

// HashEntry caches the SHA-256 of one source version.
type HashEntry struct {
	// Version is the source version hashed.
	Version string `json:"version"`
	// SHA256 of that version's bytes.
	SHA256 string `json:"sha256"`
	// Fingerprint of the same bytes (store.Fingerprint), taken in the same pass;
	// absent in records written before it existed.
	Fingerprint string `json:"fingerprint,omitempty"`
}

func hashKey(policy, key string) string {
	id := keyID(key)
	return fmt.Sprintf("hashcache/%s/%s/%s.json", policy, id[:2], id)
}

// CachedHash returns the cached hashes of key at version, or nil.
func (st *State) CachedHash(ctx context.Context, policy, key, version string) (*HashEntry, error) {
	var e HashEntry
	found, err := st.getJSON(ctx, hashKey(policy, key), &e)
	if err != nil || !found || e.Version != version {
		return nil, err
	}
	return &e, nil
}

// CacheHash records the hashes of key at e.Version.
func (st *State) CacheHash(ctx context.Context, policy, key string, e HashEntry) error {
	return st.putJSON(ctx, hashKey(policy, key), e)
}

// ManifestEntry records one committed write (or delete) on a destination.
type ManifestEntry struct {
	// Key of the object.
	Key string `json:"key"`
	// SourceVersion replicated.
	SourceVersion string `json:"source_version,omitempty"`
	// SHA256 of the bytes.
	SHA256 string `json:"sha256,omitempty"`
	// ETag of the destination object after the write.
	ETag string `json:"etag,omitempty"`
	// Size in bytes.
	Size int64 `json:"size"`
	// Vector is, in a bidirectional side's records, the version vector of the
	// synced version (bisync.Vector's string form).
	Vector string `json:"vector,omitempty"`
	// Deleted marks a propagated delete.
	Deleted bool `json:"deleted,omitempty"`
	// Time of the commit.
	Time time.Time `json:"time"`
}

// AppendManifest adds entries to the destination's manifest journal as one object,
// named by time, so concurrent writers never contend and a chunk of a batch costs one
// write; the reconcile folds the journal into the sorted manifest.
func (st *State) AppendManifest(ctx context.Context, policy, destination string, entries ...ManifestEntry) error {
	if len(entries) == 0 {
		return nil
	}
	now := time.Now().UTC()
	for i := range entries {
		if entries[i].Time.IsZero() {
			entries[i].Time = now
		}
	}
	// State objects are read back whole, up to 1 MiB each (getJSON): a long list
	// goes in several objects.
	for len(entries) > 0 {
		n := min(len(entries), journalObjectEntries)
		first := entries[0]
		id := keyID(first.Key + "\x00" + first.ETag + "\x00" + strconv.Itoa(n))
		name := fmt.Sprintf("manifests/%s/%s/journal/%020d-%s.json", policy, destination, first.Time.UnixNano(), id[:16])
		if err := st.putJSON(ctx, name, entries[:n]); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// journalObjectEntries bounds the entries of one journal object: 256 entries with
// keys of S3's longest (1,024 bytes) stay under the 1 MiB a state object may hold.
const journalObjectEntries = 256

// DeadLetter is a replication of one key to one destination that failed permanently.
type DeadLetter struct {
	// Policy of the replication.
	Policy string `json:"policy"`
	// Key replicated.
	Key string `json:"key"`
	// Destination that failed.
	Destination string `json:"destination"`
	// Class of the last error (permission, transient, …).
	Class string `json:"class"`
	// Message of the last error.
	Message string `json:"message"`
	// Attempts made, across every run that failed.
	Attempts int `json:"attempts"`
	// First and Last failure times.
	First time.Time `json:"first"`
	// Last failure time.
	Last time.Time `json:"last"`
	// WorkflowID of the last failed run.
	WorkflowID string `json:"workflow_id,omitempty"`
}

func deadLetterKey(policy, destination, key string) string {
	return fmt.Sprintf("deadletters/%s/%s/%s.json", policy, destination, keyID(key))
}

// RecordDeadLetter creates or updates the record of (policy, key, destination),
// keeping the first failure time and adding up attempts.
func (st *State) RecordDeadLetter(ctx context.Context, d DeadLetter) error {
	name := deadLetterKey(d.Policy, d.Destination, d.Key)
	var old DeadLetter
	found, err := st.getJSON(ctx, name, &old)
	if err != nil {
		return err
	}
	if d.Last.IsZero() {
		d.Last = time.Now().UTC()
	}
	d.First = d.Last
	if found {
		d.First = old.First
		d.Attempts += old.Attempts
	}
	return st.putJSON(ctx, name, d)
}

// ClearDeadLetter removes the record of (policy, key, destination), if any.
func (st *State) ClearDeadLetter(ctx context.Context, policy, destination, key string) error {
	return st.s.Delete(ctx, deadLetterKey(policy, destination, key), store.DeleteOptions{})
}

// DeadLetters yields the dead letters of a policy ("" for all policies).
func (st *State) DeadLetters(ctx context.Context, policy string) iter.Seq2[DeadLetter, error] {
	prefix := "deadletters/"
	if policy != "" {
		prefix += policy + "/"
	}
	return func(yield func(DeadLetter, error) bool) {
		for obj, err := range st.s.List(ctx, store.ListOptions{Prefix: prefix}) {
			if err != nil {
				yield(DeadLetter{}, err)
				return
			}
			var d DeadLetter
			found, err := st.getJSON(ctx, obj.Key, &d)
			if err != nil {
				yield(DeadLetter{}, err)
				return
			}
			if found && !yield(d, nil) {
				return
			}
		}
	}
}

// CountDeadLetters counts a policy's dead letters per destination from a listing
// alone, without reading the records.
func (st *State) CountDeadLetters(ctx context.Context, policy string) (map[string]int, error) {
	counts := map[string]int{}
	prefix := "deadletters/" + policy + "/"
	for obj, err := range st.s.List(ctx, store.ListOptions{Prefix: prefix}) {
		if err != nil {
			return nil, err
		}
		dest, _, ok := strings.Cut(strings.TrimPrefix(obj.Key, prefix), "/")
		if ok {
			counts[dest]++
		}
	}
	return counts, nil
}

// KeyList is the reference to a stored key list that workflows carry.
type KeyList = wire.KeyList

// pageKey is where page i of a list is stored; the suffix follows the encoding, so a
// reader never mistakes one format for the other.
func pageKey(l KeyList, i int) string {
	if l.Encoding == wire.KeyListJSONL {
		return fmt.Sprintf("%s/%08d.jsonl", l.Prefix, i)
	}
	return fmt.Sprintf("%s/%08d.keys", l.Prefix, i)
}

// encodedKey is the {"b64": …} form of a key that is not valid UTF-8.
type encodedKey struct {
	B64 string `json:"b64"`
}

// appendKeyLine appends key as one line of the jsonl encoding (wire.KeyListJSONL).
func appendKeyLine(buf *bytes.Buffer, key string) error {
	var v any = key
	if !utf8.ValidString(key) {
		v = encodedKey{B64: base64.StdEncoding.EncodeToString([]byte(key))}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode key for a key list: %w", err)
	}
	buf.Write(b)
	buf.WriteByte('\n')
	return nil
}

// parseKeyLine decodes one line of the jsonl encoding.
func parseKeyLine(line []byte) (string, error) {
	if len(line) > 0 && line[0] == '{' {
		var e encodedKey
		if err := json.Unmarshal(line, &e); err != nil {
			return "", err
		}
		b, err := base64.StdEncoding.DecodeString(e.B64)
		if err != nil {
			return "", fmt.Errorf("b64: %w", err)
		}
		return string(b), nil
	}
	var k string
	if err := json.Unmarshal(line, &k); err != nil {
		return "", err
	}
	return k, nil
}

// KeyListWriter builds a key list page by page as keys are added.
type KeyListWriter struct {
	st   *State
	list KeyList
	buf  bytes.Buffer
	n    int
}

// NewKeyList starts a key list under batches/<policy>/<id>/, in the jsonl encoding
// (wire.KeyListJSONL), which holds every key exactly.
func (st *State) NewKeyList(policy, id string, pageSize int) *KeyListWriter {
	return &KeyListWriter{st: st, list: KeyList{Prefix: fmt.Sprintf("batches/%s/%s", policy, id), PageSize: pageSize, Encoding: wire.KeyListJSONL}}
}

// Add appends a key, storing a page whenever one fills.
func (w *KeyListWriter) Add(ctx context.Context, key string) error {
	if err := appendKeyLine(&w.buf, key); err != nil {
		return err
	}
	w.n++
	w.list.Count++
	if w.n == w.list.PageSize {
		return w.flush(ctx)
	}
	return nil
}

func (w *KeyListWriter) flush(ctx context.Context) error {
	sum := sha256.Sum256(w.buf.Bytes())
	name := pageKey(w.list, w.list.Pages)
	_, err := w.st.s.Put(ctx, name, bytes.NewReader(w.buf.Bytes()), store.PutOptions{SHA256: hex.EncodeToString(sum[:]), Size: int64(w.buf.Len()), ContentType: "application/jsonl"})
	w.buf.Reset()
	w.n = 0
	w.list.Pages++
	if err != nil {
		return fmt.Errorf("store key list page %s: %w", name, err)
	}
	return nil
}

// Close stores the last page and returns the list's reference.
func (w *KeyListWriter) Close(ctx context.Context) (KeyList, error) {
	if w.n > 0 {
		if err := w.flush(ctx); err != nil {
			return w.list, err
		}
	}
	return w.list, nil
}

// WriteKeyList stores keys in pages of pageSize under batches/<policy>/<id>/.
func (st *State) WriteKeyList(ctx context.Context, policy, id string, keys iter.Seq[string], pageSize int) (KeyList, error) {
	w := st.NewKeyList(policy, id, pageSize)
	for k := range keys {
		if err := w.Add(ctx, k); err != nil {
			return w.list, err
		}
	}
	return w.Close(ctx)
}

// ReadKeyPage returns the keys of page i of a list, in either encoding: lists of
// the legacy newline format stay readable, since committed workflow histories refer
// to them.
func (st *State) ReadKeyPage(ctx context.Context, l KeyList, i int) ([]string, error) {
	if l.Encoding != wire.KeyListLegacy && l.Encoding != wire.KeyListJSONL {
		return nil, fmt.Errorf("key list %s has encoding %q, which this replicator does not know: upgrade the worker and starter to the version that wrote it", l.Prefix, l.Encoding)
	}
	name := pageKey(l, i)
	r, err := st.s.Open(ctx, name, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	body := strings.TrimSuffix(string(b), "\n")
	if body == "" {
		return nil, nil
	}
	lines := strings.Split(body, "\n")
	if l.Encoding == wire.KeyListLegacy {
		return lines, nil
	}
	keys := make([]string, len(lines))
	for n, line := range lines {
		if keys[n], err = parseKeyLine([]byte(line)); err != nil {
			return nil, fmt.Errorf("key list page %s, line %d: %w (the page is corrupt: write the list again)", name, n+1, err)
		}
	}
	return keys, nil
}

// DeleteKeyList removes a list's pages.
func (st *State) DeleteKeyList(ctx context.Context, l KeyList) error {
	for i := range l.Pages {
		if err := st.s.Delete(ctx, pageKey(l, i), store.DeleteOptions{}); err != nil {
			return fmt.Errorf("delete key list page %s: %w", pageKey(l, i), err)
		}
	}
	return nil
}

// PlanKey is where a reconcile's plan lines are kept.
func PlanKey(policy, planID string) string { return fmt.Sprintf("plans/%s/%s.jsonl", policy, planID) }

// RemovePlan deletes a reconcile plan's files: its lines and its key lists.
func (st *State) RemovePlan(ctx context.Context, policy, planID string) error {
	for o, err := range st.s.List(ctx, store.ListOptions{Prefix: fmt.Sprintf("batches/%s/%s/", policy, planID)}) {
		if err != nil {
			return err
		}
		if err := st.s.Delete(ctx, o.Key, store.DeleteOptions{}); err != nil {
			return err
		}
	}
	return st.s.Delete(ctx, PlanKey(policy, planID), store.DeleteOptions{})
}
