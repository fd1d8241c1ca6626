package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

func shaOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestVerifierTrustsContentHashedIntoMemory(t *testing.T) {
	data := []byte("invoice 42")
	v := NewVerifier(NewVerified(data, shaOf(data)), strings.ToUpper(shaOf(data)), int64(len(data)))
	if v.h != nil {
		t.Fatal("the verifier hashes content whose digest is already known")
	}
	if got, err := io.ReadAll(v); err != nil || string(got) != string(data) {
		t.Fatalf("read %q, %v", got, err)
	}
	if err := v.Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestVerifierHashesWhenDigestsDiffer(t *testing.T) {
	data := []byte("invoice 42")
	other := shaOf([]byte("invoice 43"))
	// The caller expects another version than the one in memory: hash and refuse.
	v := NewVerifier(NewVerified(data, shaOf(data)), other, int64(len(data)))
	if v.h == nil {
		t.Fatal("the verifier trusts content hashed to another digest")
	}
	if _, err := io.ReadAll(v); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(); err == nil || !strings.Contains(err.Error(), "differs from the declared") {
		t.Fatalf("Verify = %v, want a SHA-256 mismatch", err)
	}
}

func TestVerifierCountsTrustedContent(t *testing.T) {
	data := []byte("invoice 42")
	v := NewVerifier(NewVerified(data, shaOf(data)), shaOf(data), int64(len(data))+1)
	if _, err := io.ReadAll(v); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(); err == nil || !strings.Contains(err.Error(), "declared 11") {
		t.Fatalf("Verify = %v, want a size mismatch", err)
	}
	v = NewVerifier(NewVerified(data, shaOf(data)), shaOf(data), 3)
	if _, err := io.ReadAll(v); err == nil {
		t.Fatal("a stream longer than declared was read to its end")
	}
}

// refusingStream is a Prehashed stream whose producer found other bytes.
type refusingStream struct {
	io.Reader
	sha string
}

func (r refusingStream) SHA256() string { return r.sha }
func (r refusingStream) Verify() error  { return errors.New("producer: source changed") }

func TestVerifierTakesThePrehashedStreamsVerdict(t *testing.T) {
	data := []byte("invoice 42")
	v := NewVerifier(refusingStream{strings.NewReader(string(data)), shaOf(data)}, shaOf(data), int64(len(data)))
	if v.h != nil {
		t.Fatal("the verifier hashes a stream its producer hashes")
	}
	if _, err := io.ReadAll(v); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(); err == nil || !strings.Contains(err.Error(), "producer") {
		t.Fatalf("Verify = %v, want the producer's verdict", err)
	}
}

func TestInMemoryHandsOverWithoutCopy(t *testing.T) {
	data := []byte("invoice 42")
	v := NewVerifier(NewVerified(data, shaOf(data)), shaOf(data), int64(len(data)))
	if _, ok := v.InMemory(int64(len(data)) - 1); ok {
		t.Fatal("content above the limit was handed over")
	}
	got, ok := v.InMemory(int64(len(data)))
	if !ok || &got[0] != &data[0] || len(got) != len(data) {
		t.Fatalf("InMemory = %q, %v; want the caller's own slice", got, ok)
	}
	if err := v.Verify(); err != nil {
		t.Fatalf("Verify after InMemory: %v", err)
	}
	if _, ok := v.InMemory(100); ok {
		t.Fatal("the content was handed over twice")
	}

	// A stream that is not hashed into memory, or was partly read, is read as usual.
	if _, ok := NewVerifier(strings.NewReader("x"), shaOf([]byte("x")), 1).InMemory(100); ok {
		t.Fatal("a plain stream was handed over as in memory")
	}
	v = NewVerifier(NewVerified(data, shaOf(data)), shaOf(data), int64(len(data)))
	if _, err := v.Read(make([]byte, 3)); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.InMemory(100); ok {
		t.Fatal("a partly read stream was handed over whole")
	}

	// The declared size still counts.
	v = NewVerifier(NewVerified(data, shaOf(data)), shaOf(data), 3)
	if _, ok := v.InMemory(100); !ok {
		t.Fatal("not handed over")
	}
	if err := v.Verify(); err == nil {
		t.Fatal("a size mismatch passed after InMemory")
	}
}
