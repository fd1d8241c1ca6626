package localstore

import (
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
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

func mustNew(t testing.TB, name, rawURL string) store.Store {
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
	// A listing does not fail for them: each is yielded, rejected, in its place.
	got := listing(t, s, store.ListOptions{})
	want := []string{"abs-link !outside", "abs-link-new", "sub/link-out !outside"}
	if !slices.Equal(got, want) {
		t.Fatalf("list = %q, want %q", got, want)
	}
}

// listing lists s through store.Checked (as backends.Open serves it), failing the
// test on an error, and returns each key followed by " !<a word of the reason>" for
// a rejected entry and " !unreadable" for an unreadable directory.
func listing(t *testing.T, s store.Store, opts store.ListOptions) []string {
	t.Helper()
	var out []string
	for obj, err := range store.Checked(s).List(context.Background(), opts) {
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		k := obj.Key
		switch {
		case obj.Unreadable:
			k += " !unreadable"
		case obj.Rejected != "":
			k += " !" + rejectedWord(obj.Rejected)
		}
		out = append(out, k)
	}
	return out
}

// rejectedWord picks the word of a rejection reason that tests compare.
func rejectedWord(reason string) string {
	for _, w := range []string{"outside", "broken", "loop", "pipe", "socket", "UTF-8", "control", "read"} {
		if strings.Contains(reason, w) {
			return w
		}
	}
	return reason
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
	got := listing(t, s, store.ListOptions{})
	want := []string{"alias/f.txt", "alias/loop/ !loop", "real/f.txt", "real/loop/ !loop"}
	if !slices.Equal(got, want) {
		t.Fatalf("list = %q, want %q", got, want)
	}
}

func TestOddNamesAreRejectedInPlace(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.txt", "bad\xffname.txt", "ctl\x01.txt", "z.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "bad\xfedir", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad\xfedir", "sub", "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := mustNew(t, "local", "file://"+dir)
	got := listing(t, s, store.ListOptions{})
	want := []string{"a.txt", "bad\xfedir/ !UTF-8", "bad\xffname.txt !UTF-8", "ctl\x01.txt !control", "z.txt"}
	if !slices.Equal(got, want) {
		t.Fatalf("list = %q, want %q", got, want)
	}
}

func TestSpecialFilesAreRejectedInPlace(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.txt", "m/z.txt"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "m", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, "m", "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Symlink("nowhere", filepath.Join(dir, "m", "broken")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("self", filepath.Join(dir, "m", "self")); err != nil {
		t.Fatal(err)
	}
	s := mustNew(t, "local", "file://"+dir)
	got := listing(t, s, store.ListOptions{})
	want := []string{"a.txt", "m/broken !broken", "m/fifo !pipe", "m/self !loop", "m/sock !socket", "m/z.txt"}
	if !slices.Equal(got, want) {
		t.Fatalf("list = %q, want %q", got, want)
	}
	// The rejected entries carry the listing fields the walk could read.
	for obj, err := range store.Checked(s).List(context.Background(), store.ListOptions{Prefix: "m/fifo"}) {
		if err != nil || obj.Key != "m/fifo" || obj.Rejected == "" || obj.ModTime.IsZero() {
			t.Fatalf("fifo entry = %+v, %v", obj, err)
		}
	}
	// A rejected key is still refused by the store's other methods.
	_, err = store.Checked(s).Open(context.Background(), "m/fifo", 0)
	storetest.WantCode(t, "open of a FIFO", err, store.CodeInvalid)
}

func TestSkipDirKeepsTheWalkOut(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a/.snapshot/hourly/f", "a/f", ".snapshot/g", "b"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An entry inside the skipped tree that would be rejected is not even looked at.
	if err := syscall.Mkfifo(filepath.Join(dir, "a", ".snapshot", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	var asked []string
	skip := func(d string) bool {
		asked = append(asked, d)
		return path.Base(d) == ".snapshot"
	}
	s := mustNew(t, "local", "file://"+dir)
	got := listing(t, s, store.ListOptions{SkipDir: skip})
	if want := []string{"a/f", "b"}; !slices.Equal(got, want) {
		t.Fatalf("list = %q, want %q", got, want)
	}
	if want := []string{".snapshot/", "a/", "a/.snapshot/"}; !slices.Equal(asked, want) {
		t.Fatalf("SkipDir asked about %q, want %q", asked, want)
	}
}

// unprivilegedEnv names the directory a child run of TestUnreadableEntries lists.
const unprivilegedEnv = "LOCALSTORE_TEST_UNPRIVILEGED_DIR"

// TestUnreadableEntries lists a tree holding a file and a directory of mode 000. As
// root every permission check passes, so then the listing runs in a child process
// (this test binary, copied where it can run it) as user nobody.
func TestUnreadableEntries(t *testing.T) {
	if dir := os.Getenv(unprivilegedEnv); dir != "" {
		listUnreadable(t, dir)
		return
	}
	base, err := os.MkdirTemp("", "localstore-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.Chmod(filepath.Join(base, "tree", "locked"), 0o755)
		_ = os.RemoveAll(base)
	})
	dir := filepath.Join(base, "tree")
	for _, name := range []string{"a/f", "locked/f", "secret", "z"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"secret", "locked"} {
		if err := os.Chmod(filepath.Join(dir, name), 0); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() != 0 {
		listUnreadable(t, dir)
		return
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "localstore.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestUnreadableEntries$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), unprivilegedEnv+"="+dir)
	cmd.Dir = base
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestUnreadableEntries") {
		t.Fatalf("listing as user nobody: %v\n%s", err, out)
	}
}

// listUnreadable lists dir, expecting its unreadable file and directory rejected in
// place and the rest listed.
func listUnreadable(t *testing.T, dir string) {
	s := mustNew(t, "local", "file://"+dir)
	got := listing(t, s, store.ListOptions{})
	if want := []string{"a/f", "locked/ !unreadable", "secret !read", "z"}; !slices.Equal(got, want) {
		t.Fatalf("list = %q, want %q", got, want)
	}
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

// A conditional delete of a symlink inside the root compares the version the
// listing showed (its target's) and removes the link, not the target.
func TestConditionalDeleteOfSymlink(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "target"), []byte("t"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("target", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	s := store.Checked(mustNew(t, "local", "file://"+dir))
	ctx := context.Background()
	a, err := s.Stat(ctx, "link")
	if err != nil {
		t.Fatal(err)
	}
	storetest.WantCode(t, "delete of the link if-match a stale version", s.Delete(ctx, "link", store.DeleteOptions{IfMatch: a.ETag + "0"}), store.CodePrecondition)
	if err := s.Delete(ctx, "link", store.DeleteOptions{IfMatch: a.ETag}); err != nil {
		t.Fatalf("delete of the link if-match its target's version: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "link")); !os.IsNotExist(err) {
		t.Fatalf("the link is still there: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "target")); err != nil || string(got) != "t" {
		t.Fatalf("the target changed: %q, %v", got, err)
	}
}
