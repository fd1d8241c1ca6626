package store_test

import (
	"context"
	"errors"
	"io"
	"iter"
	"net/url"
	"strings"
	"testing"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/store/localstore"
	"github.com/cloudrepl/replicator/internal/store/s3store"
	"github.com/cloudrepl/replicator/internal/store/storetest"
)

func openDir(t *testing.T) store.Store {
	t.Helper()
	d, err := localstore.New(context.Background(), store.Options{Name: "dir", URL: &url.URL{Scheme: "file", Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCheckedRefusesBeforeTheDriver(t *testing.T) {
	s := store.Checked(openDir(t))
	ctx := context.Background()
	x := []byte("x")
	for _, key := range storetest.InvalidKeys {
		_, err := s.Put(ctx, key, strings.NewReader("x"), store.PutOptions{SHA256: storetest.SHA256Hex(x), Size: 1})
		storetest.WantCode(t, "put "+key, err, store.CodeInvalid)
		storetest.WantCode(t, "delete "+key, s.Delete(ctx, key, store.DeleteOptions{}), store.CodeInvalid)
		_, err = s.Copy(ctx, "ok", key, store.CopyOptions{})
		storetest.WantCode(t, "copy from "+key, err, store.CodeInvalid)
		_, err = s.Open(ctx, key, 0)
		storetest.WantCode(t, "open "+key, err, store.CodeInvalid)
	}
	_, err := s.Put(ctx, "k", strings.NewReader("x"), store.PutOptions{Size: 1})
	storetest.WantCode(t, "put without a SHA-256", err, store.CodeInvalid)
	if _, err := s.Stat(ctx, "k"); !store.IsNotFound(err) {
		t.Fatalf("a put without a SHA-256 reached the driver: stat = %v", err)
	}
	_, err = s.Open(ctx, "k", -1)
	storetest.WantCode(t, "open at a negative offset", err, store.CodeInvalid)
	// The driver's own rule: a path segment longer than NAME_MAX.
	_, err = s.Put(ctx, "d/"+strings.Repeat("n", 256), strings.NewReader("x"), store.PutOptions{SHA256: storetest.SHA256Hex(x), Size: 1})
	storetest.WantCode(t, "put of a 256-byte name", err, store.CodeInvalid)
}

func TestCheckedKeepsOptionalInterfaces(t *testing.T) {
	if _, ok := store.Checked(openDir(t)).(store.UploadAborter); ok {
		t.Error("the directory driver has no uploads to abort, but its checked store claims to")
	}
	u, _ := url.Parse("s3://bucket/prefix?endpoint=http://127.0.0.1:1&region=us-east-1")
	d, err := s3store.New(context.Background(), store.Options{Name: "s3", URL: u}) // makes no request
	if err != nil {
		t.Fatal(err)
	}
	c := store.Checked(d)
	a, ok := c.(store.UploadAborter)
	if !ok {
		t.Fatal("the checked S3 store lost AbortUploads")
	}
	storetest.WantCode(t, "abort uploads of an invalid key", a.AbortUploads(context.Background(), "a//b"), store.CodeInvalid)
	// 100-byte segments: MinIO's 255-byte segment rule applies to custom endpoints.
	long := func(n int) string {
		return strings.Repeat(strings.Repeat("k", 99)+"/", n/100) + strings.Repeat("k", n%100)
	}
	if store.CheckKey(store.Checked(c), long(store.MaxKeyBytes-len("prefix/"))) != nil {
		t.Error("a key of the maximum length with the prefix counted was refused")
	}
	if store.CheckKey(c, long(store.MaxKeyBytes-len("prefix/")+1)) == nil {
		t.Error("a key one byte over the maximum with the prefix counted was accepted")
	}
}

// unorderedDir lists a real directory's objects in reverse, as a backend with
// another sort order would, and fails its reads with an unclassified error.
type unorderedDir struct{ store.Store }

func (u unorderedDir) List(ctx context.Context, opts store.ListOptions) iter.Seq2[store.Object, error] {
	return func(yield func(store.Object, error) bool) {
		var all []store.Object
		for o, err := range u.Store.List(ctx, opts) {
			if err != nil {
				yield(store.Object{}, err)
				return
			}
			all = append(all, o)
		}
		for i := len(all) - 1; i >= 0; i-- {
			if !yield(all[i], nil) {
				return
			}
		}
	}
}

func (u unorderedDir) Open(context.Context, string, int64) (io.ReadCloser, error) {
	return nil, errors.New("driver forgot to classify this")
}

func TestCheckedListingOrderAndCodes(t *testing.T) {
	d := openDir(t)
	for _, k := range []string{"a", "b", store.InternalPrefix + "x"} {
		storetest.Put(t, d, k, []byte(k), store.PutOptions{})
	}
	s := store.Checked(unorderedDir{d})
	var keys []string
	var last error
	for o, err := range s.List(context.Background(), store.ListOptions{}) {
		if err != nil {
			last = err
			break
		}
		keys = append(keys, o.Key)
	}
	storetest.WantCode(t, "a listing out of byte order", last, store.CodeInvalid)
	if len(keys) != 1 || keys[0] != "b" {
		t.Fatalf("listed %q before the order error, want [b] (the internal subtree skipped)", keys)
	}
	_, err := s.Open(context.Background(), "a", 0)
	storetest.WantCode(t, "an unclassified driver error", err, store.CodeTransient)
}
