package azstore

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/store"
)

// fakeCopyService answers Copy Blob as real Azure may: accepted as pending, then
// completed (or failed) on later Get Blob Properties. Azurite always copies
// synchronously, so these paths are tested here.
type fakeCopyService struct {
	mu      sync.Mutex
	heads   int
	status  func(head int) (status, copyID string) // status of the n-th HEAD, from 1
	aborted bool
	deleted string // If-Match of the DELETE, "-" when none came
	// tagsDenied answers Get Blob Tags with 403, as Azure does to an identity
	// without the tags permission.
	tagsDenied bool
}

func (f *fakeCopyService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := w.Header()
	h.Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
	switch {
	case r.Method == http.MethodPut && r.URL.Query().Get("comp") == "copy":
		f.aborted = true
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut && r.Header.Get("x-ms-copy-source") != "":
		h.Set("x-ms-copy-id", "copy-1")
		h.Set("x-ms-copy-status", "pending")
		h.Set("ETag", `"0x1"`)
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodHead:
		f.heads++
		status, id := f.status(f.heads)
		h.Set("x-ms-copy-id", id)
		h.Set("x-ms-copy-status", status)
		h.Set("x-ms-copy-status-description", "500 InternalError copying")
		h.Set("ETag", `"0x2"`)
		h.Set("Content-Length", "42")
		h.Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodGet && r.URL.Query().Get("comp") == "tags" && f.tagsDenied:
		h.Set("x-ms-error-code", "AuthorizationPermissionMismatch")
		w.WriteHeader(http.StatusForbidden)
	case r.Method == http.MethodGet && r.URL.Query().Get("comp") == "tags":
		// The copy reads the source's index tags first: it has none.
		h.Set("Content-Type", "application/xml")
		_, _ = w.Write([]byte(`<?xml version="1.0" encoding="utf-8"?><Tags><TagSet></TagSet></Tags>`))
	case r.Method == http.MethodDelete:
		f.deleted = r.Header.Get("If-Match")
		if f.deleted == "" {
			f.deleted = "-"
		}
		w.WriteHeader(http.StatusAccepted)
	default:
		w.WriteHeader(http.StatusBadRequest)
	}
}

func copyStore(t *testing.T, f *fakeCopyService) store.Store {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Setenv("AZSTORE_UNIT_CONN", "AccountName=acct;AccountKey="+testKey)
	return newTestStore(t, "azblob://acct/cont/p?endpoint="+url.QueryEscape(srv.URL+"/acct"), "AZSTORE_UNIT_CONN")
}

func TestCopyWaitsForPendingCopy(t *testing.T) {
	f := &fakeCopyService{status: func(n int) (string, string) {
		if n < 3 {
			return "pending", "copy-1"
		}
		return "success", "copy-1"
	}}
	obj, err := copyStore(t, f).Copy(context.Background(), "dst", "src", store.CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != 42 || obj.ETag != `"0x2"` || f.heads != 3 || f.aborted || f.deleted != "" {
		t.Fatalf("copy = %+v after %d polls (aborted %v, deleted %q)", obj, f.heads, f.aborted, f.deleted)
	}
}

func TestCopyFailedIsCleanedUp(t *testing.T) {
	f := &fakeCopyService{status: func(int) (string, string) { return "failed", "copy-1" }}
	_, err := copyStore(t, f).Copy(context.Background(), "dst", "src", store.CopyOptions{})
	if store.CodeOf(err) != store.CodeTransient || !strings.Contains(err.Error(), "500 InternalError copying") {
		t.Fatalf("failed copy: %v", err)
	}
	if f.deleted != `"0x2"` {
		t.Fatalf("the failed copy's destination was not deleted under If-Match (got %q)", f.deleted)
	}
}

func TestCopyCancelledIsAborted(t *testing.T) {
	f := &fakeCopyService{status: func(int) (string, string) { return "pending", "copy-1" }}
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	_, err := copyStore(t, f).Copy(ctx, "dst", "src", store.CopyOptions{})
	if store.CodeOf(err) != store.CodeTransient {
		t.Fatalf("cancelled copy: %v", err)
	}
	if !f.aborted || f.deleted == "" {
		t.Fatalf("cancelled copy: aborted %v, deleted %q; want both", f.aborted, f.deleted)
	}
}

func TestCopySuperseded(t *testing.T) {
	f := &fakeCopyService{status: func(int) (string, string) { return "pending", "copy-2" }}
	_, err := copyStore(t, f).Copy(context.Background(), "dst", "src", store.CopyOptions{})
	if store.CodeOf(err) != store.CodePrecondition {
		t.Fatalf("copy replaced by another: %v", err)
	}
}

// An identity that may not read index tags (Storage Blob Data Contributor) still
// copies: the copy goes without them.
func TestCopyWithoutTagsPermission(t *testing.T) {
	f := &fakeCopyService{tagsDenied: true, status: func(int) (string, string) { return "success", "copy-1" }}
	s := copyStore(t, f)
	if _, err := s.Copy(context.Background(), "dst", "src", store.CopyOptions{}); err != nil {
		t.Fatalf("copy without the tags permission: %v", err)
	}
}
