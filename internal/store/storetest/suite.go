package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/store"
)

// Harness tells the suite how to make stores of one driver.
type Harness struct {
	// NewAt returns a store rooted at prefix (a fresh, empty, relative path chosen by
	// the suite) inside the driver's test location. Its part size and multipart
	// threshold must be at most PartSize so that Large exercises multipart.
	NewAt func(t *testing.T, prefix string) store.Store
	// PartSize is the part (chunk, block) size the harness configured.
	PartSize int64
	// LargeSize is the size of the large-object test; 64 MiB when 0.
	LargeSize int64
	// CopyLargeSize, when set, is a size above the harness's server-side copy
	// threshold, so that the multipart copy path runs.
	CopyLargeSize int64
	// MissingLocation returns a store whose bucket, container or directory does not
	// exist.
	MissingLocation func(t *testing.T) store.Store
	// BadCredentials returns a store whose credentials the server refuses; nil when the
	// server cannot refuse any (fake-gcs-server has no authentication).
	BadCredentials func(t *testing.T) store.Store
	// Unreachable returns a store whose endpoint refuses connections; nil for stores
	// without a network.
	Unreachable func(t *testing.T) store.Store
	// StoresCutRequests is set when the server stores a single-request upload whose
	// connection was cut before its body ended (fake-gcs-server, for GCS puts with
	// Tuning.SingleRequest): a put refused after its bytes went out then leaves the
	// cut object behind, so the suite checks the refusal but not the leftovers.
	StoresCutRequests bool
	// ListsUTF16Order is set when the server lists keys above U+FFFF in UTF-16 order
	// (Azurite): a listing holding such keys and keys from U+E000 to U+FFFF stops with
	// an order error, so Names checks each name with a listing of its own instead of
	// one listing of all.
	ListsUTF16Order bool
	// ResumablePuts runs every put with PutOptions.Resume set (to an empty state),
	// as every activity attempt but the last does, so that a driver's resumable
	// path (GCS sessions of its own) is held to the same contract: a refused put
	// still leaves no object, since a mismatch is not a failure that may pass.
	ResumablePuts bool
}

// UniquePrefix returns a fresh prefix for one test.
func UniquePrefix(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	return "ct-" + strings.Trim(name, "-_") + "-" + hex.EncodeToString(b[:])
}

// Run runs the conformance suite on the stores the harness makes, each fronted by
// store.Checked as backends.Open fronts every driver: the suite checks the contract
// as callers see it, whichever of the wrapper or the driver applies each rule.
func Run(t *testing.T, h Harness) {
	if h.LargeSize == 0 {
		h.LargeSize = 64 << 20
	}
	if h.ResumablePuts {
		driver := h.NewAt
		h.NewAt = func(t *testing.T, prefix string) store.Store { return resuming{driver(t, prefix)} }
	}
	h.NewAt = checkedAt(h.NewAt)
	h.MissingLocation = checkedLoc(h.MissingLocation)
	h.BadCredentials = checkedLoc(h.BadCredentials)
	h.Unreachable = checkedLoc(h.Unreachable)
	newStore := func(t *testing.T) store.Store {
		s := h.NewAt(t, UniquePrefix(t))
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	t.Run("Check", func(t *testing.T) {
		s := newStore(t)
		if err := s.Check(ctx(t)); err != nil {
			t.Fatalf("Check on a good location: %v", err)
		}
	})
	t.Run("EmptyObject", func(t *testing.T) { testRoundTrip(t, newStore(t), "empty.bin", nil) })
	t.Run("SmallObject", func(t *testing.T) { testRoundTrip(t, newStore(t), "small.txt", []byte("hello, replicas\n")) })
	t.Run("LargeObject", func(t *testing.T) { testLarge(t, newStore(t), h.LargeSize) })
	t.Run("AwkwardKeys", func(t *testing.T) { testAwkwardKeys(t, newStore(t)) })
	t.Run("Metadata", func(t *testing.T) { testMetadata(t, newStore(t)) })
	t.Run("OpenAtOffset", func(t *testing.T) { testOffset(t, newStore(t)) })
	t.Run("Preconditions", func(t *testing.T) { testPreconditions(t, newStore(t), 100) })
	t.Run("PreconditionsMultipart", func(t *testing.T) { testPreconditions(t, newStore(t), 2*h.PartSize+17) })
	t.Run("Copy", func(t *testing.T) { testCopy(t, newStore(t), 1000) })
	if h.CopyLargeSize > 0 {
		t.Run("CopyMultipart", func(t *testing.T) { testCopy(t, newStore(t), h.CopyLargeSize) })
	}
	t.Run("CacheControlAndTags", func(t *testing.T) { testCacheControlAndTags(t, newStore(t), 100) })
	t.Run("CacheControlAndTagsMultipart", func(t *testing.T) { testCacheControlAndTags(t, newStore(t), 2*h.PartSize+17) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newStore(t)) })
	t.Run("DeleteIfMatch", func(t *testing.T) { testDeleteIfMatch(t, newStore(t)) })
	t.Run("ListOrder", func(t *testing.T) { testListOrder(t, newStore(t)) })
	t.Run("ListPagination", func(t *testing.T) { testPagination(t, newStore(t)) })
	t.Run("HashMismatch", func(t *testing.T) { testMismatch(t, newStore(t), 1000, false) })
	t.Run("HashMismatchMultipart", func(t *testing.T) { testMismatch(t, newStore(t), 2*h.PartSize+5, h.StoresCutRequests) })
	t.Run("Fingerprinted", func(t *testing.T) { testFingerprinted(t, newStore(t), 1000, false) })
	t.Run("FingerprintedMultipart", func(t *testing.T) { testFingerprinted(t, newStore(t), 2*h.PartSize+5, h.StoresCutRequests) })
	t.Run("InvalidKeys", func(t *testing.T) { testInvalidKeys(t, newStore(t)) })
	t.Run("Names", func(t *testing.T) { testNames(t, newStore(t), h.ListsUTF16Order) })
	t.Run("ErrorClasses", func(t *testing.T) { testErrorClasses(t, h) })
}

// resuming passes an empty ResumeState to every put that has none. It sits between
// store.Checked and the driver, so it passes on the driver's name rules.
type resuming struct{ store.Store }

func (r resuming) KeyPrefixLen() int {
	if k, ok := r.Store.(store.KeyRules); ok {
		return k.KeyPrefixLen()
	}
	return 0
}

func (r resuming) CheckName(key string) error {
	if k, ok := r.Store.(store.KeyRules); ok {
		return k.CheckName(key)
	}
	return nil
}

func (r resuming) Put(ctx context.Context, key string, body io.Reader, opts store.PutOptions) (*store.Object, error) {
	if opts.Resume == nil {
		opts.Resume = &store.ResumeState{}
	}
	return r.Store.Put(ctx, key, body, opts)
}

func checkedAt(f func(t *testing.T, prefix string) store.Store) func(t *testing.T, prefix string) store.Store {
	return func(t *testing.T, prefix string) store.Store { return store.Checked(f(t, prefix)) }
}

func checkedLoc(f func(t *testing.T) store.Store) func(t *testing.T) store.Store {
	if f == nil {
		return nil
	}
	return func(t *testing.T) store.Store { return store.Checked(f(t)) }
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return c
}

// Put stores data under key with its correct SHA-256 and fails the test on error.
func Put(t *testing.T, s store.Store, key string, data []byte, opts store.PutOptions) *store.Object {
	t.Helper()
	opts.SHA256 = SHA256Hex(data)
	opts.Size = int64(len(data))
	obj, err := s.Put(ctx(t), key, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	if obj.Key != key || obj.Size != int64(len(data)) || obj.ETag == "" {
		t.Fatalf("put %q returned %+v, want key, size %d and an ETag", key, obj, len(data))
	}
	return obj
}

// ReadAll reads key back whole.
func ReadAll(t *testing.T, s store.Store, key string) []byte {
	t.Helper()
	r, err := s.Open(ctx(t), key, 0)
	if err != nil {
		t.Fatalf("open %q: %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b
}

// WantCode fails the test unless err has the code want.
func WantCode(t *testing.T, what string, err error, want store.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want a %q error", what, want)
	}
	var se *store.Error
	if !errors.As(err, &se) {
		t.Fatalf("%s: error %T %v is not a *store.Error", what, err, err)
	}
	if se.Code != want {
		t.Fatalf("%s: got class %q (%v), want %q", what, se.Code, err, want)
	}
}

func listAll(t *testing.T, s store.Store, opts store.ListOptions) []store.Object {
	t.Helper()
	var out []store.Object
	for obj, err := range s.List(ctx(t), opts) {
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		out = append(out, obj)
	}
	return out
}

func keysOf(objs []store.Object) []string {
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	return keys
}

func testRoundTrip(t *testing.T, s store.Store, key string, data []byte) {
	obj := Put(t, s, key, data, store.PutOptions{})
	a, err := s.Stat(ctx(t), key)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if a.Size != int64(len(data)) || a.SHA256 != SHA256Hex(data) || a.ETag != obj.ETag {
		t.Fatalf("stat = %+v, want size %d, sha %s, etag %s", a, len(data), SHA256Hex(data), obj.ETag)
	}
	if got := ReadAll(t, s, key); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, want %d", len(got), len(data))
	}
}

func testLarge(t *testing.T, s store.Store, size int64) {
	const seed = 64
	sum := StreamSHA256(seed, size)
	var progressed int64
	obj, err := s.Put(ctx(t), "large/object.bin", Stream(seed, size), store.PutOptions{
		SHA256: sum, Size: size, Progress: func(n int64) { progressed = n },
	})
	if err != nil {
		t.Fatalf("put %d bytes: %v", size, err)
	}
	if obj.Size != size {
		t.Fatalf("put size %d, want %d", obj.Size, size)
	}
	if progressed != size {
		t.Errorf("progress ended at %d, want %d", progressed, size)
	}
	a, err := s.Stat(ctx(t), "large/object.bin")
	if err != nil || a.Size != size || a.SHA256 != sum || a.SourceSize != size {
		t.Fatalf("stat = %+v, %v; want size %d and sha %s", a, err, size, sum)
	}
	r, err := s.Open(ctx(t), "large/object.bin", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := store.NewVerifier(r, sum, size)
	if _, err := io.Copy(io.Discard, h); err != nil {
		t.Fatalf("read back: %v", err)
	}
	if err := h.Verify(); err != nil {
		t.Fatalf("read back: %v", err)
	}
}

// AwkwardKeys are keys that break naive URL, path or shell handling.
var AwkwardKeys = []string{
	"with space.txt",
	"unicode/日本語/ファイル.txt",
	"emoji/😀 smile.bin",
	"percent%20encoded%2F.txt",
	"hash#fragment.txt",
	"question?query=1.txt",
	"plus+sign.txt",
	"ampersand&equals=.txt",
	"quote'double\".txt",
	"d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12/d13/d14/d15/d16/deep.txt",
	"Ünïcödé-NFC-é.txt",
	"tilde~and!bang*star(paren).txt",
}

func testAwkwardKeys(t *testing.T, s store.Store) {
	for i, key := range AwkwardKeys {
		Put(t, s, key, []byte(fmt.Sprintf("content %d", i)), store.PutOptions{})
	}
	for i, key := range AwkwardKeys {
		if got := string(ReadAll(t, s, key)); got != fmt.Sprintf("content %d", i) {
			t.Errorf("key %q read %q", key, got)
		}
		if _, err := s.Stat(ctx(t), key); err != nil {
			t.Errorf("stat %q: %v", key, err)
		}
	}
	want := slices.Clone(AwkwardKeys)
	slices.Sort(want)
	if got := keysOf(listAll(t, s, store.ListOptions{})); !slices.Equal(got, want) {
		t.Fatalf("list = %q\nwant  %q", got, want)
	}
	cp := AwkwardKeys[5] + ".copy"
	if _, err := s.Copy(ctx(t), cp, AwkwardKeys[5], store.CopyOptions{}); err != nil {
		t.Fatalf("copy awkward key: %v", err)
	}
	for _, key := range append(AwkwardKeys, cp) {
		if err := s.Delete(ctx(t), key, store.DeleteOptions{}); err != nil {
			t.Errorf("delete %q: %v", key, err)
		}
	}
	if got := listAll(t, s, store.ListOptions{}); len(got) != 0 {
		t.Fatalf("after deletes list = %q", keysOf(got))
	}
}

func testMetadata(t *testing.T, s store.Store) {
	data := []byte("%PDF-1.7 pretend invoice")
	Put(t, s, "invoices/2026/inv-1.pdf", data, store.PutOptions{
		ContentType:   "application/pdf",
		SourceVersion: "etag-123:gen-9",
		Metadata:      map[string]string{"customer": "acme", "region": "eu-west"},
	})
	a, err := s.Stat(ctx(t), "invoices/2026/inv-1.pdf")
	if err != nil {
		t.Fatal(err)
	}
	if a.ContentType != "application/pdf" || a.SourceVersion != "etag-123:gen-9" || a.SourceSize != int64(len(data)) || a.SHA256 != SHA256Hex(data) {
		t.Fatalf("replicator fields lost: %+v", a)
	}
	if a.Metadata["customer"] != "acme" || a.Metadata["region"] != "eu-west" || len(a.Metadata) != 2 {
		t.Fatalf("user metadata = %v, want customer and region only", a.Metadata)
	}
	// Without a content type, the key's extension decides.
	Put(t, s, "pics/p.png", []byte("png"), store.PutOptions{})
	if a, err := s.Stat(ctx(t), "pics/p.png"); err != nil || a.ContentType != "image/png" {
		t.Fatalf("derived content type = %+v, %v; want image/png", a, err)
	}
}

func testOffset(t *testing.T, s store.Store) {
	data := []byte("0123456789abcdef")
	Put(t, s, "offset.txt", data, store.PutOptions{})
	r, err := s.Open(ctx(t), "offset.txt", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, _ := io.ReadAll(r)
	if string(got) != "abcdef" {
		t.Fatalf("read from 10 = %q, want abcdef", got)
	}
}

func testPreconditions(t *testing.T, s store.Store, size int64) {
	data := make([]byte, size)
	copy(data, "v1")
	first := Put(t, s, "pre/key", data, store.PutOptions{Precondition: store.Precondition{IfNoneMatch: true}})

	data2 := bytes.Clone(data)
	copy(data2, "v2")
	_, err := s.Put(ctx(t), "pre/key", bytes.NewReader(data2), store.PutOptions{SHA256: SHA256Hex(data2), Size: size, Precondition: store.Precondition{IfNoneMatch: true}})
	WantCode(t, "create-only put over an existing key", err, store.CodePrecondition)

	wrong := "\"0123456789abcdef0123456789abcdef\""
	_, err = s.Put(ctx(t), "pre/key", bytes.NewReader(data2), store.PutOptions{SHA256: SHA256Hex(data2), Size: size, Precondition: store.Precondition{IfMatch: wrong}})
	WantCode(t, "put if-match a stale ETag", err, store.CodePrecondition)

	if got := ReadAll(t, s, "pre/key"); !bytes.Equal(got, data) {
		t.Fatalf("a refused write changed the object")
	}
	second := Put(t, s, "pre/key", data2, store.PutOptions{Precondition: store.Precondition{IfMatch: first.ETag}})
	if second.ETag == first.ETag && size > 0 {
		t.Fatalf("replace kept ETag %s", first.ETag)
	}
	_, err = s.Put(ctx(t), "pre/key", bytes.NewReader(data), store.PutOptions{SHA256: SHA256Hex(data), Size: size, Precondition: store.Precondition{IfMatch: first.ETag}})
	WantCode(t, "put if-match the previous ETag", err, store.CodePrecondition)

	_, err = s.Put(ctx(t), "pre/missing", bytes.NewReader(data), store.PutOptions{SHA256: SHA256Hex(data), Size: size, Precondition: store.Precondition{IfMatch: first.ETag}})
	WantCode(t, "put if-match on a missing key", err, store.CodePrecondition)
	if _, err := s.Stat(ctx(t), "pre/missing"); !store.IsNotFound(err) {
		t.Fatalf("refused if-match put on a missing key created it: %v", err)
	}
	if got := ReadAll(t, s, "pre/key"); !bytes.Equal(got, data2) {
		t.Fatalf("object is not the second version")
	}
}

func testCopy(t *testing.T, s store.Store, size int64) {
	const seed = 7
	sum := StreamSHA256(seed, size)
	if _, err := s.Put(ctx(t), "src/obj.bin", Stream(seed, size), store.PutOptions{SHA256: sum, Size: size, SourceVersion: "v1", Metadata: map[string]string{"team": "a"}}); err != nil {
		t.Fatal(err)
	}
	obj, err := s.Copy(ctx(t), "dst/same.bin", "src/obj.bin", store.CopyOptions{})
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	if obj.Size != size || obj.ETag == "" {
		t.Fatalf("copy returned %+v", obj)
	}
	a, err := s.Stat(ctx(t), "dst/same.bin")
	if err != nil || a.SHA256 != sum || a.SourceVersion != "v1" || a.Metadata["team"] != "a" {
		t.Fatalf("copy kept no metadata: %+v %v", a, err)
	}
	if got := SHA256Hex(ReadAll(t, s, "dst/same.bin")); got != sum {
		t.Fatalf("copied bytes differ")
	}
	newAttrs := &store.Attributes{ContentType: "text/csv", SHA256: sum, SourceVersion: "v2", SourceSize: size, Metadata: map[string]string{"team": "b"}}
	if _, err := s.Copy(ctx(t), "dst/replaced.csv", "src/obj.bin", store.CopyOptions{Attributes: newAttrs, Precondition: store.Precondition{IfNoneMatch: true}}); err != nil {
		t.Fatalf("copy with new attributes: %v", err)
	}
	a, err = s.Stat(ctx(t), "dst/replaced.csv")
	if err != nil || a.ContentType != "text/csv" || a.SourceVersion != "v2" || a.Metadata["team"] != "b" || a.SHA256 != sum || a.Size != size {
		t.Fatalf("copy did not replace attributes: %+v %v", a, err)
	}
	_, err = s.Copy(ctx(t), "dst/replaced.csv", "src/obj.bin", store.CopyOptions{Precondition: store.Precondition{IfNoneMatch: true}})
	WantCode(t, "create-only copy over an existing key", err, store.CodePrecondition)
	_, err = s.Copy(ctx(t), "dst/replaced.csv", "src/obj.bin", store.CopyOptions{Precondition: store.Precondition{IfMatch: "\"stale-etag\""}})
	WantCode(t, "copy if-match a stale ETag", err, store.CodePrecondition)
	if _, err := s.Copy(ctx(t), "dst/replaced.csv", "src/obj.bin", store.CopyOptions{Precondition: store.Precondition{IfMatch: a.ETag}}); err != nil {
		t.Fatalf("copy if-match the current ETag: %v", err)
	}
	_, err = s.Copy(ctx(t), "dst/x", "src/missing", store.CopyOptions{})
	WantCode(t, "copy of a missing source", err, store.CodeNotFound)
}

// testCacheControlAndTags: what a bucket source carries besides metadata comes back
// from Stat after a put, a copy that keeps the source's attributes, and a copy that
// replaces them.
func testCacheControlAndTags(t *testing.T, s store.Store, size int64) {
	const seed = 11
	sum := StreamSHA256(seed, size)
	tags := map[string]string{"project": "atlas", "retention": "7y"}
	if _, err := s.Put(ctx(t), "tagged/obj.bin", Stream(seed, size), store.PutOptions{SHA256: sum, Size: size,
		CacheControl: "max-age=3600", Tags: tags}); err != nil {
		t.Fatal(err)
	}
	check := func(key, cacheControl string, tags map[string]string) {
		t.Helper()
		a, err := s.Stat(ctx(t), key)
		if err != nil {
			t.Fatal(err)
		}
		if a.CacheControl != cacheControl || !maps.Equal(a.Tags, tags) {
			t.Errorf("%s: cache control %q, tags %v; want %q, %v", key, a.CacheControl, a.Tags, cacheControl, tags)
		}
		if _, ok := a.Metadata[store.MetaTags]; ok {
			t.Errorf("%s: tags leak into user metadata: %v", key, a.Metadata)
		}
	}
	check("tagged/obj.bin", "max-age=3600", tags)
	if _, err := s.Copy(ctx(t), "tagged/kept.bin", "tagged/obj.bin", store.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	check("tagged/kept.bin", "max-age=3600", tags)
	other := map[string]string{"project": "borealis"}
	if _, err := s.Copy(ctx(t), "tagged/replaced.bin", "tagged/obj.bin", store.CopyOptions{Attributes: &store.Attributes{
		SHA256: sum, SourceSize: size, CacheControl: "no-cache", Tags: other}}); err != nil {
		t.Fatal(err)
	}
	check("tagged/replaced.bin", "no-cache", other)
	Put(t, s, "tagged/plain.txt", []byte("no tags"), store.PutOptions{})
	check("tagged/plain.txt", "", nil)
}

func testDelete(t *testing.T, s store.Store) {
	Put(t, s, "del/a.txt", []byte("a"), store.PutOptions{})
	if err := s.Delete(ctx(t), "del/a.txt", store.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err := s.Stat(ctx(t), "del/a.txt")
	WantCode(t, "stat after delete", err, store.CodeNotFound)
	if err := s.Delete(ctx(t), "del/a.txt", store.DeleteOptions{}); err != nil {
		t.Fatalf("delete of a missing key must succeed: %v", err)
	}
	if err := s.Delete(ctx(t), "never/existed", store.DeleteOptions{}); err != nil {
		t.Fatalf("delete of a never-existing key must succeed: %v", err)
	}
}

// testDeleteIfMatch checks conditional deletes: the current ETag deletes, a stale one
// (the object's previous version) or one the store never issued fails
// CodePrecondition and leaves the object whole, and a missing key succeeds whatever
// the ETag, so that a retried delete whose answer was lost does not fail.
func testDeleteIfMatch(t *testing.T, s store.Store) {
	v1 := Put(t, s, "cdel/a.txt", []byte("version one"), store.PutOptions{})
	v2 := Put(t, s, "cdel/a.txt", []byte("version two!"), store.PutOptions{})
	if v1.ETag == v2.ETag {
		t.Fatalf("two versions share ETag %s", v1.ETag)
	}
	err := s.Delete(ctx(t), "cdel/a.txt", store.DeleteOptions{IfMatch: v1.ETag})
	WantCode(t, "delete if-match the previous version's ETag", err, store.CodePrecondition)
	err = s.Delete(ctx(t), "cdel/a.txt", store.DeleteOptions{IfMatch: "\"0123456789abcdef0123456789abcdef\""})
	WantCode(t, "delete if-match an ETag never issued", err, store.CodePrecondition)
	if got := string(ReadAll(t, s, "cdel/a.txt")); got != "version two!" {
		t.Fatalf("a refused delete changed the object: read %q", got)
	}
	if a, err := s.Stat(ctx(t), "cdel/a.txt"); err != nil || a.ETag != v2.ETag {
		t.Fatalf("after a refused delete: stat = %+v, %v; want ETag %s", a, err, v2.ETag)
	}
	if err := s.Delete(ctx(t), "cdel/a.txt", store.DeleteOptions{IfMatch: v2.ETag}); err != nil {
		t.Fatalf("delete if-match the current ETag: %v", err)
	}
	_, err = s.Stat(ctx(t), "cdel/a.txt")
	WantCode(t, "stat after a conditional delete", err, store.CodeNotFound)
	if err := s.Delete(ctx(t), "cdel/a.txt", store.DeleteOptions{IfMatch: v2.ETag}); err != nil {
		t.Fatalf("a retried conditional delete of a deleted key must succeed: %v", err)
	}
	if err := s.Delete(ctx(t), "cdel/never", store.DeleteOptions{IfMatch: v1.ETag}); err != nil {
		t.Fatalf("a conditional delete of a never-existing key must succeed: %v", err)
	}
	if got := keysOf(listAll(t, s, store.ListOptions{IncludeInternal: true})); len(got) != 0 {
		t.Fatalf("conditional deletes left %q behind", got)
	}
}

// OrderKeys expose byte-order bugs: '-' (0x2d) and '.' (0x2e) sort before '/'
// (0x2f), '0' after it, upper case before lower, and multi-byte UTF-8 last.
var OrderKeys = []string{"a/b", "a-b", "a0", "a.b", "a b", "a/b-c", "a/b.c", "a/c/d", "A", "z", "é", "a~", "ab/c"}

func testListOrder(t *testing.T, s store.Store) {
	for _, k := range OrderKeys {
		Put(t, s, k, []byte(k), store.PutOptions{})
	}
	Put(t, s, store.InternalPrefix+"staging/x", []byte("internal"), store.PutOptions{})
	want := slices.Clone(OrderKeys)
	slices.Sort(want) // Go compares strings bytewise: UTF-8 byte order.
	objs := listAll(t, s, store.ListOptions{})
	if got := keysOf(objs); !slices.Equal(got, want) {
		t.Fatalf("list order\n got %q\nwant %q", got, want)
	}
	for _, o := range objs {
		if o.Size != int64(len(o.Key)) || o.ETag == "" || o.ModTime.IsZero() {
			t.Fatalf("listing entry %+v lacks size, ETag or time", o)
		}
	}
	if got := keysOf(listAll(t, s, store.ListOptions{Prefix: "a/b"})); !slices.Equal(got, []string{"a/b", "a/b-c", "a/b.c"}) {
		t.Fatalf("list prefix a/b = %q", got)
	}
	if got := keysOf(listAll(t, s, store.ListOptions{IncludeInternal: true})); !slices.Contains(got, store.InternalPrefix+"staging/x") || !slices.IsSorted(got) {
		t.Fatalf("list with internal = %q", got)
	}
	// Stopping early must not leak or hang.
	for range s.List(ctx(t), store.ListOptions{PageSize: 2}) {
		break
	}
}

func testPagination(t *testing.T, s store.Store) {
	const n = 1100 // above every backend's default page size of 1000 (Azure: 5000 max, asked 1000)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("page/%04d/k", i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for _, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := s.Put(ctx(t), k, strings.NewReader(""), store.PutOptions{SHA256: SHA256Hex(nil), Size: 0}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := keysOf(listAll(t, s, store.ListOptions{})); !slices.Equal(got, keys) {
		t.Fatalf("default page size: listed %d keys, want %d in order", len(got), n)
	}
	if got := keysOf(listAll(t, s, store.ListOptions{Prefix: "page/00", PageSize: 7})); !slices.Equal(got, keys[:100]) {
		t.Fatalf("page size 7: listed %q", got)
	}
}

func testMismatch(t *testing.T, s store.Store, size int64, storesCutRequests bool) {
	data := bytes.Repeat([]byte("x"), int(size))
	lie := SHA256Hex([]byte("something else"))
	_, err := s.Put(ctx(t), "mm/new", bytes.NewReader(data), store.PutOptions{SHA256: lie, Size: size})
	WantCode(t, "put with a wrong SHA-256", err, store.CodeMismatch)
	_, err = s.Stat(ctx(t), "mm/new")
	WantCode(t, "stat after a refused put", err, store.CodeNotFound)

	_, err = s.Put(ctx(t), "mm/new", bytes.NewReader(data[:size-1]), store.PutOptions{SHA256: SHA256Hex(data), Size: size})
	WantCode(t, "put of a short stream", err, store.CodeMismatch)
	if storesCutRequests {
		t.Log("the server stores cut requests: the refusals are checked, not the leftovers")
		return
	}

	old := []byte("the previous version")
	Put(t, s, "mm/existing", old, store.PutOptions{})
	_, err = s.Put(ctx(t), "mm/existing", bytes.NewReader(data), store.PutOptions{SHA256: lie, Size: -1})
	WantCode(t, "put with a wrong SHA-256 over an existing key", err, store.CodeMismatch)
	if got := ReadAll(t, s, "mm/existing"); !bytes.Equal(got, old) {
		t.Fatalf("a refused put changed the previous version")
	}
	if got := keysOf(listAll(t, s, store.ListOptions{IncludeInternal: true})); !slices.Equal(got, []string{"mm/existing"}) {
		t.Fatalf("a refused put left objects behind: %q", got)
	}
}

// testFingerprinted puts streams whose SHA-256 is vouched for by a fingerprint taken
// when they were hashed (store.Fingerprinted): the right bytes are stored with their
// hash, and bytes changed since (one byte, the same length) are refused as a
// mismatch, leaving the previous version and nothing else.
func testFingerprinted(t *testing.T, s store.Store, size int64, storesCutRequests bool) {
	data := bytes.Repeat([]byte("fingerprinted "), int(size/14)+1)[:size]
	var fw store.FingerprintWriter
	fw.Write(data)
	sum := SHA256Hex(data)
	obj, err := s.Put(ctx(t), "fp/good", store.NewFingerprinted(bytes.NewReader(data), sum, fw.Sum()), store.PutOptions{SHA256: sum, Size: size})
	if err != nil {
		t.Fatalf("put of a fingerprinted stream: %v", err)
	}
	if got := ReadAll(t, s, "fp/good"); !bytes.Equal(got, data) || obj.Size != size {
		t.Fatalf("stored %d bytes (object says %d), want the %d put", len(got), obj.Size, size)
	}
	if a, err := s.Stat(ctx(t), "fp/good"); err != nil || a.SHA256 != sum {
		t.Fatalf("stat: %+v, %v; want SHA-256 %s", a, err, sum)
	}

	changed := bytes.Clone(data)
	changed[size/2] ^= 1 // written after the hash pass
	_, err = s.Put(ctx(t), "fp/new", store.NewFingerprinted(bytes.NewReader(changed), sum, fw.Sum()), store.PutOptions{SHA256: sum, Size: size})
	WantCode(t, "put of bytes changed since they were fingerprinted", err, store.CodeMismatch)
	if storesCutRequests {
		t.Log("the server stores cut requests: the refusal is checked, not the leftovers")
		return
	}
	_, err = s.Stat(ctx(t), "fp/new")
	WantCode(t, "stat after a refused put", err, store.CodeNotFound)
	_, err = s.Put(ctx(t), "fp/good", store.NewFingerprinted(bytes.NewReader(changed), sum, fw.Sum()), store.PutOptions{SHA256: sum, Size: -1})
	WantCode(t, "refused put over an existing key", err, store.CodeMismatch)
	if got := ReadAll(t, s, "fp/good"); !bytes.Equal(got, data) {
		t.Fatal("a refused put changed the previous version")
	}
	if got := keysOf(listAll(t, s, store.ListOptions{IncludeInternal: true})); !slices.Equal(got, []string{"fp/good"}) {
		t.Fatalf("a refused put left objects behind: %q", got)
	}
}

// InvalidKeys are refused by every driver before any request.
var InvalidKeys = []string{"", "/abs", "../escape", "a/../../b", "a//b", "dir/", "./a", "bad\xffutf8", "nul\x00byte", strings.Repeat("k", store.MaxKeyBytes+1)}

func testInvalidKeys(t *testing.T, s store.Store) {
	for _, key := range InvalidKeys {
		_, err := s.Put(ctx(t), key, strings.NewReader("x"), store.PutOptions{SHA256: SHA256Hex([]byte("x")), Size: 1})
		WantCode(t, fmt.Sprintf("put %q", key), err, store.CodeInvalid)
		_, err = s.Stat(ctx(t), key)
		WantCode(t, fmt.Sprintf("stat %q", key), err, store.CodeInvalid)
	}
}

func testErrorClasses(t *testing.T, h Harness) {
	s := h.NewAt(t, UniquePrefix(t))
	defer s.Close()
	_, err := s.Stat(ctx(t), "missing")
	WantCode(t, "stat of a missing key", err, store.CodeNotFound)
	_, err = s.Open(ctx(t), "missing", 0)
	WantCode(t, "open of a missing key", err, store.CodeNotFound)

	if h.MissingLocation != nil {
		m := h.MissingLocation(t)
		defer m.Close()
		WantCode(t, "check of a missing location", m.Check(ctx(t)), store.CodePermission)
		_, err := m.Put(ctx(t), "k", strings.NewReader("x"), store.PutOptions{SHA256: SHA256Hex([]byte("x")), Size: 1})
		WantCode(t, "put into a missing location", err, store.CodePermission)
		var se *store.Error
		if errors.As(err, &se) && se.Hint == "" {
			t.Errorf("missing-location error has no hint: %v", err)
		}
		for _, err := range m.List(ctx(t), store.ListOptions{}) {
			WantCode(t, "list of a missing location", err, store.CodePermission)
		}
	}
	if h.BadCredentials != nil {
		b := h.BadCredentials(t)
		defer b.Close()
		_, err := b.Put(ctx(t), "k", strings.NewReader("x"), store.PutOptions{SHA256: SHA256Hex([]byte("x")), Size: 1})
		WantCode(t, "put with refused credentials", err, store.CodePermission)
		_, err = b.Stat(ctx(t), "k")
		WantCode(t, "stat with refused credentials", err, store.CodePermission)
	}
	if h.Unreachable != nil {
		u := h.Unreachable(t)
		defer u.Close()
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := u.Stat(c, "k")
		WantCode(t, "stat on an unreachable endpoint", err, store.CodeTransient)
	}
}

// NameCases are names that some store keeps under another name (decoding, trimming,
// normalising, splitting them) or refuses. Every driver must either store each one
// and list it back byte for byte, or refuse it up front (store.CheckKey) with
// CodeInvalid before any request.
var NameCases = []struct{ Name, Key string }{
	{"backslash", "back\\slash.txt"},
	{"backslash segment", "dir\\/file.txt"},
	{"trailing dot", "trailing-dot."},
	{"trailing dot in a directory", "dir./file.txt"},
	{"two trailing dots", "dots../f"},
	{"trailing slash", "folder/"},
	{"percent", "100%.txt"},
	{"percent-encoded slash", "a%2Fb.txt"},
	{"percent-encoded space", "a%20b.txt"},
	{"plus", "a+b.txt"},
	{"question mark", "what?.txt"},
	{"hash", "issue#12.txt"},
	{"spaces at both ends", " both ends .txt "},
	{"space-only segment", " /x.txt"},
	{"leading space", " lead.txt"},
	{"trailing space", "trail.txt "},
	{"NFC", "caf\u00e9.txt"},
	{"NFD", "cafe\u0301.txt"},
	{"234-byte segment", "long0/" + strings.Repeat("n", 234)},
	{"255-byte segment", "long/" + strings.Repeat("n", 255)},
	{"255-byte multi-byte segment", "long2/" + strings.Repeat("\u00e9", 127) + "x"},
	{"256-byte segment", "long3/" + strings.Repeat("n", 256)},
	{"newline", "new\nline.txt"},
	{"carriage return", "cr\r.txt"},
	{"tab", "tab\t.txt"},
	{"asterisk and brackets", "glob*[1].txt"},
	{"colon and pipes", "c:|<>\".txt"},
	{"above U+FFFF", "\U0001F600.txt"},
	{"U+FFFD", "\uFFFD.txt"},
	{"non-character U+FFFF", "\uFFFF.txt"},
	{"bidi override", "\u202Etxt.exe"},
	{"zero-width joiner", "a\u200db.txt"},
	{"tilde and dollar", "~$lock.docx"},
	{"well-known", ".well-known/acme-challenge/token"},
	{"254 segments", strings.Repeat("s/", 253) + "f"},
	{"255 segments", strings.Repeat("t/", 254) + "f"},
}

func testNames(t *testing.T, s store.Store, utf16Order bool) {
	var stored []string
	for i, c := range NameCases {
		data := []byte(fmt.Sprintf("name %d", i))
		refused := store.CheckKey(s, c.Key)
		_, err := s.Put(ctx(t), c.Key, bytes.NewReader(data), store.PutOptions{SHA256: SHA256Hex(data), Size: int64(len(data))})
		if refused != nil {
			WantCode(t, fmt.Sprintf("%s: put %q, refused up front (%v)", c.Name, c.Key, refused), err, store.CodeInvalid)
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", c.Key)) {
				t.Errorf("%s: the refusal does not name the key: %v", c.Name, err)
			}
			t.Logf("%s: refused: %v", c.Name, refused)
			continue
		}
		if err != nil {
			t.Errorf("%s: put %q: %v (a key the store cannot hold must be refused by store.CheckKey)", c.Name, c.Key, err)
			continue
		}
		stored = append(stored, c.Key)
		a, err := s.Stat(ctx(t), c.Key)
		if err != nil || a.Key != c.Key || a.Size != int64(len(data)) {
			t.Errorf("%s: stat %q = %+v, %v", c.Name, c.Key, a, err)
			continue
		}
		if got := ReadAll(t, s, c.Key); !bytes.Equal(got, data) {
			t.Errorf("%s: %q reads %q, want %q", c.Name, c.Key, got, data)
		}
	}
	slices.Sort(stored)
	for _, key := range stored {
		// Each name is listed back as it was stored, by a listing of its prefix.
		got := keysOf(listAll(t, s, store.ListOptions{Prefix: key}))
		if !slices.Contains(got, key) {
			t.Errorf("list of prefix %q = %q, want it to hold that key", key, got)
		}
		for _, k := range got {
			if !slices.Contains(stored, k) {
				t.Errorf("list of prefix %q yields %q, which was never stored", key, k)
			}
		}
	}
	if utf16Order {
		t.Log("the server lists in UTF-16 order: the names were listed one by one")
	} else if got := keysOf(listAll(t, s, store.ListOptions{IncludeInternal: true})); !slices.Equal(got, stored) {
		t.Errorf("list = %q\nwant   %q", got, stored)
	}
	for _, key := range stored {
		if err := s.Delete(ctx(t), key, store.DeleteOptions{}); err != nil {
			t.Errorf("delete %q: %v", key, err)
		}
	}
	if got := listAll(t, s, store.ListOptions{IncludeInternal: true}); len(got) != 0 {
		t.Errorf("after deletes list = %q", keysOf(got))
	}
}
