package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// Verifier wraps a stream, hashing and counting its bytes, so a driver can refuse to
// commit an object whose bytes are not the ones the caller declared.
type Verifier struct {
	r          io.Reader
	h          hash.Hash // nil when the stream's producer hashes it (Prehashed)
	pre        Prehashed
	n          int64
	wantSHA256 string
	wantSize   int64
	sawEOF     bool
}

// NewVerifier returns a Verifier over r expecting the hex SHA-256 want and size (-1
// when unknown).
// Over a Prehashed stream of the same SHA-256 it only counts and leaves the hash to
// the stream's producer, which hashed the bytes once for every reader of them.
func NewVerifier(r io.Reader, wantSHA256 string, wantSize int64) *Verifier {
	want := strings.ToLower(wantSHA256)
	v := &Verifier{r: r, wantSHA256: want, wantSize: wantSize}
	if pv, ok := r.(Prehashed); ok && want != "" && strings.ToLower(pv.SHA256()) == want {
		v.pre = pv
	} else {
		v.h = sha256.New()
	}
	return v
}

// Prehashed is a stream whose producer vouches for the SHA-256 of the bytes it hands
// out, so that one hash serves every destination that reads them. Its contract:
//   - SHA256 is the hex SHA-256 the producer expects of the whole stream;
//   - the stream returns io.EOF only after the producer has checked every byte, and
//     Verify, called after io.EOF, returns nil only if the bytes it delivered hash
//     to SHA256 (an error naming the difference otherwise). A producer shows it by
//     hashing them, by having hashed them in memory (Verified), or by their
//     Fingerprint, taken in the pass that computed the SHA-256 (Fingerprinted).
type Prehashed interface {
	io.Reader
	SHA256() string
	Verify() error
}

// Verified is content read into memory whose SHA-256 the reader computed on the way
// in, so that one read and one hash serve every destination of a small file. It is
// an io.Reader over a private view of the bytes; the bytes must not be modified.
type Verified struct {
	data   []byte
	off    int
	sha256 string
}

// NewVerified returns a reader over data, which hashes to the hex SHA-256 sha.
// Callers must have computed sha from data itself.
func NewVerified(data []byte, sha string) *Verified {
	return &Verified{data: data, sha256: strings.ToLower(sha)}
}

// SHA256 is the hash the bytes were read with.
func (v *Verified) SHA256() string { return v.sha256 }

// Verify is nil: the bytes were hashed when they were read into memory and cannot
// change since.
func (v *Verified) Verify() error { return nil }

// Read copies the next bytes.
func (v *Verified) Read(p []byte) (int, error) {
	if v.off >= len(v.data) {
		return 0, io.EOF
	}
	n := copy(p, v.data[v.off:])
	v.off += n
	return n, nil
}

// Read reads from the wrapped stream, hashing what it returns. Reading past the
// declared size fails at once rather than buffering an unbounded surprise.
func (v *Verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	if n > 0 {
		if v.h != nil {
			v.h.Write(p[:n])
		}
		v.n += int64(n)
		if v.wantSize >= 0 && v.n > v.wantSize {
			return n, fmt.Errorf("stream is longer than the declared %d bytes", v.wantSize)
		}
	}
	if err == io.EOF {
		v.sawEOF = true
	}
	return n, err
}

// InMemory hands over the whole stream without copying it when it is content hashed
// into memory (a *Verified nothing was read from yet) of at most limit bytes: a driver
// sends that slice instead of reading it into a buffer of its own, which for a
// file going to three destinations saves three copies and three allocations. The
// stream then counts as read to its end; the caller must not modify the bytes.
// Otherwise ok is false and nothing is consumed.
func (v *Verifier) InMemory(limit int64) (data []byte, ok bool) {
	mem, isMem := v.pre.(*Verified)
	if !isMem || mem.off != 0 || v.n != 0 || int64(len(mem.data)) > limit {
		return nil, false
	}
	mem.off = len(mem.data)
	v.n, v.sawEOF = int64(len(mem.data)), true
	return mem.data, true
}

// CRC32C returns the CRC-32C of the whole stream when it is known before the stream
// is read (a Fingerprinted stream), so that a driver can declare it to a server that
// checks it (GCS).
func (v *Verifier) CRC32C() (uint32, bool) {
	if f, ok := v.pre.(*Fingerprinted); ok {
		return f.CRC32C(), true
	}
	return 0, false
}

// BytesRead is the number of bytes read so far.
func (v *Verifier) BytesRead() int64 { return v.n }

// Verify reports, once the stream is exhausted, whether size and SHA-256 match.
func (v *Verifier) Verify() error {
	if !v.sawEOF {
		return fmt.Errorf("stream not read to its end")
	}
	if v.wantSize >= 0 && v.n != v.wantSize {
		return fmt.Errorf("stream had %d bytes, declared %d: the source changed while it was read", v.n, v.wantSize)
	}
	if v.pre != nil {
		return v.pre.Verify()
	}
	got := hex.EncodeToString(v.h.Sum(nil))
	if got != v.wantSHA256 {
		return fmt.Errorf("stream SHA-256 %s differs from the declared %s: the source changed while it was read", got, v.wantSHA256)
	}
	return nil
}

// ValidateSHA256 checks that s is a lower- or upper-case hex SHA-256.
func ValidateSHA256(s string) error {
	if len(s) != 64 {
		return fmt.Errorf("SHA-256 %q must be 64 hex digits", s)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return fmt.Errorf("SHA-256 %q is not hex", s)
	}
	return nil
}

// EncodeMetadata merges the replicator's entries into user metadata, as the map a
// driver stores. User entries named like the replicator's own are overwritten.
func EncodeMetadata(sha256Hex string, sourceSize int64, sourceVersion string, user map[string]string) map[string]string {
	m := make(map[string]string, len(user)+3)
	for k, v := range user {
		m[strings.ToLower(k)] = v
	}
	if sha256Hex != "" {
		m[MetaSHA256] = strings.ToLower(sha256Hex)
	}
	if sourceSize >= 0 {
		m[MetaSourceSize] = strconv.FormatInt(sourceSize, 10)
	}
	if sourceVersion != "" {
		m[MetaSourceVersion] = sourceVersion
	}
	return m
}

// DecodeMetadata fills a's replicator fields and user metadata from a stored map.
// Names compare case-insensitively, since backends differ in what case they return.
func DecodeMetadata(stored map[string]string, a *Attributes) {
	a.SourceSize = -1
	a.Metadata = map[string]string{}
	for k, v := range stored {
		switch strings.ToLower(k) {
		case MetaSHA256:
			a.SHA256 = strings.ToLower(v)
		case MetaSourceVersion:
			a.SourceVersion = v
		case MetaSourceSize:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				a.SourceSize = n
			}
		case MetaTags:
			a.Tags = DecodeTags(v)
		default:
			a.Metadata[strings.ToLower(k)] = v
		}
	}
}

// MetadataOf is the inverse of DecodeMetadata: the stored map for a's fields, its
// tags excluded (WithTags adds them where the backend keeps tags in metadata).
func MetadataOf(a *Attributes) map[string]string {
	return EncodeMetadata(a.SHA256, a.SourceSize, a.SourceVersion, a.Metadata)
}

// WithTags adds tags to a stored-metadata map under MetaTags, for backends whose
// objects have no tags of their own.
func WithTags(m map[string]string, tags map[string]string) map[string]string {
	if len(tags) > 0 {
		m[MetaTags] = EncodeTags(tags)
	}
	return m
}

// EncodeTags is the URL query form of tags ("k=v&k2=v2", keys sorted), "" for none.
func EncodeTags(tags map[string]string) string {
	if len(tags) == 0 {
		return ""
	}
	v := url.Values{}
	for k, t := range tags {
		v.Set(k, t)
	}
	return v.Encode()
}

// DecodeTags reads EncodeTags' form; what does not parse is dropped.
func DecodeTags(s string) map[string]string {
	v, err := url.ParseQuery(s)
	if err != nil || len(v) == 0 {
		return nil
	}
	tags := make(map[string]string, len(v))
	for k := range v {
		tags[k] = v.Get(k)
	}
	return tags
}
