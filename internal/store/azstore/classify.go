package azstore

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/cloudrepl/replicator/internal/store"
)

// fail wraps an error from an operation on key ("" for whole-store operations) as a
// classified *store.Error. Errors already classified pass through.
func (s *blobStore) fail(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var se *store.Error
	if errors.As(err, &se) {
		return err
	}
	code, hint := s.site.classify(err, key == "")
	return &store.Error{Code: code, Op: op, Store: s.name, Key: key, Hint: hint, Err: concise(err)}
}

// classify is the one place where Azure, credential and network errors become store
// codes, with a hint for the operator. wholeStore is set for operations without a key
// (check, list), where a 404 means the location itself is missing.
func (st site) classify(err error, wholeStore bool) (store.Code, string) {
	if code, ok := store.ContextCode(err); ok {
		return code, "the operation was cancelled or ran out of time; it is retried"
	}
	missing := fmt.Sprintf("create container %q in storage account %q or fix the URL", st.container, st.account)
	denied := fmt.Sprintf("check %s: account name and key or SAS (permissions, expiry), or the identity's role on container %q (Storage Blob Data Contributor)",
		st.credential, st.container)

	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch bloberror.Code(re.ErrorCode) {
		case bloberror.BlobNotFound:
			return store.CodeNotFound, ""
		case bloberror.ContainerNotFound, bloberror.ContainerBeingDeleted, bloberror.ContainerDisabled:
			return store.CodePermission, missing
		case bloberror.ConditionNotMet, bloberror.BlobAlreadyExists, bloberror.TargetConditionNotMet:
			return store.CodePrecondition, "the object changed since it was read: re-read it and decide again"
		case bloberror.AuthenticationFailed, bloberror.AuthorizationFailure, bloberror.InvalidAuthenticationInfo,
			bloberror.NoAuthenticationInformation, bloberror.InsufficientAccountPermissions,
			bloberror.AuthorizationPermissionMismatch, bloberror.AuthorizationProtocolMismatch,
			bloberror.AuthorizationResourceTypeMismatch, bloberror.AuthorizationServiceMismatch,
			bloberror.AuthorizationSourceIPMismatch, "KeyBasedAuthenticationNotPermitted":
			return store.CodePermission, denied
		case bloberror.AccountIsDisabled:
			return store.CodePermission, fmt.Sprintf("storage account %q is disabled: check it in the Azure portal", st.account)
		case bloberror.BlobArchived, bloberror.BlobBeingRehydrated:
			return store.CodePermission, "the blob is in the Archive tier: rehydrate it to Hot or Cool first"
		case bloberror.BlobImmutableDueToPolicy:
			return store.CodePermission, fmt.Sprintf("an immutability policy or legal hold on container %q forbids changing this blob", st.container)
		case bloberror.LeaseIDMissing, bloberror.LeaseAlreadyPresent, bloberror.LeaseIDMismatchWithBlobOperation:
			return store.CodePermission, "another client holds a lease on this blob: break the lease or stop that client"
		case bloberror.ServerBusy, bloberror.InternalError, bloberror.OperationTimedOut,
			bloberror.MD5Mismatch, bloberror.CRC64Mismatch, bloberror.PendingCopyOperation:
			return store.CodeTransient, "Azure is throttling, busy or saw corrupted data in transit; the operation is retried"
		case bloberror.InvalidBlockList, bloberror.InvalidBlobOrBlock:
			// The staged blocks are gone or clash: another writer committed this blob
			// (which discards everyone's uncommitted blocks) or left blocks with IDs of
			// another length. A new upload with fresh blocks can succeed.
			return store.CodeTransient, "another writer committed or staged blocks on this blob during the upload; the upload is retried"
		case bloberror.InvalidMetadata, bloberror.MetadataTooLarge, bloberror.EmptyMetadataKey:
			return store.CodeInvalid, "Azure refused the metadata: names must be identifiers and all of it at most 8 KiB"
		}
		switch sc := re.StatusCode; {
		case sc == http.StatusUnauthorized || sc == http.StatusForbidden:
			return store.CodePermission, denied
		case sc == http.StatusNotFound && wholeStore:
			return store.CodePermission, missing
		case sc == http.StatusNotFound:
			return store.CodeNotFound, ""
		case sc == http.StatusPreconditionFailed:
			return store.CodePrecondition, "the object changed since it was read: re-read it and decide again"
		case sc == http.StatusRequestTimeout || sc == http.StatusTooManyRequests || sc >= 500:
			return store.CodeTransient, "Azure is throttling or failing; the operation is retried"
		case sc == http.StatusConflict:
			return store.CodeTransient, "the blob is busy with another operation; the operation is retried"
		case sc >= 400 && sc < 500:
			return store.CodeInvalid, "Azure refused the request as made; report it with the error code"
		}
		return store.CodeTransient, ""
	}

	var authFailed *azidentity.AuthenticationFailedError
	if errors.As(err, &authFailed) {
		if r := authFailed.RawResponse; r != nil && (r.StatusCode == http.StatusTooManyRequests || r.StatusCode >= 500) {
			return store.CodeTransient, "the identity provider is throttling or failing; the operation is retried"
		}
		return store.CodePermission, denied
	}
	var authRequired *azidentity.AuthenticationRequiredError
	if errors.As(err, &authRequired) {
		return store.CodePermission, denied
	}
	// The SDK marks errors that retrying cannot fix, such as an unavailable credential
	// or a token refused for a plain-HTTP endpoint.
	var nonRetriable interface{ NonRetriable() }
	if errors.As(err, &nonRetriable) {
		return store.CodePermission, denied
	}

	n := store.Network{Endpoint: st.endpoint, HostHint: fmt.Sprintf("the storage account name %q makes up the host name", st.account)}
	if code, hint, ok := n.Classify(err); ok {
		return code, hint
	}
	return store.CodeTransient, ""
}

// responseError renders an *azcore.ResponseError on one line (the SDK's own message
// spans many lines with the whole response), keeping it reachable with errors.As.
type responseError struct{ re *azcore.ResponseError }

func (e *responseError) Error() string {
	msg := fmt.Sprintf("HTTP %d", e.re.StatusCode)
	if r := e.re.RawResponse; r != nil && r.Request != nil {
		msg = r.Request.Method + " " + msg
	}
	if e.re.ErrorCode != "" {
		msg += " " + e.re.ErrorCode
	}
	if r := e.re.RawResponse; r != nil {
		if id := r.Header.Get("x-ms-request-id"); id != "" {
			msg += " (request id " + id + ")"
		}
	}
	return msg
}

func (e *responseError) Unwrap() error { return e.re }

// concise replaces a response error in err's message by its one-line form, keeping
// the context around it and the whole chain for errors.As.
func concise(err error) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return err
	}
	short := &responseError{re: re}
	if error(re) == err {
		return short
	}
	return &rewordedError{msg: strings.Replace(err.Error(), re.Error(), short.Error(), 1), err: err}
}

type rewordedError struct {
	msg string
	err error
}

func (e *rewordedError) Error() string { return e.msg }
func (e *rewordedError) Unwrap() error { return e.err }
