package azstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/cloudrepl/replicator/internal/store"
)

const testKey = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"

func newTestStore(t *testing.T, rawURL, env string) *blobStore {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), store.Options{Name: "az", URL: u, Credentials: store.Credentials{AzureConnectionStringEnv: env}})
	if err != nil {
		t.Fatalf("New(%s): %v", rawURL, err)
	}
	return s.(*blobStore)
}

func TestNewParsesLocation(t *testing.T) {
	t.Setenv("AZ_CONN", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey="+testKey+";EndpointSuffix=core.windows.net")
	cases := []struct{ url, container, prefix, clientURL string }{
		{"azblob://acct/cont", "cont", "", "https://acct.blob.core.windows.net/cont"},
		{"azblob://acct/cont/", "cont", "", "https://acct.blob.core.windows.net/cont"},
		{"azblob://acct/cont/a/b/", "cont", "a/b", "https://acct.blob.core.windows.net/cont"},
		{"azblob://acct/cont/a?endpoint=http%3A%2F%2F127.0.0.1%3A10000%2Facct", "cont", "a", "http://127.0.0.1:10000/acct/cont"},
		{"azblob://acct/cont?endpoint=https://private.example/", "cont", "", "https://private.example/cont"},
	}
	for _, c := range cases {
		s := newTestStore(t, c.url, "AZ_CONN")
		if s.site.container != c.container || s.prefix != c.prefix || s.client.URL() != c.clientURL {
			t.Errorf("%s: container %q prefix %q client %q; want %q %q %q", c.url, s.site.container, s.prefix, s.client.URL(), c.container, c.prefix, c.clientURL)
		}
		if s.partSize != DefaultPartSize || s.threshold != DefaultThreshold || s.concurrency != DefaultConcurrency || s.pageSize != DefaultPageSize {
			t.Errorf("%s: tuning %d %d %d %d, want the defaults", c.url, s.partSize, s.threshold, s.concurrency, s.pageSize)
		}
	}
	// The connection string's own endpoint when the URL gives none; a SAS rides on the URL.
	t.Setenv("AZ_SAS", "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2024&sig=abc")
	s := newTestStore(t, "azblob://acct/cont/p", "AZ_SAS")
	if s.client.URL() != "https://acct.blob.core.windows.net/cont?sv=2024&sig=abc" {
		t.Errorf("SAS client URL %q", s.client.URL())
	}
	// Copy Blob's source URL must carry the SAS too.
	if got := s.client.NewBlobClient(s.blobName("a b?.txt")).URL(); got != "https://acct.blob.core.windows.net/cont/p%2Fa%20b%3F.txt?sv=2024&sig=abc" {
		t.Errorf("SAS blob URL %q", got)
	}
	t.Setenv("AZ_DEV", "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="+testKey+";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;")
	if s := newTestStore(t, "azblob://devstoreaccount1/cont", "AZ_DEV"); s.client.URL() != "http://127.0.0.1:10000/devstoreaccount1/cont" {
		t.Errorf("BlobEndpoint client URL %q", s.client.URL())
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Setenv("AZ_CONN", "AccountName=acct;AccountKey="+testKey)
	t.Setenv("AZ_EMPTY", "")
	t.Setenv("AZ_NOKEY", "AccountName=acct")
	t.Setenv("AZ_BADKEY", "AccountName=acct;AccountKey=not*base64")
	cases := []struct{ url, env, storageClass, want string }{
		{"s3://acct/cont", "AZ_CONN", "", "not azblob"},
		{"azblob://acct/cont?region=x", "AZ_CONN", "", "unknown URL parameter"},
		{"azblob://Acct/cont", "AZ_CONN", "", "account name"},
		{"azblob://acct/", "AZ_CONN", "", "container name"},
		{"azblob://acct/Bad_Container", "AZ_CONN", "", "container name"},
		{"azblob://acct/cont/a//b", "AZ_CONN", "", "invalid prefix"},
		{"azblob://acct/cont/a./b", "AZ_CONN", "", "invalid prefix"},
		{"azblob://acct/cont?endpoint=ftp://x", "AZ_CONN", "", "invalid endpoint"},
		{"azblob://acct/cont", "AZ_CONN", "Glacier", "access tier"},
		{"azblob://acct/cont", "AZ_EMPTY", "", "AZ_EMPTY is empty"},
		{"azblob://acct/cont", "AZ_UNSET_FOR_TEST", "", "AZ_UNSET_FOR_TEST is empty"},
		{"azblob://acct/cont", "AZ_NOKEY", "", "neither AccountKey nor SharedAccessSignature"},
		{"azblob://acct/cont", "AZ_BADKEY", "", "invalid account key"},
		{"azblob://other/cont", "AZ_CONN", "", `for account "acct" but the URL names "other"`},
		{"azblob://acct/cont?endpoint=http://127.0.0.1:10000/acct", "", "", "plain HTTP"},
	}
	for _, c := range cases {
		u, _ := url.Parse(c.url)
		_, err := New(context.Background(), store.Options{Name: "az", URL: u, StorageClass: c.storageClass,
			Credentials: store.Credentials{AzureConnectionStringEnv: c.env}})
		var se *store.Error
		if !errors.As(err, &se) || se.Code != store.CodePermission || se.Hint == "" || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s (env %s): got %v, want a configuration error with a hint about %q", c.url, c.env, err, c.want)
		}
		if strings.Contains(err.Error(), testKey) {
			t.Errorf("error leaks the account key: %v", err)
		}
	}
}

func TestAccessTier(t *testing.T) {
	t.Setenv("AZ_CONN", "AccountName=acct;AccountKey="+testKey)
	u, _ := url.Parse("azblob://acct/cont")
	s, err := New(context.Background(), store.Options{URL: u, StorageClass: "cool", Credentials: store.Credentials{AzureConnectionStringEnv: "AZ_CONN"}})
	if err != nil || s.(*blobStore).tier == nil || *s.(*blobStore).tier != "Cool" {
		t.Fatalf("tier for cool: %v", err)
	}
}

func TestKeysRefusedForAzure(t *testing.T) {
	s := &blobStore{name: "az", prefix: strings.Repeat("p", 20)}
	for _, k := range []string{"dir./file", "file.", "a/b..", strings.Repeat("k", store.MaxKeyBytes-20), `back\slash`, "x\uffff", strings.Repeat("s/", 253) + "f"} {
		if err := store.CheckKey(s, k); err == nil {
			t.Errorf("key %q accepted, want it refused", k)
		}
	}
	for _, k := range []string{"a.b", ".replicator/x", "d/.hidden", strings.Repeat("k", store.MaxKeyBytes-21), "x\ufffd", strings.Repeat("s/", 252) + "f"} {
		if err := store.CheckKey(s, k); err != nil {
			t.Errorf("key %q refused: %v", k, err)
		}
	}
}

func TestMetadataNames(t *testing.T) {
	stored := store.EncodeMetadata(strings.Repeat("ab", 32), 12, "etag-1:gen-2", map[string]string{
		"customer": "acme", "eu-west": "x", "1st": "y", "Mixed.Case": "z", "日本": "w",
		"replicator_sha256": "user value that must lose",
	})
	az := toAzureMetadata(stored)
	for name := range az {
		for i, c := range name {
			ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9'
			if !ok {
				t.Fatalf("metadata name %q is not a C# identifier", name)
			}
		}
	}
	if *az["replicator_sha256"] != strings.Repeat("ab", 32) {
		t.Fatalf("the replicator's SHA-256 lost to a user entry: %q", *az["replicator_sha256"])
	}
	// Azure answers in whatever case it likes.
	back := map[string]*string{}
	for k, v := range az {
		back[strings.ToUpper(k[:1])+k[1:]] = v
	}
	var a store.Attributes
	store.DecodeMetadata(fromAzureMetadata(back), &a)
	if a.SHA256 != strings.Repeat("ab", 32) || a.SourceSize != 12 || a.SourceVersion != "etag-1:gen-2" {
		t.Fatalf("replicator fields = %+v", a)
	}
	want := map[string]string{"customer": "acme", "eu_west": "x", "_1st": "y", "mixed_case": "z", "______": "w"}
	if len(a.Metadata) != len(want) {
		t.Fatalf("user metadata = %v, want %v", a.Metadata, want)
	}
	for k, v := range want {
		if a.Metadata[k] != v {
			t.Fatalf("user metadata = %v, want %v", a.Metadata, want)
		}
	}
}

func TestMetadataValues(t *testing.T) {
	for _, v := range []string{"", "plain ascii", "eu-west", "日本語", " padded ", "tab\there", "line\nbreak", "=?UTF-8?B?Zm9v?=", "a=?b"} {
		enc := encodeValue(v)
		for i := 0; i < len(enc); i++ {
			if enc[i] < 0x20 || enc[i] > 0x7e {
				t.Fatalf("encoded %q = %q is not printable ASCII", v, enc)
			}
		}
		if enc != strings.TrimSpace(enc) {
			t.Fatalf("encoded %q = %q has blanks HTTP would trim", v, enc)
		}
		if got := decodeValue(enc); got != v {
			t.Fatalf("round trip of %q gave %q (stored %q)", v, got, enc)
		}
	}
	if decodeValue("=?broken") != "=?broken" {
		t.Fatal("a value that is no encoded word must come back as stored")
	}
}

func TestETagToken(t *testing.T) {
	for in, want := range map[string]string{`0x8DC`: `"0x8DC"`, `"0x8DC"`: `"0x8DC"`, `W/"x"`: `W/"x"`, "": ""} {
		e := azcore.ETag(in)
		if got := etagToken(&e); got != want {
			t.Errorf("etagToken(%q) = %q, want %q", in, got, want)
		}
	}
	if etagToken(nil) != "" {
		t.Error("nil ETag")
	}
}

func TestBlockIDs(t *testing.T) {
	up, err := newUpload(4 << 20)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newUpload(4 << 20)
	a, b := md5.Sum([]byte("a")), md5.Sum([]byte("b"))
	seen := map[string]bool{}
	for _, off := range []int64{0, 4 << 20, 999 * 4 << 20, maxBlocks * maxBlockSize} {
		for _, sum := range [][md5.Size]byte{a, b} {
			id := up.blockID(off, sum)
			// All IDs of a blob must have one length; 64 bytes at most before base64.
			if len(id) != 64 || seen[id] || id == other.blockID(off, sum) {
				t.Fatalf("block ID %q at offset %d: want 64 characters, unique per upload, offset and bytes", id, off)
			}
			raw, err := base64.StdEncoding.DecodeString(id)
			if err != nil || len(raw) > 64 || !bytes.HasPrefix(raw, []byte(up.id)) {
				t.Fatalf("block ID %q does not decode to the upload ID and at most 64 bytes: %v", id, err)
			}
			seen[id] = true
		}
	}
	if up.blockID(7, a) != up.blockID(7, a) {
		t.Fatal("block IDs must be deterministic for an upload, offset and content")
	}
}

func TestPartSizeFor(t *testing.T) {
	s := &blobStore{partSize: 16 << 20}
	if got := s.partSizeFor(1 << 30); got != 16<<20 {
		t.Errorf("1 GiB: part %d", got)
	}
	if got := s.partSizeFor(-1); got != 16<<20 {
		t.Errorf("unknown size: part %d", got)
	}
	big := int64(2) << 40 // 2 TiB needs parts above 16 MiB
	got := s.partSizeFor(big)
	if got%(1<<20) != 0 || (big+got-1)/got > maxBlocks {
		t.Errorf("2 TiB: part %d gives %d blocks", got, (big+got-1)/got)
	}
}

func TestReadHead(t *testing.T) {
	data := []byte(strings.Repeat("0123456789", 300_000)) // 3 MB, above the 1 MiB first read
	cases := []struct {
		n, limit, hint int64
		wantLen        int
		wantEnded      bool
	}{
		{0, 11, 0, 0, true},
		{0, 11, -1, 0, true},
		{10, 11, 10, 10, true},
		{11, 11, 10, 11, false}, // longer than declared: not ended, the verifier decides
		{12, 11, -1, 11, false},
		{2_500_000, 3_000_001, -1, 2_500_000, true},
		{3_000_000, 2_000_001, -1, 2_000_001, false},
		{3_000_000, 3_000_001, 3_000_000, 3_000_000, true},
	}
	for _, c := range cases {
		got, ended, err := readHead(strings.NewReader(string(data[:c.n])), c.limit, c.hint)
		if err != nil || len(got) != c.wantLen || ended != c.wantEnded || string(got) != string(data[:len(got)]) {
			t.Errorf("readHead(%d bytes, limit %d, hint %d) = %d bytes, ended %v, %v; want %d, %v", c.n, c.limit, c.hint, len(got), ended, err, c.wantLen, c.wantEnded)
		}
	}
}
