package gcsstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/cloudrepl/replicator/internal/store"
)

var testHints = hints{bucket: "bkt", url: "gs://bkt/pre", endpoint: "https://storage.googleapis.com", credsFile: "/etc/gcp/key.json"}

// apiError is the *googleapi.Error the SDK builds from a GCS JSON error response.
func apiError(t *testing.T, status int, message, reason string) error {
	t.Helper()
	body := fmt.Sprintf(`{"error":{"code":%d,"message":%q,"errors":[{"message":%q,"domain":"global","reason":%q}]}}`, status, message, message, reason)
	resp := &http.Response{
		StatusCode: status,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(body)),
	}
	err := googleapi.CheckResponse(resp)
	var ge *googleapi.Error
	if !errors.As(err, &ge) {
		t.Fatalf("CheckResponse(%d) = %T %v, want *googleapi.Error", status, err, err)
	}
	return err
}

// refusedDial is the error a dial to a closed loopback port really returns, wrapped
// the way net/http does.
func refusedDial(t *testing.T) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		t.Fatalf("dial %s succeeded after close", addr)
	}
	return &url.Error{Op: "Get", URL: "http://" + addr + "/storage/v1/b/bkt/o/k", Err: err}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		op   string
		err  error
		want store.Code
		hint string // a substring the hint must hold
	}{
		{"401", "stat", apiError(t, 401, "Invalid Credentials", "authError"), store.CodePermission, "gcp_credentials_file /etc/gcp/key.json"},
		{"403", "put", apiError(t, 403, "sa@p.iam.gserviceaccount.com does not have storage.objects.create access", "forbidden"), store.CodePermission, "roles/storage.objectAdmin"},
		{"404 object", "stat", fmt.Errorf("%w: %w", storage.ErrObjectNotExist, apiError(t, 404, "No such object: bkt/pre/k", "notFound")), store.CodeNotFound, ""},
		{"404 bucket on stat", "stat", fmt.Errorf("%w: %w", storage.ErrObjectNotExist, apiError(t, 404, "The specified bucket does not exist.", "notFound")), store.CodePermission, "create bucket bkt"},
		{"404 bucket on delete", "delete", fmt.Errorf("%w: %w", storage.ErrObjectNotExist, apiError(t, 404, "The specified bucket does not exist.", "notFound")), store.CodePermission, "create bucket bkt"},
		{"404 on put", "put", apiError(t, 404, "Not Found", "notFound"), store.CodePermission, "create bucket bkt"},
		{"404 source of copy", "copy", fmt.Errorf("from %q: %w", "src", apiError(t, 404, "No such object: bkt/pre/src", "notFound")), store.CodeNotFound, ""},
		{"bucket sentinel", "list", fmt.Errorf("%w: %w", storage.ErrBucketNotExist, apiError(t, 404, "Not Found", "notFound")), store.CodePermission, "fix the URL gs://bkt/pre"},
		{"object sentinel bare (XML read)", "open", storage.ErrObjectNotExist, store.CodeNotFound, ""},
		{"412", "put", apiError(t, 412, "At least one of the pre-conditions you specified did not hold.", "conditionNotMet"), store.CodePrecondition, "re-read"},
		{"409", "copy", apiError(t, 409, "The object was modified concurrently", "conflict"), store.CodePrecondition, "re-read"},
		{"429", "put", apiError(t, 429, "rate limit", "rateLimitExceeded"), store.CodeTransient, "throttling"},
		{"503 after SDK retries", "stat", fmt.Errorf("storage: retry failed after 5 attempts; last error: %w", apiError(t, 503, "Backend Error", "backendError")), store.CodeTransient, "server-side"},
		{"500", "list", apiError(t, 500, "Internal Error", "internalError"), store.CodeTransient, ""},
		{"408", "put", apiError(t, 408, "Request Timeout", "requestTimeout"), store.CodeTransient, ""},
		{"410 session expired", "put", apiError(t, 410, "Gone", "gone"), store.CodeTransient, "resumable"},
		{"400", "put", apiError(t, 400, "Invalid argument.", "invalid"), store.CodeInvalid, "storage class"},
		{"400 checksum", "put", apiError(t, 400, "Provided CRC32C \"AAAAAA==\" doesn't match calculated CRC32C \"BBBBBB==\".", "invalid"), store.CodeTransient, "transit"},
		{"416", "open", apiError(t, 416, "The requested range cannot be satisfied.", "requestedRangeNotSatisfiable"), store.CodeInvalid, "offset"},
		{"token refused", "stat", &url.Error{Op: "Get", URL: "https://storage.googleapis.com/x", Err: &auth.Error{Response: &http.Response{StatusCode: 400}, Body: []byte(`{"error":"invalid_grant"}`)}}, store.CodePermission, "gcp_credentials_file"},
		{"token service down", "stat", &auth.Error{Response: &http.Response{StatusCode: 503}}, store.CodeTransient, ""},
		{"connection refused", "stat", refusedDial(t), store.CodeTransient, "check that the endpoint https://storage.googleapis.com"},
		{"connection reset", "put", &url.Error{Op: "Post", URL: "http://h/u", Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}, store.CodeTransient, "reset"},
		{"unknown host", "stat", &url.Error{Op: "Get", URL: "https://nosuch.invalid/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "nosuch.invalid", IsNotFound: true}}}, store.CodePermission, "nosuch.invalid"},
		{"untrusted certificate", "stat", &url.Error{Op: "Get", URL: "https://h/", Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}, store.CodePermission, "TLS"},
		{"wrong certificate host", "stat", &url.Error{Op: "Get", URL: "https://h/", Err: x509.HostnameError{Host: "h", Certificate: &x509.Certificate{}}}, store.CodePermission, "TLS"},
		{"net timeout", "open", &url.Error{Op: "Get", URL: "https://h/", Err: &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}}, store.CodeTransient, "timed out"},
		{"deadline", "stat", context.DeadlineExceeded, store.CodeTransient, "cancelled"},
		{"cancelled", "put", fmt.Errorf("writing: %w", context.Canceled), store.CodeTransient, "cancelled"},
		{"no default credentials", "stat", errors.New("credentials: could not find default credentials. See https://cloud.google.com/docs/authentication/external/set-up-adc for more information"), store.CodePermission, "gcp_credentials_file"},
		{"mismatch", "put", local(store.CodeMismatch, errors.New("stream SHA-256 differs")), store.CodeMismatch, "source changed"},
		{"invalid key", "put", local(store.CodeInvalid, errors.New("empty key")), store.CodeInvalid, "fix the key"},
		{"local precondition", "copy", local(store.CodePrecondition, errors.New("object exists")), store.CodePrecondition, "re-read"},
		{"source read failure", "put", local(store.CodeTransient, errors.New("reading the source: EIO")), store.CodeTransient, "source stream"},
		{"other", "stat", errors.New("something odd"), store.CodeTransient, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, hint := classify(tc.op, tc.err, testHints)
			if code != tc.want {
				t.Fatalf("classify(%s, %v) = %q, want %q", tc.op, tc.err, code, tc.want)
			}
			if !strings.Contains(hint, tc.hint) {
				t.Fatalf("hint %q does not mention %q", hint, tc.hint)
			}
			if code == store.CodePermission && hint == "" {
				t.Fatalf("a permission error needs a hint")
			}
		})
	}
}

func TestClassifyADCHint(t *testing.T) {
	_, hint := classify("stat", apiError(t, 401, "Invalid Credentials", "authError"), hints{bucket: "b"})
	if !strings.Contains(hint, "Application Default Credentials") {
		t.Fatalf("hint %q does not name ADC", hint)
	}
}

func TestFailFields(t *testing.T) {
	s := &gcsStore{name: "gcs-eu", hints: testHints}
	e := s.fail("put", "a/b.pdf", apiError(t, 403, "denied", "forbidden"))
	if e.Code != store.CodePermission || e.Op != "put" || e.Store != "gcs-eu" || e.Key != "a/b.pdf" || e.Hint == "" {
		t.Fatalf("fail = %+v", e)
	}
	if !strings.HasPrefix(e.Error(), `put gcs-eu "a/b.pdf": permission or configuration: `) {
		t.Fatalf("message %q", e.Error())
	}
	if again := s.fail("copy", "x", e); again != e {
		t.Fatalf("an already classified error was reclassified: %+v", again)
	}
	var ge *googleapi.Error
	if !errors.As(e, &ge) || ge.Code != 403 {
		t.Fatalf("the SDK error is not in the chain of %v", e)
	}
}

func TestConditions(t *testing.T) {
	c, ok, err := conditions(store.Precondition{IfMatch: "1795308927873886"})
	if err != nil || !ok || c.GenerationMatch != 1795308927873886 {
		t.Fatalf("if-match generation = %+v %v %v", c, ok, err)
	}
	if c, ok, err := conditions(store.Precondition{IfNoneMatch: true}); err != nil || !ok || !c.DoesNotExist {
		t.Fatalf("if-none-match = %+v %v %v", c, ok, err)
	}
	if _, ok, err := conditions(store.Precondition{}); err != nil || ok {
		t.Fatalf("no precondition = %v %v", ok, err)
	}
	for _, etag := range []string{`"0123456789abcdef"`, "abc", "0", "-3", "1.5"} {
		_, _, err := conditions(store.Precondition{IfMatch: etag})
		if code, _ := classify("put", err, testHints); err == nil || code != store.CodePrecondition {
			t.Fatalf("if-match %q: %v, want a precondition failure", etag, err)
		}
	}
	_, _, err = conditions(store.Precondition{IfMatch: "5", IfNoneMatch: true})
	if code, _ := classify("put", err, testHints); err == nil || code != store.CodeInvalid {
		t.Fatalf("both conditions: %v, want invalid", err)
	}
}

func TestRetryBudget(t *testing.T) {
	retry := retryBudget()
	transient := apiError(t, 503, "Backend Error", "backendError")
	for i := 1; i < sdkMaxAttempts; i++ {
		if !retry(transient) {
			t.Fatalf("failure %d not retried", i)
		}
	}
	if retry(transient) {
		t.Fatalf("failure %d retried, want at most %d attempts", sdkMaxAttempts, sdkMaxAttempts)
	}
	if retry(nil) {
		t.Fatal("success retried")
	}
	if !retry(transient) {
		t.Fatal("a success did not reset the count")
	}
	if retry(apiError(t, 412, "precondition", "conditionNotMet")) {
		t.Fatal("a precondition failure was retried")
	}
}

func TestNewConfigErrors(t *testing.T) {
	t.Setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:1") // no credential lookup, no network
	dir := t.TempDir()
	badCreds := filepath.Join(dir, "creds.json")
	if err := os.WriteFile(badCreds, []byte(`{"type":"gdch_service_account"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		url  string
		mod  func(*store.Options)
	}{
		{"scheme", "s3://bkt/p", nil},
		{"no bucket", "gs:///p", nil},
		{"unknown parameter", "gs://bkt/p?region=eu", nil},
		{"bad endpoint", "gs://bkt/p?endpoint=ftp://h", nil},
		{"empty prefix segment", "gs://bkt/a//b", nil},
		{"storage class", "gs://bkt/p", func(o *store.Options) { o.StorageClass = "GLACIER" }},
		{"sse", "gs://bkt/p", func(o *store.Options) { o.SSE = "aws:kms" }},
		{"kms key", "gs://bkt/p", func(o *store.Options) { o.SSEKMSKeyID = "arn:aws:kms:eu:1:key/x" }},
		{"missing credentials file", "gs://bkt/p", func(o *store.Options) { o.Credentials.GCPCredentialsFile = filepath.Join(dir, "none.json") }},
		{"credentials type", "gs://bkt/p", func(o *store.Options) { o.Credentials.GCPCredentialsFile = badCreds }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			opts := store.Options{Name: "gcs-test", URL: u}
			if tc.mod != nil {
				tc.mod(&opts)
			}
			s, err := New(context.Background(), opts)
			if err == nil {
				s.Close()
				t.Fatalf("New(%s) succeeded", tc.url)
			}
			var se *store.Error
			if !errors.As(err, &se) || se.Code != store.CodePermission || se.Hint == "" {
				t.Fatalf("New(%s) = %v, want a permission/configuration error with a hint", tc.url, err)
			}
		})
	}
}

func TestNewOK(t *testing.T) {
	t.Setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:1")
	u, _ := url.Parse("gs://bkt/some/prefix/?endpoint=http://127.0.0.1:2")
	st, err := New(context.Background(), store.Options{Name: "n", URL: u, StorageClass: "nearline"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*gcsStore)
	if s.prefix != "some/prefix" || s.storageClass != "NEARLINE" || !s.emulated || s.hints.endpoint != "http://127.0.0.1:2/storage/v1/" {
		t.Fatalf("store = %+v", s)
	}
	if s.partSize != DefaultPartSize || s.threshold != DefaultThreshold || s.pageSize != DefaultPageSize {
		t.Fatalf("defaults not applied: %+v", s)
	}
	// Keys are validated with the prefix counted, before any request, by the wrapper
	// every store is opened behind.
	c := store.Checked(st)
	_, err = c.Stat(context.Background(), longKey(store.MaxKeyBytes-len("some/prefix/")+1))
	if store.CodeOf(err) != store.CodeInvalid {
		t.Fatalf("over-long key: %v", err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel() // no request goes out
	if _, err := c.Stat(cancelled, longKey(store.MaxKeyBytes-len("some/prefix/"))); store.CodeOf(err) == store.CodeInvalid {
		t.Fatalf("a key of exactly the maximum length was refused: %v", err)
	}
}

// longKey is an n-byte key of 100-byte segments, which even the emulator's segment
// limit accepts (n%100 must not be 0).
func longKey(n int) string {
	return strings.Repeat(strings.Repeat("k", 99)+"/", n/100) + strings.Repeat("k", n%100)
}
