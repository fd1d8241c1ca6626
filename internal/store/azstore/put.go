package azstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

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
	resp, err := bb.Upload(ctx, streaming.NopCloser(bytes.NewReader(data)), &blockblob.UploadOptions{
		Metadata:                toAzureMetadata(store.EncodeMetadata(opts.SHA256, int64(len(data)), opts.SourceVersion, opts.Metadata)),
		Tier:                    s.tier,
		TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]),
		HTTPHeaders:             &blob.HTTPHeaders{BlobContentType: &ct, BlobContentMD5: sum[:]},
		AccessConditions:        conditions(opts.Precondition),
	})
	if err != nil {
		return nil, s.writeFailure(op, key, err, opts.Precondition.IfMatch != "")
	}
	if opts.Progress != nil {
		opts.Progress(int64(len(data)))
	}
	return &store.Object{Key: key, Size: int64(len(data)), ETag: etagToken(resp.ETag), ModTime: deref(resp.LastModified)}, nil
}

// putBlocks stages r as blocks and commits them after verifying the stream. An
// upload that fails or mismatches commits nothing: its blocks stay uncommitted,
// invisible, and are discarded by the service.
func (s *blobStore) putBlocks(ctx context.Context, bb *blockblob.Client, key string, r io.Reader, v *store.Verifier, opts store.PutOptions) (*store.Object, error) {
	const op = "put"
	// Fail before moving gigabytes when the precondition already does not hold;
	// the commit still carries it, for writers that race us.
	if err := s.precheck(ctx, bb, key, opts.Precondition); err != nil {
		return nil, err
	}
	up, err := newUpload(s.partSizeFor(opts.Size))
	if err != nil {
		return nil, s.fail(op, key, err)
	}
	parts, err := store.UploadParts(ctx, r, up.partSize, s.concurrency, func(ctx context.Context, number int, data []byte) error {
		return s.stageBlock(ctx, bb, up, number, data)
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
	resp, err := s.commitBlocks(ctx, bb, up, parts, &blockblob.CommitBlockListOptions{
		Metadata:         toAzureMetadata(store.EncodeMetadata(opts.SHA256, v.BytesRead(), opts.SourceVersion, opts.Metadata)),
		Tier:             s.tier,
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: &ct},
		AccessConditions: conditions(opts.Precondition),
	})
	if err != nil {
		return nil, s.writeFailure(op, key, err, opts.Precondition.IfMatch != "")
	}
	return &store.Object{Key: key, Size: v.BytesRead(), ETag: etagToken(resp.ETag), ModTime: deref(resp.LastModified)}, nil
}

// upload identifies one staged upload. Its block IDs are derived from a random ID
// and the part number, all of one length as Azure requires, so that an upload
// persisted by its ID and part size can later be resumed by listing the blob's
// uncommitted blocks (GetBlockList) and staging only the missing ones. The ID is
// random, not derived from the content: two writers of the same key must never
// replace each other's staged blocks.
type upload struct {
	id       string
	partSize int64
}

func newUpload(partSize int64) (upload, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return upload{}, fmt.Errorf("generating an upload ID: %w", err)
	}
	return upload{id: hex.EncodeToString(b[:]), partSize: partSize}, nil
}

// blockID is the base64 block ID of part number (from 1): 33 bytes, 44 characters
// without padding.
func (u upload) blockID(number int) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s-%08d", u.id, number))
}

// stageBlock uploads one block with its MD5, which the service checks.
func (s *blobStore) stageBlock(ctx context.Context, bb *blockblob.Client, up upload, number int, data []byte) error {
	if number > maxBlocks {
		return &store.Error{Code: store.CodeInvalid, Op: "put", Store: s.name,
			Hint: "raise the part size: Azure commits at most 50,000 blocks per blob",
			Err:  fmt.Errorf("object needs more than %d blocks of %d bytes", maxBlocks, up.partSize)}
	}
	sum := md5.Sum(data)
	_, err := bb.StageBlock(ctx, up.blockID(number), streaming.NopCloser(bytes.NewReader(data)), &blockblob.StageBlockOptions{
		TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]),
	})
	if err != nil {
		return fmt.Errorf("staging block %d: %w", number, err)
	}
	return nil
}

// commitBlocks commits parts 1..parts of up as the blob's content, with the
// metadata, headers and access conditions in opts.
func (s *blobStore) commitBlocks(ctx context.Context, bb *blockblob.Client, up upload, parts int, opts *blockblob.CommitBlockListOptions) (blockblob.CommitBlockListResponse, error) {
	ids := make([]string, parts)
	for i := range ids {
		ids[i] = up.blockID(i + 1)
	}
	resp, err := bb.CommitBlockList(ctx, ids, opts)
	if err != nil {
		return resp, fmt.Errorf("committing %d blocks: %w", parts, err)
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
