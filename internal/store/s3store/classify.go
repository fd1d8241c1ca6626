package s3store

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/processcreds"
	"github.com/aws/aws-sdk-go-v2/credentials/ssocreds"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cloudrepl/replicator/internal/store"
)

// classify turns an error of the SDK, or of the network under it, into a *store.Error
// with a hint for the operator: the one place where S3's answers become the store's
// classes. ifMatch says the request was a write guarded by If-Match, which S3 answers
// with 404 NoSuchKey when the key is missing and the store contract calls a failed
// precondition. Errors that are already *store.Error pass through.
func (s *s3Store) classify(op, key string, ifMatch bool, err error) error {
	if err == nil {
		return nil
	}
	var se *store.Error
	if errors.As(err, &se) {
		return se
	}
	code, hint := s.classOf(op, ifMatch, err)
	return &store.Error{Code: code, Op: op, Store: s.name, Key: key, Hint: hint, Err: err}
}

// S3 error codes by class. Codes absent here are classified by HTTP status.
var (
	transientCodes = codeSet("SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
		"TooManyRequests", "RequestThrottled", "ServiceUnavailable", "InternalError", "RequestTimeout",
		"OperationAborted", "IncompleteBody", "XMinioServerNotInitialized")
	// The server computed another digest than the one sent with bytes that matched it
	// when they were sent: they were damaged on the way, and a retry resends them.
	damagedCodes           = codeSet("BadDigest", "XAmzContentSHA256Mismatch", "XAmzContentChecksumMismatch")
	refusedCredentialCodes = codeSet("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
		"TokenRefreshRequired", "InvalidToken", "InvalidSecurity", "Unauthorized", "InvalidClientTokenId",
		"MissingSecurityHeader", "InvalidTokenId")
	deniedCodes = codeSet("AccessDenied", "Forbidden", "AllAccessDisabled", "AccountProblem")
	regionCodes = codeSet("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException",
		"InvalidRegion", "MovedPermanently")
	invalidCodes = codeSet("InvalidRange", "EntityTooLarge", "EntityTooSmall", "KeyTooLongError",
		"MetadataTooLarge", "InvalidArgument", "InvalidRequest", "InvalidPart", "InvalidPartOrder",
		"TooManyParts", "InvalidDigest", "MalformedXML", "InvalidObjectName")
)

func codeSet(codes ...string) map[string]bool {
	m := make(map[string]bool, len(codes))
	for _, c := range codes {
		m[c] = true
	}
	return m
}

// classOf returns the class of err and what the operator should check.
func (s *s3Store) classOf(op string, ifMatch bool, err error) (store.Code, string) {
	if code, ok := store.ContextCode(err); ok {
		return code, "the operation was cancelled or timed out"
	}
	if code, hint, ok := s.credentialClass(err); ok {
		return code, hint
	}

	code, status, header := responseOf(err)
	// MinIO names the error of a HEAD, which has no body, in a header: it tells a
	// missing bucket from a missing key where S3 cannot.
	if c := header.Get("X-Minio-Error-Code"); c != "" {
		code = c
	}
	switch {
	case code == "NoSuchBucket", op == "check" && (code == "NotFound" || status == http.StatusNotFound):
		return store.CodePermission, s.missingBucketHint()
	case code == "NoSuchKey", code == "NotFound":
		if ifMatch {
			return store.CodePrecondition, "the key does not exist, so an If-Match write cannot apply: re-read the destination and decide again"
		}
		return store.CodeNotFound, ""
	case code == "PreconditionFailed", code == "ConditionalRequestConflict":
		return store.CodePrecondition, "the object is not in the state the write expected: re-read it and decide again"
	case code == "NoSuchUpload":
		return store.CodeTransient, "the multipart upload was aborted meanwhile (by another worker or a lifecycle rule); a retry starts a new one"
	case refusedCredentialCodes[code]:
		return store.CodePermission, "the server refused the credentials: check " + s.credentialsRef()
	case deniedCodes[code]:
		return store.CodePermission, s.deniedHint()
	case code == "InvalidObjectState":
		return store.CodePermission, "the object is in an archive storage class: restore it before reading it"
	case code == "RequestTimeTooSkewed":
		return store.CodePermission, "this machine's clock is off: synchronise it (NTP)"
	case regionCodes[code], status == http.StatusMovedPermanently:
		return store.CodePermission, s.regionHint(header)
	case code == "InvalidBucketName":
		return store.CodePermission, fmt.Sprintf("bucket name %q is not valid: fix the URL", s.bucket)
	case code == "InvalidStorageClass":
		return store.CodePermission, fmt.Sprintf("storage class %q is not accepted by this server: fix storage_class", s.storageClass)
	case strings.HasPrefix(code, "KMS."), code == "InvalidEncryptionAlgorithmError", code == "KMSNotConfigured":
		return store.CodePermission, s.sseHint()
	case code == "NotImplemented", status == http.StatusNotImplemented:
		return store.CodePermission, "the server does not implement this request: check that it supports conditional writes and the destination's sse and storage_class options"
	case transientCodes[code]:
		return store.CodeTransient, "the server is busy or failed; retried with backoff"
	case damagedCodes[code]:
		return store.CodeTransient, "the server received other bytes than were sent (damaged in transit); a retry resends them"
	case invalidCodes[code], status == http.StatusRequestedRangeNotSatisfiable:
		return store.CodeInvalid, "the server refused the request as made; it cannot succeed on retry"
	case status == http.StatusNotFound:
		if ifMatch {
			return store.CodePrecondition, "the key does not exist, so an If-Match write cannot apply: re-read the destination and decide again"
		}
		return store.CodeNotFound, ""
	case status == http.StatusPreconditionFailed:
		return store.CodePrecondition, "the object is not in the state the write expected: re-read it and decide again"
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return store.CodePermission, s.deniedHint()
	case status == http.StatusTooManyRequests, status >= 500, status == http.StatusRequestTimeout, status == http.StatusConflict:
		return store.CodeTransient, "the server is busy or failed; retried with backoff"
	case status >= 400:
		return store.CodeInvalid, "the server refused the request as made; it cannot succeed on retry"
	}
	return s.networkClass(err)
}

// responseOf extracts S3's error code, the HTTP status and the response headers, as
// far as the error carries them.
func responseOf(err error) (code string, status int, header http.Header) {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var withResp interface{ HTTPResponse() *smithyhttp.Response }
	if errors.As(err, &withResp) {
		if r := withResp.HTTPResponse(); r != nil && r.Response != nil {
			status, header = r.StatusCode, r.Header
		}
	}
	if header == nil {
		header = http.Header{}
	}
	return code, status, header
}

// credentialClass recognises failures to obtain credentials, which the SDK reports as
// the failure of the S3 call that needed them.
func (s *s3Store) credentialClass(err error) (store.Code, string, bool) {
	hint := "no usable credentials: check " + s.credentialsRef()
	var empty *credentials.StaticCredentialsEmptyError
	var proc *processcreds.ProviderError
	var sso *ssocreds.InvalidTokenError
	var region *aws.MissingRegionError
	switch {
	case errors.As(err, &empty), errors.As(err, &proc), errors.As(err, &sso):
		return store.CodePermission, hint, true
	case errors.As(err, &region):
		return store.CodePermission, "add ?region= to the URL or set AWS_REGION", true
	}
	// Credential providers are clients of other services (IMDS, STS, SSO): an
	// operation of another service inside the chain is a credential provider failing.
	for e := err; e != nil; e = errors.Unwrap(e) {
		op, ok := e.(*smithy.OperationError)
		if !ok || op.Service() == "S3" {
			continue
		}
		// Outside EC2 there is no instance metadata service: the chain found nothing.
		if op.Service() != "ec2imds" {
			if _, status, _ := responseOf(op.Err); status == http.StatusTooManyRequests || status >= 500 {
				return store.CodeTransient, fmt.Sprintf("the %s credential service is busy or failing; retried", op.Service()), true
			}
		}
		return store.CodePermission, hint, true
	}
	// The SDK has no error type for this step; its message is all that marks it.
	if strings.Contains(err.Error(), "get identity: ") {
		return store.CodePermission, hint, true
	}
	return 0, "", false
}

// networkClass classifies errors that got no HTTP response: the shared network
// classes, then what only the SDK reports (a send that failed, a body cut short).
func (s *s3Store) networkClass(err error) (store.Code, string) {
	n := store.Network{Endpoint: s.endpointName(), CAHint: "AWS_CA_BUNDLE",
		HostHint: "with virtual-host addressing the bucket name is part of the host name; see path_style"}
	if code, hint, ok := n.Classify(err); ok {
		return code, hint
	}
	var sendErr *smithyhttp.RequestSendError
	if errors.As(err, &sendErr) || errors.Is(err, io.EOF) {
		return store.CodeTransient, fmt.Sprintf("network error talking to %s; retried", s.endpointName())
	}
	return store.CodeTransient, ""
}

// endpointName is the server the store talks to, for hints.
func (s *s3Store) endpointName() string {
	if s.endpoint != "" {
		return s.endpoint
	}
	return fmt.Sprintf("AWS S3 (region %s)", s.region)
}

// credentialsRef names where the credentials come from, never the secret.
func (s *s3Store) credentialsRef() string {
	if s.profile != "" {
		return fmt.Sprintf("AWS profile %q (in AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE, by default ~/.aws/credentials and ~/.aws/config)", s.profile)
	}
	return "the AWS default credential chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws, the instance or pod role)"
}

func (s *s3Store) credentialsHint() string { return "check " + s.credentialsRef() }

func (s *s3Store) missingBucketHint() string {
	return fmt.Sprintf("bucket %q does not exist at %s: create bucket %s or fix the URL", s.bucket, s.endpointName(), s.bucket)
}

func (s *s3Store) deniedHint() string {
	return fmt.Sprintf("access denied to bucket %q: check that %s may read and write it, and the bucket policy", s.bucket, s.credentialsRef())
}

func (s *s3Store) regionHint(header http.Header) string {
	if r := header.Get("X-Amz-Bucket-Region"); r != "" && r != s.region {
		return fmt.Sprintf("bucket %q is in region %s, not %s: add ?region=%s to the URL", s.bucket, r, s.region, r)
	}
	return fmt.Sprintf("bucket %q is not in region %s: set ?region= to the bucket's region", s.bucket, s.region)
}

func (s *s3Store) sseHint() string {
	return fmt.Sprintf("server-side encryption %q (KMS key %q) was refused: check sse and sse_kms_key_id, the key's policy and that the server has KMS", s.sse, s.sseKMSKeyID)
}
