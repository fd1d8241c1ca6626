//go:build integration

package azstore

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

// blockCounter counts Put Block requests and their body bytes.
type blockCounter struct {
	mu     sync.Mutex
	blocks int
	bytes  int64
}

func (c *blockCounter) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTrip(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPut && r.URL.Query().Get("comp") == "block" {
			c.mu.Lock()
			c.blocks++
			c.bytes += r.ContentLength
			c.mu.Unlock()
		}
		return next.RoundTrip(r)
	})
}

func (c *blockCounter) get() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blocks, c.bytes
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestResumeReusesUncommittedBlocks interrupts a block upload, then resumes it: the
// blocks Azurite lists as uncommitted under the upload's IDs are not staged again,
// blocks of other bytes at the same offsets are, and the blob is whole.
func TestResumeReusesUncommittedBlocks(t *testing.T) {
	endpoint, account := testEnv(t)
	c := &blockCounter{}
	u := storeURL(endpoint, account, testContainer, storetest.UniquePrefix(t))
	s, err := New(context.Background(), store.Options{Name: "azurite", URL: mustURL(t, u),
		Credentials: store.Credentials{AzureConnectionStringEnv: connEnv}, WrapTransport: c.wrap,
		Tuning: store.Tuning{PartSize: 5 << 20, Threshold: 5 << 20, Concurrency: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const size = 27 << 20 // 6 blocks: 5 of 5 MiB and one of 2 MiB
	sum := storetest.StreamSHA256(9, size)
	var rs store.ResumeState
	_, err = s.Put(ctx, "resumed.bin", &failAfter{r: storetest.Stream(9, size), n: 16 << 20}, store.PutOptions{
		SHA256: sum, Size: size, Resume: &store.ResumeState{}, OnResumeState: func(r store.ResumeState) { rs = r },
	})
	if err == nil || rs.UploadID == "" || rs.Key != "resumed.bin" || rs.SHA256 != sum || rs.PartSize != 5<<20 {
		t.Fatalf("interrupted put: err %v, resume state %+v", err, rs)
	}
	if n, _ := c.get(); n != 3 {
		t.Fatalf("interrupted put staged %d blocks, want the 3 whole ones read before the failure", n)
	}

	before, _ := c.get()
	obj, err := s.Put(ctx, "resumed.bin", storetest.Stream(9, size), store.PutOptions{SHA256: sum, Size: size, Resume: &rs})
	if err != nil {
		t.Fatalf("resumed put: %v", err)
	}
	after, _ := c.get()
	if sent := after - before; sent != 3 {
		t.Errorf("resumed put staged %d blocks, want 3 (the 3 stored blocks reused)", sent)
	}
	if a, err := s.Stat(ctx, "resumed.bin"); err != nil || a.SHA256 != sum || a.Size != size || obj.Size != size {
		t.Fatalf("resumed object: %+v %v", a, err)
	}
	if got := readSHA(t, s, "resumed.bin"); got != sum {
		t.Fatalf("resumed blob reads back with SHA-256 %s, want %s", got, sum)
	}

	// Same key and upload ID but other bytes (as if the source had changed between
	// attempts): every block ID carries its MD5, so none of the stored blocks is
	// taken for the new bytes.
	changed := rs
	changed.SHA256 = storetest.StreamSHA256(11, size)
	if _, err := s.Put(ctx, "changed.bin", &failAfter{r: storetest.Stream(9, size), n: 16 << 20}, store.PutOptions{
		SHA256: sum, Size: size, Resume: &store.ResumeState{}, OnResumeState: func(r store.ResumeState) { changed.UploadID, changed.Key = r.UploadID, r.Key }}); err == nil {
		t.Fatal("third interrupted put succeeded")
	}
	before, _ = c.get()
	if _, err := s.Put(ctx, "changed.bin", storetest.Stream(11, size), store.PutOptions{SHA256: changed.SHA256, Size: size, Resume: &changed}); err != nil {
		t.Fatalf("put of other bytes over an upload's blocks: %v", err)
	}
	if after, _ := c.get(); after-before != 6 {
		t.Errorf("put of other bytes staged %d blocks, want all 6: blocks of other bytes must not be reused", after-before)
	}
	if got := readSHA(t, s, "changed.bin"); got != changed.SHA256 {
		t.Fatalf("blob reads back with SHA-256 %s, want %s", got, changed.SHA256)
	}

	// A state whose blocks are gone (committed above) starts over instead of failing.
	before, _ = c.get()
	if _, err := s.Put(ctx, "resumed.bin", storetest.Stream(9, size), store.PutOptions{SHA256: sum, Size: size, Resume: &rs}); err != nil {
		t.Fatalf("put with a committed upload's state: %v", err)
	}
	if after, _ := c.get(); after-before != 6 {
		t.Errorf("put over a committed upload staged %d blocks, want 6", after-before)
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
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
