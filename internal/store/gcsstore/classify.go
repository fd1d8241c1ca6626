package gcsstore

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/cloudrepl/replicator/internal/store"
)

// localError is a failure the driver detects itself (a bad key, a hash mismatch, a
// precondition no object can meet) before or instead of asking GCS.
type localError struct {
	code store.Code
	err  error
}

// Error is the cause's message: the code is the store.Error's to print.
func (e *localError) Error() string { return e.err.Error() }

// Unwrap returns the cause.
func (e *localError) Unwrap() error { return e.err }

// local marks err as a driver-side failure of class code.
func local(code store.Code, err error) error { return &localError{code: code, err: err} }

// hints is what error hints name: where the store points and whose credentials it
// uses.
type hints struct {
	bucket    string
	url       string
	endpoint  string
	credsFile string
}

// credentials names the credential source the operator should check.
func (h hints) credentials() string {
	if h.credsFile != "" {
		return "gcp_credentials_file " + h.credsFile
	}
	return "Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`, or the attached service account)"
}

// fail builds the *store.Error a method returns for err.
func (s *gcsStore) fail(op, key string, err error) *store.Error {
	var se *store.Error
	if errors.As(err, &se) {
		return se
	}
	code, hint := classify(op, err, s.hints)
	return &store.Error{Code: code, Op: op, Store: s.name, Key: key, Hint: hint, Err: err}
}

// classify is the one place where GCS, network and driver errors become store
// codes, with a hint for the operator. op matters for 404s: an object write or a
// listing has no key to miss, so its 404 means the bucket is gone.
func classify(op string, err error, h hints) (store.Code, string) {
	missingBucket := fmt.Sprintf("bucket %q does not exist: create bucket %s or fix the URL %s", h.bucket, h.bucket, h.url)
	var le *localError
	if errors.As(err, &le) {
		switch le.code {
		case store.CodeMismatch:
			return le.code, "the source changed while it was read; nothing was written, the copy is redone from a fresh read"
		case store.CodePrecondition:
			return le.code, "the destination is not in the expected state; re-read it and decide again"
		case store.CodeTransient:
			return le.code, "the source stream failed; nothing was written, the put is retried"
		}
		return le.code, "the request cannot succeed as made; fix the key or the request"
	}
	if errors.Is(err, storage.ErrBucketNotExist) {
		return store.CodePermission, missingBucket
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		switch code := ge.Code; {
		case code == http.StatusUnauthorized:
			return store.CodePermission, "GCS refused the credentials: check " + h.credentials()
		case code == http.StatusForbidden:
			return store.CodePermission, fmt.Sprintf("the credentials (%s) lack access to bucket %s: grant them roles/storage.objectAdmin on it, or fix the bucket name", h.credentials(), h.bucket)
		case code == http.StatusNotFound:
			if bucketMissing(ge) || op == "put" || op == "list" || op == "check" {
				return store.CodePermission, missingBucket
			}
			return store.CodeNotFound, ""
		case code == http.StatusPreconditionFailed || code == http.StatusConflict:
			return store.CodePrecondition, "the destination changed since it was read; re-read it and decide again"
		case code == http.StatusTooManyRequests:
			return store.CodeTransient, "GCS is throttling requests; they are retried with backoff (lower the concurrency if it persists)"
		case code == http.StatusRequestTimeout || code >= 500:
			return store.CodeTransient, "GCS had a server-side failure; the operation is retried"
		case code == http.StatusGone:
			return store.CodeTransient, "the resumable upload session expired; the upload is restarted"
		case code == http.StatusBadRequest && checksumRefused(ge):
			return store.CodeTransient, "GCS computed another CRC32C or MD5 than the one sent: the bytes were damaged in transit; the put is retried"
		case code == http.StatusRequestedRangeNotSatisfiable:
			return store.CodeInvalid, "the offset is past the object's end; re-read its size"
		case code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge:
			return store.CodeInvalid, "GCS refused the request as malformed: check the key, the storage class and the KMS key"
		}
		return store.CodeTransient, ""
	}
	if errors.Is(err, storage.ErrObjectNotExist) {
		if op == "put" || op == "list" || op == "check" {
			return store.CodePermission, missingBucket
		}
		return store.CodeNotFound, ""
	}
	var ae *auth.Error
	if errors.As(err, &ae) && ae.Response != nil && ae.Response.StatusCode >= 400 && ae.Response.StatusCode < 500 {
		return store.CodePermission, "the token service refused the credentials: check " + h.credentials()
	}
	if strings.Contains(err.Error(), "could not find default credentials") {
		return store.CodePermission, "no credentials found: set " + h.credentials()
	}
	if code, hint, ok := (store.Network{Endpoint: h.endpoint}).Classify(err); ok {
		return code, hint
	}
	return store.CodeTransient, ""
}

// bucketMissing tells a 404 about the bucket from one about the object: GCS says
// "The specified bucket does not exist." (reason notFound) for the former.
func bucketMissing(e *googleapi.Error) bool {
	if strings.Contains(strings.ToLower(e.Message), "bucket does not exist") {
		return true
	}
	for _, item := range e.Errors {
		if strings.Contains(strings.ToLower(item.Message), "bucket does not exist") {
			return true
		}
	}
	return strings.Contains(e.Body, "NoSuchBucket")
}

// checksumRefused tells whether a 400 is GCS rejecting the CRC32C or MD5 sent with
// the bytes, which after the driver's own SHA-256 check means damage in transit.
func checksumRefused(e *googleapi.Error) bool {
	m := strings.ToLower(e.Message + " " + e.Body)
	return strings.Contains(m, "crc32c") || strings.Contains(m, "md5")
}
