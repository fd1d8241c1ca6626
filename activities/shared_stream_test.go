package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/store"
)

// countingSource serves data and counts how often it was opened and how many bytes
// were read from it.
type countingSource struct {
	data  []byte
	opens atomic.Int32
	read  atomic.Int64
}

func (c *countingSource) open(_ context.Context, offset int64) (io.ReadCloser, error) {
	c.opens.Add(1)
	return io.NopCloser(readCounter{r: bytes.NewReader(c.data[offset:]), n: &c.read}), nil
}

type readCounter struct {
	r io.Reader
	n *atomic.Int64
}

func (r readCounter) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n.Add(int64(n))
	return n, err
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// readThroughVerifier reads r as a destination driver does, through a Verifier, and
// returns the bytes, the verdict and whether the verifier hashed the bytes itself.
func readThroughVerifier(r io.Reader, sha string, size int64, chunk int, pause time.Duration) ([]byte, error) {
	v := store.NewVerifier(r, sha, size)
	var out bytes.Buffer
	buf := make([]byte, chunk)
	for {
		n, err := v.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return out.Bytes(), err
		}
		time.Sleep(pause)
	}
	return out.Bytes(), v.Verify()
}

func TestSharedStreamReadsOnceForAllConsumers(t *testing.T) {
	data := randomBytes(shareBlockSize*(shareWindow+5) + 12345) // a short last block
	src := &countingSource{data: data}
	sha := hexSHA(data)
	var shares streamShares
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make([][]byte, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wg.Go(func() {
			r, err := shares.join(ctx, "p\x00k\x00v1", 3, sha, int64(len(data)), src.open)
			if err != nil || r == nil {
				errs[i] = errors.Join(err, errors.New("could not join"))
				return
			}
			defer r.Close()
			// Consumers of different pace: the window couples them, nothing is lost.
			results[i], errs[i] = readThroughVerifier(r, sha, int64(len(data)), 100_000*(i+1), time.Duration(i)*100*time.Microsecond)
		})
	}
	wg.Wait()
	for i := range 3 {
		if errs[i] != nil {
			t.Fatalf("consumer %d: %v", i, errs[i])
		}
		if !bytes.Equal(results[i], data) {
			t.Fatalf("consumer %d read %d bytes that differ from the source's %d", i, len(results[i]), len(data))
		}
	}
	// Two consumers may both open the source when they arrive together; the one
	// that loses the race closes its handle unread and joins the other's stream.
	if n := src.read.Load(); n != int64(len(data)) {
		t.Errorf("%d bytes were read from a %d-byte source", n, len(data))
	}
	if len(shares.joining) != 0 {
		t.Errorf("finished streams stay joinable: %v", shares.joining)
	}
}

func TestSharedStreamRefusesChangedBytes(t *testing.T) {
	data := randomBytes(3*shareBlockSize + 7)
	stated := hexSHA(append([]byte("other"), data...)) // the version the caller expects
	src := &countingSource{data: data}
	var shares streamShares
	r, err := shares.join(context.Background(), "changed", 2, stated, int64(len(data)), src.open)
	if err != nil || r == nil {
		t.Fatalf("join: %v", err)
	}
	defer r.Close()
	_, err = readThroughVerifier(r, stated, int64(len(data)), 1<<20, 0)
	if !errors.Is(err, errSharedStreamChanged) {
		t.Fatalf("verdict on bytes that do not hash to the stated SHA-256: %v", err)
	}
}

func TestSharedStreamLateJoinerReadsAlone(t *testing.T) {
	data := randomBytes(shareBlockSize*(shareWindow+4) + 1)
	src := &countingSource{data: data}
	sha := hexSHA(data)
	var shares streamShares
	ctx := context.Background()
	first, err := shares.join(ctx, "late", 2, sha, int64(len(data)), src.open)
	if err != nil || first == nil {
		t.Fatalf("join: %v", err)
	}
	defer first.Close()
	// The expected second consumer never comes: after the join wait, the first one
	// goes on alone instead of waiting for ever.
	start := time.Now()
	got, err := readThroughVerifier(first, sha, int64(len(data)), 1<<20, 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("lone consumer: %d bytes, %v", len(got), err)
	}
	if waited := time.Since(start); waited < shareJoinWait/2 {
		t.Errorf("the first consumer did not hold the stream for joiners (%v)", waited)
	}
	// Joining is over: a later transfer of the version starts a stream of its own.
	if r, err := shares.join(ctx, "late", 2, sha, int64(len(data)), src.open); err != nil || r == nil {
		t.Fatalf("a join after the stream moved on: %v %v", r, err)
	} else {
		r.Close()
	}
	if n := src.opens.Load(); n != 2 {
		t.Errorf("source opened %d times, want 2 (a new stream for the late consumer)", n)
	}
}

func TestSharedStreamConsumerLeavesEarly(t *testing.T) {
	data := randomBytes(shareBlockSize * (shareWindow + 6))
	src := &countingSource{data: data}
	sha := hexSHA(data)
	var shares streamShares
	ctx := context.Background()
	a, _ := shares.join(ctx, "leave", 2, sha, int64(len(data)), src.open)
	cctx, cancel := context.WithCancel(ctx)
	b, _ := shares.join(cctx, "leave", 2, sha, int64(len(data)), src.open)
	if a == nil || b == nil {
		t.Fatal("could not join")
	}
	// b's destination fails after one block and its transfer is cancelled: a must
	// not wait for it.
	if _, err := io.ReadFull(b, make([]byte, shareBlockSize)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := b.Read(make([]byte, 10)); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("read on a cancelled context: %v", err)
	}
	b.Close()
	done := make(chan error, 1)
	go func() {
		defer a.Close()
		got, err := readThroughVerifier(a, sha, int64(len(data)), 1<<20, 0)
		if err == nil && !bytes.Equal(got, data) {
			err = errors.New("bytes differ")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the remaining consumer is stuck behind one that left")
	}
}

func TestSharedStreamOpenErrorIsTheCallers(t *testing.T) {
	var shares streamShares
	missing := errors.New("no such file")
	r, err := shares.join(context.Background(), "gone", 2, hexSHA(nil), 0, func(context.Context, int64) (io.ReadCloser, error) { return nil, missing })
	if r != nil || !errors.Is(err, missing) {
		t.Fatalf("join of a source that cannot be opened: %v %v", r, err)
	}
	if len(shares.joining) != 0 {
		t.Error("a stream that never opened stays joinable")
	}
}

// TestSharedStreamStalledReaderDetaches stalls one reader: after the lag limit the
// other goes on, and the stalled one, once it moves again, reads the rest of the
// source itself, its whole stream still verified.
func TestSharedStreamStalledReaderDetaches(t *testing.T) {
	data := randomBytes(shareBlockSize*(shareWindow+6) + 99)
	src := &countingSource{data: data}
	sha := hexSHA(data)
	var shares streamShares
	ctx := context.Background()
	fast, _ := shares.join(ctx, "stall", 2, sha, int64(len(data)), src.open)
	slow, _ := shares.join(ctx, "stall", 2, sha, int64(len(data)), src.open)
	if fast == nil || slow == nil {
		t.Fatal("could not join")
	}
	defer fast.Close()
	defer slow.Close()
	head := make([]byte, shareBlockSize/2+1) // stalls inside the first block
	if _, err := io.ReadFull(slow, head); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := readThroughVerifier(fast, sha, int64(len(data)), 1<<20, 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fast reader: %d bytes, %v", len(got), err)
	}
	if waited := time.Since(start); waited < shareLagLimit {
		t.Errorf("the fast reader did not wait for the slow one (%v)", waited)
	}
	rest, err := io.ReadAll(slow)
	if err != nil || !bytes.Equal(append(head, rest...), data) {
		t.Fatalf("detached reader: %d bytes, %v", len(head)+len(rest), err)
	}
	if err := slow.Verify(); err != nil {
		t.Fatalf("detached reader's verdict: %v", err)
	}
	if n := src.opens.Load(); n != 2 {
		t.Errorf("source opened %d times, want 2 (the stream, then the detached reader's rest)", n)
	}
	// A detached reader whose rest changed refuses its stream.
	src2 := &countingSource{data: bytes.Clone(data)}
	a, _ := shares.join(ctx, "stall2", 2, sha, int64(len(data)), src2.open)
	b, _ := shares.join(ctx, "stall2", 2, sha, int64(len(data)), src2.open)
	defer a.Close()
	defer b.Close()
	if _, err := io.ReadFull(b, head); err != nil {
		t.Fatal(err)
	}
	if _, err := readThroughVerifier(a, sha, int64(len(data)), 1<<20, 0); err != nil {
		t.Fatal(err)
	}
	src2.data[len(data)-1] ^= 1 // written after the stream read it
	if _, err := io.ReadAll(b); err != nil {
		t.Fatal(err)
	}
	if err := b.Verify(); !errors.Is(err, errSharedStreamChanged) {
		t.Fatalf("detached reader of a changed rest: %v", err)
	}
}
