package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
)

// awkwardKeys are keys the legacy newline format could not hold or that JSON could
// alter: each must read back byte for byte.
var awkwardKeys = []string{
	"plain/a.txt",
	"line\nbreak",
	"carriage\rreturn",
	"crlf\r\n",
	"\n",
	`quote"and\backslash`,
	"tab\tand\x00nul",
	"html <&> and \u2028 separators \u2029",
	"invalid \xff\xfe utf-8",
	"\xc3",                   // a truncated two-byte sequence
	"\xed\xa0\x80 surrogate", // an encoded surrogate, invalid in UTF-8
	`{"b64":"aGk="}`,         // looks like the escaped form but is a plain key
	"ünïcødé/日本語.pdf",
	"",
}

func TestKeyListRoundTripsEveryKey(t *testing.T) {
	ctx := context.Background()
	st := newState(t)
	l, err := st.WriteKeyList(ctx, "p", "awkward", slices.Values(awkwardKeys), 4)
	must(t, err)
	if l.Encoding != wire.KeyListJSONL || l.Count != len(awkwardKeys) || l.Pages != (len(awkwardKeys)+3)/4 {
		t.Fatalf("list = %+v", l)
	}
	var all []string
	for i := range l.Pages {
		page, err := st.ReadKeyPage(ctx, l, i)
		must(t, err)
		all = append(all, page...)
	}
	if !slices.Equal(all, awkwardKeys) {
		t.Fatalf("read back\n%q\nwant\n%q", all, awkwardKeys)
	}
	// The pages are named by their encoding, so old readers never misread them.
	if _, err := st.Store().Stat(ctx, "batches/p/awkward/00000000.jsonl"); err != nil {
		t.Fatalf("first page not stored as .jsonl: %v", err)
	}
	must(t, st.DeleteKeyList(ctx, l))
	if _, err := st.ReadKeyPage(ctx, l, 0); !store.IsNotFound(err) {
		t.Fatalf("page after DeleteKeyList: %v, want not found", err)
	}
}

// putPage stores a page as an older replicator would have.
func putPage(t *testing.T, st *State, name, body string) {
	t.Helper()
	sum := sha256.Sum256([]byte(body))
	_, err := st.Store().Put(context.Background(), name, strings.NewReader(body), store.PutOptions{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(body))})
	must(t, err)
}

func TestLegacyKeyListStaysReadable(t *testing.T) {
	ctx := context.Background()
	st := newState(t)
	putPage(t, st, "batches/p/old/00000000.keys", "a.txt\ndir/b c.pdf\n")
	putPage(t, st, "batches/p/old/00000001.keys", "last\n")
	// A reference as recorded in an older history: no encoding field at all.
	var l KeyList
	must(t, jsonUnmarshal(`{"prefix":"batches/p/old","page_size":2,"pages":2,"count":3}`, &l))
	if l.Encoding != wire.KeyListLegacy {
		t.Fatalf("an old reference decodes with encoding %q", l.Encoding)
	}
	var all []string
	for i := range l.Pages {
		page, err := st.ReadKeyPage(ctx, l, i)
		must(t, err)
		all = append(all, page...)
	}
	if want := []string{"a.txt", "dir/b c.pdf", "last"}; !slices.Equal(all, want) {
		t.Fatalf("legacy list read as %q, want %q", all, want)
	}
	must(t, st.DeleteKeyList(ctx, l))
	if _, err := st.Store().Stat(ctx, "batches/p/old/00000000.keys"); !store.IsNotFound(err) {
		t.Fatalf("legacy page not deleted: %v", err)
	}
}

func TestKeyPageErrors(t *testing.T) {
	ctx := context.Background()
	st := newState(t)
	putPage(t, st, "batches/p/bad/00000000.jsonl", "\"ok\"\nnot json\n")
	_, err := st.ReadKeyPage(ctx, KeyList{Prefix: "batches/p/bad", Pages: 1, Encoding: wire.KeyListJSONL}, 0)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("corrupt page: %v, want an error naming line 2", err)
	}
	putPage(t, st, "batches/p/b64/00000000.jsonl", "{\"b64\":\"%%%\"}\n")
	if _, err := st.ReadKeyPage(ctx, KeyList{Prefix: "batches/p/b64", Pages: 1, Encoding: wire.KeyListJSONL}, 0); err == nil {
		t.Fatal("invalid base64 accepted")
	}
	_, err = st.ReadKeyPage(ctx, KeyList{Prefix: "batches/p/bad", Pages: 1, Encoding: "zstd"}, 0)
	if err == nil || !strings.Contains(err.Error(), `"zstd"`) {
		t.Fatalf("unknown encoding: %v", err)
	}
}

func TestKeyLineEncoding(t *testing.T) {
	// The documented line forms (wire.KeyListJSONL), which other readers may rely on.
	for key, want := range map[string]string{
		"a\nb":      `"a\nb"` + "\n",
		"\xff":      `{"b64":"/w=="}` + "\n",
		"caf\u00e9": "\"caf\u00e9\"\n",
	} {
		var buf bytes.Buffer
		must(t, appendKeyLine(&buf, key))
		if buf.String() != want {
			t.Errorf("line of %q = %q, want %q", key, buf.String(), want)
		}
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
