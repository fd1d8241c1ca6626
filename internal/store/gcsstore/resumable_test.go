package gcsstore

import (
	"net/http"
	"testing"
)

// TestHeldBytes reads what a 308 says the server holds: GCS's Range header is
// inclusive, and a 308 without one means nothing is stored yet.
func TestHeldBytes(t *testing.T) {
	for r, want := range map[string]int64{"": 0, "bytes=0-0": 1, "bytes=0-262143": 262144, "bytes=0-5368709119": 5 << 30} {
		resp := &http.Response{Header: http.Header{}}
		if r != "" {
			resp.Header.Set("Range", r)
		}
		got, err := heldBytes(resp)
		if err != nil || got != want {
			t.Errorf("Range %q: %d, %v; want %d", r, got, err, want)
		}
	}
	for _, bad := range []string{"bytes=1-5", "bytes=0-", "0-5", "bytes=0-x"} {
		resp := &http.Response{Header: http.Header{"Range": {bad}}}
		if _, err := heldBytes(resp); err == nil {
			t.Errorf("Range %q accepted", bad)
		}
	}
}

func TestChunkSizeIsAligned(t *testing.T) {
	for part, want := range map[int64]int64{1: chunkAlign, chunkAlign: chunkAlign, 5 << 20: 5 << 20, 5<<20 + 1: 5<<20 + chunkAlign} {
		if got := (&gcsStore{partSize: part}).chunkSize(); got != want {
			t.Errorf("part size %d: chunk %d, want %d", part, got, want)
		}
	}
}

func TestCRC32CString(t *testing.T) {
	// GCS's documented example: CRC-32C of "hello world" is yZRlqg==.
	c := crc32cOf([]byte("hello world"))
	if s := crc32cString(c); s != "yZRlqg==" {
		t.Fatalf("crc32c of hello world as GCS writes it: %s", s)
	}
	if back, err := parseCRC32C("yZRlqg=="); err != nil || back != c {
		t.Fatalf("parse: %x %v", back, err)
	}
	if _, err := parseCRC32C("AAAA"); err == nil {
		t.Fatal("3 bytes accepted as a CRC-32C")
	}
}

func TestUploadBase(t *testing.T) {
	for _, c := range []struct{ hint, explicit, want string }{
		{"https://storage.googleapis.com", "", "https://storage.googleapis.com/upload/storage/v1/"},
		{"STORAGE_EMULATOR_HOST=127.0.0.1:4443", "", "http://127.0.0.1:4443/upload/storage/v1/"},
		{"STORAGE_EMULATOR_HOST=http://h:1/", "", "http://h:1/upload/storage/v1/"},
		{"", "http://h:2", "http://h:2/upload/storage/v1/"},
		{"", "https://private.googleapis.com/storage/v1/", "https://private.googleapis.com/upload/storage/v1/"},
	} {
		if got := uploadBase(c.hint, c.explicit); got != c.want {
			t.Errorf("uploadBase(%q, %q) = %q, want %q", c.hint, c.explicit, got, c.want)
		}
	}
}
