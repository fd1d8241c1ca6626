package s3store

import (
	"context"
	"fmt"
	"io"
	"iter"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cloudrepl/replicator/internal/store"
)

// AsOf returns a read-only view of the bucket location as it was at t, from the
// bucket's object versions (store.Versioned).
func (s *s3Store) AsOf(t time.Time) store.Store {
	return store.Checked(&asOfView{s: s, t: t})
}

// asOfView reads the versions of a versioned bucket that were current at t.
type asOfView struct {
	s *s3Store
	t time.Time
}

func (v *asOfView) Name() string {
	return v.s.name + " as of " + v.t.UTC().Format(time.RFC3339)
}

func (v *asOfView) Close() error { return nil }

// Check fails unless the bucket keeps versions: without them there is no past to read.
func (v *asOfView) Check(ctx context.Context) error {
	if err := v.s.Check(ctx); err != nil {
		return err
	}
	out, err := v.s.client.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: &v.s.bucket})
	if err != nil {
		return v.s.classify("check versioning", "", false, err)
	}
	if out.Status == "" {
		return store.Errorf(store.CodeInvalid, "check versioning", v.Name(), "",
			"turn versioning on for the bucket to restore past versions, or restore the current ones (without --as-of)",
			"bucket %s keeps no object versions", v.s.bucket)
	}
	return nil
}

// version is one entry of the bucket's version listing.
type version struct {
	key, id, etag string
	size          int64
	modTime       time.Time
	deleted       bool
}

// versions yields every version and delete marker under the full prefix, grouped by
// key in key order (S3 returns each page's versions and delete markers apart; they
// are merged by key here).
func (v *asOfView) versions(ctx context.Context, fullPrefix string) iter.Seq2[version, error] {
	return func(yield func(version, error) bool) {
		in := &s3.ListObjectVersionsInput{Bucket: &v.s.bucket, Prefix: aws.String(fullPrefix)}
		for {
			out, err := v.s.client.ListObjectVersions(ctx, in)
			if err != nil {
				yield(version{}, v.s.classify("list versions", "", false, err))
				return
			}
			vs, ms := out.Versions, out.DeleteMarkers
			for len(vs) > 0 || len(ms) > 0 {
				var e version
				if len(ms) == 0 || len(vs) > 0 && aws.ToString(vs[0].Key) <= aws.ToString(ms[0].Key) {
					e = versionOf(vs[0])
					vs = vs[1:]
				} else {
					m := ms[0]
					ms = ms[1:]
					e = version{key: aws.ToString(m.Key), id: aws.ToString(m.VersionId), modTime: aws.ToTime(m.LastModified), deleted: true}
				}
				if !yield(e, nil) {
					return
				}
			}
			if !aws.ToBool(out.IsTruncated) {
				return
			}
			in.KeyMarker, in.VersionIdMarker = out.NextKeyMarker, out.NextVersionIdMarker
		}
	}
}

func versionOf(o s3types.ObjectVersion) version {
	return version{key: aws.ToString(o.Key), id: aws.ToString(o.VersionId), etag: quoteETag(aws.ToString(o.ETag)),
		size: aws.ToInt64(o.Size), modTime: aws.ToTime(o.LastModified)}
}

// current walks the versions under fullPrefix and yields, per key, the version that
// was current at t (none when it was a delete marker or came later).
func (v *asOfView) current(ctx context.Context, fullPrefix string) iter.Seq2[version, error] {
	return func(yield func(version, error) bool) {
		var best *version
		key := ""
		emit := func() bool {
			if best != nil && !best.deleted {
				return yield(*best, nil)
			}
			return true
		}
		for e, err := range v.versions(ctx, fullPrefix) {
			if err != nil {
				yield(version{}, err)
				return
			}
			if e.key != key {
				if !emit() {
					return
				}
				key, best = e.key, nil
			}
			if !e.modTime.After(v.t) && (best == nil || e.modTime.After(best.modTime)) {
				best = &e
			}
		}
		emit()
	}
}

// at finds the version of key current at t, or CodeNotFound.
func (v *asOfView) at(ctx context.Context, op, key string) (version, error) {
	full := v.s.full(key)
	for e, err := range v.current(ctx, full) {
		if err != nil {
			return version{}, err
		}
		if e.key == full {
			return e, nil
		}
	}
	return version{}, store.Errorf(store.CodeNotFound, op, v.Name(), key, "", "no version of %s at %s", key, v.t.UTC().Format(time.RFC3339))
}

func (v *asOfView) Stat(ctx context.Context, key string) (*store.Attributes, error) {
	e, err := v.at(ctx, "stat", key)
	if err != nil {
		return nil, err
	}
	full := v.s.full(key)
	out, err := v.s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &v.s.bucket, Key: &full, VersionId: aws.String(e.id)})
	if err != nil {
		return nil, v.s.classify("stat", key, false, err)
	}
	return attributesOf(key, out), nil
}

func (v *asOfView) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	e, err := v.at(ctx, "open", key)
	if err != nil {
		return nil, err
	}
	in := &s3.GetObjectInput{Bucket: &v.s.bucket, Key: aws.String(v.s.full(key)), VersionId: aws.String(e.id)}
	if offset > 0 {
		if offset >= e.size {
			return io.NopCloser(strings.NewReader("")), nil
		}
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := v.s.client.GetObject(ctx, in)
	if err != nil {
		return nil, v.s.classify("open", key, false, err)
	}
	return &classifiedBody{rc: out.Body, s: v.s, key: key}, nil
}

func (v *asOfView) List(ctx context.Context, opts store.ListOptions) iter.Seq2[store.Object, error] {
	return func(yield func(store.Object, error) bool) {
		for e, err := range v.current(ctx, v.s.keyPrefix+opts.Prefix) {
			if err != nil {
				yield(store.Object{}, err)
				return
			}
			key := strings.TrimPrefix(e.key, v.s.keyPrefix)
			if key == "" || strings.HasSuffix(key, "/") || !opts.IncludeInternal && store.IsInternal(key) {
				continue
			}
			if !yield(store.Object{Key: key, Size: e.size, ETag: e.etag, ModTime: e.modTime, Order: orderOf(e.modTime)}, nil) {
				return
			}
		}
	}
}

func (v *asOfView) readOnly(op, key string) error {
	return store.Errorf(store.CodeInvalid, op, v.Name(), key, "write to the bucket itself, not to a view of its past", "a view as of a time is read-only")
}

func (v *asOfView) Put(_ context.Context, key string, _ io.Reader, _ store.PutOptions) (*store.Object, error) {
	return nil, v.readOnly("put", key)
}

func (v *asOfView) Copy(_ context.Context, dstKey, _ string, _ store.CopyOptions) (*store.Object, error) {
	return nil, v.readOnly("copy", dstKey)
}

func (v *asOfView) Delete(_ context.Context, key string, _ store.DeleteOptions) error {
	return v.readOnly("delete", key)
}
