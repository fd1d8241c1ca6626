package store

import (
	"context"
	"time"
)

// UploadAborter is an optional interface of a Store whose backend keeps unfinished
// multipart uploads apart from objects (S3): they hold storage, are billed and never
// show in a listing, so a transfer that crashed can leave them behind. Callers find
// it with a type assertion; a store without it has nothing of the kind to clean up
// (GCS resumable sessions and Azure uncommitted blocks expire on their own).
type UploadAborter interface {
	// AbortUploads aborts every unfinished multipart upload of key. A key without
	// any succeeds.
	AbortUploads(ctx context.Context, key string) error
	// AbortStaleUploads aborts every unfinished multipart upload under the store's
	// location (user keys and the replicator's own) started before cutoff, and says
	// how many it aborted. Uploads started later may belong to a running transfer
	// that resumes them, and are kept.
	AbortStaleUploads(ctx context.Context, cutoff time.Time) (int, error)
}

// KeyRules is an optional interface of a driver whose backend would store some keys
// that pass ValidateKey under another name (Azure strips trailing dots), or whose
// location takes up part of MaxKeyBytes. Checked applies it on every key before any
// request, so such a key is refused with CodeInvalid instead of being stored where
// no listing finds it again.
type KeyRules interface {
	// KeyPrefixLen is the number of bytes the driver puts before every key (its
	// prefix and the '/' after it), counted against MaxKeyBytes.
	KeyPrefixLen() int
	// CheckName returns nil when the backend stores and lists key under exactly that
	// name, else an error naming the key, the backend's rule and what to do.
	CheckName(key string) error
}

// Versioned is an optional interface of a driver whose bucket keeps earlier versions
// of its objects (S3 with versioning on). Callers find it with VersionsOf.
type Versioned interface {
	// AsOf returns a read-only view of the location as it was at t: it lists, stats
	// and opens, for each key, the latest version written at or before t, and no key
	// whose latest version by then was a delete. Its Check fails when the bucket
	// keeps no versions. Writes fail with CodeInvalid.
	AsOf(t time.Time) Store
}

// VersionsOf returns s's driver as a Versioned when it is one.
func VersionsOf(s Store) (Versioned, bool) {
	if c, ok := s.(interface{ checkedDriver() Store }); ok {
		s = c.checkedDriver()
	}
	v, ok := s.(Versioned)
	return v, ok
}
