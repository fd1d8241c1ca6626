package azstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/cloudrepl/replicator/internal/store"
)

var testSite = site{account: "acct", container: "cont", endpoint: "https://acct.blob.core.windows.net",
	credential: "the connection string in $AZ_CONN", connEnv: "AZ_CONN"}

// responseErr builds the SDK's own *azcore.ResponseError from a fake response, the
// way the pipeline does. HEAD answers carry the code only in x-ms-error-code.
func responseErr(status int, code string) error {
	h := http.Header{}
	if code != "" {
		h.Set("x-ms-error-code", code)
	}
	h.Set("x-ms-request-id", "req-1")
	req, _ := http.NewRequest(http.MethodPut, "https://acct.blob.core.windows.net/cont/k", nil)
	return runtime.NewResponseError(&http.Response{StatusCode: status, Status: http.StatusText(status), Header: h,
		Body: io.NopCloser(strings.NewReader("")), Request: req})
}

// responseErrXML carries the code only in the body, as some proxies leave it.
func responseErrXML(status int, code string) error {
	req, _ := http.NewRequest(http.MethodGet, "https://acct.blob.core.windows.net/cont/k", nil)
	body := `<?xml version="1.0" encoding="utf-8"?><Error><Code>` + code + `</Code><Message>m</Message></Error>`
	return runtime.NewResponseError(&http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)), Request: req})
}

func dialRefused(t *testing.T) error {
	t.Helper()
	_, err := net.DialTimeout("tcp", "127.0.0.1:1", time.Second)
	if err == nil {
		t.Skip("something listens on 127.0.0.1:1")
	}
	return &url.Error{Op: "Put", URL: "http://127.0.0.1:1/devstoreaccount1/c/k", Err: err}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		wholeStore bool
		want       store.Code
		hint       string // substring the hint must hold
	}{
		{"blob not found", responseErr(404, "BlobNotFound"), false, store.CodeNotFound, ""},
		{"blob not found in body", responseErrXML(404, "BlobNotFound"), false, store.CodeNotFound, ""},
		{"container not found", responseErr(404, "ContainerNotFound"), false, store.CodePermission, `create container "cont"`},
		{"container not found on list", responseErr(404, "ContainerNotFound"), true, store.CodePermission, `create container "cont"`},
		{"container being deleted", responseErr(409, "ContainerBeingDeleted"), false, store.CodePermission, "create container"},
		{"condition not met", responseErr(412, "ConditionNotMet"), false, store.CodePrecondition, "re-read"},
		{"blob already exists", responseErr(409, "BlobAlreadyExists"), false, store.CodePrecondition, "re-read"},
		{"target condition not met", responseErr(412, "TargetConditionNotMet"), false, store.CodePrecondition, "re-read"},
		{"authentication failed", responseErr(403, "AuthenticationFailed"), false, store.CodePermission, "$AZ_CONN"},
		{"authorization failure", responseErr(403, "AuthorizationFailure"), false, store.CodePermission, "$AZ_CONN"},
		{"permission mismatch", responseErr(403, "AuthorizationPermissionMismatch"), false, store.CodePermission, "role on container"},
		{"invalid authentication info", responseErr(400, "InvalidAuthenticationInfo"), false, store.CodePermission, "$AZ_CONN"},
		{"no authentication", responseErr(401, "NoAuthenticationInformation"), false, store.CodePermission, "$AZ_CONN"},
		{"account disabled", responseErr(403, "AccountIsDisabled"), false, store.CodePermission, "disabled"},
		{"archived", responseErr(409, "BlobArchived"), false, store.CodePermission, "rehydrate"},
		{"leased", responseErr(412, "LeaseIdMissing"), false, store.CodePermission, "lease"},
		{"immutable", responseErr(409, "BlobImmutableDueToPolicy"), false, store.CodePermission, "immutability"},
		{"server busy", responseErr(503, "ServerBusy"), false, store.CodeTransient, "retried"},
		{"internal error", responseErr(500, "InternalError"), false, store.CodeTransient, "retried"},
		{"operation timed out", responseErr(500, "OperationTimedOut"), false, store.CodeTransient, "retried"},
		{"md5 mismatch", responseErr(400, "Md5Mismatch"), false, store.CodeTransient, "corrupted"},
		{"pending copy", responseErr(409, "PendingCopyOperation"), false, store.CodeTransient, ""},
		{"blocks discarded", responseErr(400, "InvalidBlockList"), false, store.CodeTransient, "another writer"},
		{"block id clash", responseErr(400, "InvalidBlobOrBlock"), false, store.CodeTransient, "another writer"},
		{"bad metadata", responseErr(400, "InvalidMetadata"), false, store.CodeInvalid, "metadata"},
		{"metadata too large", responseErr(400, "MetadataTooLarge"), false, store.CodeInvalid, "8 KiB"},
		// Status codes alone, for answers without a code (HEAD through proxies, new codes).
		{"401", responseErr(401, ""), false, store.CodePermission, "$AZ_CONN"},
		{"403", responseErr(403, ""), false, store.CodePermission, "$AZ_CONN"},
		{"404 key", responseErr(404, ""), false, store.CodeNotFound, ""},
		{"404 copy source", responseErr(404, "CannotVerifyCopySource"), false, store.CodeNotFound, ""},
		{"404 whole store", responseErr(404, "ResourceNotFound"), true, store.CodePermission, "create container"},
		{"412", responseErr(412, ""), false, store.CodePrecondition, "re-read"},
		{"408", responseErr(408, ""), false, store.CodeTransient, "retried"},
		{"429", responseErr(429, ""), false, store.CodeTransient, "retried"},
		{"502", responseErr(502, ""), false, store.CodeTransient, "retried"},
		{"unknown 409", responseErr(409, "SnapshotsPresent"), false, store.CodeTransient, ""},
		{"400", responseErr(400, "InvalidHeaderValue"), false, store.CodeInvalid, "error code"},
		{"416", responseErr(416, "InvalidRange"), false, store.CodeInvalid, ""},
		// Credentials.
		{"token refused", &azidentity.AuthenticationFailedError{RawResponse: &http.Response{StatusCode: 401}}, false, store.CodePermission, "$AZ_CONN"},
		{"token endpoint failing", &azidentity.AuthenticationFailedError{RawResponse: &http.Response{StatusCode: 503}}, false, store.CodeTransient, "identity provider"},
		{"no credential", fmt.Errorf("wrapped: %w", azidentity.NewCredentialUnavailableError("no identity configured")), false, store.CodePermission, "$AZ_CONN"},
		{"authentication required", &azidentity.AuthenticationRequiredError{}, false, store.CodePermission, "$AZ_CONN"},
		// Network.
		{"connection refused", dialRefused(t), false, store.CodeTransient, "check that the endpoint https://acct.blob.core.windows.net is up"},
		{"unknown host", &url.Error{Op: "Get", URL: "https://nope.blob.core.windows.net", Err: &net.OpError{Op: "dial", Net: "tcp",
			Err: &net.DNSError{Err: "no such host", Name: "nope.blob.core.windows.net", IsNotFound: true}}}, false, store.CodePermission, `storage account name "acct"`},
		{"dns timeout", &net.DNSError{Err: "i/o timeout", Name: "acct.blob.core.windows.net", IsTimeout: true}, false, store.CodeTransient, "DNS"},
		{"unknown CA", &url.Error{Op: "Get", URL: "https://x", Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}, false, store.CodePermission, "certificate"},
		{"https to plain http", &url.Error{Op: "Get", URL: "https://x", Err: tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}}, false, store.CodePermission, "scheme"},
		{"connection reset", &url.Error{Op: "Put", URL: "https://x", Err: &net.OpError{Op: "read", Net: "tcp",
			Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}}, false, store.CodeTransient, "check the endpoint"},
		// Context and anything else.
		{"cancelled", fmt.Errorf("staging block 2: %w", context.Canceled), false, store.CodeTransient, ""},
		{"deadline", context.DeadlineExceeded, false, store.CodeTransient, ""},
		{"unknown", errors.New("something odd"), false, store.CodeTransient, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, hint := testSite.classify(c.err, c.wholeStore)
			if code != c.want {
				t.Fatalf("classify(%v) = %q, want %q", c.err, code, c.want)
			}
			if !strings.Contains(hint, c.hint) {
				t.Fatalf("hint %q lacks %q", hint, c.hint)
			}
			if c.want == store.CodePermission && hint == "" {
				t.Fatalf("permission error without a hint")
			}
		})
	}
}

func TestFailWrapsOnce(t *testing.T) {
	s := &blobStore{name: "az", site: testSite}
	err := s.fail("put", "a/b", fmt.Errorf("staging block 3: %w", responseErr(503, "ServerBusy")))
	var se *store.Error
	if !errors.As(err, &se) || se.Code != store.CodeTransient || se.Op != "put" || se.Store != "az" || se.Key != "a/b" {
		t.Fatalf("fail = %#v", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "staging block 3: PUT HTTP 503 ServerBusy (request id req-1)") {
		t.Fatalf("message %q is not the one-line form with context", msg)
	}
	if again := s.fail("copy", "x", err); again != err {
		t.Fatalf("an already classified error was wrapped again: %v", again)
	}
}

// TestSDKRetries runs the SDK's pipeline, with the driver's retry options, against a
// server that is always busy: the error is classified from the real response, and
// the SDK gives up after its two short retries instead of backing off for a minute.
func TestSDKRetries(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("x-ms-error-code", "ServerBusy")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	t.Setenv("AZSTORE_UNIT_CONN", "AccountName=acct;AccountKey="+strings.Repeat("QUFB", 16))
	s := newTestStore(t, "azblob://acct/cont/p?endpoint="+url.QueryEscape(srv.URL+"/acct"), "AZSTORE_UNIT_CONN")
	start := time.Now()
	_, err := s.Stat(context.Background(), "k")
	if store.CodeOf(err) != store.CodeTransient {
		t.Fatalf("stat against a busy server: %v, want transient", err)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("server saw %d requests, want 3 (one try and two retries)", n)
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("giving up took %v", d)
	}
}

// TestHeadErrorCode checks that a HEAD answer, which has no body, is classified from
// its x-ms-error-code header.
func TestHeadErrorCode(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ms-error-code", "ContainerNotFound")
		w.WriteHeader(http.StatusNotFound)
	}))
	defer srv.Close()
	t.Setenv("AZSTORE_UNIT_CONN", "AccountName=acct;AccountKey="+strings.Repeat("QUFB", 16))
	s := newTestStore(t, "azblob://acct/cont?endpoint="+url.QueryEscape(srv.URL+"/acct"), "AZSTORE_UNIT_CONN")
	_, err := s.Stat(context.Background(), "k")
	var se *store.Error
	if !errors.As(err, &se) || se.Code != store.CodePermission || !strings.Contains(se.Hint, `create container "cont"`) {
		t.Fatalf("stat in a missing container: %v", err)
	}
}
