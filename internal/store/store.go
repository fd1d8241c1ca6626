// Package store defines the contract every storage driver (local directory, S3, GCS,
// Azure Blob) implements. Drivers live in one package per backend; the conformance
// suite in package storetest checks each of them against a real server.
//
// A Store is rooted at a location (a directory, or a bucket/container plus a prefix).
// Keys are relative to that root, '/'-separated, valid UTF-8 and the same on every
// store (see ValidateKey). The subtree ".replicator/" under the root belongs to the
// replicator itself (staging, manifests, temporary files): List skips it unless asked.
package store

import (
	"context"
	"io"
	"iter"
	"strings"
	"time"
)

// InternalPrefix is the part of every store's key space that the replicator keeps for
// itself. It is never listed as user data.
const InternalPrefix = ".replicator/"

// Names of the metadata entries that every replica carries (DESIGN section 4). Drivers
// translate them to what their backend allows (Azure metadata names cannot hold '-').
const (
	MetaSHA256        = "replicator-sha256"
	MetaSourceSize    = "replicator-source-size"
	MetaSourceVersion = "replicator-source-version"
	// MetaVector is the version vector a bidirectional sync writes with each replica
	// (package bisync). It travels in Attributes.Metadata like user metadata, and
	// like the replicator's own entries it describes the bytes it was written with.
	MetaVector = "replicator-vector"
	// MetaTags holds an object's tags (EncodeTags) on backends whose objects have
	// none of their own (GCS).
	MetaTags = "replicator-tags"
)

// Object is one entry of a listing: what every backend returns without an extra
// request per object.
type Object struct {
	// Key is relative to the store's root.
	Key string
	// Size in bytes.
	Size int64
	// ETag is the store's opaque token for this state of the object: the ETag on S3
	// and Azure, the generation on GCS, and inode, size and times for a directory.
	// It is what Precondition.IfMatch expects.
	ETag string
	// ModTime is the last modification time the store reports.
	ModTime time.Time
	// Order orders the states of one key the way the store itself guarantees: a later
	// state has a larger Order. For a directory it is the change time (ctime) in
	// nanoseconds, which no user can set back, unlike the modification time that a
	// restore from backup sets to the past; for a bucket it is the server-assigned
	// modification time. 0 when the store cannot tell (Stat fills it like List).
	Order int64
	// Rejected is "" for a normal object. Otherwise the entry exists at the source but
	// cannot be replicated, and Rejected says why (a name no store can hold, a FIFO,
	// a symlink leading outside the root, an unreadable file...). Its Key holds the
	// raw name, which may be invalid UTF-8, and its other fields may be zero.
	// Consumers report it by name and skip it: a listing never fails for one entry.
	Rejected string
	// Unreadable marks a directory that could not be read, yielded once with Key
	// "dir/" (and Rejected saying why): a subtree of unknown state, under which
	// nothing may be deleted. Keys ending in '/' are only ever directories yielded
	// this way or as Rejected (a directory whose name is not a valid key, a symlink
	// loop), whose subtrees are not listed.
	Unreadable bool
}

// Attributes is what Stat returns: the listing fields plus content type and metadata.
type Attributes struct {
	Object
	// ContentType as stored; for a directory, derived from the file's extension.
	ContentType string
	// SHA256 is the lower-case hex SHA-256 recorded by the replicator, "" when the
	// object does not carry one (it was not written by the replicator).
	SHA256 string
	// SourceVersion is the source version recorded by the replicator, if any.
	SourceVersion string
	// SourceSize is the source size recorded by the replicator, -1 if absent.
	SourceSize int64
	// Metadata holds user metadata other than the replicator's own entries.
	Metadata map[string]string
	// CacheControl is the object's Cache-Control, "" when it has none.
	CacheControl string
	// Tags are the object's tags (S3 object tags, Azure blob index tags; on GCS and
	// directories, where objects have no tags, they are kept in the replicator's
	// own metadata so that they come back), nil when it has none.
	Tags map[string]string
}

// Precondition states which destination state a write expects. The zero value means
// "write unconditionally".
type Precondition struct {
	// IfNoneMatch makes the write create-only: it fails with CodePrecondition when
	// the key exists.
	IfNoneMatch bool
	// IfMatch makes the write replace-only: it fails with CodePrecondition unless the
	// key exists with exactly this ETag (as returned by Stat, List, Put or Copy).
	IfMatch string
}

// PutOptions describe the object a Put writes.
type PutOptions struct {
	// SHA256 is the lower-case hex SHA-256 the bytes must have. Required: the driver
	// verifies it while streaming (through a Verifier: it recomputes the hash, or
	// leaves the check to a Prehashed stream) and, on a difference, fails with
	// CodeMismatch and leaves no object (and no open multipart upload) behind.
	SHA256 string
	// Size is the expected size in bytes, or -1 when unknown. A stream of another
	// length fails with CodeMismatch.
	Size int64
	// ContentType of the object; "" lets the driver derive it from the key.
	ContentType string
	// SourceVersion is recorded as metadata (MetaSourceVersion).
	SourceVersion string
	// Metadata is user metadata carried from the source.
	Metadata map[string]string
	// CacheControl and Tags are carried from the source (see Attributes).
	CacheControl string
	Tags         map[string]string
	// Precondition guards the write.
	Precondition Precondition
	// Progress, when set, is called after each part or chunk is durably stored, with
	// the number of bytes stored so far. Called from the Put's goroutines, serially.
	Progress func(bytesDone int64)
	// Resume, when it names an upload, asks the driver to continue that unfinished
	// upload (an S3 multipart upload, a GCS resumable session, Azure's uncommitted
	// blocks) if it belongs to this put: same key, same SHA-256 and same part size.
	// What the server already holds is asked of the server, and kept only where it
	// is provably the stream's own bytes: S3 parts whose MD5 ETag matches, Azure
	// blocks whose ID carries their offset and MD5, a GCS session's prefix up to
	// the size the server reports (the final request declares the whole object's
	// CRC-32C, which the server checks). The stream is still read and hashed from
	// its start; bytes already stored are skipped, not sent. An upload that turns
	// out not to match (expired, another size, other bytes) is dropped and the put
	// starts over. Setting Resume, even empty, also tells the driver that the
	// caller will retry: a failure that may pass then leaves the upload open for
	// the next attempt instead of removing it. With Resume nil a failed put leaves
	// nothing a later put could resume.
	Resume *ResumeState
	// OnResumeState, when set, is called once a resumable upload exists, and again
	// whenever what a later attempt needs in Resume changes (GCS: the offset the
	// server confirmed). Called from the Put's goroutines, serially.
	OnResumeState func(ResumeState)
}

// ResumeState identifies an unfinished upload and the object it writes. It travels
// in heartbeat details (wire.ResumeState is its field-for-field copy).
type ResumeState struct {
	// UploadID is the backend's handle of the upload: the S3 multipart upload ID,
	// the GCS resumable session URI, or the random prefix of the Azure block IDs.
	UploadID string `json:",omitempty"`
	// PartSize the upload was cut in; a resume with another part size starts over.
	PartSize int64 `json:",omitempty"`
	// Key and SHA256 name the object the upload writes: a put of another key or
	// other bytes never continues it.
	Key    string `json:",omitempty"`
	SHA256 string `json:",omitempty"`
	// Offset is the number of bytes the server had confirmed when the state was
	// recorded (GCS). It is a lower bound: the server may hold more, and is asked.
	Offset int64 `json:",omitempty"`
}

// Matches reports whether rs names an upload that a put of key with SHA-256 sha
// in parts of partSize may continue.
func (rs *ResumeState) Matches(key, sha string, partSize int64) bool {
	return rs != nil && rs.UploadID != "" && rs.PartSize == partSize && rs.Key == key &&
		rs.SHA256 != "" && strings.EqualFold(rs.SHA256, sha)
}

// CopyOptions describe a server-side copy within one store.
type CopyOptions struct {
	// Attributes, when set, replace the copy's content type, metadata (SHA256,
	// SourceVersion, SourceSize and Metadata), Cache-Control and tags. When nil the
	// source's are kept.
	Attributes *Attributes
	// Precondition guards the destination key.
	Precondition Precondition
}

// DeleteOptions guard a Delete.
type DeleteOptions struct {
	// IfMatch, when set, deletes the object only if its ETag (as returned by Stat,
	// List, Put or Copy) is exactly this; any other state fails with
	// CodePrecondition and the object stays. A missing key still succeeds: the
	// delete's goal holds, and a retried delete whose answer was lost must not fail.
	IfMatch string
}

// ListOptions select and shape a listing.
type ListOptions struct {
	// Prefix restricts the listing to keys starting with it (a key prefix, not
	// necessarily a directory).
	Prefix string
	// PageSize is the number of entries asked per request; 0 means the driver's
	// default. Listings are paginated internally whatever the size.
	PageSize int
	// IncludeInternal lists the replicator's own subtree (InternalPrefix) as well.
	IncludeInternal bool
	// SkipDir, when set, is asked about each directory ("a/b/", with its trailing
	// '/') of a store that has directories before the walk enters it; true keeps the
	// walk out of that subtree (an excluded ".snapshot/"), so it is neither read nor
	// listed. Stores without directories ignore it: callers still filter keys.
	SkipDir func(dir string) bool
}

// Store is one storage location. Implementations are safe for concurrent use.
// Every error a Store returns is an *Error with a Code (see CodeOf).
type Store interface {
	// Name is the store's name in messages (the destination's or source's name).
	Name() string

	// Check verifies that the location exists and the credentials can reach it, so
	// that configuration problems surface before any transfer.
	Check(ctx context.Context) error

	// Stat returns the object's attributes, or CodeNotFound.
	Stat(ctx context.Context, key string) (*Attributes, error)

	// Open streams the object's bytes from offset to its end, or CodeNotFound.
	Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error)

	// Put streams r to key with bounded memory (multipart, resumable chunks or blocks
	// above the driver's threshold), verifying opts.SHA256 on the way. The object
	// becomes visible whole or not at all. It returns the new object's listing entry.
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (*Object, error)

	// Copy copies srcKey to dstKey inside the store without moving bytes through
	// the caller. CodeNotFound when srcKey is missing.
	Copy(ctx context.Context, dstKey, srcKey string, opts CopyOptions) (*Object, error)

	// Delete removes key. Deleting a missing key succeeds, so that a retried delete
	// whose first answer was lost does not fail. With opts.IfMatch set it removes the
	// object only if its ETag is exactly that, else fails with CodePrecondition and
	// leaves the object as it is.
	Delete(ctx context.Context, key string, opts DeleteOptions) error

	// List yields objects whose keys start with opts.Prefix in ascending byte order of
	// their keys, fetching pages lazily. Iteration stops after the first error,
	// which is yielded with a zero Object. A listing whose keys arrive out of order
	// yields a CodeInvalid error rather than wrong results. One entry that cannot be
	// replicated does not fail a listing: it is yielded in its place in the order
	// with Object.Rejected set (or Object.Unreadable, for a directory).
	List(ctx context.Context, opts ListOptions) iter.Seq2[Object, error]

	// Close releases the store's clients.
	Close() error
}
