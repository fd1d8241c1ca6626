package watch

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/config"
)

// recorder is a Starter that keeps what it was asked to start.
type recorder struct {
	mu      sync.Mutex
	files   []string
	batches [][]string
}

func (r *recorder) Files(_ context.Context, keys []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files = append(r.files, keys...)
	return nil
}

func (r *recorder) Batch(_ context.Context, keys []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, slices.Clone(keys))
	return nil
}

// started waits until every key of want was started (as a file or in a batch), then
// returns all that was, sorted.
func (r *recorder) started(t *testing.T, want ...string) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		all := slices.Clone(r.files)
		for _, b := range r.batches {
			all = append(all, b...)
		}
		r.mu.Unlock()
		missing := slices.DeleteFunc(slices.Clone(want), func(k string) bool { return slices.Contains(all, k) })
		if len(missing) == 0 {
			slices.Sort(all)
			return slices.Compact(all)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not started: %v (started: %v)", missing, all)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files, r.batches = nil, nil
}

func startWatch(t *testing.T, mode string) (string, *recorder) {
	t.Helper()
	return startWatchDebounce(t, mode, 150*time.Millisecond)
}

// startWatchDebounce is startWatch with another debounce interval.
func startWatchDebounce(t *testing.T, mode string, debounce time.Duration) (string, *recorder) {
	t.Helper()
	root := t.TempDir()
	write(t, root, "old/kept.txt", "there before the watch")
	must(t, os.MkdirAll(filepath.Join(root, ".snapshot", "daily"), 0o755))
	p := &config.Policy{Name: "p", Source: "file://" + root, Exclude: []string{"**/*.tmp", ".snapshot/**"},
		Watch: &config.Watch{Mode: mode, Debounce: config.Duration(debounce), PollInterval: config.Duration(100 * time.Millisecond)}}
	stores := backends.NewCache()
	t.Cleanup(func() { stores.Close() })
	src, err := stores.Get(context.Background(), backends.Spec{Name: "p/source", URL: p.Source})
	must(t, err)
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Policy: p, Root: root, Source: src, Starter: rec, Log: slog.New(slog.DiscardHandler), BatchAbove: 50})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch ended with %v", err)
		}
	})
	time.Sleep(300 * time.Millisecond) // the watches, or the baseline scan, are in place
	return root, rec
}

func write(t *testing.T, root, key, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(key))
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestWatchTriggersEveryChange(t *testing.T) {
	for _, mode := range []string{config.WatchInotify, config.WatchPoll} {
		t.Run(mode, func(t *testing.T) {
			root, rec := startWatch(t, mode)
			write(t, root, "new.txt", "new")
			write(t, root, "deep/er/file.txt", "in a new directory")
			write(t, root, "skip.tmp", "excluded")
			write(t, root, ".snapshot/daily/x.txt", "excluded tree")
			must(t, os.Rename(filepath.Join(root, "old/kept.txt"), filepath.Join(root, "old/renamed.txt")))
			got := rec.started(t, "new.txt", "deep/er/file.txt", "old/kept.txt", "old/renamed.txt")
			if want := []string{"deep/er/file.txt", "new.txt", "old/kept.txt", "old/renamed.txt"}; !slices.Equal(got, want) {
				t.Errorf("started %v, want %v", got, want)
			}
			rec.reset()
			must(t, os.WriteFile(filepath.Join(root, "new.txt"), []byte("modified"), 0o644))
			must(t, os.RemoveAll(filepath.Join(root, "deep")))
			got = rec.started(t, "new.txt", "deep/er/file.txt")
			if want := []string{"deep/er/file.txt", "new.txt"}; !slices.Equal(got, want) {
				t.Errorf("started %v, want %v", got, want)
			}
		})
	}
}

func TestWatchWaitsForAFileToSettle(t *testing.T) {
	root, rec := startWatch(t, config.WatchInotify)
	f, err := os.Create(filepath.Join(root, "growing.bin"))
	must(t, err)
	for range 6 { // written for 6 x 80 ms, longer than the 150 ms debounce
		_, err := f.Write([]byte(strings.Repeat("x", 1000)))
		must(t, err)
		time.Sleep(80 * time.Millisecond)
		rec.mu.Lock()
		early := len(rec.files)
		rec.mu.Unlock()
		if early > 0 {
			t.Fatal("a file still being written was triggered")
		}
	}
	must(t, f.Close())
	rec.started(t, "growing.bin")
}

func TestWatchBurstIsOneBatch(t *testing.T) {
	// A debounce longer than the pauses a loaded machine (two cores, the race
	// detector, other tests) puts between the burst's writes: a pause longer than the
	// debounce rightly ends a burst, and is not what this test is about.
	root, rec := startWatchDebounce(t, config.WatchInotify, time.Second)
	var want []string
	for i := range 300 {
		k := filepath.ToSlash(filepath.Join("burst", strings.Repeat("d", i%3+1), "f"+time.Duration(i).String()))
		want = append(want, k)
		write(t, root, k, "x")
	}
	rec.started(t, want...)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	workflows := len(rec.files) + len(rec.batches)
	if workflows > 3 {
		t.Errorf("%d workflows (%d single, %d batches) for 300 files, want a few batches", workflows, len(rec.files), len(rec.batches))
	}
}

func TestParseMountInfo(t *testing.T) {
	for _, c := range []struct{ line, point, fs string }{
		{"36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue", "/mnt/parent", "ext3"},
		{"100 25 0:50 / /mnt/ceph\\040share rw,relatime shared:60 - ceph 10.0.0.1:6789:/ rw,name=admin", "/mnt/ceph share", "ceph"},
		{"101 25 0:51 / /srv/nfs rw - nfs4 server:/export rw,vers=4.2", "/srv/nfs", "nfs4"},
	} {
		point, fs, ok := parseMountInfo(c.line)
		if !ok || point != c.point || fs != c.fs {
			t.Errorf("%q: %q %q %v", c.line, point, fs, ok)
		}
	}
	if !networkFS("ceph") || !networkFS("nfs4") || networkFS("ext4") {
		t.Error("network file systems misclassified")
	}
	if fs, err := mountType(t.TempDir()); err != nil || fs == "" {
		t.Errorf("mount type of a temporary directory: %q %v", fs, err)
	}
}

// TestPollSkipsDirectoriesWhoseStampHolds checks the poll's pruning with a stamp the
// test controls, as CephFS's ceph.dir.rctime would be (no CephFS here): a directory
// whose recursive stamp did not change is not read again, and one whose stamp changed
// is.
func TestPollSkipsDirectoriesWhoseStampHolds(t *testing.T) {
	root := t.TempDir()
	write(t, root, "a/x.txt", "1")
	write(t, root, "b/y.txt", "1")
	stamps := map[string]string{"": "r1", "a": "a1", "b": "b1"}
	var mu sync.Mutex
	stamp := func(dir string) string {
		rel, _ := filepath.Rel(root, dir)
		if rel == "." {
			rel = ""
		}
		mu.Lock()
		defer mu.Unlock()
		return stamps[rel]
	}
	stores := backends.NewCache()
	t.Cleanup(func() { stores.Close() })
	src, err := stores.Get(context.Background(), backends.Spec{Name: "p/source", URL: "file://" + root})
	must(t, err)
	w := &watcher{o: Options{Policy: &config.Policy{Name: "p"}, Root: root, Source: src, DirStamp: stamp}, pending: map[string]time.Time{}}
	ctx := context.Background()
	first, err := w.scan(ctx, nil)
	must(t, err)
	if len(first) != 2 {
		t.Fatalf("first scan %v", first)
	}
	set := func(dir, s string) { mu.Lock(); stamps[dir] = s; mu.Unlock() }

	// Nothing's stamp changed: the root is not read at all, so a change is not seen.
	write(t, root, "b/y.txt", "22")
	second, err := w.scan(ctx, first)
	must(t, err)
	if second["b/y.txt"] != first["b/y.txt"] {
		t.Fatal("a tree whose root stamp held was read")
	}
	// b's stamp changed (and the root's, as CephFS's recursive stamps would): b is read,
	// a is not.
	write(t, root, "a/x.txt", "333")
	set("", "r2")
	set("b", "b2")
	third, err := w.scan(ctx, second)
	must(t, err)
	if third["b/y.txt"] == first["b/y.txt"] {
		t.Error("a directory whose stamp changed was not read")
	}
	if third["a/x.txt"] != first["a/x.txt"] {
		t.Error("a directory whose stamp held was read")
	}
	// Without stamps (any file system but CephFS) every poll reads everything.
	set("", "")
	set("a", "")
	fourth, err := w.scan(ctx, third)
	must(t, err)
	if fourth["a/x.txt"] == first["a/x.txt"] {
		t.Error("a directory without a stamp was not read")
	}
}
