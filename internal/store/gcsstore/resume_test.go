//go:build integration

package gcsstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/store/storetest"
)

// failAfter passes n bytes of r, then fails like a dropped source mount.
type failAfter struct {
	r io.Reader
	n int64
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("source went away")
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

// sentCounter adds up the body bytes of the resumable session's requests.
type sentCounter struct {
	mu    sync.Mutex
	bytes int64
}

func (c *sentCounter) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTrip(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPut && r.Header.Get("Content-Range") != "" {
			c.mu.Lock()
			c.bytes += r.ContentLength
			c.mu.Unlock()
		}
		return next.RoundTrip(r)
	})
}

func (c *sentCounter) get() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestResumeContinuesSession interrupts a resumable put, then resumes it: the bytes
// the session holds are not sent again, also when the recorded offset lags behind
// the server (a heartbeat lost in a crash); a session holding other bytes, or one
// that is gone, starts over, and the object always reads back whole.
func TestResumeContinuesSession(t *testing.T) {
	ensureBucket(t, testBucket)
	c := &sentCounter{}
	u, _ := url.Parse("gs://" + testBucket + "/" + storetest.UniquePrefix(t))
	st, err := New(context.Background(), store.Options{Name: "gcs-test", URL: u, WrapTransport: c.wrap,
		Tuning: store.Tuning{PartSize: 5 << 20, Threshold: 5 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	s := st.(*gcsStore)
	ctx := context.Background()
	const size = 27 << 20 // 6 chunks: 5 of 5 MiB and one of 2 MiB
	sum := storetest.StreamSHA256(9, size)
	interrupt := func(key string) store.ResumeState {
		t.Helper()
		var rs store.ResumeState
		_, err := s.Put(ctx, key, &failAfter{r: storetest.Stream(9, size), n: 16 << 20}, store.PutOptions{
			SHA256: sum, Size: size, Resume: &store.ResumeState{}, OnResumeState: func(r store.ResumeState) { rs = r },
		})
		if err == nil || rs.UploadID == "" || rs.Key != key || rs.SHA256 != sum || rs.PartSize != 5<<20 {
			t.Fatalf("interrupted put: err %v, resume state %+v", err, rs)
		}
		if rs.Offset != 15<<20 {
			t.Fatalf("interrupted put recorded offset %d, want the 3 chunks read before the failure (%d)", rs.Offset, 15<<20)
		}
		if _, err := s.Stat(ctx, key); !store.IsNotFound(err) {
			t.Fatalf("an interrupted put left an object: %v", err)
		}
		return rs
	}
	check := func(key, want string) {
		t.Helper()
		if got := readSHA(t, s, key); got != want {
			t.Fatalf("%s reads back with SHA-256 %s, want %s", key, got, want)
		}
	}

	rs := interrupt("resumed.bin")
	before := c.get()
	obj, err := s.Put(ctx, "resumed.bin", storetest.Stream(9, size), store.PutOptions{SHA256: sum, Size: size, Resume: &rs})
	if err != nil {
		t.Fatalf("resumed put: %v", err)
	}
	if sent := c.get() - before; sent != size-15<<20 {
		t.Errorf("resumed put sent %d bytes, want %d (the 15 MiB the session holds skipped)", sent, size-15<<20)
	}
	if obj.Size != size {
		t.Errorf("resumed object has size %d", obj.Size)
	}
	check("resumed.bin", sum)

	// A recorded offset behind the server's: what the server holds is found anyway.
	lag := interrupt("lagging.bin")
	lag.Offset = 5 << 20
	before = c.get()
	if _, err := s.Put(ctx, "lagging.bin", storetest.Stream(9, size), store.PutOptions{SHA256: sum, Size: size, Resume: &lag}); err != nil {
		t.Fatalf("resumed put with a lagging offset: %v", err)
	}
	if sent := c.get() - before; sent != size-15<<20 {
		t.Errorf("resumed put with a lagging offset sent %d bytes, want %d", sent, size-15<<20)
	}
	check("lagging.bin", sum)

	// A session that finished (or expired) starts over.
	before = c.get()
	if _, err := s.Put(ctx, "resumed.bin", storetest.Stream(9, size), store.PutOptions{SHA256: sum, Size: size, Resume: &rs}); err != nil {
		t.Fatalf("put with a finished session's state: %v", err)
	}
	if sent := c.get() - before; sent != size {
		t.Errorf("put over a finished session sent %d bytes, want all %d", sent, size)
	}

	// A session holding other bytes (the source changed between attempts, same
	// key) is not finished with them: the put fails, clears the state, and the
	// next attempt writes the new bytes whole.
	changed := interrupt("changed.bin")
	other := storetest.StreamSHA256(11, size)
	changed.SHA256 = other
	var next store.ResumeState
	_, err = s.Put(ctx, "changed.bin", storetest.Stream(11, size), store.PutOptions{SHA256: other, Size: size, Resume: &changed,
		OnResumeState: func(r store.ResumeState) { next = r }})
	if err == nil {
		t.Fatal("a session holding other bytes was finished with the new ones")
	}
	if store.CodeOf(err) != store.CodeTransient || next.UploadID != "" {
		t.Fatalf("failure over a session of other bytes: %v (code %v), state for the next attempt %+v; want transient and a cleared state", err, store.CodeOf(err), next)
	}
	if _, err := s.Stat(ctx, "changed.bin"); !store.IsNotFound(err) {
		t.Fatalf("a refused put left an object: %v", err)
	}
	if _, err := s.Put(ctx, "changed.bin", storetest.Stream(11, size), store.PutOptions{SHA256: other, Size: size, Resume: &next}); err != nil {
		t.Fatalf("next attempt: %v", err)
	}
	check("changed.bin", other)
}

func readSHA(t *testing.T, s store.Store, key string) string {
	t.Helper()
	r, err := s.Open(context.Background(), key, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
