package watch

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// inotify records changes from the kernel's events until ctx ends. Every directory of
// the tree is watched (excluded trees are not), and a directory that appears is
// watched and its files recorded as changed: they may have been written before its
// watch was in place. A directory that goes away (removed or renamed) records every
// file seen under it, so that mirror mode removes their replicas.
func (w *watcher) inotify(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer fw.Close()
	t := &tree{w: w, fw: fw, files: map[string]struct{}{}, dirs: map[string]struct{}{}}
	if err := t.add(w.o.Root, false); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.o.Log.Warn("watch: the kernel dropped events (too many changes at once); the next reconcile repairs what they said", "policy", w.o.Policy.Name)
				continue
			}
			w.o.Log.Warn("watch: event error", "policy", w.o.Policy.Name, "err", err)
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			t.event(ev, time.Now())
		}
	}
}

// tree is what the inotify watcher knows of the source directory.
type tree struct {
	w  *watcher
	fw *fsnotify.Watcher
	// files and dirs seen, by key ("a/b.txt", "a").
	files map[string]struct{}
	dirs  map[string]struct{}
}

// key is path's key under the root, "" for the root itself.
func (t *tree) key(path string) string {
	rel, err := filepath.Rel(t.w.o.Root, path)
	if err != nil || rel == "." {
		return ""
	}
	return filepath.ToSlash(rel)
}

// add watches dir and every directory under it, and records the files under it as
// seen (and as changed, when announce).
func (t *tree) add(dir string, announce bool) error {
	now := time.Now()
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		key := t.key(path)
		if err != nil {
			if path == dir && dir == t.w.o.Root {
				return err // the root itself cannot be read
			}
			t.w.o.Log.Warn("watch: cannot read; the reconcile reports it", "policy", t.w.o.Policy.Name, "path", key, "err", err)
			return nil
		}
		switch {
		case d.IsDir():
			if key != "" && t.w.o.Policy.ExcludesDir(key+"/") {
				return filepath.SkipDir
			}
			if err := t.fw.Add(path); err != nil {
				if path == t.w.o.Root {
					return err
				}
				t.w.o.Log.Warn("watch: cannot watch a directory; the reconcile covers it", "policy", t.w.o.Policy.Name, "path", key, "err", err)
				return filepath.SkipDir
			}
			t.dirs[key] = struct{}{}
		default:
			t.files[key] = struct{}{}
			if announce {
				t.w.touch(key, now)
			}
		}
		return nil
	})
}

// event records one kernel event.
func (t *tree) event(ev fsnotify.Event, now time.Time) {
	key := t.key(ev.Name)
	if key == "" {
		return
	}
	switch {
	case ev.Has(fsnotify.Create):
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			if err := t.add(ev.Name, true); err != nil {
				t.w.o.Log.Warn("watch: cannot watch a new directory; the reconcile covers it", "policy", t.w.o.Policy.Name, "path", key, "err", err)
			}
			return
		}
		t.files[key] = struct{}{}
		t.w.touch(key, now)
	case ev.Has(fsnotify.Write):
		t.files[key] = struct{}{}
		t.w.touch(key, now)
	case ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename):
		if _, isDir := t.dirs[key]; isDir {
			t.gone(key+"/", now)
			return
		}
		delete(t.files, key)
		t.w.touch(key, now)
	}
}

// gone records every file seen under prefix as changed (they left with their
// directory) and forgets the directories under it, whose watches the kernel removed.
func (t *tree) gone(prefix string, now time.Time) {
	for k := range t.files {
		if strings.HasPrefix(k, prefix) {
			delete(t.files, k)
			t.w.touch(k, now)
		}
	}
	dir := strings.TrimSuffix(prefix, "/")
	for k := range t.dirs {
		if k == dir || strings.HasPrefix(k, prefix) {
			delete(t.dirs, k)
		}
	}
}
