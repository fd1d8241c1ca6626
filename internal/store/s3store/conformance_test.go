//go:build integration

package s3store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/store/storetest"
)

// testBucket is the bucket the tests create on the local MinIO.
const testBucket = "conformance"

// testTuning is small so that modest objects take the multipart paths.
var testTuning = store.Tuning{
	PartSize:      5 << 20,
	Threshold:     5 << 20,
	Concurrency:   4,
	CopyThreshold: 5 << 20,
	CopyPartSize:  5 << 20,
}

// env returns the local stack's S3 endpoint and keys, failing the test without them.
func env(t *testing.T) (endpoint, accessKey, secretKey string) {
	t.Helper()
	endpoint, accessKey, secretKey = os.Getenv("REPLICATOR_S3_ENDPOINT"), os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if endpoint == "" || accessKey == "" || secretKey == "" {
		t.Fatal("REPLICATOR_S3_ENDPOINT, AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not set: run `make test` or `. deploy/local/env.sh` with the stack started")
	}
	return endpoint, accessKey, secretKey
}

// useProfiles writes a shared credentials file with two accounts, "good" (the MinIO
// keys) and "bad" (keys MinIO does not know), and points the SDK at it.
func useProfiles(t *testing.T) {
	_, accessKey, secretKey := env(t)
	dir := t.TempDir()
	creds := fmt.Sprintf("[good]\naws_access_key_id = %s\naws_secret_access_key = %s\n\n[bad]\naws_access_key_id = not-a-key\naws_secret_access_key = not-a-secret\n", accessKey, secretKey)
	if err := os.WriteFile(filepath.Join(dir, "credentials"), []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
}

// open returns a store on bucket/prefix at endpoint, failing the test on error.
func open(t *testing.T, endpoint, bucket, prefix, profile string, tuning store.Tuning, optFns ...func(*s3.Options)) *s3Store {
	t.Helper()
	u := &url.URL{Scheme: "s3", Host: bucket, Path: "/" + prefix, RawQuery: url.Values{"endpoint": {endpoint}}.Encode()}
	s, err := newStore(context.Background(), store.Options{Name: "minio-test", URL: u, Credentials: store.Credentials{AWSProfile: profile}, Tuning: tuning}, optFns...)
	if err != nil {
		t.Fatalf("new store: %v", err)
	}
	return s
}

// ensureBucket creates the test bucket when it is missing.
func ensureBucket(t *testing.T) {
	t.Helper()
	endpoint, _, _ := env(t)
	s := open(t, endpoint, testBucket, "", "", store.Tuning{})
	_, err := s.client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &s.bucket})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		t.Fatalf("create bucket %s: %v", testBucket, err)
	}
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func TestConformance(t *testing.T) {
	endpoint, _, _ := env(t)
	ensureBucket(t)
	useProfiles(t)
	storetest.Run(t, storetest.Harness{
		NewAt: func(t *testing.T, prefix string) store.Store {
			// The "good" profile: stores reach their account through a profile
			// reference, not the environment's keys.
			return open(t, endpoint, testBucket, prefix, "good", testTuning)
		},
		PartSize:      testTuning.PartSize,
		CopyLargeSize: 12 << 20,
		MissingLocation: func(t *testing.T) store.Store {
			return open(t, endpoint, "missing-"+randomSuffix(), "p", "good", testTuning)
		},
		BadCredentials: func(t *testing.T) store.Store {
			return open(t, endpoint, testBucket, "p", "bad", testTuning)
		},
		Unreachable: func(t *testing.T) store.Store {
			return open(t, "http://127.0.0.1:1", testBucket, "p", "good", testTuning)
		},
	})
}

// TestProfileOverridesEnvironment shows that two destinations can use two accounts: a
// profile reference wins over the environment's keys.
func TestProfileOverridesEnvironment(t *testing.T) {
	endpoint, _, _ := env(t)
	ensureBucket(t)
	useProfiles(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "wrong-env-key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-env-secret")
	good := open(t, endpoint, testBucket, storetest.UniquePrefix(t), "good", testTuning)
	if err := good.Check(context.Background()); err != nil {
		t.Fatalf("profile good with wrong environment keys: %v", err)
	}
	env := open(t, endpoint, testBucket, storetest.UniquePrefix(t), "", testTuning)
	storetest.WantCode(t, "default chain with wrong environment keys", env.Check(context.Background()), store.CodePermission)
	if _, err := newStore(context.Background(), store.Options{Name: "x", URL: &url.URL{Scheme: "s3", Host: testBucket},
		Credentials: store.Credentials{AWSProfile: "no-such-profile"}}); store.CodeOf(err) != store.CodePermission {
		t.Fatalf("unknown profile: %v, want a configuration error", err)
	}
}

// opCounter counts the S3 operations a client sends.
type opCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *opCounter) install(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("opCounter",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				c.mu.Lock()
				c.counts[awsmiddleware.GetOperationName(ctx)]++
				c.mu.Unlock()
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	})
}

func (c *opCounter) get(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[op]
}

// TestMultipartCopyRan checks that a copy above the copy threshold really is a
// multipart copy in parts of the copy part size, and that small unconditional copies
// are one CopyObject.
func TestMultipartCopyRan(t *testing.T) {
	endpoint, _, _ := env(t)
	ensureBucket(t)
	c := &opCounter{counts: map[string]int{}}
	s := open(t, endpoint, testBucket, storetest.UniquePrefix(t), "", testTuning, c.install)
	ctx := context.Background()
	const size = 12 << 20
	sum := storetest.StreamSHA256(3, size)
	if _, err := s.Put(ctx, "src.bin", storetest.Stream(3, size), store.PutOptions{SHA256: sum, Size: size}); err != nil {
		t.Fatal(err)
	}
	if n := c.get("UploadPart"); n != 3 {
		t.Errorf("put of 12 MiB in 5 MiB parts sent %d UploadPart, want 3", n)
	}
	obj, err := s.Copy(ctx, "dst.bin", "src.bin", store.CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := c.get("UploadPartCopy"); n != 3 {
		t.Errorf("copy of 12 MiB sent %d UploadPartCopy, want 3", n)
	}
	if n := c.get("CopyObject"); n != 0 {
		t.Errorf("copy above the threshold sent %d CopyObject", n)
	}
	if !strings.HasSuffix(obj.ETag, `-3"`) {
		t.Errorf("copy ETag %s lacks the multipart suffix -3", obj.ETag)
	}
	small := []byte("small")
	storetest.Put(t, s, "small.txt", small, store.PutOptions{})
	if _, err := s.Copy(ctx, "small-copy.txt", "small.txt", store.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := c.get("CopyObject"); n != 1 {
		t.Errorf("small copy sent %d CopyObject, want 1", n)
	}
	for _, k := range []string{"src.bin", "dst.bin", "small.txt", "small-copy.txt"} {
		_ = s.Delete(ctx, k, store.DeleteOptions{})
	}
}

// TestOpenAtEnd reads an object from its end: an empty read, not an error.
func TestOpenAtEnd(t *testing.T) {
	endpoint, _, _ := env(t)
	ensureBucket(t)
	s := open(t, endpoint, testBucket, storetest.UniquePrefix(t), "", testTuning)
	storetest.Put(t, s, "f.txt", []byte("12345"), store.PutOptions{})
	r, err := s.Open(context.Background(), "f.txt", 5)
	if err != nil {
		t.Fatalf("open at the end: %v", err)
	}
	if b, err := io.ReadAll(r); err != nil || len(b) != 0 {
		t.Fatalf("read at the end = %q, %v", b, err)
	}
	r.Close()
	_, err = s.Open(context.Background(), "f.txt", 6)
	storetest.WantCode(t, "open past the end", err, store.CodeInvalid)
	_ = s.Delete(context.Background(), "f.txt", store.DeleteOptions{})
}

// TestNonASCIIMetadata round-trips metadata values that HTTP headers cannot carry as
// they are.
func TestNonASCIIMetadata(t *testing.T) {
	endpoint, _, _ := env(t)
	ensureBucket(t)
	s := open(t, endpoint, testBucket, storetest.UniquePrefix(t), "", testTuning)
	meta := map[string]string{"city": "Zürich 日本", "spaces": "  padded  ", "word": "=?UTF-8?B?eA==?=", "plain": "ascii"}
	storetest.Put(t, s, "m.txt", []byte("m"), store.PutOptions{Metadata: meta, SourceVersion: "é-version"})
	a, err := s.Stat(context.Background(), "m.txt")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range meta {
		if a.Metadata[k] != v {
			t.Errorf("metadata %s = %q, want %q", k, a.Metadata[k], v)
		}
	}
	if a.SourceVersion != "é-version" {
		t.Errorf("source version = %q", a.SourceVersion)
	}
	_ = s.Delete(context.Background(), "m.txt", store.DeleteOptions{})
}

func TestPut1GiBBoundedMemory(t *testing.T) {
	endpoint, _, _ := env(t)
	ensureBucket(t)
	start := time.Now()
	storetest.BoundedMemoryPut(t, func(t *testing.T, prefix string) store.Store {
		return open(t, endpoint, testBucket, prefix, "", store.Tuning{})
	}, 1<<30, 200<<20)
	t.Logf("1 GiB put with default tuning (part %d MiB, concurrency %d): %s", DefaultPartSize>>20, DefaultConcurrency, time.Since(start).Round(time.Millisecond))
}

// TestCommitPreconditions checks the server-side guard of CompleteMultipartUpload on
// its own, without the HEAD that Put does first to fail early, and that failed puts
// leave no multipart upload behind.
func TestCommitPreconditions(t *testing.T) {
	endpoint, _, _ := env(t)
	ensureBucket(t)
	s := open(t, endpoint, testBucket, storetest.UniquePrefix(t), "", testTuning)
	ctx := context.Background()
	existing := storetest.Put(t, s, "exists", []byte("v1"), store.PutOptions{})
	hdr := objectHeaders{contentType: "application/octet-stream"}
	for _, c := range []struct {
		name, key string
		pre       store.Precondition
	}{
		{"if-none-match on an existing key", "exists", store.Precondition{IfNoneMatch: true}},
		{"if-match a stale ETag", "exists", store.Precondition{IfMatch: `"0123456789abcdef0123456789abcdef"`}},
		{"if-match on a missing key", "missing", store.Precondition{IfMatch: existing.ETag}},
	} {
		u, err := s.createUpload(ctx, c.key, hdr, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := u.putPart(ctx, 1, []byte("part")); err != nil {
			t.Fatal(err)
		}
		_, err = u.complete(ctx, c.pre)
		u.abort(ctx)
		t.Logf("%s: server answered %v", c.name, err)
		storetest.WantCode(t, c.name, s.classify("put", c.key, c.pre.IfMatch != "", err), store.CodePrecondition)
	}
	if got := string(storetest.ReadAll(t, s, "exists")); got != "v1" {
		t.Fatalf("refused commits changed the object: %q", got)
	}
	if _, err := s.Stat(ctx, "missing"); !store.IsNotFound(err) {
		t.Fatalf("a refused commit created the key: %v", err)
	}

	// A multipart put whose bytes do not match aborts its upload.
	data := make([]byte, 2*testTuning.PartSize+1)
	_, err := s.Put(ctx, "mm", strings.NewReader(string(data)), store.PutOptions{SHA256: storetest.SHA256Hex([]byte("other")), Size: int64(len(data))})
	storetest.WantCode(t, "multipart put with a wrong SHA-256", err, store.CodeMismatch)
	out, err := s.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &s.bucket, Prefix: &s.keyPrefix})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left behind", len(out.Uploads))
	}
	_ = s.Delete(ctx, "exists", store.DeleteOptions{})
}
