//go:build integration

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/cloudrepl/replicator/internal/store"
)

// eventually polls check until it returns "" or the deadline passes, then fails with
// its last answer.
func eventually(t *testing.T, within time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// everywhere checks that every destination holds key with sum ("" for: holds no key).
func everywhere(t *testing.T, w *world, key, sum string) func() string {
	return func() string {
		for _, d := range []string{"s3", "gcs", "azure"} {
			s := w.destination(d)
			if sum == "" {
				if _, err := s.Stat(t.Context(), key); !store.IsNotFound(err) {
					return fmt.Sprintf("%s still holds %s (%v)", d, key, err)
				}
				continue
			}
			if _, err := s.Stat(t.Context(), key); err != nil {
				return fmt.Sprintf("%s lacks %s: %v", d, key, err)
			}
			if got := readSHA(t, s, key); got != sum {
				return fmt.Sprintf("%s holds %s with SHA-256 %s, want %s", d, key, got, sum)
			}
		}
		return ""
	}
}

// TestWatchReplicatesChangesAsTheyHappen runs a worker with --watch over a mirror
// policy's directory, in inotify and in poll mode, and reads the three emulators
// back after each change: a new file, a file in a new directory, a modification, a
// rename (copy and delete), a removal; then a burst of files (10,000 under inotify,
// 1,000 under poll) arrives in batches, at most one workflow per 100 files, counted on
// the server.
func TestWatchReplicatesChangesAsTheyHappen(t *testing.T) {
	for _, mode := range []string{"inotify", "poll"} {
		t.Run(mode, func(t *testing.T) {
			w := newWorld(t, worldOptions{mode: "mirror", extra: fmt.Sprintf("    watch: {mode: %s, debounce: 300ms, poll_interval: 500ms}\n    exclude: [\"**/*.tmp\"]\n", mode)})
			w.workerArgs = []string{"--watch"}
			wk := w.startWorker()
			wk.waitFor(t, "msg=watching")
			time.Sleep(time.Second) // the watches, or the poll's baseline scan, are in place

			a := w.writeFile("a.txt", []byte("first version of a"))
			b := w.writeFile("new/dir/b.txt", []byte("b, in a directory made after the watch began"))
			w.writeFile("ignored.tmp", []byte("excluded"))
			eventually(t, time.Minute, everywhere(t, w, "a.txt", a))
			eventually(t, time.Minute, everywhere(t, w, "new/dir/b.txt", b))

			a2 := w.writeFile("a.txt", []byte("second version of a, longer than the first"))
			must(t, os.Rename(filepath.Join(w.src, "new/dir/b.txt"), filepath.Join(w.src, "new/dir/c.txt")))
			eventually(t, time.Minute, everywhere(t, w, "a.txt", a2))
			eventually(t, time.Minute, everywhere(t, w, "new/dir/c.txt", b))
			eventually(t, time.Minute, everywhere(t, w, "new/dir/b.txt", ""))

			must(t, os.Remove(filepath.Join(w.src, "a.txt")))
			eventually(t, time.Minute, everywhere(t, w, "a.txt", ""))
			if _, err := w.destination("s3").Stat(t.Context(), "ignored.tmp"); !store.IsNotFound(err) {
				t.Errorf("an excluded file was replicated: %v", err)
			}

			burstStart := time.Now().UTC()
			burst := 1000
			if mode == "inotify" {
				burst = 10000 // the burst; poll mode rescans the whole tree each interval, so it gets a smaller one
			}
			for i := range burst {
				w.writeFile(fmt.Sprintf("burst/%02d/f%04d.txt", i%20, i), []byte(fmt.Sprintf("burst file %d", i)))
			}
			// Listing 10,000 blobs is work for the emulators: count them only once no
			// workflow of the policy runs (cheap to ask Temporal), until all arrived.
			tc := temporalClient(t)
			eventually(t, 10*time.Minute, func() string {
				running, err := tc.CountWorkflow(t.Context(), &workflowservice.CountWorkflowExecutionsRequest{
					Query: fmt.Sprintf("ReplicationPolicy = %q AND ExecutionStatus = 'Running'", w.policy)})
				must(t, err)
				if running.Count > 0 {
					time.Sleep(time.Second)
					return fmt.Sprintf("%d workflows still run", running.Count)
				}
				for _, d := range []string{"s3", "gcs", "azure"} {
					n := 0
					for _, k := range listAll(t, w.destination(d)) {
						if strings.HasPrefix(k, "burst/") {
							n++
						}
					}
					if n != burst {
						time.Sleep(2 * time.Second)
						return fmt.Sprintf("%s holds %d of the %d burst files", d, n, burst)
					}
				}
				return ""
			})
			eventually(t, time.Minute, everywhere(t, w, "burst/07/f0007.txt", sha([]byte("burst file 7"))))
			resp, err := temporalClient(t).CountWorkflow(t.Context(), &workflowservice.CountWorkflowExecutionsRequest{
				Query: fmt.Sprintf("ReplicationPolicy = %q AND StartTime >= %q", w.policy, burstStart.Format(time.RFC3339Nano))})
			must(t, err)
			if resp.Count > int64(burst/100) {
				t.Errorf("%d workflows for a burst of %d files, want at most one per 100 files", resp.Count, burst)
			}
			t.Logf("%s: %d workflows for %d files", mode, resp.Count, burst)
		})
	}
}

// TestOneWatcherPerPolicy starts two workers with --watch on one policy: one watches,
// the other stands by; when the first stops, the second takes over and replicates
// what changes next.
func TestOneWatcherPerPolicy(t *testing.T) {
	w := newWorld(t, worldOptions{extra: "    watch: {mode: inotify, debounce: 200ms}\n"})
	w.workerArgs = []string{"--watch"}
	first := w.startWorker()
	first.waitFor(t, "msg=watching")
	second := w.startWorker()
	second.waitFor(t, "msg=polling")
	time.Sleep(2 * time.Second)
	if strings.Contains(second.out.String(), "msg=watching") {
		t.Fatal("a second worker watches a policy that the first one watches")
	}
	sum := w.writeFile("one.txt", []byte("seen by the first watcher"))
	eventually(t, time.Minute, everywhere(t, w, "one.txt", sum))

	first.stop(t) // releases its lease
	eventually(t, 30*time.Second, func() string {
		if !strings.Contains(second.out.String(), "msg=watching") {
			return "the second worker did not take over the watch"
		}
		return ""
	})
	time.Sleep(time.Second)
	sum = w.writeFile("two.txt", []byte("seen by the second watcher"))
	eventually(t, time.Minute, everywhere(t, w, "two.txt", sum))
}

// TestReconcileCatchesUpWhatNoWatcherSaw writes, changes and removes files while no
// worker watches the policy; the next reconcile repairs all of it, and a watcher
// started after it takes the changes from then on.
func TestReconcileCatchesUpWhatNoWatcherSaw(t *testing.T) {
	// A small tree: the safety limit must let one delete of two files through.
	w := newWorld(t, worldOptions{mode: "mirror", extra: "    watch: {mode: inotify, debounce: 200ms}\n    safety: {max_delete: 10, max_delete_percent: 100}\n"})
	w.workerArgs = []string{"--watch"}
	wk := w.startWorker()
	wk.waitFor(t, "msg=watching")
	time.Sleep(time.Second)
	gone := w.writeFile("gone.txt", []byte("removed while nobody watched"))
	changed := w.writeFile("changed.txt", []byte("first version"))
	eventually(t, time.Minute, everywhere(t, w, "gone.txt", gone))
	eventually(t, time.Minute, everywhere(t, w, "changed.txt", changed))
	wk.stop(t)

	// The watcher is down: none of this is seen as it happens.
	added := w.writeFile("added.txt", []byte("written while nobody watched"))
	changed = w.writeFile("changed.txt", []byte("second version, written while nobody watched"))
	must(t, os.Remove(filepath.Join(w.src, "gone.txt")))
	w.workerArgs = nil
	w.startWorker()
	if res, code := w.reconcile(); code != 0 {
		t.Fatalf("reconcile: exit %d %+v", code, res)
	}
	everywhereNow := func(key, sum string) {
		if msg := everywhere(t, w, key, sum)(); msg != "" {
			t.Error(msg)
		}
	}
	everywhereNow("added.txt", added)
	everywhereNow("changed.txt", changed)
	everywhereNow("gone.txt", "")
}

// TestStarterWatchRunsTheWatcherOutsideAWorker runs `starter watch` beside a worker
// without --watch: changes are replicated, and Ctrl-C (SIGINT) ends it cleanly.
func TestStarterWatchRunsTheWatcherOutsideAWorker(t *testing.T) {
	w := newWorld(t, worldOptions{extra: "    watch: {mode: inotify, debounce: 200ms}\n"})
	w.startWorker()
	_, bin := binaries(t)
	var out bytes.Buffer
	cmd := exec.Command(bin, "--config", w.configPath, "--policy", w.policy, "watch")
	cmd.Env = append(os.Environ(), w.extraEnv...)
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()
	eventually(t, 30*time.Second, func() string {
		if !strings.Contains(out.String(), "msg=watching") {
			return "starter watch never started watching:\n" + out.String()
		}
		return ""
	})
	time.Sleep(time.Second)
	sum := w.writeFile("from-starter-watch.txt", []byte("seen by starter watch"))
	eventually(t, time.Minute, everywhere(t, w, "from-starter-watch.txt", sum))
	must(t, cmd.Process.Signal(os.Interrupt))
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("starter watch ended with %v after SIGINT:\n%s", err, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Error("starter watch did not end after SIGINT")
	}
}
