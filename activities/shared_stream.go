package activities

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"
)

// Sharing a large source among the transfers of one version on a worker: without it,
// each destination reads the file and hashes it again, and hashing was the worker's
// largest CPU cost for a 1 GiB file (deploy/bench/README.md). One producer reads and
// hashes the file into a small window of blocks that every transfer reads, so they
// move at the pace of the slowest (each driver's part buffers absorb short
// differences; the slowest destination sets the time of a replication anyway). A
// transfer that stalls does not hold the others back for long: after shareLagLimit
// it detaches and reads the rest of the file itself, resuming the hash from the
// producer's state where it left, so that its bytes are still verified whole.
const (
	shareBlockSize = 2 << 20
	shareWindow    = 4
	// shareLagLimit is how long a full window waits for its slowest reader while
	// another waits for new bytes; well under the heartbeat timeouts that a reader
	// kept waiting would otherwise run into.
	shareLagLimit = time.Second
	// shareJoinWait is how long the first transfer holds the stream's first block
	// for the other transfers to join. They are scheduled together, so they
	// normally join within milliseconds; one that comes later reads on its own.
	shareJoinWait = 250 * time.Millisecond
)

// errSharedStreamChanged marks a shared stream whose bytes did not hash to the
// version's SHA-256: the source changed while it was read.
var errSharedStreamChanged = errors.New("source changed while it was read")

// streamShares are the shared streams being joined on this worker, by version.
type streamShares struct {
	mu      sync.Mutex
	joining map[string]*sharedStream
}

// join returns a reader over the source version id for one of expected consumers:
// it joins the stream another consumer started, or starts one reading through open
// (whose error it returns as is, so that a missing source reads as missing). It
// returns a nil reader when the stream of id is past its first block: the caller
// reads on its own.
func (m *streamShares) join(ctx context.Context, id string, expected int, sha string, size int64, openAt func(context.Context, int64) (io.ReadCloser, error)) (*sharedReader, error) {
	if r, found := m.joinExisting(ctx, id); found {
		return r, nil
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	rc, err := openAt(pctx, 0)
	if err != nil {
		cancel()
		return nil, err
	}
	m.mu.Lock()
	if m.joining[id] != nil { // another consumer started it meanwhile
		m.mu.Unlock()
		rc.Close()
		cancel()
		r, _ := m.joinExisting(ctx, id)
		return r, nil
	}
	s := &sharedStream{owner: m, id: id, sha: sha, size: size, expected: expected, cancel: cancel, openAt: openAt,
		changed: make(chan struct{}), readers: map[*sharedReader]struct{}{}}
	r := s.addReader(ctx)
	m.joining[id] = s
	m.mu.Unlock()
	go s.produce(pctx, rc)
	time.AfterFunc(shareJoinWait, func() {
		m.mu.Lock()
		s.mu.Lock()
		m.closeJoin(s)
		s.mu.Unlock()
		m.mu.Unlock()
	})
	return r, nil
}

// joinExisting joins the stream of id if there is one; found reports whether there
// was, and the reader is nil when it was too late to join.
func (m *streamShares) joinExisting(ctx context.Context, id string) (r *sharedReader, found bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.joining == nil {
		m.joining = map[string]*sharedStream{}
	}
	s := m.joining[id]
	if s == nil {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closedToJoin || s.first > 0 {
		return nil, true
	}
	r = s.addReader(ctx)
	if len(s.readers) >= s.expected {
		m.closeJoin(s)
	}
	return r, true
}

// closeJoin ends the joining of s, whose lock the caller holds with m's: from now
// on blocks are released as soon as every reader has passed them.
func (m *streamShares) closeJoin(s *sharedStream) {
	if s.closedToJoin {
		return
	}
	s.closedToJoin = true
	if m.joining[s.id] == s {
		delete(m.joining, s.id)
	}
	s.release()
	s.notify() // a producer waiting for room may now drop a laggard's block
}

// sharedStream is one read of a source version feeding several readers.
type sharedStream struct {
	owner    *streamShares
	id       string
	sha      string
	size     int64
	expected int
	cancel   context.CancelFunc // stops the producer once no reader is left
	openAt   func(context.Context, int64) (io.ReadCloser, error)

	mu sync.Mutex
	// changed is closed, and replaced, whenever blocks arrive or leave.
	changed chan struct{}
	// blocks are the window: blocks[i] holds bytes from (first+i)*shareBlockSize,
	// and states[i] is the producer's SHA-256 state before them, from which a
	// reader that detaches there resumes.
	blocks [][]byte
	states [][]byte
	first  int64
	spare  [][]byte
	// done: the producer finished; readErr is why it failed to read, mismatch is
	// the hash check's verdict on a complete read.
	done          bool
	readErr       error
	mismatch      error
	readers       map[*sharedReader]struct{}
	closedToJoin  bool
	producedBytes int64
}

func (s *sharedStream) addReader(ctx context.Context) *sharedReader {
	r := &sharedReader{s: s, ctx: ctx}
	s.readers[r] = struct{}{}
	return r
}

// notify wakes every waiter; s.mu is held.
func (s *sharedStream) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// release drops the blocks every reader has passed, once no reader can join any
// more; s.mu is held.
func (s *sharedStream) release() {
	if !s.closedToJoin {
		return
	}
	dropped := false
	for len(s.blocks) > 0 && s.everyonePast((s.first+1)*shareBlockSize) {
		s.dropFront()
		dropped = true
	}
	if dropped {
		s.notify()
	}
}

func (s *sharedStream) everyonePast(pos int64) bool {
	for r := range s.readers {
		if r.pos < pos {
			return false
		}
	}
	return true
}

// dropFront removes the window's first block. A reader still in it detaches: it
// takes the hash state at its position, computed from the block's start, and reads
// the rest itself. s.mu is held.
func (s *sharedStream) dropFront() {
	start := s.first * shareBlockSize
	for r := range s.readers {
		if r.pos >= start+shareBlockSize {
			continue
		}
		h := sha256.New()
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(s.states[0]); err != nil {
			panic(fmt.Sprintf("restore SHA-256 state: %v", err)) // states come from MarshalBinary
		}
		h.Write(s.blocks[0][:r.pos-start])
		r.own = &ownRead{h: h}
		delete(s.readers, r)
	}
	s.spare = append(s.spare, s.blocks[0][:cap(s.blocks[0])])
	s.blocks[0], s.states[0] = nil, nil
	s.blocks, s.states = s.blocks[1:], s.states[1:]
	s.first++
	if len(s.readers) == 0 {
		s.cancel() // every reader went its own way
	}
}

// ahead is how far production is ahead of the fastest reader (0 without readers);
// s.mu is held.
func (s *sharedStream) ahead() int64 {
	fastest := int64(-1)
	for r := range s.readers {
		fastest = max(fastest, r.pos)
	}
	if fastest < 0 {
		return 0
	}
	return s.producedBytes - fastest
}

// produce reads the source into the window, hashing it once, and checks the hash
// and the size at the end.
func (s *sharedStream) produce(ctx context.Context, rc io.ReadCloser) {
	defer rc.Close()
	h := sha256.New()
	for {
		buf, err := s.nextBuffer(ctx)
		if err != nil {
			s.finish(err, nil)
			return
		}
		state, merr := h.(encoding.BinaryMarshaler).MarshalBinary()
		if merr != nil {
			s.finish(fmt.Errorf("save SHA-256 state: %w", merr), nil)
			return
		}
		n, err := io.ReadFull(rc, buf)
		if n > 0 {
			h.Write(buf[:n])
			s.mu.Lock()
			s.blocks = append(s.blocks, buf[:n])
			s.states = append(s.states, state)
			s.producedBytes += int64(n)
			s.notify()
			s.mu.Unlock()
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			var mismatch error
			if got := hex.EncodeToString(h.Sum(nil)); s.producedBytes != s.size || got != s.sha {
				mismatch = fmt.Errorf("%w: %d bytes with SHA-256 %s, stated %d bytes with SHA-256 %s",
					errSharedStreamChanged, s.producedBytes, got, s.size, s.sha)
			}
			s.finish(nil, mismatch)
			return
		}
		if err != nil {
			s.finish(fmt.Errorf("read source: %w", err), nil)
			return
		}
	}
}

// nextBuffer returns a buffer for the next block once the window has room. The
// window frees as the slowest reader passes its first block, so the readers move
// together; but when the window has been full for shareLagLimit while a reader
// waits at its end, the first block goes and the readers still in it detach.
func (s *sharedStream) nextBuffer(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lagged <-chan time.Time
	for len(s.blocks) >= shareWindow {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		waiting := s.ahead() < shareWindow*shareBlockSize // a reader is at the window's end
		if s.closedToJoin && waiting && lagged == nil {
			t := time.NewTimer(shareLagLimit)
			defer t.Stop()
			lagged = t.C
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
			s.mu.Lock()
		case <-lagged:
			s.mu.Lock()
			if len(s.blocks) >= shareWindow && s.ahead() < shareWindow*shareBlockSize {
				s.dropFront()
				s.notify()
			}
			lagged = nil
		case <-ctx.Done():
			s.mu.Lock()
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n := len(s.spare); n > 0 {
		buf := s.spare[n-1]
		s.spare = s.spare[:n-1]
		return buf, nil
	}
	return make([]byte, shareBlockSize), nil
}

func (s *sharedStream) finish(readErr, mismatch error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done, s.readErr, s.mismatch = true, readErr, mismatch
	s.notify()
}

// sharedReader is one consumer's view of a shared stream. It implements
// store.Prehashed, so that the destination driver does not hash it again.
type sharedReader struct {
	s      *sharedStream
	ctx    context.Context
	pos    int64
	closed bool
	// own is set, under s.mu, when the reader fell behind the window; from then on
	// only the reader's goroutine touches it.
	own *ownRead
}

// ownRead is a detached reader's own read of the rest of the source.
type ownRead struct {
	h       hash.Hash // the SHA-256 of every byte delivered so far
	rc      io.ReadCloser
	verdict error // set at the end: nil when the whole stream hashed as stated
	ended   bool
}

// SHA256 is the version's hash, which the producer or a detached reader checks.
func (r *sharedReader) SHA256() string { return r.s.sha }

// Verify reports the hash check of the bytes this reader delivered, once it ended.
func (r *sharedReader) Verify() error {
	r.s.mu.Lock()
	own := r.own
	done, mismatch := r.s.done, r.s.mismatch
	r.s.mu.Unlock()
	if own != nil {
		if !own.ended {
			return errors.New("shared stream not read to its end")
		}
		return own.verdict
	}
	if !done {
		return errors.New("shared stream not read to its end")
	}
	return mismatch
}

// Read copies the next bytes of the window, waiting for the producer when the
// reader has caught up with it; a reader that fell behind reads the source itself.
func (r *sharedReader) Read(p []byte) (int, error) {
	s := r.s
	s.mu.Lock()
	for {
		if r.closed {
			s.mu.Unlock()
			return 0, errors.New("read of a closed shared stream")
		}
		if r.own != nil {
			s.mu.Unlock()
			return r.readOwn(p)
		}
		if i := r.pos/shareBlockSize - s.first; i < int64(len(s.blocks)) {
			block := s.blocks[i]
			off := r.pos % shareBlockSize
			if off < int64(len(block)) {
				n := copy(p, block[off:])
				r.pos += int64(n)
				if r.pos%shareBlockSize == 0 {
					s.release()
				}
				s.notify() // the fastest reader paces the producer
				s.mu.Unlock()
				return n, nil
			}
		}
		if s.done && r.pos >= s.producedBytes {
			defer s.mu.Unlock()
			if s.readErr != nil {
				return 0, s.readErr
			}
			return 0, io.EOF
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
		s.mu.Lock()
	}
}

// readOwn reads the rest of the source from the reader's position, hashing it on
// from the state it detached with; at the end it checks size and hash.
func (r *sharedReader) readOwn(p []byte) (int, error) {
	o := r.own
	if o.rc == nil {
		rc, err := r.s.openAt(r.ctx, r.pos)
		if err != nil {
			return 0, fmt.Errorf("read the source on past the shared window: %w", err)
		}
		o.rc = rc
	}
	n, err := o.rc.Read(p)
	o.h.Write(p[:n])
	r.pos += int64(n)
	if r.pos > r.s.size {
		return n, fmt.Errorf("%w: more than the stated %d bytes", errSharedStreamChanged, r.s.size)
	}
	if err == io.EOF {
		o.ended = true
		if got := hex.EncodeToString(o.h.Sum(nil)); r.pos != r.s.size || got != r.s.sha {
			o.verdict = fmt.Errorf("%w: %d bytes with SHA-256 %s, stated %d bytes with SHA-256 %s",
				errSharedStreamChanged, r.pos, got, r.s.size, r.s.sha)
		}
	}
	return n, err
}

// Close leaves the stream; the last reader to leave stops the producer.
func (r *sharedReader) Close() error {
	m, s := r.s.owner, r.s
	m.mu.Lock()
	defer m.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.own != nil && r.own.rc != nil {
		r.own.rc.Close()
	}
	delete(s.readers, r)
	if len(s.readers) == 0 {
		m.closeJoin(s)
		s.cancel()
		return nil
	}
	s.release()
	s.notify()
	return nil
}
