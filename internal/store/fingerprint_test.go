package store

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func fingerprintOf(b []byte) Fingerprint {
	var w FingerprintWriter
	w.Write(b)
	return w.Sum()
}

func TestFingerprintRoundTripsAndSeesOneBit(t *testing.T) {
	data := bytes.Repeat([]byte("invoice 2026-12 "), 4096)
	f := fingerprintOf(data)
	p, err := ParseFingerprint(f.String())
	if err != nil || p != f || len(f.String()) != 16 {
		t.Fatalf("round trip of %s: %v, %v", f, p, err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("z", 16), strings.Repeat("0", 18)} {
		if _, err := ParseFingerprint(bad); err == nil {
			t.Errorf("ParseFingerprint(%q) accepted", bad)
		}
	}
	for _, i := range []int{0, len(data) / 2, len(data) - 1} {
		changed := bytes.Clone(data)
		changed[i] ^= 0x80
		if fingerprintOf(changed) == f {
			t.Errorf("a flipped bit at %d keeps the fingerprint", i)
		}
	}
	var split FingerprintWriter // written in pieces, as a stream is
	split.Write(data[:7])
	split.Write(data[7:])
	if split.Sum() != f {
		t.Fatal("the fingerprint depends on how the bytes were cut")
	}
}

func TestFingerprintedVerifiesWhatItDelivered(t *testing.T) {
	data := []byte("the bytes that were hashed")
	sha := "ab" + strings.Repeat("0", 62)
	fr := NewFingerprinted(bytes.NewReader(data), sha, fingerprintOf(data))
	v := NewVerifier(fr, sha, int64(len(data)))
	if crc, ok := v.CRC32C(); !ok || crc != fingerprintOf(data).CRC32C {
		t.Fatalf("CRC32C known before reading = %x, %v", crc, ok)
	}
	if _, err := io.Copy(io.Discard, v); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(); err != nil {
		t.Fatalf("the same bytes: %v", err)
	}

	changed := bytes.Clone(data)
	changed[3] = 'X'
	v = NewVerifier(NewFingerprinted(bytes.NewReader(changed), sha, fingerprintOf(data)), sha, int64(len(data)))
	if _, err := io.Copy(io.Discard, v); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(); err == nil || !strings.Contains(err.Error(), "changed while it was read") {
		t.Fatalf("changed bytes: %v", err)
	}
	// A fingerprint stands for one SHA-256: a put declaring another hashes itself.
	other := strings.Repeat("c", 64)
	v = NewVerifier(NewFingerprinted(bytes.NewReader(data), sha, fingerprintOf(data)), other, -1)
	if _, ok := v.CRC32C(); ok {
		t.Fatal("a Verifier for another SHA-256 took the fingerprint's word")
	}
	io.Copy(io.Discard, v)
	if err := v.Verify(); err == nil {
		t.Fatal("bytes of another SHA-256 passed")
	}
}
