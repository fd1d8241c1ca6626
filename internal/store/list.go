package store

import (
	"iter"
	"strings"
)

// Ordered passes a listing through, failing it with CodeInvalid at the first key that
// is not strictly after the one before, and skipping the replicator's own subtree
// unless includeInternal. Every driver's List goes through it, so a backend that
// sorts differently stops a merge instead of making it plan wrong deletes.
func Ordered(storeName string, includeInternal bool, seq iter.Seq2[Object, error]) iter.Seq2[Object, error] {
	return func(yield func(Object, error) bool) {
		prev, first := "", true
		for obj, err := range seq {
			if err != nil {
				yield(Object{}, err)
				return
			}
			if !includeInternal && IsInternal(obj.Key) {
				continue
			}
			if !first && strings.Compare(obj.Key, prev) <= 0 {
				yield(Object{}, Errorf(CodeInvalid, "list", storeName, obj.Key,
					"the backend does not list in UTF-8 byte order; report this with the backend's name and version",
					"key arrived after %q, out of byte order", prev))
				return
			}
			prev, first = obj.Key, false
			if !yield(obj, nil) {
				return
			}
		}
	}
}
