// Package reconcile holds the pure logic of the reconcile (DESIGN sections 4 and 6):
// a single merge over sorted streams (the source listing, and per destination its
// manifest and its listing) that decides, key by key, what each destination needs.
// It never holds a whole listing in memory and stops at the first key out of order.
package reconcile

import (
	"errors"
	"fmt"
	"iter"
	"strings"
)

// Action is what one destination needs for one key.
type Action string

// Actions of a plan.
const (
	// Unchanged: the destination holds the source version, as its manifest says and
	// its listing confirms.
	Unchanged Action = ""
	// Copy: the destination lacks the key.
	Copy Action = "copy"
	// Update: the destination holds an older version.
	Update Action = "update"
	// Delete: the key is gone from the source (mirror mode).
	Delete Action = "delete"
	// Adopt: the destination holds the key but the replicator has no record of
	// writing it, or the record disagrees with the listing: its metadata decides
	// (adopt when the hash matches, else overwrite or leave, as configured).
	Adopt Action = "adopt"
	// Extra: the destination holds a key the source lacks, in copy mode: reported,
	// left alone.
	Extra Action = "extra"
	// Verify: the checksum option asks to compare content.
	Verify Action = "verify"
)

// SourceEntry is one source object.
type SourceEntry struct {
	Key     string
	Size    int64
	Version string
	// Held marks an entry that exists at the source but cannot be replicated (a
	// rejected entry): every destination keeps what it has under the key, and
	// nothing is copied or deleted there.
	Held bool
	// Subtree, with Held, marks a directory of unknown state (it could not be read):
	// Key ends in '/', and nothing under it is deleted or copied on any destination.
	Subtree bool
}

// ManifestEntry is the replicator's record of one destination object.
type ManifestEntry struct {
	Key           string
	SourceVersion string
	SHA256        string
	ETag          string
	Size          int64
}

// DestEntry is one destination listing entry.
type DestEntry struct {
	Key  string
	Size int64
	ETag string
}

// Destination is one destination's streams and routing.
type Destination struct {
	Name     string
	Manifest iter.Seq2[ManifestEntry, error]
	Listing  iter.Seq2[DestEntry, error]
}

// Options shape the decisions.
type Options struct {
	// Mirror propagates deletes; otherwise keys missing from the source are Extra.
	Mirror bool
	// Checksum makes every key present on both sides Verify instead of Unchanged.
	Checksum bool
	// Routed reports whether a source key goes to the destination (rules and
	// filters); keys not routed there are treated as absent from the source.
	Routed func(key, destination string) bool
}

// Decision is the plan for one key: the action per destination (index as in the
// destinations given to Diff).
type Decision struct {
	Key     string
	Source  *SourceEntry
	Actions []Action
	// Manifest holds the record to keep for each destination after this run: the
	// old one when unchanged, nil when the key must leave the manifest (deleted,
	// gone, or to be rewritten by the run's own commits).
	Manifest []*ManifestEntry
}

// Needs reports whether any destination needs an action.
func (d *Decision) Needs() bool {
	for _, a := range d.Actions {
		if a != Unchanged {
			return true
		}
	}
	return false
}

// ErrOutOfOrder is returned when a stream yields keys out of byte order.
var ErrOutOfOrder = errors.New("keys out of order")

// cursor walks one sorted stream, checking the order.
type cursor[T any] struct {
	name string
	next func() (T, error, bool)
	stop func()
	cur  T
	key  string
	ok   bool
	key0 func(T) string
}

func newCursor[T any](name string, seq iter.Seq2[T, error], key func(T) string) *cursor[T] {
	next, stop := iter.Pull2(seq)
	return &cursor[T]{name: name, next: next, stop: stop, key0: key}
}

func (c *cursor[T]) advance() error {
	v, err, ok := c.next()
	if err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	if !ok {
		c.ok = false
		return nil
	}
	k := c.key0(v)
	if c.ok && strings.Compare(k, c.key) <= 0 {
		return fmt.Errorf("%s: %w: %q after %q (the merge stops rather than plan wrong deletes)", c.name, ErrOutOfOrder, k, c.key)
	}
	c.cur, c.key, c.ok = v, k, true
	return nil
}

// Diff merges the streams and calls decide for every key that appears anywhere,
// in byte order. It returns the first stream error or decide's error.
func Diff(source iter.Seq2[SourceEntry, error], dests []Destination, opts Options, decide func(*Decision) error) error {
	src := newCursor("source listing", source, func(e SourceEntry) string { return e.Key })
	defer src.stop()
	mans := make([]*cursor[ManifestEntry], len(dests))
	lists := make([]*cursor[DestEntry], len(dests))
	for i, d := range dests {
		mans[i] = newCursor(d.Name+" manifest", d.Manifest, func(e ManifestEntry) string { return e.Key })
		lists[i] = newCursor(d.Name+" listing", d.Listing, func(e DestEntry) string { return e.Key })
		defer mans[i].stop()
		defer lists[i].stop()
	}
	if err := src.advance(); err != nil {
		return err
	}
	for i := range dests {
		if err := mans[i].advance(); err != nil {
			return err
		}
		if err := lists[i].advance(); err != nil {
			return err
		}
	}
	held := "" // the subtree of unknown state the merge is in, if any
	for {
		// The smallest key among all heads.
		key, any := "", false
		consider := func(ok bool, k string) {
			if ok && (!any || k < key) {
				key, any = k, true
			}
		}
		consider(src.ok, src.key)
		for i := range dests {
			consider(mans[i].ok, mans[i].key)
			consider(lists[i].ok, lists[i].key)
		}
		if !any {
			return nil
		}
		d := &Decision{Key: key, Actions: make([]Action, len(dests)), Manifest: make([]*ManifestEntry, len(dests))}
		if src.ok && src.key == key {
			s := src.cur
			d.Source = &s
			if err := src.advance(); err != nil {
				return err
			}
		}
		if held != "" && !strings.HasPrefix(key, held) {
			held = ""
		}
		if d.Source != nil && d.Source.Held && d.Source.Subtree {
			held = key
		}
		keep := held != "" || d.Source != nil && d.Source.Held
		for i, dest := range dests {
			var m *ManifestEntry
			var l *DestEntry
			if mans[i].ok && mans[i].key == key {
				v := mans[i].cur
				m = &v
				if err := mans[i].advance(); err != nil {
					return err
				}
			}
			if lists[i].ok && lists[i].key == key {
				v := lists[i].cur
				l = &v
				if err := lists[i].advance(); err != nil {
					return err
				}
			}
			if keep {
				d.Actions[i], d.Manifest[i] = Unchanged, m // nothing is known: nothing changes
				continue
			}
			s := d.Source
			if s != nil && opts.Routed != nil && !opts.Routed(key, dest.Name) {
				s = nil
			}
			d.Actions[i], d.Manifest[i] = decideOne(s, m, l, opts)
		}
		if err := decide(d); err != nil {
			return err
		}
	}
}

// decideOne is the rule table for one key on one destination.
func decideOne(s *SourceEntry, m *ManifestEntry, l *DestEntry, opts Options) (Action, *ManifestEntry) {
	switch {
	case s == nil && l == nil:
		return Unchanged, nil // at most a stale manifest record: dropped
	case s == nil && opts.Mirror:
		return Delete, nil
	case s == nil:
		return Extra, m
	case l == nil:
		return Copy, nil // never written, or the replica vanished: its record goes
	case m == nil || m.ETag != l.ETag || m.Size != l.Size:
		// Unknown to the manifest, or changed behind its back: the destination's
		// own metadata decides, never the record alone.
		return Adopt, nil
	case m.SourceVersion != s.Version:
		return Update, nil
	case opts.Checksum:
		return Verify, m
	}
	return Unchanged, m
}
