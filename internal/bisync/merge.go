package bisync

import (
	"fmt"
	"iter"
	"strings"
)

// Listed is one entry of a side's listing.
type Listed struct {
	Key  string
	Size int64
	// ETag is the side's token for this state of the object (store.Object.ETag).
	ETag string
	// Held marks an entry that exists but cannot be synced (a rejected name, a FIFO,
	// a link out of the root): nothing changes under its key on either side.
	Held bool
	// Subtree, with Held, marks a directory that could not be read ("dir/"): nothing
	// under it changes on either side.
	Subtree bool
}

// Synced is one side's last-synced record of a key: what the side held when the key
// was last in sync on both sides.
type Synced struct {
	Key    string
	SHA256 string
	ETag   string
	Size   int64
	Vector Vector
}

// Change is how a key changed on one side since it was last in sync.
type Change string

// Changes of one side.
const (
	// Unchanged: the side lists the key as last synced.
	Unchanged Change = "unchanged"
	// Created: the side lists a key it holds no record of.
	Created Change = "created"
	// Modified: the side lists the key in another state than last synced.
	Modified Change = "modified"
	// Deleted: the side had the key when last synced and no longer lists it.
	Deleted Change = "deleted"
	// Absent: the side neither lists nor remembers the key.
	Absent Change = "absent"
)

// Classify is a side's change for a key from its listing entry and its record.
func Classify(l *Listed, s *Synced) Change {
	switch {
	case l == nil && s == nil:
		return Absent
	case l == nil:
		return Deleted
	case s == nil:
		return Created
	case l.ETag == s.ETag && l.Size == s.Size:
		return Unchanged
	}
	return Modified
}

// Item is one key as both sides list and remember it.
type Item struct {
	Key              string
	A, B             *Listed
	SyncedA, SyncedB *Synced
	// Held: the key, or a directory above it, cannot be synced on one side.
	Held bool
}

// Changes classifies the key on each side.
func (it Item) Changes() (a, b Change) {
	return Classify(it.A, it.SyncedA), Classify(it.B, it.SyncedB)
}

// Base is the vector both sides had last seen: the larger of the two records'.
func (it Item) Base() Vector {
	var v Vector
	if it.SyncedA != nil {
		v = v.Max(it.SyncedA.Vector)
	}
	if it.SyncedB != nil {
		v = v.Max(it.SyncedB.Vector)
	}
	return v
}

// Merge walks four streams sorted by key in byte order (each side's listing and each
// side's last-synced records) in one pass, calling fn once per key that any of them
// holds. A stream out of order stops the merge with an error rather than a plan built
// on a wrong picture. Nothing is held in memory beyond one entry per stream.
func Merge(a, b iter.Seq2[Listed, error], syncedA, syncedB iter.Seq2[Synced, error], fn func(Item) error) error {
	la, stopA := pull(a, "side A's listing", func(l Listed) string { return l.Key })
	defer stopA()
	lb, stopB := pull(b, "side B's listing", func(l Listed) string { return l.Key })
	defer stopB()
	sa, stopSA := pull(syncedA, "side A's sync records", func(s Synced) string { return s.Key })
	defer stopSA()
	sb, stopSB := pull(syncedB, "side B's sync records", func(s Synced) string { return s.Key })
	defer stopSB()

	// held is the subtree ("dir/") of the last directory either side could not
	// read; keys under it are held.
	var held string
	for {
		for _, s := range []*stream[Listed]{la, lb} {
			if err := s.fill(); err != nil {
				return err
			}
		}
		for _, s := range []*stream[Synced]{sa, sb} {
			if err := s.fill(); err != nil {
				return err
			}
		}
		key, ok := "", false
		for _, k := range []struct {
			k  string
			ok bool
		}{{la.key(), la.ok}, {lb.key(), lb.ok}, {sa.key(), sa.ok}, {sb.key(), sb.ok}} {
			if k.ok && (!ok || k.k < key) {
				key, ok = k.k, true
			}
		}
		if !ok {
			return nil
		}
		it := Item{Key: key, A: la.take(key), B: lb.take(key), SyncedA: sa.take(key), SyncedB: sb.take(key)}
		for _, l := range []*Listed{it.A, it.B} {
			if l != nil && l.Held {
				it.Held = true
				if l.Subtree {
					held = l.Key
				}
			}
		}
		if held != "" && strings.HasPrefix(key, held) {
			it.Held = true
		}
		if err := fn(it); err != nil {
			return err
		}
	}
}

// stream is one pulled input of the merge with its next entry.
type stream[T any] struct {
	name    string
	next    func() (T, error, bool)
	keyOf   func(T) string
	head    T
	ok      bool
	pending bool
	last    string
	started bool
}

func pull[T any](seq iter.Seq2[T, error], name string, keyOf func(T) string) (*stream[T], func()) {
	next, stop := iter.Pull2(seq)
	return &stream[T]{name: name, next: next, keyOf: keyOf, pending: true}, stop
}

// fill reads the next entry once the previous was taken, checking the order.
func (s *stream[T]) fill() error {
	if !s.pending {
		return nil
	}
	s.pending = false
	v, err, ok := s.next()
	if !ok {
		s.ok = false
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	k := s.keyOf(v)
	if s.started && k <= s.last {
		return fmt.Errorf("%s is out of key order (%q after %q): nothing was planned", s.name, k, s.last)
	}
	s.head, s.ok, s.last, s.started = v, true, k, true
	return nil
}

func (s *stream[T]) key() string {
	if !s.ok {
		return ""
	}
	return s.keyOf(s.head)
}

// take returns the head if it holds key, and moves on.
func (s *stream[T]) take(key string) *T {
	if !s.ok || s.keyOf(s.head) != key {
		return nil
	}
	v := s.head
	s.ok, s.pending = false, true
	return &v
}
