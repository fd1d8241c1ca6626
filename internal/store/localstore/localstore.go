// Package localstore is the store driver for a local directory: an on-prem NAS,
// CephFS or NFS mount used as a source or a destination.
//
// Every access goes through an os.Root, so no key, "..", absolute path or symlink can
// reach outside the directory. Writes land in <root>/.replicator/tmp, are fsynced and
// renamed into place, so a reader never sees half a file. Metadata (SHA-256, source
// version, content type, user metadata) lives in one extended attribute of the file,
// which moves with it on rename.
package localstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cloudrepl/replicator/internal/store"
)

// xattrName holds the JSON-encoded attrs of a file written by the replicator.
const xattrName = "user.replicator"

// tmpDir is where writes are prepared before their rename into place.
const tmpDir = store.InternalPrefix + "tmp"

// progressStep is how many bytes pass between Progress calls.
const progressStep = 8 << 20

// Store is a directory-backed store.Store.
type Store struct {
	name string
	dir  string

	mu   sync.Mutex
	root *os.Root
}

// xattrValue is what the extended attribute stores.
type xattrValue struct {
	ContentType string            `json:"content_type,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	// CacheControl and Tags are carried from a bucket source, so that a restore
	// or a sync back to a bucket gives them back.
	CacheControl string            `json:"cache_control,omitempty"`
	Tags         map[string]string `json:"tags,omitempty"`
	// Written is the file's modification time and size when the metadata was
	// stored (writtenStamp). The attribute outlives an edit in place, which leaves
	// its SHA-256 and version describing bytes the file no longer holds: a file
	// whose stamp differs is no longer the replica that was written.
	Written string `json:"written,omitempty"`
}

// writtenStamp is what xattrValue.Written records of a file.
func writtenStamp(fi fs.FileInfo) string {
	return strconv.FormatInt(fi.ModTime().UnixNano(), 10) + ":" + strconv.FormatInt(fi.Size(), 10)
}

// New returns a store rooted at the absolute directory of a file:// URL. The directory
// is opened on first use, so a share mounted later is picked up; Check reports a
// missing or unreadable one.
func New(_ context.Context, opts store.Options) (store.Store, error) {
	u := opts.URL
	if u.Scheme != "file" {
		return nil, store.ConfigError(opts, "use file:///absolute/path", "not a file URL: %s", u.Redacted())
	}
	if u.Host != "" && u.Host != "localhost" {
		return nil, store.ConfigError(opts, "write file:///absolute/path (three slashes)", "file URL %s names host %q", u.Redacted(), u.Host)
	}
	if err := store.RejectUnknownQuery(opts); err != nil {
		return nil, err
	}
	if !path.IsAbs(u.Path) {
		return nil, store.ConfigError(opts, "use file:///absolute/path", "file URL %s has no absolute path", u.Redacted())
	}
	return &Store{name: opts.Name, dir: path.Clean(u.Path)}, nil
}

// Name returns the store's name.
func (s *Store) Name() string { return s.name }

// Close releases the directory handle.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root == nil {
		return nil
	}
	err := s.root.Close()
	s.root = nil
	return err
}

// openRoot returns the directory handle, opening it again when the path no longer
// names the directory it was opened on (a share unmounted, remounted or moved), so
// that an unmounted source is reported as missing, never read as an empty one.
func (s *Store) openRoot(op string) (*os.Root, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root != nil {
		now, err := os.Stat(s.dir)
		held, herr := s.root.Stat(".")
		if err == nil && herr == nil && os.SameFile(now, held) {
			return s.root, nil
		}
		s.root.Close()
		s.root = nil
	}
	r, err := os.OpenRoot(s.dir)
	if err != nil {
		hint := fmt.Sprintf("check that %s exists, is a directory, is mounted and readable by this process", s.dir)
		return nil, &store.Error{Code: store.CodePermission, Op: op, Store: s.name, Hint: hint, Err: err}
	}
	s.root = r
	return r, nil
}

// Check verifies the directory exists and can be listed.
func (s *Store) Check(context.Context) error {
	r, err := s.openRoot("check")
	if err != nil {
		return err
	}
	f, err := r.Open(".")
	if err != nil {
		return s.classify("check", "", err)
	}
	defer f.Close()
	if _, err := f.ReadDir(1); err != nil && err != io.EOF {
		return s.classify("check", "", err)
	}
	return nil
}

// nameMax is the longest file name (one path segment) in bytes that Linux file
// systems accept (NAME_MAX).
const nameMax = 255

// KeyPrefixLen is 0: a directory's path does not count against MaxKeyBytes.
func (s *Store) KeyPrefixLen() int { return 0 }

// CheckName refuses keys the file system cannot hold as named (store.KeyRules): a
// path segment longer than NAME_MAX bytes, which open(2) refuses with ENAMETOOLONG.
func (s *Store) CheckName(key string) error {
	for _, seg := range strings.Split(key, "/") {
		if len(seg) > nameMax {
			return fmt.Errorf("path segment %.40q... of key %q is %d bytes; file systems allow %d per name: shorten the name", seg, key, len(seg), nameMax)
		}
	}
	return nil
}

// classify maps a file-system error to a store error: the one place this driver does.
func (s *Store) classify(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var se *store.Error
	if errors.As(err, &se) {
		return err
	}
	e := &store.Error{Code: store.CodeTransient, Op: op, Store: s.name, Key: key, Err: err}
	switch {
	case strings.Contains(err.Error(), "path escapes from parent"):
		e.Code, e.Hint = store.CodeInvalid, "a symlink or '..' leads outside "+s.dir+"; the replicator only reads and writes inside it"
	case errors.Is(err, fs.ErrNotExist):
		e.Code = store.CodeNotFound
	case errors.Is(err, syscall.ENOTDIR):
		e.Code, e.Hint = store.CodeNotFound, "a parent of the key is a file, not a directory"
	case errors.Is(err, syscall.EISDIR):
		e.Code, e.Hint = store.CodeInvalid, "the key names a directory"
	case errors.Is(err, fs.ErrExist):
		e.Code = store.CodePrecondition
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		e.Code, e.Hint = store.CodePermission, "check the permissions and mount options (read-only?) of "+s.dir
	case errors.Is(err, syscall.ENOTSUP):
		e.Code, e.Hint = store.CodePermission, "the file system under "+s.dir+" does not support user extended attributes (mount with user_xattr)"
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		e.Hint = "the file system under " + s.dir + " is full"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	}
	return e
}

// version is the directory's ETag: the inode, size and times identify one state of a
// file without reading it (DESIGN section 2).
func version(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Sprintf("%x-%x", fi.Size(), fi.ModTime().UnixNano())
	}
	return fmt.Sprintf("%x-%x-%x-%x", st.Ino, fi.Size(), fi.ModTime().UnixNano(), time.Unix(st.Ctim.Unix()).UnixNano())
}

func objectOf(key string, fi fs.FileInfo) store.Object {
	return store.Object{Key: key, Size: fi.Size(), ETag: version(fi), ModTime: fi.ModTime(), Order: changeTime(fi)}
}

// changeTime is the file's ctime in nanoseconds: the order of its states that the file
// system guarantees (the mtime can be set to anything, and is by every restore).
func changeTime(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Unix()).UnixNano()
	}
	return fi.ModTime().UnixNano()
}

// openRegular opens key for reading and refuses anything but a regular file.
func (s *Store) openRegular(op, key string) (*os.File, fs.FileInfo, error) {
	r, err := s.openRoot(op)
	if err != nil {
		return nil, nil, err
	}
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. It
	// changes nothing for regular files, and anything else is refused below.
	f, err := r.OpenFile(key, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		// A link to nothing is an entry of the source that cannot be replicated, as
		// the walk reports it, not a deleted file whose replicas should go.
		if li, lerr := r.Lstat(key); lerr == nil && li.Mode()&fs.ModeSymlink != 0 {
			return nil, nil, &store.Error{Code: store.CodeInvalid, Op: op, Store: s.name, Key: key,
				Err: errors.New("broken symlink: its target does not exist"), Hint: "remove the link or exclude it in the policy"}
		}
	}
	if err != nil {
		return nil, nil, s.classify(op, key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, s.classify(op, key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		if fi.IsDir() {
			return nil, nil, &store.Error{Code: store.CodeNotFound, Op: op, Store: s.name, Key: key, Err: errors.New("is a directory")}
		}
		return nil, nil, &store.Error{Code: store.CodeInvalid, Op: op, Store: s.name, Key: key,
			Err: fmt.Errorf("not a regular file (%s)", fi.Mode().Type()), Hint: "exclude it in the policy"}
	}
	return f, fi, nil
}

func readXattr(f *os.File) (*xattrValue, error) {
	buf := make([]byte, 4096)
	for {
		n, err := unix.Fgetxattr(int(f.Fd()), xattrName, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read metadata of %s: %w", f.Name(), err)
		}
		var v xattrValue
		if err := json.Unmarshal(buf[:n], &v); err != nil {
			return nil, fmt.Errorf("decode metadata of %s: %w", f.Name(), err)
		}
		return &v, nil
	}
}

// Stat returns the file's attributes.
func (s *Store) Stat(_ context.Context, key string) (*store.Attributes, error) {
	f, fi, err := s.openRegular("stat", key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	x, err := readXattr(f)
	if err != nil {
		return nil, s.classify("stat", key, err)
	}
	a := &store.Attributes{Object: objectOf(key, fi), ContentType: store.ContentTypeOf(key)}
	store.DecodeMetadata(nil, a)
	if x != nil {
		store.DecodeMetadata(x.Metadata, a)
		if x.ContentType != "" {
			a.ContentType = x.ContentType
		}
		a.CacheControl, a.Tags = x.CacheControl, x.Tags
		if x.Written != "" && x.Written != writtenStamp(fi) {
			// Edited since it was written: what the replicator recorded no longer
			// describes it (user metadata and the content type still do).
			a.SHA256, a.SourceVersion, a.SourceSize = "", "", -1
			delete(a.Metadata, store.MetaVector)
		}
	}
	return a, nil
}

// Open streams the file from offset.
func (s *Store) Open(_ context.Context, key string, offset int64) (io.ReadCloser, error) {
	f, _, err := s.openRegular("open", key)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, s.classify("open", key, err)
		}
	}
	return f, nil
}

// tempFile creates a fresh file in the temporary folder.
func (s *Store) tempFile(r *os.Root) (*os.File, string, error) {
	if err := r.MkdirAll(tmpDir, 0o755); err != nil {
		return nil, "", err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := tmpDir + "/" + hex.EncodeToString(b[:])
	f, err := r.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	return f, name, err
}

// progressWriter reports the bytes written every progressStep, and at the end.
type progressWriter struct {
	w           io.Writer
	n, reported int64
	progress    func(int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if p.n-p.reported >= progressStep {
		p.report()
	}
	return n, err
}

func (p *progressWriter) report() {
	if p.progress != nil {
		p.progress(p.n)
	}
	p.reported = p.n
}

// Put writes r to a temporary file, verifies it, and renames it into place.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) (*store.Object, error) {
	root, err := s.openRoot("put")
	if err != nil {
		return nil, err
	}
	f, tmp, err := s.tempFile(root)
	if err != nil {
		return nil, s.classify("put", key, err)
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			_ = root.Remove(tmp)
		}
	}()
	v := store.NewVerifier(ctxReader{ctx, r}, opts.SHA256, opts.Size)
	pw := &progressWriter{w: f, progress: opts.Progress}
	if _, err := io.Copy(pw, v); err != nil {
		if opts.Size >= 0 && v.BytesRead() > opts.Size {
			return nil, &store.Error{Code: store.CodeMismatch, Op: "put", Store: s.name, Key: key, Err: err}
		}
		return nil, s.classify("put", key, fmt.Errorf("write %s: %w", key, err))
	}
	if err := v.Verify(); err != nil {
		return nil, &store.Error{Code: store.CodeMismatch, Op: "put", Store: s.name, Key: key, Err: err}
	}
	pw.report()
	contentType := opts.ContentType
	if contentType == "" {
		contentType = store.ContentTypeOf(key)
	}
	meta := xattrValue{ContentType: contentType, Metadata: store.EncodeMetadata(opts.SHA256, v.BytesRead(), opts.SourceVersion, opts.Metadata),
		CacheControl: opts.CacheControl, Tags: opts.Tags}
	obj, err := s.commit(root, f, tmp, key, meta, opts.Precondition)
	if err != nil {
		return nil, err
	}
	committed = true
	return obj, nil
}

// ctxReader stops a long copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// commit writes the metadata, syncs and moves the temporary file to key, honouring
// the precondition. It closes f and removes tmp on every path.
//
// Create-only is atomic (link fails if the key exists). Replace-if-match checks the
// current version just before the rename: two writers racing on one key in the same
// instant are not excluded here; the replicator's per-key workflows keep them apart.
func (s *Store) commit(root *os.Root, f *os.File, tmp, key string, meta xattrValue, pre store.Precondition) (*store.Object, error) {
	defer func() { _ = root.Remove(tmp) }()
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, s.classify("put", key, err)
	}
	meta.Written = writtenStamp(fi)
	b, err := json.Marshal(meta)
	if err != nil {
		f.Close()
		return nil, s.classify("put", key, err)
	}
	if err := unix.Fsetxattr(int(f.Fd()), xattrName, b, 0); err != nil {
		f.Close()
		return nil, s.classify("put", key, fmt.Errorf("store metadata: %w", err))
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, s.classify("put", key, err)
	}
	if err := f.Close(); err != nil {
		return nil, s.classify("put", key, err)
	}
	dir := path.Dir(key)
	if dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return nil, s.classify("put", key, err)
		}
	}
	switch {
	case pre.IfNoneMatch:
		if err := root.Link(tmp, key); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return nil, &store.Error{Code: store.CodePrecondition, Op: "put", Store: s.name, Key: key, Err: errors.New("key exists (create-only write)")}
			}
			return nil, s.classify("put", key, err)
		}
	case pre.IfMatch != "":
		fi, err := root.Stat(key)
		if err != nil || version(fi) != pre.IfMatch {
			return nil, &store.Error{Code: store.CodePrecondition, Op: "put", Store: s.name, Key: key, Err: fmt.Errorf("current version is not %s", pre.IfMatch)}
		}
		fallthrough
	default:
		if err := root.Rename(tmp, key); err != nil {
			return nil, s.classify("put", key, err)
		}
	}
	_ = root.Remove(tmp) // after a link: drop the second name before taking the version
	if d, err := root.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable
		d.Close()
	}
	fi, err = root.Stat(key)
	if err != nil {
		return nil, s.classify("put", key, err)
	}
	obj := objectOf(key, fi)
	return &obj, nil
}

// Copy copies a file inside the directory (the kernel's copy_file_range where the
// file system has it) and commits it like a Put.
func (s *Store) Copy(ctx context.Context, dstKey, srcKey string, opts store.CopyOptions) (*store.Object, error) {
	src, _, err := s.openRegular("copy", srcKey)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	attrs := opts.Attributes
	if attrs == nil {
		if attrs, err = s.Stat(ctx, srcKey); err != nil {
			return nil, err
		}
	}
	root, err := s.openRoot("copy")
	if err != nil {
		return nil, err
	}
	f, tmp, err := s.tempFile(root)
	if err != nil {
		return nil, s.classify("copy", dstKey, err)
	}
	if _, err := io.Copy(f, ctxReader{ctx, src}); err != nil {
		f.Close()
		_ = root.Remove(tmp)
		return nil, s.classify("copy", dstKey, err)
	}
	contentType := attrs.ContentType
	if contentType == "" {
		contentType = store.ContentTypeOf(dstKey)
	}
	return s.commit(root, f, tmp, dstKey, xattrValue{ContentType: contentType, Metadata: store.MetadataOf(attrs), CacheControl: attrs.CacheControl, Tags: attrs.Tags}, opts.Precondition)
}

// Delete removes the file and then any parent directories it leaves empty, so a
// mirrored tree does not fill with empty folders.
//
// With opts.IfMatch the file is first compared with the expected version, then
// moved aside into the temporary folder (one atomic rename) and compared again there
// before it is removed: a file replaced between the two looks (another inode, size
// or modification time) is put back, unless a newer one took its place meanwhile,
// and the delete fails its precondition. The second look cannot compare the change
// time, which the rename itself updates.
func (s *Store) Delete(_ context.Context, key string, opts store.DeleteOptions) error {
	root, err := s.openRoot("delete")
	if err != nil {
		return err
	}
	fi, err := root.Lstat(key)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	if err != nil {
		return s.classify("delete", key, err)
	}
	if fi.IsDir() {
		return &store.Error{Code: store.CodeInvalid, Op: "delete", Store: s.name, Key: key, Err: errors.New("is a directory")}
	}
	if opts.IfMatch != "" {
		if err := s.removeIfMatch(root, key, fi, opts.IfMatch); err != nil {
			return err
		}
	} else if err := root.Remove(key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.classify("delete", key, err)
	}
	for dir := path.Dir(key); dir != "."; dir = path.Dir(dir) {
		if root.Remove(dir) != nil { // not empty, or gone: either way stop
			break
		}
	}
	return nil
}

// removeIfMatch removes key, whose Lstat is fi, only if it is at version want.
func (s *Store) removeIfMatch(root *os.Root, key string, fi fs.FileInfo, want string) error {
	stale := func(got string) error {
		return &store.Error{Code: store.CodePrecondition, Op: "delete", Store: s.name, Key: key,
			Err: fmt.Errorf("current version is %s, not %s", got, want), Hint: "the file changed since it was read: re-read it and decide again"}
	}
	cur := fi
	if fi.Mode()&fs.ModeSymlink != 0 {
		// Listings and Stat follow symlinks inside the root, so the version to compare
		// is the target's; the link itself is what goes, as in an unconditional delete.
		st, err := root.Stat(key)
		if err != nil {
			return s.classify("delete", key, err)
		}
		cur = st
	}
	if !cur.Mode().IsRegular() || version(cur) != want {
		return stale(version(cur))
	}
	if err := root.MkdirAll(tmpDir, 0o755); err != nil {
		return s.classify("delete", key, err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	aside := tmpDir + "/delete-" + hex.EncodeToString(b[:])
	if err := root.Rename(key, aside); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted meanwhile: the goal holds
		}
		return s.classify("delete", key, err)
	}
	moved, err := root.Lstat(aside)
	if err != nil {
		return s.classify("delete", key, err)
	}
	if !sameContent(fi, moved) {
		// Replaced between the two looks: put it back unless a newer file has taken
		// the key since (Link refuses to replace), in which case the one moved aside
		// was an intermediate version that the newer one superseded.
		if lerr := root.Link(aside, key); lerr != nil && !errors.Is(lerr, fs.ErrExist) {
			return s.classify("delete", key, fmt.Errorf("restore %s after a refused delete (it is kept as %s): %w", key, aside, lerr))
		}
		_ = root.Remove(aside)
		return stale(version(moved))
	}
	if err := root.Remove(aside); err != nil {
		return s.classify("delete", key, err)
	}
	return nil
}

// sameContent reports whether b is the file a was, apart from the change time a
// rename updates.
func sameContent(a, b fs.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && a.Mode() == b.Mode()
}

// List walks the directory depth-first, visiting each directory's entries sorted so
// that the keys come out in byte order: a directory "a" sorts as "a/", which puts
// "a-b" and "a.b" before everything under "a/" and "a0" after it. Only one
// directory's entries per level are in memory at a time.
//
// A share holds entries that cannot be replicated; none of them fails the listing.
// Each is yielded in its place with Object.Rejected saying why: a name that is not a
// valid key (control characters, invalid UTF-8: Key then holds the raw name), a
// FIFO, socket or device, a symlink that is broken, loops, or leads outside the
// root, a file this process may not read. A directory that cannot be read is
// yielded once as "dir/" with Unreadable set. An entry that vanishes between the
// directory read and its stat is not yielded. Only a failure to read the directory
// the listing starts from fails the listing.
func (s *Store) List(ctx context.Context, opts store.ListOptions) iter.Seq2[store.Object, error] {
	return func(yield func(store.Object, error) bool) {
		root, err := s.openRoot("list")
		if err != nil {
			yield(store.Object{}, err)
			return
		}
		start := ""
		if i := strings.LastIndex(opts.Prefix, "/"); i >= 0 {
			start = opts.Prefix[:i+1]
		}
		w := walker{s: s, ctx: ctx, root: root, prefix: opts.Prefix, internal: opts.IncludeInternal, skipDir: opts.SkipDir, yield: yield}
		startDir := strings.TrimSuffix(start, "/")
		if startDir == "" {
			startDir = "."
		}
		fi, err := root.Stat(startDir)
		if err != nil || !fi.IsDir() {
			if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				yield(store.Object{}, s.classify("list", start, err))
			}
			return
		}
		w.ancestors = append(w.ancestors, fileID(fi))
		w.dir(start, true)
	}
}

type devIno struct{ dev, ino uint64 }

func fileID(fi fs.FileInfo) devIno {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return devIno{uint64(st.Dev), st.Ino}
	}
	return devIno{}
}

type walker struct {
	s         *Store
	ctx       context.Context
	root      *os.Root
	prefix    string
	internal  bool
	skipDir   func(string) bool
	yield     func(store.Object, error) bool
	ancestors []devIno // directories on the current path, to stop symlink loops
}

// entry is one directory entry, as sorted.
type entry struct {
	name     string // directories carry a trailing '/'
	info     fs.FileInfo
	rejected string // why the entry cannot be replicated, "" if it can
}

// dir walks the directory whose key prefix is dir ("" or "a/b/"); false means stop.
// top is set for the directory the listing starts from, whose failure fails it.
func (w *walker) dir(dir string, top bool) bool {
	if err := w.ctx.Err(); err != nil {
		return w.fail(dir, err)
	}
	name := strings.TrimSuffix(dir, "/")
	if name == "" {
		name = "."
	}
	entries, err := w.entries(dir, name)
	if err != nil {
		// Part of a directory is a subtree of unknown state, like none of it.
		return w.unreadable(dir, top, err)
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	for _, e := range entries {
		key := dir + e.name
		isDir := strings.HasSuffix(e.name, "/")
		if isDir && !strings.HasPrefix(key, w.prefix) && !strings.HasPrefix(w.prefix, key) {
			continue
		}
		if !isDir && !strings.HasPrefix(key, w.prefix) {
			continue
		}
		if e.rejected != "" {
			obj := store.Object{Key: key, Rejected: e.rejected}
			if e.info != nil {
				obj = objectOf(key, e.info)
				obj.Rejected = e.rejected
			}
			if !w.yield(obj, nil) {
				return false
			}
			continue
		}
		if isDir {
			if !w.internal && key == store.InternalPrefix {
				continue
			}
			if w.skipDir != nil && w.skipDir(key) {
				continue
			}
			id := fileID(e.info)
			if slices.Contains(w.ancestors, id) {
				if !w.yield(store.Object{Key: key, Rejected: "symlink loop: the directory contains itself; remove the symlink or exclude it in the policy"}, nil) {
					return false
				}
				continue
			}
			w.ancestors = append(w.ancestors, id)
			ok := w.dir(key, false)
			w.ancestors = w.ancestors[:len(w.ancestors)-1]
			if !ok {
				return false
			}
			continue
		}
		if !w.yield(objectOf(key, e.info), nil) {
			return false
		}
	}
	return true
}

// entries describes the entries of the directory dir (name, in the share's root).
// The directory is opened as a root of its own, so that each entry costs one stat
// beside it (through the share's root, a stat walks every parent again), and closed
// before the walk goes down: one open directory at a time, not one per level.
func (w *walker) entries(dir, name string) ([]entry, error) {
	sub, err := w.root.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	defer sub.Close()
	f, err := sub.Open(".")
	if err != nil {
		return nil, err
	}
	dirents, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	entries := make([]entry, 0, len(dirents))
	for _, d := range dirents {
		if e, ok := w.entry(sub, dir, d); ok {
			entries = append(entries, e)
		}
	}
	return entries, nil
}

// entry describes the directory entry d of dir; ok is false for an entry that
// vanished since the directory was read.
func (w *walker) entry(parent *os.Root, dir string, d fs.DirEntry) (e entry, ok bool) {
	key := dir + d.Name()
	if err := store.ValidateKey(key, 0); err != nil {
		e.name = d.Name()
		if d.IsDir() {
			e.name += "/"
		}
		e.rejected = err.Error() + " (or exclude it in the policy)"
		if d.IsDir() {
			e.rejected += "; nothing under this directory is listed"
		}
		return e, true
	}
	// Anything but a symlink is what it says beside it. A symlink is followed
	// through the share's root: inside it, it is followed; leading outside, it fails.
	fi, err := parent.Lstat(d.Name())
	if err != nil || fi.Mode()&fs.ModeSymlink != 0 {
		fi, err = w.root.Stat(key)
	}
	if err != nil {
		lfi, lerr := w.root.Lstat(key)
		switch {
		case lerr != nil && (errors.Is(lerr, fs.ErrNotExist) || errors.Is(lerr, syscall.ENOTDIR)):
			return e, false // vanished since the directory was read
		case strings.Contains(err.Error(), "path escapes from parent"):
			e.rejected = "symlink leading outside " + w.s.dir + ": the replicator only reads inside it; exclude it in the policy"
		case lerr == nil && lfi.Mode()&fs.ModeSymlink != 0 && errors.Is(err, fs.ErrNotExist):
			e.rejected = "broken symlink: its target does not exist"
		case errors.Is(err, syscall.ELOOP):
			e.rejected = "symlink loop: remove the symlink or exclude it in the policy"
		default:
			e.rejected = fmt.Sprintf("cannot be read: %v", err)
		}
		e.name, e.info = d.Name(), lfi
		if lerr != nil {
			e.info = nil
		}
		return e, true
	}
	e.name, e.info = d.Name(), fi
	switch {
	case fi.IsDir():
		e.name += "/"
	case !fi.Mode().IsRegular():
		e.rejected = fmt.Sprintf("not a regular file (%s): only regular files are replicated; exclude it in the policy", fileType(fi.Mode()))
	case unix.Access(path.Join(w.s.dir, key), unix.R_OK) != nil:
		e.rejected = "this process may not read the file: check its permissions, or exclude it in the policy"
	}
	return e, true
}

// fileType names the type of a file that is not a regular file or directory.
func fileType(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	}
	return m.Type().String()
}

// unreadable reports a directory that could not be read: the listing fails when it
// is the one the listing starts from, else the directory is yielded once, marked
// Unreadable, and the walk goes on.
func (w *walker) unreadable(dir string, top bool, err error) bool {
	if top {
		return w.fail(dir, err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return true // vanished since its parent was read
	}
	return w.yield(store.Object{Key: dir, Unreadable: true,
		Rejected: fmt.Sprintf("directory cannot be read (%v): its subtree is of unknown state; check its permissions and mount", err)}, nil)
}

func (w *walker) fail(key string, err error) bool {
	w.yield(store.Object{}, w.s.classify("list", key, err))
	return false
}
