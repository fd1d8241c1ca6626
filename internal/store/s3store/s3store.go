// Package s3store is the store driver for S3 and S3-compatible servers (AWS, MinIO,
// Ceph RGW), on aws-sdk-go-v2.
//
// Location: s3://bucket/prefix?region=…&endpoint=…&path_style=true|false. Credentials
// come from the SDK's default chain, or from the shared-config profile named in
// store.Credentials.AWSProfile, never from the URL.
package s3store

import (
	"context"
	"errors"
	"fmt"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cloudrepl/replicator/internal/store"
)

// Production defaults. S3 bounds them: parts are 5 MiB to 5 GiB (the last may be
// smaller), an upload has at most 10000 parts, and one PutObject or CopyObject moves
// at most 5 GiB.
const (
	// DefaultPartSize is the multipart part size (the AWS CLI's as well): large
	// enough that per-request overhead is small, small enough that (Concurrency+1)
	// parts stay at 40 MiB per large transfer, which keeps a worker copying 1 GiB to
	// three clouds under 256 MiB. Against local MinIO on 2 cores, 8 to 64 MiB parts
	// all put 1 GiB in 4 to 6 s; larger parts only cost memory. Objects above 78 GiB
	// of declared size get larger parts (partSizeFor).
	DefaultPartSize = 8 << 20
	// DefaultThreshold is the largest object sent in one PutObject.
	DefaultThreshold = 16 << 20
	// DefaultConcurrency is the number of parts in flight for one object.
	DefaultConcurrency = 4
	// DefaultCopyThreshold is the largest object copied with one CopyObject: the S3
	// limit.
	DefaultCopyThreshold = 5 << 30
	// DefaultCopyPartSize is the part size of a multipart server-side copy. No bytes
	// pass through the worker, so parts are large to keep the request count low.
	DefaultCopyPartSize = 512 << 20
	// DefaultPageSize is the number of keys per ListObjectsV2 request (the S3 maximum).
	DefaultPageSize = 1000

	minPartSize = 5 << 20
	maxPartSize = 5 << 30
	maxParts    = 10000
)

// s3Store is a store.Store on one bucket and prefix.
type s3Store struct {
	name   string
	client *s3.Client
	bucket string
	// prefix is the store's root inside the bucket, "" or "a/b" without slashes at
	// either end; keyPrefix is what precedes every key ("a/b/" or "").
	prefix, keyPrefix string
	endpoint          string
	region            string
	pathStyle         bool
	profile           string

	storageClass types.StorageClass
	sse          types.ServerSideEncryption
	sseKMSKeyID  string

	partSize, threshold         int64
	copyThreshold, copyPartSize int64
	concurrency, pageSize       int
}

// New returns a store for opts.URL (s3://bucket/prefix?region=…&endpoint=…&path_style=…).
// It makes no request: Check is how a location is validated.
func New(ctx context.Context, opts store.Options) (store.Store, error) {
	s, err := newStore(ctx, opts)
	if err != nil {
		return nil, err // not a nil *s3Store inside a non-nil interface
	}
	return s, nil
}

// newStore is New with extra client options, so that the package's tests can count
// or fake requests.
func newStore(ctx context.Context, opts store.Options, optFns ...func(*s3.Options)) (*s3Store, error) {
	s, err := parseOptions(opts)
	if err != nil {
		return nil, err
	}
	loadOpts := []func(*config.LoadOptions) error{
		// The replicator retries whole operations through Temporal; the SDK's client-side
		// retry quota would only turn a burst of throttling into extra failures.
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.RateLimiter = ratelimit.None })
		}),
	}
	if s.region != "" {
		loadOpts = append(loadOpts, config.WithRegion(s.region))
	}
	if s.profile != "" {
		loadOpts = append(loadOpts, config.WithSharedConfigProfile(s.profile))
	}

	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, store.ConfigError(opts, s.credentialsHint(), "load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		if s.endpoint == "" {
			return nil, store.ConfigError(opts, "add ?region=<the bucket's region> to the URL or set AWS_REGION",
				"no region for s3://%s", s.bucket)
		}
		// S3-compatible servers rarely care about the region, but SigV4 needs one.
		cfg.Region = "us-east-1"
	}
	s.region = cfg.Region
	if opts.WrapTransport != nil {
		// Wrap the transport the config built (it carries AWS_CA_BUNDLE's roots).
		base := http.DefaultTransport.(*http.Transport).Clone()
		if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
			base = bc.GetTransport()
		}
		cfg.HTTPClient = &http.Client{Transport: opts.WrapTransport(base)}
	}
	s.client = s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = s.pathStyle
		if s.endpoint != "" {
			o.BaseEndpoint = aws.String(s.endpoint)
		}
		// The driver sends its own integrity headers (CRC32C per part, the declared
		// SHA-256 on single puts); the SDK's default streaming CRC trailers would come on
		// top of them, cost CPU and are not accepted by every S3-compatible server.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		// Readers verify SHA-256 end to end; without this the SDK logs a warning for every
		// multipart object it cannot check.
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.DisableLogOutputChecksumValidationSkipped = true
		for _, fn := range optFns {
			fn(o)
		}
	})
	return s, nil
}

// parseOptions checks the URL and options without touching the network.
func parseOptions(opts store.Options) (*s3Store, error) {
	u := opts.URL
	if u == nil {
		return nil, store.ConfigError(opts, "give a URL of the form s3://bucket/prefix", "no URL")
	}
	if u.Scheme != "s3" {
		return nil, store.ConfigError(opts, "the S3 driver takes s3://bucket/prefix URLs", "scheme %q is not s3", u.Scheme)
	}
	if u.User != nil {
		return nil, store.ConfigError(opts, "remove the user info: credentials come from aws_profile or the AWS default chain, never from the URL",
			"URL %s carries credentials", u.Redacted())
	}
	if u.Host == "" {
		return nil, store.ConfigError(opts, "give a URL of the form s3://bucket/prefix", "no bucket in %s", u.Redacted())
	}
	if err := store.RejectUnknownQuery(opts, "region", "endpoint", "path_style"); err != nil {
		return nil, err
	}
	q := u.Query()
	s := &s3Store{
		name:         opts.Name,
		bucket:       u.Host,
		prefix:       strings.Trim(u.Path, "/"),
		region:       q.Get("region"),
		profile:      opts.Credentials.AWSProfile,
		storageClass: types.StorageClass(opts.StorageClass),
		sse:          types.ServerSideEncryption(opts.SSE),
		sseKMSKeyID:  opts.SSEKMSKeyID,
	}
	if s.prefix != "" {
		if err := store.ValidateKey(s.prefix, 0); err != nil {
			return nil, store.ConfigError(opts, "fix the prefix in the URL", "prefix: %w", err)
		}
		s.keyPrefix = s.prefix + "/"
	}
	if ep := q.Get("endpoint"); ep != "" {
		eu, err := url.Parse(ep)
		if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
			return nil, store.ConfigError(opts, "endpoint must be an http:// or https:// URL such as http://127.0.0.1:9000",
				"bad endpoint %q", ep)
		}
		s.endpoint = ep
		// S3-compatible servers on an IP or a single host name cannot serve
		// bucket.host virtual-host names.
		s.pathStyle = true
	}
	if ps := q.Get("path_style"); ps != "" {
		b, err := strconv.ParseBool(ps)
		if err != nil {
			return nil, store.ConfigError(opts, "path_style takes true or false", "bad path_style %q", ps)
		}
		s.pathStyle = b
	}
	switch s.sse {
	case "", types.ServerSideEncryptionAes256, types.ServerSideEncryptionAwsKms, types.ServerSideEncryptionAwsKmsDsse:
	default:
		return nil, store.ConfigError(opts, "sse takes AES256, aws:kms or aws:kms:dsse", "unknown sse %q", opts.SSE)
	}
	if s.sseKMSKeyID != "" && s.sse != types.ServerSideEncryptionAwsKms && s.sse != types.ServerSideEncryptionAwsKmsDsse {
		return nil, store.ConfigError(opts, "set sse: aws:kms with sse_kms_key_id", "a KMS key is given without sse aws:kms")
	}
	if err := s.setTuning(opts); err != nil {
		return nil, err
	}
	return s, nil
}

// setTuning applies defaults and S3's limits to opts.Tuning.
func (s *s3Store) setTuning(opts store.Options) error {
	t := opts.Tuning
	def := func(v, d int64) int64 {
		if v == 0 {
			return d
		}
		return v
	}
	s.partSize = def(t.PartSize, DefaultPartSize)
	s.threshold = def(t.Threshold, DefaultThreshold)
	s.copyThreshold = def(t.CopyThreshold, DefaultCopyThreshold)
	s.copyPartSize = def(t.CopyPartSize, DefaultCopyPartSize)
	s.concurrency = int(def(int64(t.Concurrency), DefaultConcurrency))
	s.pageSize = int(def(int64(t.PageSize), DefaultPageSize))
	for _, c := range []struct {
		name     string
		v        int64
		min, max int64
	}{
		{"part size", s.partSize, minPartSize, maxPartSize},
		{"threshold", s.threshold, 0, maxPartSize},
		{"copy threshold", s.copyThreshold, 0, maxPartSize},
		{"copy part size", s.copyPartSize, minPartSize, maxPartSize},
		{"concurrency", int64(s.concurrency), 1, 1024},
		{"page size", int64(s.pageSize), 1, 1000},
	} {
		if c.v < c.min || c.v > c.max {
			return store.ConfigError(opts, fmt.Sprintf("S3 accepts a %s from %d to %d", c.name, c.min, c.max),
				"%s %d is out of range", c.name, c.v)
		}
	}
	return nil
}

// Name returns the store's name.
func (s *s3Store) Name() string { return s.name }

// Close releases nothing: the SDK's HTTP client has no per-store resources to free.
func (s *s3Store) Close() error { return nil }

// full maps a key to the object name in the bucket.
func (s *s3Store) full(key string) string { return s.keyPrefix + key }

// KeyPrefixLen is the length of what precedes every key in the bucket (the prefix
// and its '/'), for store.Checked.
func (s *s3Store) KeyPrefixLen() int { return len(s.keyPrefix) }

// CheckName refuses keys that S3 would store or list under another name
// (store.KeyRules).
func (s *s3Store) CheckName(key string) error { return checkS3Name(key, s.endpoint != "") }

// maxCompatSegment is the longest path segment MinIO accepts: it keeps each segment
// of a key as a file or directory name on disk (XMinioInvalidObjectName beyond).
const maxCompatSegment = 255

// checkS3Name holds the name rules of S3 beyond store.ValidateKey. compatible is set
// for a custom endpoint (MinIO and other S3-compatible servers).
func checkS3Name(key string, compatible bool) error {
	if r := store.XMLUnsafeRune(key); r >= 0 {
		return fmt.Errorf("key %q holds %U, which S3's XML listings cannot carry (MinIO lists it back as another name): rename the file", key, r)
	}
	if seg := store.LongestSegment(key); compatible && len(seg) > maxCompatSegment {
		return fmt.Errorf("key %q has a path segment of %d bytes; MinIO keeps each segment as a file name of at most %d bytes: shorten that name", key, len(seg), maxCompatSegment)
	}
	return nil
}

// Check verifies that the bucket exists and the credentials reach it.
func (s *s3Store) Check(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	return s.classify("check", "", false, err)
}

// Stat returns the object's attributes.
func (s *s3Store) Stat(ctx context.Context, key string) (*store.Attributes, error) {
	out, err := s.head(ctx, s.full(key))
	if err != nil {
		return nil, s.classify("stat", key, false, err)
	}
	a := attributesOf(key, out)
	if aws.ToInt32(out.TagCount) > 0 {
		// Tags cost a request of their own: asked only of objects that have some.
		if a.Tags, err = s.tags(ctx, "stat", key); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// tags reads an object's tags.
func (s *s3Store) tags(ctx context.Context, op, key string) (map[string]string, error) {
	out, err := s.client.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: &s.bucket, Key: aws.String(s.full(key))})
	if err != nil {
		return nil, s.classify(op, key, false, err)
	}
	tags := make(map[string]string, len(out.TagSet))
	for _, t := range out.TagSet {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return tags, nil
}

func (s *s3Store) head(ctx context.Context, fullKey string) (*s3.HeadObjectOutput, error) {
	return s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &fullKey})
}

func attributesOf(key string, out *s3.HeadObjectOutput) *store.Attributes {
	a := &store.Attributes{
		Object: store.Object{
			Key:     key,
			Size:    aws.ToInt64(out.ContentLength),
			ETag:    quoteETag(aws.ToString(out.ETag)),
			ModTime: aws.ToTime(out.LastModified),
			Order:   orderOf(aws.ToTime(out.LastModified)),
		},
		ContentType:  aws.ToString(out.ContentType),
		CacheControl: aws.ToString(out.CacheControl),
	}
	store.DecodeMetadata(decodeMetadata(out.Metadata), a)
	return a
}

// Open streams the object from offset.
func (s *s3Store) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.full(key))}
	if offset > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		// S3 refuses a range that starts at the end, but reading an object from its
		// end is a valid (empty) read, as it is for a file.
		var re interface{ HTTPStatusCode() int }
		if offset > 0 && errors.As(err, &re) && re.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable {
			if h, herr := s.head(ctx, s.full(key)); herr == nil && aws.ToInt64(h.ContentLength) == offset {
				return io.NopCloser(strings.NewReader("")), nil
			}
		}
		return nil, s.classify("open", key, false, err)
	}
	return &classifiedBody{rc: out.Body, s: s, key: key}, nil
}

// classifiedBody gives errors met while reading an object the same classes as
// errors of requests.
type classifiedBody struct {
	rc  io.ReadCloser
	s   *s3Store
	key string
}

func (b *classifiedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		err = b.s.classify("open", b.key, false, err)
	}
	return n, err
}

func (b *classifiedBody) Close() error { return b.rc.Close() }

// Delete removes key; a missing key is not an error.
//
// With opts.IfMatch the DeleteObject carries If-Match, which AWS S3 checks
// atomically. MinIO (and other S3-compatible servers) ignore that header on
// DeleteObject, so against a custom endpoint the driver first compares the ETag with
// a HEAD: a delete that meets another version is refused, with a window of one
// round trip between the HEAD and the delete in which a concurrent writer is not
// excluded (README, "Known emulator differences").
func (s *s3Store) Delete(ctx context.Context, key string, opts store.DeleteOptions) error {
	in := &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.full(key))}
	if opts.IfMatch != "" {
		if s.endpoint != "" {
			err := s.precheck(ctx, "delete", key, store.Precondition{IfMatch: opts.IfMatch})
			if err != nil {
				return s.goneIsDone(ctx, key, err)
			}
		}
		in.IfMatch = aws.String(quoteETag(opts.IfMatch))
	}
	_, err := s.client.DeleteObject(ctx, in)
	err = s.classify("delete", key, false, err)
	if opts.IfMatch != "" && store.IsPrecondition(err) {
		return s.goneIsDone(ctx, key, err)
	}
	if store.IsNotFound(err) {
		return nil
	}
	return err
}

// goneIsDone turns a conditional delete's failed precondition into success when the
// key no longer exists: the delete's goal holds (a retry whose first answer was
// lost, or another deleter), and S3 answers an If-Match on a missing key with 412
// or 404 depending on the server.
func (s *s3Store) goneIsDone(ctx context.Context, key string, err error) error {
	if !store.IsPrecondition(err) {
		if store.IsNotFound(err) {
			return nil
		}
		return err
	}
	if _, herr := s.head(ctx, s.full(key)); herr != nil && store.IsNotFound(s.classify("delete", key, false, herr)) {
		return nil
	}
	return err
}

// internalSkip is what a listing restarts after once it meets the replicator's own
// subtree: every valid UTF-8 key in that subtree sorts before it, every key after the
// subtree sorts after it.
var internalSkip = store.InternalPrefix + strings.Repeat("\U0010FFFF", 4)

// List yields the objects under opts.Prefix in byte order, one page at a time.
func (s *s3Store) List(ctx context.Context, opts store.ListOptions) iter.Seq2[store.Object, error] {
	pageSize := s.pageSize
	if opts.PageSize > 0 {
		pageSize = min(opts.PageSize, 1000)
	}
	seq := func(yield func(store.Object, error) bool) {
		in := &s3.ListObjectsV2Input{
			Bucket:  &s.bucket,
			Prefix:  aws.String(s.keyPrefix + opts.Prefix),
			MaxKeys: aws.Int32(int32(pageSize)),
		}
		for {
			out, err := s.client.ListObjectsV2(ctx, in)
			if err != nil {
				yield(store.Object{}, s.classify("list", opts.Prefix, false, err))
				return
			}
			skipped := false
			for _, o := range out.Contents {
				key := strings.TrimPrefix(aws.ToString(o.Key), s.keyPrefix)
				// "" is a marker for the prefix itself and "dir/" the folder markers
				// that consoles create: neither is a file.
				if key == "" || strings.HasSuffix(key, "/") {
					continue
				}
				if !opts.IncludeInternal && store.IsInternal(key) {
					// Jump over the whole subtree (staging, manifests) in one request
					// instead of paging through it.
					in.ContinuationToken = nil
					in.StartAfter = aws.String(s.keyPrefix + internalSkip)
					skipped = true
					break
				}
				obj := store.Object{
					Key:     key,
					Size:    aws.ToInt64(o.Size),
					ETag:    quoteETag(aws.ToString(o.ETag)),
					ModTime: aws.ToTime(o.LastModified),
					Order:   orderOf(aws.ToTime(o.LastModified)),
				}
				if !yield(obj, nil) {
					return
				}
			}
			if skipped {
				continue
			}
			if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
				return
			}
			in.ContinuationToken = out.NextContinuationToken
			in.StartAfter = nil
		}
	}
	return seq
}

// orderOf is the order of an object's states: its modification time to the second.
// Listings give milliseconds and HEAD (an HTTP date) whole seconds, so the finer
// time would make one version look like two, and a bucket source replan every key
// on every reconcile.
func orderOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Truncate(time.Second).UnixNano()
}

// quoteETag keeps ETags in one form whatever the server or the call returned: S3
// quotes them, some S3-compatible servers and some responses do not.
func quoteETag(etag string) string {
	if etag == "" || etag == "*" || strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, "W/") {
		return etag
	}
	return `"` + etag + `"`
}

// serverTime is the Date of a response, for writes whose response carries no
// Last-Modified: the object's time on the server to within the request's duration.
func serverTime(md middleware.Metadata) time.Time {
	if raw, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok && raw != nil {
		if t, err := http.ParseTime(raw.Header.Get("Date")); err == nil {
			return t
		}
	}
	return time.Now().UTC()
}
