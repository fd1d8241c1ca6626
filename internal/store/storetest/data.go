// Package storetest is the conformance suite every store driver must pass against a
// real server (MinIO, fake-gcs-server, Azurite, a temporary directory), plus the
// helpers its tests share: deterministic data streams and a bounded-memory check.
package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
)

// Stream returns a deterministic pseudo-random stream of size bytes for seed: the same
// bytes every time, produced on the fly so that gigabytes cost no memory.
func Stream(seed uint64, size int64) io.Reader {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	return io.LimitReader(rand.NewChaCha8(key), size)
}

// StreamSHA256 is the hex SHA-256 of Stream(seed, size).
func StreamSHA256(seed uint64, size int64) string {
	h := sha256.New()
	if _, err := io.Copy(h, Stream(seed, size)); err != nil {
		panic(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// SHA256Hex is the hex SHA-256 of b.
func SHA256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
