package azstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/cloudrepl/replicator/internal/store"
)

const mismatchHint = "the source changed while it was copied; the copy is retried from its current version"

// Put streams r to key: objects up to the threshold in one Put Blob with Content-MD5,
// larger ones as staged blocks committed once the whole stream is verified.
func (s *blobStore) Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) (*store.Object, error) {
	const op = "put"
	v := store.NewVerifier(r, opts.SHA256, opts.Size)
	src := &sourceReader{r: v}
	bb := s.client.NewBlockBlobClient(s.blobName(key))

	if opts.Size > s.threshold {
		return s.putBlocks(ctx, bb, key, src, v, opts)
	}
	// Size unknown or small: read up to threshold+1 bytes to decide. For an unknown
	// size that turns out large, the head (threshold bytes) is held until its parts
	// are copied out, on top of UploadParts' buffers.
	head, ended := v.InMemory(s.threshold)
	var err error
	if !ended {
		head, ended, err = readHead(src, s.threshold+1, opts.Size)
	}
	switch {
	case err != nil:
		return nil, s.sourceFailure(op, key, err, v, opts)
	case ended:
		return s.putSingle(ctx, bb, key, head, v, opts)
	}
	return s.putBlocks(ctx, bb, key, io.MultiReader(bytes.NewReader(head), src), v, opts)
}

// readHead reads up to limit bytes and reports whether the stream ended within them.
// It starts with a buffer fitted to sizeHint (or 1 MiB when unknown), so that small
// objects cost little, and grows it once to limit if the stream goes on.
func readHead(r io.Reader, limit, sizeHint int64) ([]byte, bool, error) {
	first := min(limit, 1<<20)
	if sizeHint >= 0 {
		first = min(limit, sizeHint+1)
	}
	buf := make([]byte, first)
	n, err := io.ReadFull(r, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return buf[:n], true, nil
	}
	if err != nil || first == limit {
		return buf, false, err
	}
	grown := make([]byte, limit)
	copy(grown, buf)
	m, err := io.ReadFull(r, grown[n:])
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return grown[:n+m], true, nil
	}
	return grown, false, err
}

func (s *blobStore) putSingle(ctx context.Context, bb *blockblob.Client, key string, data []byte, v *store.Verifier, opts store.PutOptions) (*store.Object, error) {
	const op = "put"
	if err := v.Verify(); err != nil {
		return nil, &store.Error{Code: store.CodeMismatch, Op: op, Store: s.name, Key: key, Hint: mismatchHint, Err: err}
	}
	sum := md5.Sum(data)
	ct := contentType(key, opts.ContentType)
	meta := toAzureMetadata(store.EncodeMetadata(opts.SHA256, int64(len(data)), opts.SourceVersion, opts.Metadata))
	headers := &blob.HTTPHeaders{BlobContentType: &ct, BlobContentMD5: sum[:], BlobCacheControl: optional(opts.CacheControl)}
	resp, err := bb.Upload(ctx, streaming.NopCloser(bytes.NewReader(data)), &blockblob.UploadOptions{
		Metadata:                meta,
		Tier:                    s.tierFor(key),
		TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]),
		HTTPHeaders:             headers,
		Tags:                    opts.Tags,
		AccessConditions:        conditions(opts.Precondition),
	})
	etag, modTime := resp.ETag, resp.LastModified
	if err != nil && opts.Precondition.IfNoneMatch && bloberror.HasCode(err, bloberror.BlobAlreadyExists) && s.onlyUncommitted(ctx, bb) {
		// The name holds nothing but the uncommitted blocks of an upload that
		// failed (its source changed or shrank mid-way), and the service refuses a
		// create-only Put Blob over them (Azurite does), while a block-list commit
		// evaluates the same condition on the committed blob alone, and discards
		// those blocks. Without this the key could not be written for a week.
		var cresp blockblob.CommitBlockListResponse
		if cresp, err = s.putOneBlock(ctx, bb, data, sum, &blockblob.CommitBlockListOptions{
			Metadata: meta, Tier: s.tierFor(key), HTTPHeaders: headers, Tags: opts.Tags, AccessConditions: conditions(opts.Precondition),
		}); err == nil {
			etag, modTime = cresp.ETag, cresp.LastModified
		}
	}
	if err != nil {
		return nil, s.writeFailure(op, key, err, opts.Precondition.IfMatch != "")
	}
	if opts.Progress != nil {
		opts.Progress(int64(len(data)))
	}
	return &store.Object{Key: key, Size: int64(len(data)), ETag: etagToken(etag), ModTime: deref(modTime)}, nil
}

// onlyUncommitted reports whether the blob does not exist as a committed blob (the
// state in which a create-only Put Blob can still be refused, over uncommitted
// blocks).
func (s *blobStore) onlyUncommitted(ctx context.Context, bb *blockblob.Client) bool {
	_, err := bb.GetProperties(ctx, nil)
	return bloberror.HasCode(err, bloberror.BlobNotFound)
}

// putOneBlock writes data as a blob of one block: staged, then committed under opts.
func (s *blobStore) putOneBlock(ctx context.Context, bb *blockblob.Client, data []byte, sum [md5.Size]byte, opts *blockblob.CommitBlockListOptions) (blockblob.CommitBlockListResponse, error) {
	// An ID of the same length as the driver's other uploads: Azure refuses block
	// IDs of different lengths among one blob's uncommitted blocks.
	up, err := newUpload(int64(len(data)))
	if err != nil {
		return blockblob.CommitBlockListResponse{}, err
	}
	id := up.blockID(0, sum)
	if _, err := bb.StageBlock(ctx, id, streaming.NopCloser(bytes.NewReader(data)), &blockblob.StageBlockOptions{
		TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]),
	}); err != nil {
		return blockblob.CommitBlockListResponse{}, fmt.Errorf("staging the object as one block: %w", err)
	}
	return s.commitBlocks(ctx, bb, []string{id}, opts)
}

// putBlocks stages r as blocks and commits them after verifying the stream. An
// upload that fails or mismatches commits nothing: its blocks stay uncommitted,
// invisible, and are discarded by the service (a week later, or at the blob's next
// commit). With opts.Resume naming an earlier upload of the same key, bytes and
// part size, the blocks the service lists as uncommitted under that upload's IDs
// are not staged again: each block's ID carries its offset and MD5, so a listed ID
// is proof that exactly these bytes are stored at that offset.
func (s *blobStore) putBlocks(ctx context.Context, bb *blockblob.Client, key string, r io.Reader, v *store.Verifier, opts store.PutOptions) (*store.Object, error) {
	const op = "put"
	// Fail before moving gigabytes when the precondition already does not hold;
	// the commit still carries it, for writers that race us.
	if err := s.precheck(ctx, bb, key, opts.Precondition); err != nil {
		return nil, err
	}
	partSize := s.partSizeFor(opts.Size)
	up, stored, err := s.resumeBlocks(ctx, bb, key, opts.SHA256, partSize, opts.Resume)
	if err != nil {
		return nil, s.fail(op, key, err)
	}
	if up.id == "" {
		if up, err = newUpload(partSize); err != nil {
			return nil, s.fail(op, key, err)
		}
	}
	if opts.OnResumeState != nil {
		opts.OnResumeState(store.ResumeState{UploadID: up.id, PartSize: partSize, Key: key, SHA256: opts.SHA256})
	}
	var (
		mu  sync.Mutex
		ids []string // block IDs by part number - 1
	)
	parts, err := store.UploadParts(ctx, r, up.partSize, s.concurrency, func(ctx context.Context, number int, data []byte) error {
		sum := md5.Sum(data)
		id := up.blockID(int64(number-1)*up.partSize, sum)
		mu.Lock()
		for len(ids) < number {
			ids = append(ids, "")
		}
		ids[number-1] = id
		mu.Unlock()
		if size, ok := stored[id]; ok && size == int64(len(data)) {
			return nil // staged by an earlier attempt: same offset, same MD5
		}
		return s.stageBlock(ctx, bb, up, id, number, data, sum)
	}, opts.Progress)
	if err != nil {
		var srcErr *sourceError
		if errors.As(err, &srcErr) {
			return nil, s.sourceFailure(op, key, err, v, opts)
		}
		return nil, s.fail(op, key, err)
	}
	if err := v.Verify(); err != nil {
		return nil, &store.Error{Code: store.CodeMismatch, Op: op, Store: s.name, Key: key, Hint: mismatchHint, Err: err}
	}
	ct := contentType(key, opts.ContentType)
	resp, err := s.commitBlocks(ctx, bb, ids[:parts], &blockblob.CommitBlockListOptions{
		Metadata:         toAzureMetadata(store.EncodeMetadata(opts.SHA256, v.BytesRead(), opts.SourceVersion, opts.Metadata)),
		Tier:             s.tierFor(key),
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: &ct, BlobCacheControl: optional(opts.CacheControl)},
		Tags:             opts.Tags,
		AccessConditions: conditions(opts.Precondition),
	})
	if err != nil {
		return nil, s.writeFailure(op, key, err, opts.Precondition.IfMatch != "")
	}
	return &store.Object{Key: key, Size: v.BytesRead(), ETag: etagToken(resp.ETag), ModTime: deref(resp.LastModified)}, nil
}

// tierFor is the access tier of a new blob under key. The replicator's own blobs
// (stages, undo and trash copies) take the account's default tier: a blob in the
// Archive tier cannot be read, so a stage there could never be copied to its key.
func (s *blobStore) tierFor(key string) *blob.AccessTier {
	if store.IsInternal(key) {
		return nil
	}
	return s.tier
}

// upload identifies one staged upload. Its block IDs are derived from a random
// upload ID, the block's offset and the MD5 of its bytes: all of one length, as
// Azure requires; two writers of the same key never replace each other's blocks
// (their upload IDs differ); and a block listed as uncommitted under an ID is
// known to hold exactly the bytes that ID names, which is what lets a later
// attempt skip it. The upload ID and part size are all a resume needs.
type upload struct {
	id       string
	partSize int64
}

// uploadIDLen is the length of an upload ID: 12 random bytes in hex.
const uploadIDLen = 24

func newUpload(partSize int64) (upload, error) {
	var b [uploadIDLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return upload{}, fmt.Errorf("generating an upload ID: %w", err)
	}
	return upload{id: hex.EncodeToString(b[:]), partSize: partSize}, nil
}

// blockID is the base64 block ID of the block at offset with MD5 sum: the upload
// ID, the offset (8 bytes, big-endian) and the MD5, 48 bytes in all (Azure allows
// 64 before encoding).
func (u upload) blockID(offset int64, sum [md5.Size]byte) string {
	raw := make([]byte, 0, uploadIDLen+8+md5.Size)
	raw = append(raw, u.id...)
	raw = binary.BigEndian.AppendUint64(raw, uint64(offset))
	raw = append(raw, sum[:]...)
	return base64.StdEncoding.EncodeToString(raw)
}

// resumeBlocks returns the upload rs names, when it was started for this key and
// SHA-256 with this part size, and the sizes of its blocks that the service holds
// uncommitted, by block ID. It returns a zero upload when there is nothing to
// resume: no state, another object, or no blocks left (committed or discarded
// since).
func (s *blobStore) resumeBlocks(ctx context.Context, bb *blockblob.Client, key, sha string, partSize int64, rs *store.ResumeState) (upload, map[string]int64, error) {
	if !rs.Matches(key, sha, partSize) || len(rs.UploadID) != uploadIDLen {
		return upload{}, nil, nil
	}
	resp, err := bb.GetBlockList(ctx, blockblob.BlockListTypeUncommitted, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return upload{}, nil, nil
	}
	if err != nil {
		return upload{}, nil, fmt.Errorf("listing the uncommitted blocks of upload %s: %w", rs.UploadID, err)
	}
	stored := map[string]int64{}
	for _, b := range resp.UncommittedBlocks {
		name := deref(b.Name)
		raw, err := base64.StdEncoding.DecodeString(name)
		if err != nil || !bytes.HasPrefix(raw, []byte(rs.UploadID)) {
			continue // another writer's block
		}
		stored[name] = deref(b.Size)
	}
	if len(stored) == 0 {
		return upload{}, nil, nil
	}
	return upload{id: rs.UploadID, partSize: partSize}, stored, nil
}

// stageBlock uploads one block with its MD5 sum, which the service checks.
func (s *blobStore) stageBlock(ctx context.Context, bb *blockblob.Client, up upload, id string, number int, data []byte, sum [md5.Size]byte) error {
	if number > maxBlocks {
		return &store.Error{Code: store.CodeInvalid, Op: "put", Store: s.name,
			Hint: "raise the part size: Azure commits at most 50,000 blocks per blob",
			Err:  fmt.Errorf("object needs more than %d blocks of %d bytes", maxBlocks, up.partSize)}
	}
	_, err := bb.StageBlock(ctx, id, streaming.NopCloser(bytes.NewReader(data)), &blockblob.StageBlockOptions{
		TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]),
	})
	if err != nil {
		return fmt.Errorf("staging block %d: %w", number, err)
	}
	return nil
}

// commitBlocks commits the blocks ids, in order, as the blob's content, with the
// metadata, headers and access conditions in opts.
func (s *blobStore) commitBlocks(ctx context.Context, bb *blockblob.Client, ids []string, opts *blockblob.CommitBlockListOptions) (blockblob.CommitBlockListResponse, error) {
	resp, err := bb.CommitBlockList(ctx, ids, opts)
	if err != nil {
		return resp, fmt.Errorf("committing %d blocks: %w", len(ids), err)
	}
	return resp, nil
}

// partSizeFor raises the part size when a known size would need more than the
// service's 50,000 blocks.
func (s *blobStore) partSizeFor(size int64) int64 {
	p := s.partSize
	if size > 0 && (size+p-1)/p > maxBlocks {
		const mib = 1 << 20
		need := (size + maxBlocks - 1) / maxBlocks
		p = min((need+mib-1)/mib*mib, maxBlockSize)
	}
	return p
}

// precheck fails a staged upload early when its precondition cannot hold.
func (s *blobStore) precheck(ctx context.Context, bb *blockblob.Client, key string, p store.Precondition) error {
	if !p.IfNoneMatch && p.IfMatch == "" {
		return nil
	}
	props, err := bb.GetProperties(ctx, nil)
	switch {
	case bloberror.HasCode(err, bloberror.BlobNotFound):
		if p.IfMatch != "" {
			return store.Errorf(store.CodePrecondition, "put", s.name, key, "the object is gone: re-read it and decide again",
				"expected ETag %s but the object does not exist", p.IfMatch)
		}
		return nil
	case err != nil:
		return s.fail("put", key, err)
	case p.IfNoneMatch:
		return store.Errorf(store.CodePrecondition, "put", s.name, key, "the object was created meanwhile: re-read it and decide again",
			"create-only write but the object exists with ETag %s", etagToken(props.ETag))
	case etagToken(props.ETag) != quoteETag(p.IfMatch):
		return store.Errorf(store.CodePrecondition, "put", s.name, key, "the object changed since it was read: re-read it and decide again",
			"expected ETag %s, found %s", p.IfMatch, etagToken(props.ETag))
	}
	return nil
}

// writeFailure classifies a failed write. A write conditioned on an ETag that finds no
// object failed its precondition, whether the service says 412 or 404.
func (s *blobStore) writeFailure(op, key string, err error, ifMatch bool) error {
	e := s.fail(op, key, err)
	var se *store.Error
	if ifMatch && errors.As(e, &se) && se.Code == store.CodeNotFound {
		se.Code, se.Hint = store.CodePrecondition, "the object is gone: re-read it and decide again"
	}
	return e
}

// conditions translates a precondition into Azure access conditions.
func conditions(p store.Precondition) *blob.AccessConditions {
	if !p.IfNoneMatch && p.IfMatch == "" {
		return nil
	}
	mc := &blob.ModifiedAccessConditions{}
	if p.IfNoneMatch {
		star := azcore.ETagAny
		mc.IfNoneMatch = &star
	}
	if p.IfMatch != "" {
		e := azcore.ETag(quoteETag(p.IfMatch))
		mc.IfMatch = &e
	}
	return &blob.AccessConditions{ModifiedAccessConditions: mc}
}

// sourceReader tags the errors of the stream being uploaded, so that a source that
// fails (or outgrows its declared size) is not mistaken for an Azure failure.
type sourceReader struct{ r io.Reader }

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = &sourceError{err: err}
	}
	return n, err
}

type sourceError struct{ err error }

func (e *sourceError) Error() string { return "reading the source: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// sourceFailure classifies a failure to read the stream: more bytes than declared is
// a mismatch, a source store's error keeps its class, anything else is transient.
func (s *blobStore) sourceFailure(op, key string, err error, v *store.Verifier, opts store.PutOptions) error {
	if opts.Size >= 0 && v.BytesRead() > opts.Size {
		return &store.Error{Code: store.CodeMismatch, Op: op, Store: s.name, Key: key, Hint: mismatchHint, Err: err}
	}
	var se *store.Error
	if errors.As(err, &se) {
		return &store.Error{Code: se.Code, Op: op, Store: s.name, Key: key, Hint: se.Hint, Err: err}
	}
	if code, ok := store.ContextCode(err); ok {
		return &store.Error{Code: code, Op: op, Store: s.name, Key: key, Err: err}
	}
	return &store.Error{Code: store.CodeTransient, Op: op, Store: s.name, Key: key, Hint: "the source stream failed; the copy is retried", Err: err}
}

func contentType(key, given string) string {
	if given != "" {
		return given
	}
	return store.ContentTypeOf(key)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// optional is nil for "", so that an absent header is not sent empty.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
