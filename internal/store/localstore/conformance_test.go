package localstore

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/store/storetest"
)

// The local driver's server is the file system itself, so its conformance suite runs
// with plain `go test`, no build tag.

func newAt(base string) func(t *testing.T, prefix string) store.Store {
	return func(t *testing.T, prefix string) store.Store {
		dir := filepath.Join(base, prefix)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return mustNew(t, "local-test", "file://"+dir)
	}
}

func mustNew(t *testing.T, name, rawURL string) store.Store {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), store.Options{Name: name, URL: u})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	base := t.TempDir()
	storetest.Run(t, storetest.Harness{
		NewAt:    newAt(base),
		PartSize: 1 << 20,
		MissingLocation: func(t *testing.T) store.Store {
			return mustNew(t, "local-missing", "file://"+filepath.Join(base, "not-mounted"))
		},
	})
}

func TestKeysCannotEscapeRoot(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	inside := filepath.Join(base, "root")
	for _, d := range []string{outside, inside + "/sub"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(inside, "sub", "link-out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(inside, "abs-link")); err != nil {
		t.Fatal(err)
	}
	s := mustNew(t, "local", "file://"+inside)
	ctx := context.Background()
	for _, key := range []string{"sub/link-out/secret", "abs-link"} {
		_, err := s.Stat(ctx, key)
		storetest.WantCode(t, "stat through a symlink leading out", err, store.CodeInvalid)
		if !strings.Contains(err.Error(), "outside") {
			t.Errorf("error does not say the link leads outside: %v", err)
		}
		_, err = s.Put(ctx, key+"-new", strings.NewReader("x"), store.PutOptions{SHA256: storetest.SHA256Hex([]byte("x")), Size: 1})
		if key == "sub/link-out/secret" {
			storetest.WantCode(t, "put through a symlink leading out", err, store.CodeInvalid)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "secret-new")); err == nil {
		t.Fatal("a put escaped the root through a symlink")
	}
	for _, err := range s.List(ctx, store.ListOptions{}) {
		storetest.WantCode(t, "list with a symlink leading out", err, store.CodeInvalid)
	}
}

func TestSymlinksInsideRootAreFollowed(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "real", "f.txt"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "alias")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..", filepath.Join(dir, "real", "loop")); err != nil {
		t.Fatal(err)
	}
	s := mustNew(t, "local", "file://"+dir)
	var keys []string
	var lastErr error
	for obj, err := range s.List(context.Background(), store.ListOptions{}) {
		if err != nil {
			lastErr = err
			break
		}
		keys = append(keys, obj.Key)
	}
	storetest.WantCode(t, "list through a symlink loop", lastErr, store.CodeInvalid)
	if len(keys) == 0 || keys[0] != "alias/f.txt" {
		t.Fatalf("listed %q before the loop, want alias/f.txt first", keys)
	}
}

func TestInvalidUTF8FileNameIsNamed(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad\xffname.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := mustNew(t, "local", "file://"+dir)
	for _, err := range s.List(context.Background(), store.ListOptions{}) {
		storetest.WantCode(t, "list of an invalid UTF-8 name", err, store.CodeInvalid)
		if !strings.Contains(err.Error(), `bad\xffname.txt`) {
			t.Fatalf("error does not name the file: %v", err)
		}
		return
	}
	t.Fatal("listing an invalid UTF-8 name yielded nothing")
}

func TestWritesLeaveNoTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	s := mustNew(t, "local", "file://"+dir)
	data := []byte("payload")
	if _, err := s.Put(context.Background(), "a/b.txt", strings.NewReader("payload"), store.PutOptions{SHA256: storetest.SHA256Hex(data), Size: 7}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, ".replicator", "tmp"))
	if err != nil || len(entries) != 0 {
		t.Fatalf("temporary folder holds %v (%v)", entries, err)
	}
}

func TestBadURLs(t *testing.T) {
	for _, raw := range []string{"file://host/x", "file:relative", "file:///x?bogus=1", "s3://b/x"} {
		u, _ := url.Parse(raw)
		_, err := New(context.Background(), store.Options{Name: "n", URL: u})
		storetest.WantCode(t, "open "+raw, err, store.CodePermission)
	}
}

func TestMovedRootIsNotReadAsEmpty(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "share")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := mustNew(t, "local", "file://"+dir)
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, dir+".gone"); err != nil {
		t.Fatal(err)
	}
	storetest.WantCode(t, "check after the share went away", s.Check(context.Background()), store.CodePermission)
	if err := os.MkdirAll(dir, 0o755); err != nil { // an empty mount point left behind
		t.Fatal(err)
	}
	for range s.List(context.Background(), store.ListOptions{}) {
		t.Fatal("listed an object of the old directory")
	}
}
