package s3store

import (
	"net/url"
	"testing"

	"github.com/cloudrepl/replicator/internal/store"
)

func TestParseOptions(t *testing.T) {
	parse := func(raw string, mod func(*store.Options)) (*s3Store, error) {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		o := store.Options{Name: "dest", URL: u}
		if mod != nil {
			mod(&o)
		}
		return parseOptions(o)
	}
	s, err := parse("s3://b/a/b/?region=eu-west-1", nil)
	if err != nil || s.bucket != "b" || s.prefix != "a/b" || s.keyPrefix != "a/b/" || s.region != "eu-west-1" || s.pathStyle || s.endpoint != "" {
		t.Fatalf("AWS URL: %+v %v", s, err)
	}
	if s.partSize != DefaultPartSize || s.threshold != DefaultThreshold || s.concurrency != DefaultConcurrency ||
		s.copyThreshold != DefaultCopyThreshold || s.copyPartSize != DefaultCopyPartSize || s.pageSize != DefaultPageSize {
		t.Fatalf("defaults not applied: %+v", s)
	}
	s, err = parse("s3://b?endpoint=http://127.0.0.1:9000", nil)
	if err != nil || s.prefix != "" || s.keyPrefix != "" || !s.pathStyle || s.endpoint != "http://127.0.0.1:9000" {
		t.Fatalf("endpoint URL: %+v %v", s, err)
	}
	s, err = parse("s3://b/p?endpoint=https://rgw.example.test&path_style=false", nil)
	if err != nil || s.pathStyle {
		t.Fatalf("path_style=false: %+v %v", s, err)
	}
	for _, bad := range []struct {
		url string
		mod func(*store.Options)
	}{
		{"gs://b/p", nil},
		{"s3:///p", nil},
		{"s3://key:secret@b/p", nil},
		{"s3://b/p?regoin=eu-west-1", nil},
		{"s3://b/p?endpoint=127.0.0.1:9000", nil},
		{"s3://b/p?path_style=maybe", nil},
		{"s3://b/a//b", nil},
		{"s3://b/p", func(o *store.Options) { o.SSE = "rot13" }},
		{"s3://b/p", func(o *store.Options) { o.SSEKMSKeyID = "key" }},
		{"s3://b/p", func(o *store.Options) { o.Tuning.PartSize = 1 << 20 }},
		{"s3://b/p", func(o *store.Options) { o.Tuning.CopyThreshold = 6 << 30 }},
		{"s3://b/p", func(o *store.Options) { o.Tuning.PageSize = 5000 }},
	} {
		if _, err := parse(bad.url, bad.mod); store.CodeOf(err) != store.CodePermission || err.(*store.Error).Hint == "" {
			t.Errorf("%s: %v, want a configuration error with a hint", bad.url, err)
		}
	}
	if _, err := parse("s3://b/p", func(o *store.Options) { o.SSE = "aws:kms"; o.SSEKMSKeyID = "arn:aws:kms:k" }); err != nil {
		t.Errorf("sse aws:kms with a key: %v", err)
	}
}

func TestMetadataEncoding(t *testing.T) {
	in := map[string]string{"a": "plain", "b": "Zürich", "c": " pad ", "d": "=?UTF-8?Q?x?=", "e": ""}
	enc, err := encodeMetadata(in)
	if err != nil {
		t.Fatal(err)
	}
	if enc["a"] != "plain" || enc["e"] != "" {
		t.Errorf("ASCII values changed: %q", enc)
	}
	for k, v := range enc {
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				t.Errorf("%s = %q is not header-safe", k, v)
			}
		}
	}
	dec := decodeMetadata(enc)
	for k, v := range in {
		if dec[k] != v {
			t.Errorf("%s round-tripped to %q, want %q", k, dec[k], v)
		}
	}
	if _, err := encodeMetadata(map[string]string{"bad name": "x"}); err == nil {
		t.Error("a name with a space was accepted")
	}
}

func TestCopySourceAndETags(t *testing.T) {
	if got := copySource("b", "p/a b+c?&é~.txt"); got != "b/p/a%20b%2Bc%3F%26%C3%A9~.txt" {
		t.Errorf("copySource = %s", got)
	}
	for in, want := range map[string]string{`"abc"`: `"abc"`, "abc": `"abc"`, "": "", "*": "*", `W/"x"`: `W/"x"`} {
		if got := quoteETag(in); got != want {
			t.Errorf("quoteETag(%s) = %s, want %s", in, got, want)
		}
	}
	s := &s3Store{}
	if got := s.partSizeFor(1<<40, 16<<20); got*maxParts < 1<<40 || got%(1<<20) != 0 {
		t.Errorf("part size for 1 TiB = %d", got)
	}
	if got := s.partSizeFor(-1, 16<<20); got != 16<<20 {
		t.Errorf("part size for an unknown size = %d", got)
	}
}

func TestNewFailsWithNilStore(t *testing.T) {
	s, err := New(t.Context(), store.Options{Name: "x", URL: &url.URL{Scheme: "gs", Host: "b"}})
	if err == nil || s != nil {
		t.Fatalf("New on a bad URL = %v, %v; want a nil store and an error", s, err)
	}
}
