package replica

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
)

// hashCacheMinSize is the size from which a version's SHA-256 is cached: below it,
// hashing the file again costs less than reading and writing a cache record.
const hashCacheMinSize = 4 << 20

// SourceOf is what the source's attributes say of the version, all but its SHA-256.
// Empty metadata is nil, so that histories do not depend on how a driver returns none.
func SourceOf(attrs *store.Attributes) wire.SourceVersion {
	sv := wire.SourceVersion{Exists: true, Version: VersionOf(attrs.Object), Size: attrs.Size, ModTime: attrs.ModTime,
		ContentType: attrs.ContentType, Metadata: attrs.Metadata, CacheControl: attrs.CacheControl, Tags: attrs.Tags}
	if len(sv.Metadata) == 0 {
		sv.Metadata = nil
	}
	if len(sv.Tags) == 0 {
		sv.Tags = nil
	}
	return sv
}

// Prepare states the source key and finds its version's SHA-256 before any byte
// moves (DESIGN section 4, hash first): from the source's own replicator metadata,
// the hash cache keyed by version, or one read, which also takes the fingerprint
// that later streams are checked against. A missing key is a version with Exists
// false. wrap, when set, wraps the read (the activity's progress heartbeats).
func (e *Engine) Prepare(ctx context.Context, policy string, src store.Store, key string, wrap func(io.Reader) io.Reader) (wire.SourceVersion, error) {
	attrs, err := src.Stat(ctx, key)
	if store.IsNotFound(err) {
		return wire.SourceVersion{}, nil
	}
	if err != nil {
		return wire.SourceVersion{}, err
	}
	sv := SourceOf(attrs)
	if attrs.SHA256 != "" && attrs.SourceSize == attrs.Size {
		// A bucket source written by the replicator carries its hash.
		sv.SHA256 = attrs.SHA256
		return sv, nil
	}
	useCache := sv.Size >= hashCacheMinSize
	if useCache {
		cached, err := e.State.CachedHash(ctx, policy, key, sv.Version)
		if err != nil {
			return wire.SourceVersion{}, err
		}
		if cached != nil {
			sv.SHA256, sv.Fingerprint = cached.SHA256, cached.Fingerprint
			return sv, nil
		}
	}
	r, err := src.Open(ctx, key, 0)
	if store.IsNotFound(err) {
		return wire.SourceVersion{}, nil
	}
	if err != nil {
		return wire.SourceVersion{}, err
	}
	defer r.Close()
	var in io.Reader = r
	if wrap != nil {
		in = wrap(r)
	}
	h := sha256.New()
	var fp store.FingerprintWriter
	n, err := io.Copy(io.MultiWriter(h, &fp), in)
	if err != nil {
		return wire.SourceVersion{}, fmt.Errorf("hash %s: %w", key, err)
	}
	if n != sv.Size {
		return wire.SourceVersion{}, &Failure{Type: wire.ErrSourceChanged,
			Msg: fmt.Sprintf("source %s changed while it was hashed (%d bytes read, %d stated)", key, n, sv.Size)}
	}
	sv.SHA256, sv.Fingerprint = hex.EncodeToString(h.Sum(nil)), fp.Sum().String()
	if useCache {
		if err := e.State.CacheHash(ctx, policy, key, state.HashEntry{Version: sv.Version, SHA256: sv.SHA256, Fingerprint: sv.Fingerprint}); err != nil {
			return wire.SourceVersion{}, err
		}
	}
	return sv, nil
}

// ReadSmall reads a source version of at most size bytes (as stated in attrs) into
// memory and hashes it, so that one read serves every destination. A write during the
// read would tear the snapshot, so the source is stated again after it: a changed
// version is a changed source (wire.ErrSourceChanged). A key gone meanwhile is a
// version with Exists false.
func ReadSmall(ctx context.Context, src store.Store, key string, attrs *store.Attributes) (wire.SourceVersion, []byte, error) {
	r, err := src.Open(ctx, key, 0)
	if store.IsNotFound(err) {
		return wire.SourceVersion{}, nil, nil
	}
	if err != nil {
		return wire.SourceVersion{}, nil, err
	}
	data := make([]byte, attrs.Size+1)
	n, err := io.ReadFull(r, data)
	r.Close()
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return wire.SourceVersion{}, nil, fmt.Errorf("read %s: %w", key, err)
	}
	after, serr := src.Stat(ctx, key)
	if int64(n) != attrs.Size || serr != nil || VersionOf(after.Object) != VersionOf(attrs.Object) {
		return wire.SourceVersion{}, nil, &Failure{Type: wire.ErrSourceChanged,
			Msg: fmt.Sprintf("source %s changed while it was read (%d bytes read, %d stated)", key, n, attrs.Size)}
	}
	data = data[:n]
	sum := sha256.Sum256(data)
	sv := SourceOf(attrs)
	sv.SHA256 = hex.EncodeToString(sum[:])
	return sv, data, nil
}
