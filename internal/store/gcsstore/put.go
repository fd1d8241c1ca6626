package gcsstore

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"cloud.google.com/go/storage"

	"github.com/cloudrepl/replicator/internal/store"
)

// cleanupTimeout bounds the wait for an abandoned upload's goroutine to stop.
const cleanupTimeout = 30 * time.Second

var crc32cTable = crc32.MakeTable(crc32.Castagnoli)

// Put writes r to key. Up to the threshold the bytes are verified in memory and sent
// in one request carrying their CRC32C, which GCS checks. Beyond it they
// stream through one resumable upload in chunks of the part size; GCS only creates
// the object on the upload's final request, which Writer.Close sends, so the stream
// is verified before Close and a failure cancels the upload instead. With
// Tuning.SingleRequest the rest streams in one request instead, whose body only ends
// at Close: the same check holds, and a failure restarts the object from its start.
// A put whose caller will retry (opts.Resume set) goes through a session of the
// driver's own instead (resumable.go), which a later attempt can continue.
func (s *gcsStore) Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) (*store.Object, error) {
	const op = "put"
	name := s.objectName(key)
	obj, err := guarded(s.bucket.Object(name).Retryer(storage.WithErrorFunc(retryBudget())), opts.Precondition)
	if err != nil {
		return nil, s.fail(op, key, err)
	}
	v := store.NewVerifier(r, opts.SHA256, opts.Size)

	head, inMemory := v.InMemory(s.threshold)
	if !inMemory {
		if head, err = readHead(v, s.threshold+1, opts.Size); err != nil {
			return nil, s.fail(op, key, s.readError(v, opts.Size, err))
		}
	}
	var attrs *storage.ObjectAttrs
	switch {
	case int64(len(head)) <= s.threshold:
		attrs, err = s.putSmall(ctx, obj, key, head, v, opts)
	case opts.Resume != nil && !s.single:
		// The caller will retry: a session the next attempt can continue.
		attrs, err = s.putResumable(ctx, key, head, v, opts)
	default:
		attrs, err = s.putLarge(ctx, obj, key, head, v, opts)
	}
	if err != nil {
		return nil, s.fail(op, key, err)
	}
	return s.objectOf(key, attrs), nil
}

// readHead reads up to limit bytes into a buffer of exactly that size, or of the
// declared size plus one when smaller, so that small objects do not cost a
// threshold-sized buffer. The declared size plus one is enough: the Verifier fails a
// stream longer than declared.
func readHead(r io.Reader, limit, size int64) ([]byte, error) {
	if size >= 0 && size+1 < limit {
		limit = size + 1
	}
	buf := make([]byte, limit)
	n, err := io.ReadFull(r, buf)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil
	}
	return buf[:n], err
}

// readError classifies a failure to read the source: a stream longer than declared
// is a mismatch, anything else the source's own failure.
func (s *gcsStore) readError(v *store.Verifier, size int64, err error) error {
	if size >= 0 && v.BytesRead() > size {
		return local(store.CodeMismatch, err)
	}
	return local(store.CodeTransient, fmt.Errorf("reading the source: %w", err))
}

// newWriter prepares a writer with the object's attributes.
func (s *gcsStore) newWriter(ctx context.Context, obj *storage.ObjectHandle, key string, opts store.PutOptions) *storage.Writer {
	w := obj.NewWriter(ctx)
	w.ContentType = opts.ContentType
	if w.ContentType == "" {
		w.ContentType = store.ContentTypeOf(key)
	}
	w.Metadata = store.WithTags(store.EncodeMetadata(opts.SHA256, opts.Size, opts.SourceVersion, opts.Metadata), opts.Tags)
	w.CacheControl = opts.CacheControl
	w.StorageClass = s.classFor(key)
	w.KMSKeyName = s.kmsKey
	return w
}

// putSmall verifies data, which is the whole stream, and sends it in one request.
func (s *gcsStore) putSmall(ctx context.Context, obj *storage.ObjectHandle, key string, data []byte, v *store.Verifier, opts store.PutOptions) (*storage.ObjectAttrs, error) {
	if err := v.Verify(); err != nil {
		return nil, local(store.CodeMismatch, err)
	}
	if opts.Size < 0 {
		opts.Size = int64(len(data))
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := s.newWriter(wctx, obj, key, opts)
	// ChunkSize 0 sends one request streamed from data, without the copy a resendable
	// buffer would cost (a failed request fails the put; the caller retries it). The
	// CRC32C, which GCS checks, guards the bytes on the way at a fraction of MD5's cost.
	w.ChunkSize = 0
	w.CRC32C = crc32.Checksum(data, crc32cTable)
	w.SendCRC32C = true
	if _, err := w.Write(data); err != nil {
		cancel() // never finalize a partial write
		abort(w, err)
		_ = w.Close()
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if opts.Progress != nil {
		opts.Progress(int64(len(data)))
	}
	return w.Attrs(), nil
}

// putLarge streams head and the rest of v through a resumable upload.
func (s *gcsStore) putLarge(ctx context.Context, obj *storage.ObjectHandle, key string, head []byte, v *store.Verifier, opts store.PutOptions) (*storage.ObjectAttrs, error) {
	// Cancelling the writer's context is the SDK's way to abandon an upload: the
	// session is never finalized, so no object appears.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := s.newWriter(wctx, obj, key, opts)
	w.ChunkSize = int(s.partSize)
	if crc, ok := v.CRC32C(); ok {
		// Known before the bytes move (a Fingerprinted source): GCS checks the
		// object against it when the upload is finalized.
		w.CRC32C, w.SendCRC32C = crc, true
	}
	if opts.Progress != nil {
		w.ProgressFunc = opts.Progress
	}
	src := &sourceReader{r: v}
	if s.single {
		// ChunkSize 0 is the SDK's one streamed request; it reports no progress, so
		// the source read stands in for it.
		w.ChunkSize = 0
		src.progress, src.offset = opts.Progress, int64(len(head))
	}
	abandon := func(cause error) (*storage.ObjectAttrs, error) {
		cancel()
		abort(w, cause)
		done := make(chan struct{})
		go func() { _ = w.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(cleanupTimeout):
		}
		return nil, cause
	}

	if _, err := w.Write(head); err != nil {
		return abandon(err)
	}
	head = nil
	// 1 MiB reads instead of io.Copy's 32 KiB: a 1 GiB source read in 1,024 calls
	// rather than 32,768, each also a hand-over to the request's goroutine.
	if _, err := io.CopyBuffer(w, src, make([]byte, copyBufferSize)); err != nil {
		if src.err != nil {
			return abandon(s.readError(v, opts.Size, src.err))
		}
		return abandon(err)
	}
	if err := v.Verify(); err != nil {
		return abandon(local(store.CodeMismatch, err))
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return w.Attrs(), nil
}

// abort fails the writer's request body before Close runs. A single-request upload
// is finalized by the end of its body, and Close ends it cleanly: should the transport
// not have seen the cancelled context yet, the server would store the object the put
// is refusing (the conformance suite caught it on fake-gcs-server). The SDK
// deprecates CloseWithError in favour of cancelling, which alone races here.
func abort(w *storage.Writer, cause error) {
	_ = w.CloseWithError(cause) //nolint:staticcheck // see above
}

// sourceReader remembers a read failure, so that a failed copy can be blamed on the
// source or on the upload, and reports progress when the SDK cannot.
type sourceReader struct {
	r        io.Reader
	err      error
	progress func(int64)
	offset   int64 // bytes sent before this reader
	read     int64
	reported int64
}

// copyBufferSize is the size of the reads that feed a streamed upload.
const copyBufferSize = 1 << 20

// progressEvery is how often a single-request upload reports the bytes sent.
const progressEvery = 8 << 20

// Read reads from the source, recording any error but io.EOF.
func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = err
	}
	s.read += int64(n)
	if s.progress != nil && (s.read-s.reported >= progressEvery || errors.Is(err, io.EOF) && s.read > s.reported) {
		s.reported = s.read
		s.progress(s.offset + s.read)
	}
	return n, err
}
