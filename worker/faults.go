//go:build faultinject

package main

import (
	"context"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/store"
)

// Only builds with the faultinject tag (the end-to-end tests) have this file: it makes
// a real driver refuse chosen requests, as a server would, to test what the
// replicator does when a commit fails for good. REPLICATOR_FAULTS lists
// "<operation>@<destination>" entries separated by commas; operations:
//
//	commit   a server-side copy onto a user key (the atomic commit) is denied
//	put      a put onto a user key is denied
//	crash    the worker kills itself (SIGKILL) right after a put onto a user key
//	         succeeded: a worker dying between a write and what follows it
func init() {
	spec := os.Getenv("REPLICATOR_FAULTS")
	if spec == "" {
		return
	}
	faults := map[string]bool{}
	for _, f := range strings.Split(spec, ",") {
		faults[strings.TrimSpace(f)] = true
	}
	wrapDriver = func(s backends.Spec, d store.Store) store.Store {
		if !faults["commit@"+s.Name] && !faults["put@"+s.Name] && !faults["crash@"+s.Name] {
			return d
		}
		return &faultyDriver{Store: d, commit: faults["commit@"+s.Name], put: faults["put@"+s.Name], crash: faults["crash@"+s.Name]}
	}
}

// faultyDriver denies commits or puts onto user keys, like a bucket policy or a
// retention lock on the final prefix would, and passes everything else through.
type faultyDriver struct {
	store.Store
	commit, put, crash bool
}

func denied(op, name, key string) error {
	return store.Errorf(store.CodePermission, op, name, key, "fault injected by the test (REPLICATOR_FAULTS)",
		"access denied under the final prefix")
}

func (f *faultyDriver) Copy(ctx context.Context, dstKey, srcKey string, opts store.CopyOptions) (*store.Object, error) {
	if f.commit && !store.IsInternal(dstKey) {
		return nil, denied("copy", f.Name(), dstKey)
	}
	return f.Store.Copy(ctx, dstKey, srcKey, opts)
}

func (f *faultyDriver) Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) (*store.Object, error) {
	if f.put && !store.IsInternal(key) {
		return nil, denied("put", f.Name(), key)
	}
	obj, err := f.Store.Put(ctx, key, r, opts)
	if err == nil && f.crash && !store.IsInternal(key) {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	return obj, err
}

// KeyPrefixLen and CheckName keep the driver's name rules in force.
func (f *faultyDriver) KeyPrefixLen() int {
	if r, ok := f.Store.(store.KeyRules); ok {
		return r.KeyPrefixLen()
	}
	return 0
}

// CheckName applies the wrapped driver's name rule, if it has one.
func (f *faultyDriver) CheckName(key string) error {
	if r, ok := f.Store.(store.KeyRules); ok {
		return r.CheckName(key)
	}
	return nil
}

// AbortUploads keeps the wrapped driver's clean-up of multipart uploads.
func (f *faultyDriver) AbortUploads(ctx context.Context, key string) error {
	if a, ok := f.Store.(store.UploadAborter); ok {
		return a.AbortUploads(ctx, key)
	}
	return nil
}

// AbortStaleUploads keeps the wrapped driver's sweep of multipart uploads.
func (f *faultyDriver) AbortStaleUploads(ctx context.Context, cutoff time.Time) (int, error) {
	if a, ok := f.Store.(store.UploadAborter); ok {
		return a.AbortStaleUploads(ctx, cutoff)
	}
	return 0, nil
}
