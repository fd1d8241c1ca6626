//go:build integration

package gcsstore

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/store/storetest"
)

// TestStagesStayStandard writes stages (one request, a resumable session, the SDK's
// chunked upload) with an archive class configured, commits them by rewrite and
// puts user keys directly: stages must be STANDARD, user keys in the class.
// fake-gcs-server ignores the storage class a rewrite asks for (it keeps the
// source's), so for commits the test checks the rewrite request instead.
func TestStagesStayStandard(t *testing.T) {
	ensureBucket(t, testBucket)
	const class = "ARCHIVE"
	u, _ := url.Parse("gs://" + testBucket + "/" + storetest.UniquePrefix(t))
	var mu sync.Mutex
	var rewrites []string // bodies of rewrite requests
	wrap := func(next http.RoundTripper) http.RoundTripper {
		return roundTrip(func(r *http.Request) (*http.Response, error) {
			if strings.Contains(r.URL.Path, "/rewriteTo/") && r.Body != nil {
				b, err := io.ReadAll(r.Body)
				if err != nil {
					return nil, err
				}
				r.Body = io.NopCloser(bytes.NewReader(b))
				mu.Lock()
				rewrites = append(rewrites, string(b))
				mu.Unlock()
			}
			return next.RoundTrip(r)
		})
	}
	st, err := New(context.Background(), store.Options{Name: "gcs-test", URL: u, StorageClass: class, Tuning: smallTuning, WrapTransport: wrap})
	if err != nil {
		t.Fatal(err)
	}
	s := st.(*gcsStore)
	ctx := context.Background()
	classOf := func(key string) string {
		t.Helper()
		a, err := s.bucket.Object(s.objectName(key)).Attrs(ctx)
		if err != nil {
			t.Fatalf("attrs of %s: %v", key, err)
		}
		return a.StorageClass
	}
	for i, c := range []struct {
		size   int64
		resume *store.ResumeState
	}{{1 << 20, nil}, {12 << 20, &store.ResumeState{}}, {12 << 20, nil}} {
		stage := ".replicator/staging/" + string(rune('a'+i))
		if _, err := s.Put(ctx, stage, storetest.Stream(3, c.size), store.PutOptions{SHA256: storetest.StreamSHA256(3, c.size), Size: c.size, Resume: c.resume}); err != nil {
			t.Fatal(err)
		}
		if got := classOf(stage); got != "STANDARD" {
			t.Errorf("stage %d (%d bytes) is in class %q, want STANDARD", i, c.size, got)
		}
		a, err := s.Stat(ctx, stage)
		if err != nil {
			t.Fatal(err)
		}
		final := "final-" + string(rune('a'+i))
		mu.Lock()
		rewrites = nil
		mu.Unlock()
		if _, err := s.Copy(ctx, final, stage, store.CopyOptions{Attributes: a}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if len(rewrites) == 0 || !strings.Contains(rewrites[0], `"storageClass":"`+class+`"`) {
			t.Errorf("commit %d did not ask for class %s: rewrite requests %q", i, class, rewrites)
		}
		mu.Unlock()
		// The stage's own copy to the undo or trash area stays STANDARD.
		if _, err := s.Copy(ctx, ".replicator/undo/"+final, stage, store.CopyOptions{}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if len(rewrites) < 2 || strings.Contains(rewrites[1], class) {
			t.Errorf("copy %d to .replicator/undo/ asked for another class than STANDARD: %q", i, rewrites)
		}
		mu.Unlock()
		direct := "direct-" + string(rune('a'+i))
		if _, err := s.Put(ctx, direct, storetest.Stream(4, c.size), store.PutOptions{SHA256: storetest.StreamSHA256(4, c.size), Size: c.size, Resume: c.resume}); err != nil {
			t.Fatal(err)
		}
		if got := classOf(direct); got != class {
			t.Errorf("direct put %d is in class %q, want %s", i, got, class)
		}
	}
}
