package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Code classifies a store error once, in the driver, so that activities and workflows
// decide on retries without knowing which backend failed.
type Code int

const (
	// CodeTransient is a failure that may pass on retry: throttling, server errors,
	// timeouts, refused or reset connections. Unclassified errors are transient.
	CodeTransient Code = iota
	// CodeNotFound means the key (not the bucket) does not exist.
	CodeNotFound
	// CodePrecondition means the object's state was not the one the write expected.
	CodePrecondition
	// CodePermission covers permission and configuration problems (denied access,
	// wrong credentials, missing bucket or container, unknown host): never retried.
	CodePermission
	// CodeInvalid is a request that can never succeed as made (a key a backend cannot
	// hold, listing keys out of order): never retried.
	CodeInvalid
	// CodeMismatch means the bytes streamed did not have the declared SHA-256 or size,
	// typically a source changed while it was copied. Nothing was written.
	CodeMismatch
)

// String names the code as it appears in messages and error types.
func (c Code) String() string {
	switch c {
	case CodeTransient:
		return "transient"
	case CodeNotFound:
		return "not found"
	case CodePrecondition:
		return "precondition failed"
	case CodePermission:
		return "permission or configuration"
	case CodeInvalid:
		return "invalid request"
	case CodeMismatch:
		return "content mismatch"
	}
	return fmt.Sprintf("code(%d)", int(c))
}

// Retryable reports whether an operation that failed with this code may succeed when
// simply tried again.
func (c Code) Retryable() bool { return c == CodeTransient }

// Error is the error every Store method returns.
type Error struct {
	// Code is the class of the failure.
	Code Code
	// Op is the operation: stat, open, put, copy, delete, list, check.
	Op string
	// Store is the store's name.
	Store string
	// Key is the key concerned, "" for whole-store operations.
	Key string
	// Hint tells the operator what to check.
	Hint string
	// Err is the backend's error.
	Err error
}

// Error formats as `put aws-eu "a/b.pdf": permission or configuration: <cause> (check …)`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(" ")
	b.WriteString(e.Store)
	if e.Key != "" {
		fmt.Fprintf(&b, " %q", e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Code.String())
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the backend's error.
func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the Code of err: that of the first *Error in its chain, CodeTransient
// for a cancelled or expired context or any other error.
func CodeOf(err error) Code {
	var se *Error
	if errors.As(err, &se) {
		return se.Code
	}
	return CodeTransient
}

// IsNotFound reports whether err means the key does not exist.
func IsNotFound(err error) bool { return err != nil && CodeOf(err) == CodeNotFound }

// IsPrecondition reports whether err is a failed precondition.
func IsPrecondition(err error) bool { return err != nil && CodeOf(err) == CodePrecondition }

// Errorf builds an *Error whose cause is formatted from format and args.
func Errorf(code Code, op, storeName, key, hint, format string, args ...any) *Error {
	return &Error{Code: code, Op: op, Store: storeName, Key: key, Hint: hint, Err: fmt.Errorf(format, args...)}
}

// ContextCode classifies a context error: cancellation and deadlines are transient
// (the operation may be retried later); it returns false for other errors.
func ContextCode(err error) (Code, bool) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return CodeTransient, true
	}
	return 0, false
}
