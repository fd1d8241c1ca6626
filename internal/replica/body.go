package replica

import (
	"context"
	"io"

	"golang.org/x/time/rate"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
)

// Body is where the bytes of a source version come from, and how they move.
type Body struct {
	// Source is read (from the key's start) for every put, unless Data is set.
	Source store.Store
	// Data is the version read into memory and hashed once for all destinations
	// (small files of a batch); nil streams from Source.
	Data []byte
	// Limiter holds the put to the destination's bandwidth; nil is unlimited.
	Limiter *rate.Limiter
	// Hooks, when set, gives each put its progress and resume callbacks (the
	// activity's heartbeats); target is the key written (the stage or the final key).
	Hooks func(target string) Hooks
}

// Hooks are the progress and resume settings of one put (see store.PutOptions).
type Hooks struct {
	Progress      func(bytesDone int64)
	Resume        *store.ResumeState
	OnResumeState func(store.ResumeState)
	// Sent, when set, is called as the driver reads the stream, with the bytes read
	// so far: progress within a part, before the part is stored, so that a slow part
	// never looks like a stalled transfer.
	Sent func(bytesRead int64)
	// Done is called once the put returned.
	Done func()
}

// reader opens the version's bytes as a stream the driver verifies: the snapshot in
// memory vouched for by its hash, or the source checked against the fingerprint
// taken with the SHA-256 (a byte changed since fails the put like a wrong hash) or,
// without one, hashed again by the driver.
func (b Body) reader(ctx context.Context, key string, sv wire.SourceVersion) (io.Reader, func(), error) {
	var r io.Reader
	closer := func() {}
	if b.Data != nil {
		r = store.NewVerified(b.Data, sv.SHA256)
	} else {
		rc, err := b.Source.Open(ctx, key, 0)
		if err != nil {
			return nil, nil, err
		}
		closer = func() { rc.Close() }
		r = rc
		if fp, err := store.ParseFingerprint(sv.Fingerprint); err == nil {
			r = store.NewFingerprinted(rc, sv.SHA256, fp)
		}
	}
	if b.Limiter != nil && b.Limiter.Limit() != rate.Inf {
		r = limitedReader{ctx: ctx, r: r, l: b.Limiter}
	}
	return r, closer, nil
}

// limitedReader holds a transfer to its destination's bandwidth limit.
type limitedReader struct {
	ctx context.Context
	r   io.Reader
	l   *rate.Limiter
}

func (lr limitedReader) Read(p []byte) (int, error) {
	if len(p) > lr.l.Burst() {
		p = p[:lr.l.Burst()]
	}
	n, err := lr.r.Read(p)
	if n > 0 {
		if werr := lr.l.WaitN(lr.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// put streams the source version to target on the destination, under pre.
func (e *Engine) put(ctx context.Context, t Target, b Body, key, target string, sv wire.SourceVersion, pre store.Precondition) (*store.Object, error) {
	r, closeSource, err := b.reader(ctx, key, sv)
	if err != nil {
		return nil, err
	}
	defer closeSource()
	opts := store.PutOptions{
		SHA256: sv.SHA256, Size: sv.Size, ContentType: sv.ContentType,
		SourceVersion: sv.Version, Metadata: sv.Metadata, Precondition: pre,
		CacheControl: sv.CacheControl, Tags: sv.Tags,
	}
	if b.Hooks != nil {
		h := b.Hooks(target)
		opts.Progress, opts.Resume, opts.OnResumeState = h.Progress, h.Resume, h.OnResumeState
		if h.Done != nil {
			defer h.Done()
		}
		if h.Sent != nil {
			r = &countingReader{r: r, sent: h.Sent}
		}
	}
	return t.Store.Put(ctx, target, r, opts)
}

// countingReader reports the bytes read through it.
type countingReader struct {
	r    io.Reader
	n    int64
	sent func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += int64(n)
		c.sent(c.n)
	}
	return n, err
}
