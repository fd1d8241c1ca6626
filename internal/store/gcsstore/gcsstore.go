// Package gcsstore is the Google Cloud Storage driver of the store contract, on
// cloud.google.com/go/storage (JSON API over HTTP).
//
// A store is rooted at gs://bucket/prefix. The object's generation, as a decimal
// string, is its ETag token: preconditions map to GCS generation conditions, so a
// write either commits against exactly the state it expects or fails with
// CodePrecondition. Large objects go through one resumable upload whose final
// request is only sent after the stream's SHA-256 has been verified.
//
// Credentials follow the standard chain (Application Default Credentials) unless
// Credentials.GCPCredentialsFile names a JSON file. STORAGE_EMULATOR_HOST, honoured
// by the client library, points the driver at an emulator (fake-gcs-server); an
// explicit ?endpoint= URL parameter takes precedence over it.
package gcsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	htransport "google.golang.org/api/transport/http"
	"io"
	"iter"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/cloudrepl/replicator/internal/store"
)

// Production defaults, used when the matching Tuning field is zero.
const (
	// DefaultPartSize is the resumable-upload chunk size. Each chunk is buffered once
	// by the SDK (so it is also the memory one large Put holds) and, on
	// fake-gcs-server, every chunk costs a pass over the object so far: 32 MiB keeps
	// a 1 GiB upload fast on the emulator and near the SDK's own 16 MiB default
	// request count on real GCS, at ~32 MiB of memory per upload.
	DefaultPartSize = 32 << 20
	// DefaultThreshold is the largest object sent in one request. Such objects are
	// held in memory (twice: ours, to verify the hash before sending, and the SDK's,
	// to retry), so it stays well below the part size.
	DefaultThreshold = 8 << 20
	// DefaultPageSize is the number of objects asked per listing request. GCS
	// returns at most 1000 whatever is asked; emulators such as fake-gcs-server read
	// every object of the bucket on each request, so asking for more saves them
	// whole passes.
	DefaultPageSize = 10000
)

// Retry policy of the SDK. The activity layer retries transient failures with its
// own backoff and heartbeats, so the SDK only smooths over brief blips: a few quick
// attempts instead of its default of retrying idempotent calls until the context
// ends (which turned an unreachable endpoint into a minutes-long hang).
const (
	sdkMaxAttempts    = 5
	sdkInitialBackoff = 250 * time.Millisecond
	sdkMaxBackoff     = 4 * time.Second
)

// retryBudget is the SDK retry predicate of one upload. Uploads ignore the client's
// attempt limit (only the context, or the per-chunk deadline, ends their retries),
// so the predicate counts consecutive failures itself; it also sees every success
// (as a nil error), which restarts the count for the next chunk.
func retryBudget() func(error) bool {
	var failures atomic.Int32
	return func(err error) bool {
		if err == nil {
			failures.Store(0)
			return false
		}
		return storage.ShouldRetry(err) && failures.Add(1) < sdkMaxAttempts
	}
}

// knownStorageClasses are the GCS storage class names an object can be written with.
var knownStorageClasses = []string{"STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE",
	"MULTI_REGIONAL", "REGIONAL", "DURABLE_REDUCED_AVAILABILITY"}

// gcsStore is one bucket and prefix.
type gcsStore struct {
	name         string
	client       *storage.Client
	bucket       *storage.BucketHandle
	prefix       string // "" or "a/b", without slashes around it
	storageClass string
	kmsKey       string
	partSize     int64
	threshold    int64
	pageSize     int
	hints        hints
	// emulated is set for an emulator endpoint: fake-gcs-server ignores generation
	// conditions on rewrites, so Copy checks them itself there first.
	emulated bool
	// single streams large objects in one request instead of resumable chunks.
	single bool
	// http sends the resumable-session requests the driver makes itself
	// (resumable.go), authenticated like the SDK's; uploadBase is the upload
	// endpoint, ending in "/upload/storage/v1/".
	http       *http.Client
	uploadBase string
}

// New returns a store for opts.URL, gs://bucket[/prefix][?endpoint=URL]. endpoint
// is the JSON API base (a bare scheme://host gets /storage/v1/ appended); an http://
// endpoint is taken to be an emulator, so no credentials are sent to it.
// Tuning.Concurrency, CopyThreshold and CopyPartSize do not apply: a resumable upload
// sends its chunks in order, and server-side copies are rewrites paced by GCS.
// Tuning.SingleRequest streams objects beyond the threshold in one request.
func New(ctx context.Context, opts store.Options) (store.Store, error) {
	u := opts.URL
	if u == nil || u.Scheme != "gs" {
		return nil, store.ConfigError(opts, "a GCS location looks like gs://bucket/prefix", "not a gs:// URL: %v", u)
	}
	if err := store.RejectUnknownQuery(opts, "endpoint"); err != nil {
		return nil, err
	}
	if u.Host == "" || u.Port() != "" || u.User != nil || u.Opaque != "" || u.Fragment != "" {
		return nil, store.ConfigError(opts, "a GCS location looks like gs://bucket/prefix", "malformed GCS URL %s", u.Redacted())
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		if err := store.ValidateKey(prefix, 0); err != nil {
			return nil, store.ConfigError(opts, "fix the prefix in the URL", "prefix of %s: %w", u.Redacted(), err)
		}
	}
	s := &gcsStore{
		name:      opts.Name,
		prefix:    prefix,
		partSize:  opts.Tuning.PartSize,
		threshold: opts.Tuning.Threshold,
		pageSize:  opts.Tuning.PageSize,
		single:    opts.Tuning.SingleRequest,
		hints:     hints{bucket: u.Host, url: u.Redacted()},
	}
	if s.partSize <= 0 {
		s.partSize = DefaultPartSize
	}
	if s.threshold <= 0 {
		s.threshold = DefaultThreshold
	}
	if s.pageSize <= 0 {
		s.pageSize = DefaultPageSize
	}
	if s.partSize > 1<<30 || s.threshold > 1<<30 {
		return nil, store.ConfigError(opts, "use a part size and threshold of at most 1 GiB", "part size %d or threshold %d too large: each is held in memory", s.partSize, s.threshold)
	}
	if c := opts.StorageClass; c != "" {
		s.storageClass = strings.ToUpper(c)
		known := false
		for _, k := range knownStorageClasses {
			known = known || k == s.storageClass
		}
		if !known {
			return nil, store.ConfigError(opts, fmt.Sprintf("GCS storage classes are %v", knownStorageClasses), "unknown storage class %q", c)
		}
	}
	if opts.SSE != "" {
		return nil, store.ConfigError(opts, "GCS encrypts every object; leave sse empty and set sse_kms_key_id to a Cloud KMS key for customer-managed keys",
			"sse %q does not apply to GCS", opts.SSE)
	}
	if k := opts.SSEKMSKeyID; k != "" {
		if !strings.HasPrefix(k, "projects/") || !strings.Contains(k, "/cryptoKeys/") {
			return nil, store.ConfigError(opts, "a Cloud KMS key looks like projects/P/locations/L/keyRings/R/cryptoKeys/K", "sse_kms_key_id %q is not a Cloud KMS key name", k)
		}
		s.kmsKey = k
	}

	copts, emulated, err := clientOptions(opts, &s.hints)
	if err != nil {
		return nil, err
	}
	// One transport for the SDK and the driver's own session requests, counted
	// when asked (WrapTransport) and authenticated, except towards an emulator.
	var base http.RoundTripper = http.DefaultTransport.(*http.Transport).Clone()
	if opts.WrapTransport != nil {
		base = opts.WrapTransport(base)
	}
	if !emulated {
		// Keep the SDK's authentication: it wraps the counted transport.
		if base, err = htransport.NewTransport(ctx, base, append(copts, option.WithScopes(storage.ScopeReadWrite))...); err != nil {
			return nil, store.ConfigError(opts, "check "+s.hints.credentials(), "GCS transport: %w", err)
		}
	}
	if opts.WrapTransport != nil {
		copts = append(copts, option.WithHTTPClient(&http.Client{Transport: base}))
	}
	s.http = &http.Client{Transport: base, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a 308 is the protocol's "resume incomplete", never a redirect
	}}
	s.uploadBase = uploadBase(s.hints.endpoint, opts.URL.Query().Get("endpoint"))
	client, err := storage.NewClient(ctx, copts...)
	if err != nil {
		return nil, store.ConfigError(opts, "check "+s.hints.credentials(), "GCS client for %s: %w", u.Redacted(), err)
	}
	client.SetRetry(
		storage.WithPolicy(storage.RetryIdempotent),
		storage.WithMaxAttempts(sdkMaxAttempts),
		storage.WithBackoff(gax.Backoff{Initial: sdkInitialBackoff, Max: sdkMaxBackoff, Multiplier: 2}),
	)
	s.client = client
	s.bucket = client.Bucket(u.Host)
	s.emulated = emulated
	return s, nil
}

// clientOptions translates the URL's endpoint and the credentials reference into
// client options, recording in h what the operator should check when they fail.
// emulated reports an emulator endpoint.
func clientOptions(opts store.Options, h *hints) (copts []option.ClientOption, emulated bool, err error) {
	h.endpoint = "https://storage.googleapis.com"
	if host := os.Getenv("STORAGE_EMULATOR_HOST"); host != "" {
		h.endpoint = "STORAGE_EMULATOR_HOST=" + host
		emulated = true
	}
	if raw := opts.URL.Query().Get("endpoint"); raw != "" {
		ep, err := url.Parse(raw)
		if err != nil || (ep.Scheme != "http" && ep.Scheme != "https") || ep.Host == "" {
			return nil, false, store.ConfigError(opts, "endpoint must be an http(s)://host[:port][/path] URL", "bad endpoint %q", raw)
		}
		if ep.Path == "" || ep.Path == "/" {
			ep.Path = "/storage/v1/"
		}
		copts = append(copts, option.WithEndpoint(ep.String()))
		emulated = ep.Scheme == "http"
		if emulated {
			// Bearer tokens never go over plain HTTP: such an endpoint is an emulator.
			copts = append(copts, option.WithoutAuthentication())
		}
		h.endpoint = ep.String()
	}
	h.credsFile = opts.Credentials.GCPCredentialsFile
	if f := h.credsFile; f != "" {
		typ, err := credentialsType(f)
		if err != nil {
			return nil, false, store.ConfigError(opts, "check gcp_credentials_file: it must be a readable service-account or external-account JSON key", "credentials file %s: %w", f, err)
		}
		copts = append(copts, option.WithAuthCredentialsFile(typ, f))
	}
	return copts, emulated, nil
}

// uploadBase is the upload endpoint matching the JSON API endpoint the client
// uses: https://storage.googleapis.com/upload/storage/v1/, or the same path on an
// explicit endpoint or STORAGE_EMULATOR_HOST.
func uploadBase(hint, explicit string) string {
	if explicit != "" {
		if ep, err := url.Parse(explicit); err == nil {
			p := ep.Path
			if p == "" || p == "/" {
				p = "/storage/v1/"
			}
			return ep.Scheme + "://" + ep.Host + "/upload" + strings.TrimSuffix(p, "/") + "/"
		}
	}
	if host, ok := strings.CutPrefix(hint, "STORAGE_EMULATOR_HOST="); ok {
		if !strings.Contains(host, "://") {
			host = "http://" + host
		}
		return strings.TrimSuffix(host, "/") + "/upload/storage/v1/"
	}
	return "https://storage.googleapis.com/upload/storage/v1/"
}

// credentialsType reads the "type" of a credentials file, since the non-deprecated
// loader wants it stated rather than trusting whatever the file declares.
func credentialsType(path string) (option.CredentialsType, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var f struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return "", fmt.Errorf("not JSON: %w", err)
	}
	switch t := option.CredentialsType(f.Type); t {
	case option.ServiceAccount, option.ExternalAccount, option.AuthorizedUser, option.ImpersonatedServiceAccount:
		return t, nil
	}
	return "", fmt.Errorf("unsupported credentials type %q", f.Type)
}

// classFor is the storage class of a new object under key. The replicator's own
// objects (stages, undo and trash copies) are STANDARD whatever the policy's class:
// they are read back soon (a commit copies a stage), which an archive class
// charges for by the byte and by a minimum storage duration.
func (s *gcsStore) classFor(key string) string {
	if s.storageClass != "" && store.IsInternal(key) {
		return "STANDARD"
	}
	return s.storageClass
}

// Name returns the store's name.
func (s *gcsStore) Name() string { return s.name }

// Close releases the client.
func (s *gcsStore) Close() error {
	if err := s.client.Close(); err != nil {
		return s.fail("close", "", err)
	}
	return nil
}

// objectName is key's object name in the bucket.
func (s *gcsStore) objectName(key string) string { return store.JoinPrefix(s.prefix, key) }

// KeyPrefixLen is the length of what precedes every key in the bucket (the prefix
// and its '/'), for store.Checked.
func (s *gcsStore) KeyPrefixLen() int {
	if s.prefix == "" {
		return 0
	}
	return len(s.prefix) + 1
}

// CheckName refuses keys that GCS would store or list under another name
// (store.KeyRules).
func (s *gcsStore) CheckName(key string) error {
	if name := s.objectName(key); strings.HasPrefix(name, acmePrefix) {
		return fmt.Errorf("key %q makes object name %q, and GCS refuses names starting with %q: exclude it or replicate under another prefix", key, name, acmePrefix)
	}
	if seg := store.LongestSegment(key); s.emulated && len(seg) > maxEmulatedSegment {
		return fmt.Errorf("key %q has a path segment of %d bytes; fake-gcs-server keeps each segment as a file name (with a temporary prefix and suffix) and takes at most %d: shorten that name (real GCS has no such limit)", key, len(seg), maxEmulatedSegment)
	}
	return nil
}

// acmePrefix starts the object names GCS reserves (for domain verification).
const acmePrefix = ".well-known/acme-challenge/"

// maxEmulatedSegment is the longest path segment fake-gcs-server's file-system
// backend can hold: it writes each object through a temporary file named "." +
// segment + up to 20 random digits, within the 255-byte NAME_MAX.
const maxEmulatedSegment = 255 - 1 - 20

// conditions maps a Precondition to generation conditions; ok is false when there
// are none (ObjectHandle.If refuses empty conditions).
func conditions(p store.Precondition) (c storage.Conditions, ok bool, err error) {
	switch {
	case p.IfNoneMatch && p.IfMatch != "":
		return c, false, local(store.CodeInvalid, errors.New("precondition sets both if-none-match and if-match"))
	case p.IfNoneMatch:
		return storage.Conditions{DoesNotExist: true}, true, nil
	case p.IfMatch != "":
		gen, perr := strconv.ParseInt(p.IfMatch, 10, 64)
		if perr != nil || gen <= 0 {
			// A token this store never issued cannot match any object here.
			return c, false, local(store.CodePrecondition, fmt.Errorf("if-match %q is not a GCS generation, so no object matches it", p.IfMatch))
		}
		return storage.Conditions{GenerationMatch: gen}, true, nil
	}
	return c, false, nil
}

// guarded returns o restricted by p's conditions.
func guarded(o *storage.ObjectHandle, p store.Precondition) (*storage.ObjectHandle, error) {
	c, ok, err := conditions(p)
	if err != nil || !ok {
		return o, err
	}
	return o.If(c), nil
}

// objectOf is the listing entry of attrs, whose name lies under the prefix.
func (s *gcsStore) objectOf(key string, a *storage.ObjectAttrs) *store.Object {
	return &store.Object{Key: key, Size: a.Size, ETag: strconv.FormatInt(a.Generation, 10), ModTime: a.Updated}
}

// Check lists at most one object under the root: that needs the bucket to exist and
// the credentials to read it, without the bucket-level permission that object roles
// lack.
func (s *gcsStore) Check(ctx context.Context) error {
	q := &storage.Query{Prefix: s.listPrefix("")}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return s.fail("check", "", err)
	}
	it := s.bucket.Objects(ctx, q)
	it.PageInfo().MaxSize = 1
	if _, err := it.Next(); err != nil && !errors.Is(err, iterator.Done) {
		return s.fail("check", "", err)
	}
	return nil
}

// Stat returns key's attributes.
func (s *gcsStore) Stat(ctx context.Context, key string) (*store.Attributes, error) {
	const op = "stat"
	name := s.objectName(key)
	a, err := s.bucket.Object(name).Attrs(ctx)
	if err != nil {
		return nil, s.fail(op, key, err)
	}
	attrs := &store.Attributes{Object: *s.objectOf(key, a), ContentType: a.ContentType}
	store.DecodeMetadata(a.Metadata, attrs)
	attrs.CacheControl = a.CacheControl
	return attrs, nil
}

// Open streams key from offset.
func (s *gcsStore) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	const op = "open"
	name := s.objectName(key)
	r, err := s.bucket.Object(name).NewRangeReader(ctx, offset, -1)
	if err != nil {
		return nil, s.fail(op, key, err)
	}
	return &reader{r: r, s: s, key: key}, nil
}

// reader classifies the errors of a download stream like those of the calls.
type reader struct {
	r   *storage.Reader
	s   *gcsStore
	key string
}

// Read reads from the object, passing io.EOF through.
func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = r.s.fail("open", r.key, fmt.Errorf("reading: %w", err))
	}
	return n, err
}

// Close ends the download.
func (r *reader) Close() error {
	if err := r.r.Close(); err != nil {
		return r.s.fail("open", r.key, err)
	}
	return nil
}

// Copy rewrites srcKey to dstKey server-side. GCS rewrites large objects in several
// calls, which Copier.Run chains; the destination's conditions apply to the rewrite.
func (s *gcsStore) Copy(ctx context.Context, dstKey, srcKey string, opts store.CopyOptions) (*store.Object, error) {
	const op = "copy"
	dstName := s.objectName(dstKey)
	srcName := s.objectName(srcKey)
	dst, err := guarded(s.bucket.Object(dstName), opts.Precondition)
	if err != nil {
		return nil, s.fail(op, dstKey, err)
	}
	if s.emulated {
		if err := s.checkPrecondition(ctx, dstName, opts.Precondition); err != nil {
			return nil, s.fail(op, dstKey, err)
		}
	}
	c := dst.CopierFrom(s.bucket.Object(srcName))
	c.StorageClass = s.classFor(dstKey)
	c.DestinationKMSKeyName = s.kmsKey
	if a := opts.Attributes; a != nil {
		c.ContentType = a.ContentType
		if c.ContentType == "" {
			c.ContentType = store.ContentTypeOf(dstKey)
		}
		c.Metadata = store.WithTags(store.MetadataOf(a), a.Tags)
		c.CacheControl = a.CacheControl
	}
	attrs, err := c.Run(ctx)
	if err != nil {
		return nil, s.fail(op, dstKey, fmt.Errorf("from %q: %w", srcKey, err))
	}
	return s.objectOf(dstKey, attrs), nil
}

// checkPrecondition compares the object's current state with p, for servers that do
// not apply conditions themselves. It races with concurrent writers, which is why
// real GCS gets the conditions on the request as well.
func (s *gcsStore) checkPrecondition(ctx context.Context, name string, p store.Precondition) error {
	c, ok, err := conditions(p)
	if err != nil || !ok {
		return err
	}
	a, err := s.bucket.Object(name).Attrs(ctx)
	exists := err == nil
	if err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
		return err
	}
	switch {
	case c.DoesNotExist && exists:
		return local(store.CodePrecondition, fmt.Errorf("object exists (generation %d)", a.Generation))
	case c.GenerationMatch != 0 && !exists:
		return local(store.CodePrecondition, fmt.Errorf("object does not exist, want generation %d", c.GenerationMatch))
	case c.GenerationMatch != 0 && a.Generation != c.GenerationMatch:
		return local(store.CodePrecondition, fmt.Errorf("object is at generation %d, want %d", a.Generation, c.GenerationMatch))
	}
	return nil
}

// Delete removes key; a missing key is not an error.
//
// With opts.IfMatch (a generation on this driver) real GCS gets an
// ifGenerationMatch condition. fake-gcs-server ignores that condition on deletes, so
// on an emulator the driver deletes that exact generation instead, which the
// emulator does honour (atomically), and looks whether another generation is live
// when it answers 404.
func (s *gcsStore) Delete(ctx context.Context, key string, opts store.DeleteOptions) error {
	const op = "delete"
	name := s.objectName(key)
	obj := s.bucket.Object(name)
	if opts.IfMatch != "" {
		c, _, err := conditions(store.Precondition{IfMatch: opts.IfMatch})
		if err != nil {
			// Not a generation: no object can match, but a missing key still succeeds.
			return s.missingIsDone(ctx, obj, key, s.fail(op, key, err))
		}
		if s.emulated {
			obj = obj.Generation(c.GenerationMatch)
		} else {
			obj = obj.If(c)
		}
	}
	err := obj.Delete(ctx)
	if err == nil {
		return nil
	}
	e := s.fail(op, key, err)
	switch {
	case e.Code == store.CodeNotFound && opts.IfMatch != "" && s.emulated:
		// That generation is gone: either the key is (done) or another one is live.
		return s.missingIsDone(ctx, s.bucket.Object(name), key,
			s.fail(op, key, local(store.CodePrecondition, fmt.Errorf("generation %s is not the live one", opts.IfMatch))))
	case e.Code == store.CodeNotFound:
		return nil
	case e.Code == store.CodePrecondition:
		return s.missingIsDone(ctx, s.bucket.Object(name), key, e)
	}
	return e
}

// missingIsDone returns nil when the object does not exist (a conditional delete's
// goal holds), else failed.
func (s *gcsStore) missingIsDone(ctx context.Context, obj *storage.ObjectHandle, key string, failed *store.Error) error {
	_, err := obj.Attrs(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil
	}
	if err != nil {
		return s.fail("delete", key, err)
	}
	return failed
}

// listPrefix is the object-name prefix of keys starting with p.
func (s *gcsStore) listPrefix(p string) string {
	if s.prefix == "" {
		return p
	}
	return s.prefix + "/" + p
}

// List yields the objects under opts.Prefix, one page at a time.
func (s *gcsStore) List(ctx context.Context, opts store.ListOptions) iter.Seq2[store.Object, error] {
	const op = "list"
	pageSize := opts.PageSize
	if pageSize <= 0 {
		pageSize = s.pageSize
	}
	root := s.listPrefix("")
	seq := func(yield func(store.Object, error) bool) {
		q := &storage.Query{Prefix: s.listPrefix(opts.Prefix)}
		if err := q.SetAttrSelection([]string{"Name", "Size", "Generation", "Updated"}); err != nil {
			yield(store.Object{}, s.fail(op, "", err))
			return
		}
		it := s.bucket.Objects(ctx, q)
		it.PageInfo().MaxSize = pageSize
		for {
			a, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return
			}
			if err != nil {
				yield(store.Object{}, s.fail(op, "", err))
				return
			}
			key := strings.TrimPrefix(a.Name, root)
			if strings.HasSuffix(key, "/") && a.Size == 0 {
				// A folder placeholder (as the console creates) is not a file.
				continue
			}
			if !yield(*s.objectOf(key, a), nil) {
				return
			}
		}
	}
	return seq
}
