package s3store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cloudrepl/replicator/internal/store"
)

// fakeS3 answers every request with one canned response, so that the SDK builds its
// own error values from it exactly as it does for a real server.
type fakeS3 struct {
	status int
	header map[string]string
	code   string // S3 error code in the XML body; "" for no body
}

func (f fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	for k, v := range f.header {
		w.Header().Set(k, v)
	}
	if f.code == "" {
		w.WriteHeader(f.status)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(f.status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>canned %s</Message><RequestId>req-1</RequestId><HostId>host-1</HostId></Error>`, f.code, f.code)
}

// unitStore returns a store talking to endpoint with fixed keys and no retries.
func unitStore(t *testing.T, endpoint string, optFns ...func(*s3.Options)) *s3Store {
	t.Helper()
	u := &url.URL{Scheme: "s3", Host: "bucket", Path: "/prefix", RawQuery: url.Values{"endpoint": {endpoint}}.Encode()}
	fns := append([]func(*s3.Options){func(o *s3.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")
		o.Retryer = aws.NopRetryer{}
	}}, optFns...)
	s, err := newStore(context.Background(), store.Options{Name: "unit", URL: u, Credentials: store.Credentials{AWSProfile: ""}}, fns...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// call runs one store operation against s and returns its error.
func call(s *s3Store, op string) error {
	ctx := context.Background()
	sum := "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881" // SHA-256 of "x"
	switch op {
	case "check":
		return s.Check(ctx)
	case "stat":
		_, err := s.Stat(ctx, "k")
		return err
	case "open":
		_, err := s.Open(ctx, "k", 0)
		return err
	case "put":
		_, err := s.Put(ctx, "k", strings.NewReader("x"), store.PutOptions{SHA256: sum, Size: 1})
		return err
	case "put-if-match":
		_, err := s.Put(ctx, "k", strings.NewReader("x"), store.PutOptions{SHA256: sum, Size: 1, Precondition: store.Precondition{IfMatch: `"e"`}})
		return err
	case "delete":
		return s.Delete(ctx, "k", store.DeleteOptions{})
	case "list":
		for _, err := range s.List(ctx, store.ListOptions{}) {
			return err
		}
		return nil
	case "upload-part":
		u := &upload{s: s, key: "prefix/k", id: "upload-1"}
		return s.classify("put", "k", false, u.putPart(ctx, 1, []byte("x")))
	}
	panic("unknown op " + op)
}

func TestClassifyServerAnswers(t *testing.T) {
	for _, c := range []struct {
		op   string
		resp fakeS3
		want store.Code
		hint string // a substring the hint must hold
	}{
		{"stat", fakeS3{status: 404}, store.CodeNotFound, ""},
		{"open", fakeS3{status: 404, code: "NoSuchKey"}, store.CodeNotFound, ""},
		{"stat", fakeS3{status: 404, header: map[string]string{"X-Minio-Error-Code": "NoSuchBucket"}}, store.CodePermission, "create bucket bucket"},
		{"check", fakeS3{status: 404}, store.CodePermission, "create bucket bucket"},
		{"put", fakeS3{status: 404, code: "NoSuchBucket"}, store.CodePermission, "create bucket bucket"},
		{"list", fakeS3{status: 404, code: "NoSuchBucket"}, store.CodePermission, "create bucket bucket"},
		{"put", fakeS3{status: 404, code: "NoSuchKey"}, store.CodeNotFound, ""},
		{"put-if-match", fakeS3{status: 404, code: "NoSuchKey"}, store.CodePrecondition, "re-read"},
		{"put-if-match", fakeS3{status: 412, code: "PreconditionFailed"}, store.CodePrecondition, "re-read"},
		{"put", fakeS3{status: 409, code: "ConditionalRequestConflict"}, store.CodePrecondition, "re-read"},
		{"stat", fakeS3{status: 412}, store.CodePrecondition, ""},
		{"upload-part", fakeS3{status: 404, code: "NoSuchUpload"}, store.CodeTransient, "aborted"},
		{"put", fakeS3{status: 403, code: "InvalidAccessKeyId"}, store.CodePermission, "default credential chain"},
		{"put", fakeS3{status: 403, code: "SignatureDoesNotMatch"}, store.CodePermission, "refused the credentials"},
		{"put", fakeS3{status: 400, code: "ExpiredToken"}, store.CodePermission, "refused the credentials"},
		{"put", fakeS3{status: 403, code: "AccessDenied"}, store.CodePermission, "bucket policy"},
		{"stat", fakeS3{status: 403}, store.CodePermission, "access denied"},
		{"stat", fakeS3{status: 401}, store.CodePermission, "refused the credentials"},
		{"put", fakeS3{status: 403, code: "RequestTimeTooSkewed"}, store.CodePermission, "clock"},
		{"open", fakeS3{status: 403, code: "InvalidObjectState"}, store.CodePermission, "restore"},
		{"put", fakeS3{status: 301, code: "PermanentRedirect", header: map[string]string{"X-Amz-Bucket-Region": "eu-west-1"}}, store.CodePermission, "?region=eu-west-1"},
		{"check", fakeS3{status: 301, header: map[string]string{"X-Amz-Bucket-Region": "eu-west-1"}}, store.CodePermission, "?region=eu-west-1"},
		{"put", fakeS3{status: 400, code: "AuthorizationHeaderMalformed"}, store.CodePermission, "region"},
		{"put", fakeS3{status: 400, code: "InvalidStorageClass"}, store.CodePermission, "storage_class"},
		{"put", fakeS3{status: 400, code: "KMS.NotFoundException"}, store.CodePermission, "sse_kms_key_id"},
		{"put", fakeS3{status: 501, code: "NotImplemented"}, store.CodePermission, "conditional writes"},
		{"put", fakeS3{status: 503, code: "SlowDown"}, store.CodeTransient, "retried"},
		{"put", fakeS3{status: 500, code: "InternalError"}, store.CodeTransient, "retried"},
		{"put", fakeS3{status: 400, code: "RequestTimeout"}, store.CodeTransient, "retried"},
		{"put", fakeS3{status: 400, code: "BadDigest"}, store.CodeTransient, "damaged"},
		{"stat", fakeS3{status: 503}, store.CodeTransient, "retried"},
		{"stat", fakeS3{status: 429}, store.CodeTransient, "retried"},
		{"put", fakeS3{status: 400, code: "InvalidArgument"}, store.CodeInvalid, ""},
		{"put", fakeS3{status: 400, code: "EntityTooLarge"}, store.CodeInvalid, ""},
		{"put", fakeS3{status: 400, code: "MetadataTooLarge"}, store.CodeInvalid, ""},
		{"open", fakeS3{status: 416, code: "InvalidRange"}, store.CodeInvalid, ""},
		{"put", fakeS3{status: 400, code: "SomethingNew"}, store.CodeInvalid, ""},
		{"put", fakeS3{status: 400, code: "InvalidBucketName"}, store.CodePermission, "fix the URL"},
	} {
		name := fmt.Sprintf("%s/%d/%s", c.op, c.resp.status, c.resp.code)
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(c.resp)
			defer srv.Close()
			err := call(unitStore(t, srv.URL), c.op)
			checkClass(t, err, c.want, c.hint)
		})
	}
}

func checkClass(t *testing.T, err error, want store.Code, hint string) {
	t.Helper()
	var se *store.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %T %v is not a *store.Error", err, err)
	}
	if se.Code != want {
		t.Fatalf("class %q, want %q: %v", se.Code, want, err)
	}
	if !strings.Contains(se.Hint, hint) {
		t.Fatalf("hint %q lacks %q", se.Hint, hint)
	}
	if se.Store == "" || se.Op == "" {
		t.Fatalf("error lacks store or op: %+v", se)
	}
}

func TestDeleteOfMissingKeySucceeds(t *testing.T) {
	srv := httptest.NewServer(fakeS3{status: 404, code: "NoSuchKey"})
	defer srv.Close()
	if err := call(unitStore(t, srv.URL), "delete"); err != nil {
		t.Fatalf("delete of a missing key: %v", err)
	}
}

func TestClassifyConnections(t *testing.T) {
	// A port that was just closed refuses connections.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	err = call(unitStore(t, closed), "stat")
	checkClass(t, err, store.CodeTransient, "connection refused: check that the endpoint "+closed)

	// A TLS server whose certificate the client does not trust.
	tlsSrv := httptest.NewUnstartedServer(fakeS3{status: 200})
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	checkClass(t, call(unitStore(t, tlsSrv.URL), "stat"), store.CodePermission, "AWS_CA_BUNDLE")

	// An https endpoint that speaks plain HTTP.
	plain := httptest.NewServer(fakeS3{status: 200})
	defer plain.Close()
	checkClass(t, call(unitStore(t, strings.Replace(plain.URL, "http://", "https://", 1)), "stat"), store.CodePermission, "plain HTTP")

	// A server that hangs up mid-response.
	hangup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer hangup.Close()
	checkClass(t, call(unitStore(t, hangup.URL), "stat"), store.CodeTransient, "network error")

	// A cancelled context.
	srv := httptest.NewServer(fakeS3{status: 200})
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = unitStore(t, srv.URL).Stat(ctx, "k")
	checkClass(t, err, store.CodeTransient, "cancelled")
}

// s3OpError wraps err as the SDK wraps the failure of an S3 call.
func s3OpError(err error) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: err}
}

func TestClassifyErrorValues(t *testing.T) {
	s := &s3Store{name: "unit", bucket: "bucket", endpoint: "https://s3.example.test", region: "us-east-1", profile: "replication"}
	refused := &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	credFailure := func(inner error) error {
		return s3OpError(fmt.Errorf("get identity: %w", fmt.Errorf("get credentials: %w", fmt.Errorf("failed to refresh cached credentials, %w", inner))))
	}
	stsResponse := func(status int) error {
		return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: http.Header{}}}, Err: errors.New("sts failed")}
	}
	for _, c := range []struct {
		name string
		err  error
		want store.Code
		hint string
	}{
		{"unknown host", s3OpError(&smithyhttp.RequestSendError{Err: &net.DNSError{Err: "no such host", Name: "bucket.s3.example.test", IsNotFound: true}}), store.CodePermission, "unknown host"},
		{"DNS timeout", s3OpError(&smithyhttp.RequestSendError{Err: &net.DNSError{Err: "i/o timeout", Name: "s3.example.test", IsTimeout: true}}), store.CodeTransient, "DNS"},
		{"connection refused", s3OpError(refused), store.CodeTransient, "https://s3.example.test is up"},
		{"connection reset", s3OpError(&smithyhttp.RequestSendError{Err: os.NewSyscallError("read", syscall.ECONNRESET)}), store.CodeTransient, "network"},
		{"unexpected EOF", s3OpError(io.ErrUnexpectedEOF), store.CodeTransient, "network"},
		{"unknown authority", s3OpError(&smithyhttp.RequestSendError{Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}), store.CodePermission, "AWS_CA_BUNDLE"},
		{"wrong host name", s3OpError(&smithyhttp.RequestSendError{Err: x509.HostnameError{Certificate: &x509.Certificate{}, Host: "s3.example.test"}}), store.CodePermission, "TLS"},
		{"deadline", s3OpError(context.DeadlineExceeded), store.CodeTransient, "timed out"},
		{"no credentials (no IMDS)", credFailure(&smithy.OperationError{ServiceID: "ec2imds", OperationName: "GetMetadata", Err: refused}), store.CodePermission, `AWS profile "replication"`},
		{"STS refuses", credFailure(&smithy.OperationError{ServiceID: "STS", OperationName: "AssumeRole", Err: stsResponse(403)}), store.CodePermission, "no usable credentials"},
		{"STS down", credFailure(&smithy.OperationError{ServiceID: "STS", OperationName: "AssumeRole", Err: stsResponse(503)}), store.CodeTransient, "STS"},
		{"empty static keys", credFailure(&credentials.StaticCredentialsEmptyError{}), store.CodePermission, "no usable credentials"},
		{"credential provider without type", credFailure(errors.New("profile has no credentials")), store.CodePermission, "no usable credentials"},
		{"missing region", s3OpError(&aws.MissingRegionError{}), store.CodePermission, "region"},
		{"anything else", errors.New("something odd"), store.CodeTransient, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkClass(t, s.classify("put", "k", false, c.err), c.want, c.hint)
		})
	}

	// A store error passes through as it is.
	orig := store.Errorf(store.CodeMismatch, "put", "unit", "k", "h", "mismatch")
	if got := s.classify("put", "k", false, fmt.Errorf("wrapped: %w", orig)); got != orig {
		t.Fatalf("store error changed: %v", got)
	}
	if s.classify("put", "k", false, nil) != nil {
		t.Fatal("nil error classified")
	}
}
