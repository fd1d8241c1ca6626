package state

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strings"

	"github.com/cloudrepl/replicator/internal/store"
)

// journalRunEntries bounds the journal entries a reconcile holds in memory at once
// (about 10 MiB). A journal is every key written since the last reconcile, so after a
// first copy by batch it is as long as the share: beyond this it is sorted on disk.
const journalRunEntries = 32768

// Journal is a snapshot of a destination's journal: the latest entry per key, in key
// order, and the journal objects it was read from (removed once folded into the
// manifest). A long journal is kept in sorted runs in temporary files; Close removes
// them.
type Journal struct {
	objects []string
	// mem is the whole journal, sorted, when it fits in one run.
	mem []ManifestEntry
	// runs are sorted files of at most journalRunEntries entries each, in read order.
	runs []*os.File
	// read counts the entries read, before the latest of each key was kept.
	read int
}

// ReadJournal reads the destination's journal entries written so far.
func (st *State) ReadJournal(ctx context.Context, policy, destination string) (*Journal, error) {
	return st.readJournal(ctx, policy, destination, journalRunEntries)
}

func (st *State) readJournal(ctx context.Context, policy, destination string, runEntries int) (_ *Journal, err error) {
	j := &Journal{}
	defer func() {
		if err != nil {
			j.Close()
		}
	}()
	var buf []ManifestEntry
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
		j.read += len(entries)
		buf = append(buf, entries...)
		if len(buf) >= runEntries {
			if err := j.spill(latestPerKey(buf)); err != nil {
				return nil, err
			}
			buf = buf[:0]
		}
	}
	buf = latestPerKey(buf)
	if len(j.runs) == 0 {
		j.mem = buf
		return j, nil
	}
	if len(buf) > 0 {
		if err := j.spill(buf); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// latestPerKey sorts entries by key and keeps the latest of each key; of two with
// the same time, the one read later wins.
func latestPerKey(entries []ManifestEntry) []ManifestEntry {
	slices.SortStableFunc(entries, func(a, b ManifestEntry) int { return strings.Compare(a.Key, b.Key) })
	out := entries[:0]
	for _, e := range entries {
		if n := len(out); n > 0 && out[n-1].Key == e.Key {
			if !e.Time.Before(out[n-1].Time) {
				out[n-1] = e
			}
			continue
		}
		out = append(out, e)
	}
	return slices.Clip(out)
}

// spill writes a sorted run to a temporary file, unlinked at once so that nothing is
// left behind if the worker dies.
func (j *Journal) spill(run []ManifestEntry) error {
	f, err := os.CreateTemp("", "replicator-journal-*.jsonl")
	if err != nil {
		return fmt.Errorf("journal run: %w", err)
	}
	os.Remove(f.Name())
	j.runs = append(j.runs, f)
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, e := range run {
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("write journal run: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write journal run: %w", err)
	}
	return nil
}

// Close removes the journal's temporary files.
func (j *Journal) Close() error {
	var errs error
	for _, f := range j.runs {
		errs = errors.Join(errs, f.Close())
	}
	j.runs = nil
	return errs
}

// Latest yields the latest entry of every key in key order, deletes included. One
// iteration at a time: the runs share their files.
func (j *Journal) Latest() iter.Seq2[ManifestEntry, error] {
	if len(j.runs) == 0 {
		return func(yield func(ManifestEntry, error) bool) {
			for _, e := range j.mem {
				if !yield(e, nil) {
					return
				}
			}
		}
	}
	return func(yield func(ManifestEntry, error) bool) {
		type head struct {
			dec *json.Decoder
			e   ManifestEntry
			ok  bool
		}
		heads := make([]*head, len(j.runs))
		advance := func(h *head) error {
			h.e = ManifestEntry{}
			err := h.dec.Decode(&h.e)
			h.ok = err == nil
			if err == io.EOF {
				return nil
			}
			return err
		}
		for i, f := range j.runs {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				yield(ManifestEntry{}, fmt.Errorf("read journal run: %w", err))
				return
			}
			heads[i] = &head{dec: json.NewDecoder(bufio.NewReaderSize(f, 64<<10))}
			if err := advance(heads[i]); err != nil {
				yield(ManifestEntry{}, fmt.Errorf("read journal run: %w", err))
				return
			}
		}
		// A handful of runs even at a million keys: a linear scan for the smallest key
		// is as fast as a heap and simpler.
		for {
			var key string
			found := false
			for _, h := range heads {
				if h.ok && (!found || h.e.Key < key) {
					key, found = h.e.Key, true
				}
			}
			if !found {
				return
			}
			var latest ManifestEntry
			first := true
			for _, h := range heads { // runs in read order: a later run wins a tie
				if !h.ok || h.e.Key != key {
					continue
				}
				if first || !h.e.Time.Before(latest.Time) {
					latest, first = h.e, false
				}
				if err := advance(h); err != nil {
					yield(ManifestEntry{}, fmt.Errorf("read journal run: %w", err))
					return
				}
			}
			if !yield(latest, nil) {
				return
			}
		}
	}
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
		next, stop := iter.Pull2(j.Latest())
		defer stop()
		je, jerr, jok := next()
		// emit yields the journal's entries before key upTo.
		emit := func(upTo string) bool {
			for jok && (jerr != nil || je.Key < upTo) {
				if jerr != nil {
					yield(ManifestEntry{}, jerr)
					return false
				}
				if !je.Deleted && !yield(je, nil) {
					return false
				}
				je, jerr, jok = next()
			}
			return true
		}
		for m, err := range manifest {
			if err != nil {
				yield(ManifestEntry{}, err)
				return
			}
			if !emit(m.Key) {
				return
			}
			if jok && jerr == nil && je.Key == m.Key {
				continue // replaced (or deleted) by the journal, emitted next round
			}
			if !yield(m, nil) {
				return
			}
		}
		for jok {
			if jerr != nil {
				yield(ManifestEntry{}, jerr)
				return
			}
			if !je.Deleted && !yield(je, nil) {
				return
			}
			je, jerr, jok = next()
		}
	}
}
