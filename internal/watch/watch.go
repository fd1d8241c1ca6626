// Package watch turns changes under a policy's source directory into replication
// triggers: kernel events (inotify) where the kernel sees every change, rescans
// (poll) on network file systems where it does not. A file is triggered once it has
// gone a debounce interval without a change; a burst of ready files becomes one batch,
// never a workflow per file. The scheduled reconcile stays the safety net for what a
// watcher misses (while it is down, or when the kernel's event queue overflows).
package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/store"
)

// Starter starts the replication of changed keys.
type Starter interface {
	// Files starts (or joins) one ReplicateFile per key.
	Files(ctx context.Context, keys []string) error
	// Batch starts one ReplicateBatch over keys.
	Batch(ctx context.Context, keys []string) error
}

// DefaultBatchAbove is how many keys ready at once go as individual workflows; more
// go as one batch. It is small: a batch's page of keys costs a few activities where
// each ReplicateFile costs one per destination and more, and the lag benchmark showed
// 20 files/s as single workflows queueing up on one worker (p99 30 s) where batches of
// a handful kept up with 200 files/s.
const DefaultBatchAbove = 3

// maxBatch bounds the keys held back for one batch while changes keep coming.
const maxBatch = 10000

// Options configure a watcher of one policy.
type Options struct {
	Policy *config.Policy
	// Root is the source directory's path.
	Root string
	// Source is the policy's source store, which poll mode lists.
	Source  store.Store
	Starter Starter
	Log     *slog.Logger
	// BatchAbove: more ready keys than this at one flush go as one batch
	// (DefaultBatchAbove when 0).
	BatchAbove int
	// Mode, when set, overrides auto's choice ("inotify" or "poll").
	Mode string
	// DirStamp is a directory's recursive change stamp: a poll does not read a
	// directory whose stamp did not change. Default: CephFS's ceph.dir.rctime, ""
	// (always read) elsewhere.
	DirStamp func(dir string) string
}

// watcher collects changed keys until they are ready.
type watcher struct {
	o        Options
	debounce time.Duration
	mu       sync.Mutex
	// pending maps a changed key to the time of its last change.
	pending map[string]time.Time
	// lastChange is the time of the latest change recorded.
	lastChange time.Time
	// stamps are the directories' change stamps at the last poll.
	stamps map[string]string
	// outbox holds ready keys not started yet, since outboxSince: while changes keep
	// coming they are gathered into batches.
	outbox      []string
	outboxSince time.Time
}

// touch records a change of key at t, if the policy selects the key.
func (w *watcher) touch(key string, t time.Time) {
	if !w.o.Policy.Selected(key) {
		return
	}
	w.mu.Lock()
	w.pending[key] = t
	w.lastChange = t
	w.mu.Unlock()
}

// ready removes and returns the keys unchanged since before cutoff, sorted.
func (w *watcher) ready(cutoff time.Time) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var keys []string
	for k, t := range w.pending {
		if !t.After(cutoff) {
			keys = append(keys, k)
			delete(w.pending, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// Run watches the policy's source until ctx ends. Mode auto picks poll for a network
// file system (NFS, CephFS, SMB), where inotify sees only this machine's changes.
func Run(ctx context.Context, o Options) error {
	if o.Policy.Watch == nil {
		return fmt.Errorf("policy %s has no watch settings", o.Policy.Name)
	}
	if o.BatchAbove <= 0 {
		o.BatchAbove = DefaultBatchAbove
	}
	mode := o.Mode
	if mode == "" {
		mode = o.Policy.Watch.Mode
	}
	if mode == config.WatchAuto {
		fs, err := mountType(o.Root)
		if err != nil {
			return err
		}
		mode = config.WatchInotify
		if networkFS(fs) {
			mode = config.WatchPoll
		}
		o.Log.Info("watch mode chosen", "policy", o.Policy.Name, "mode", mode, "filesystem", fs)
	}
	w := &watcher{o: o, debounce: time.Duration(o.Policy.Watch.Debounce), pending: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		var err error
		if mode == config.WatchPoll {
			err = w.poll(ctx, time.Duration(o.Policy.Watch.PollInterval))
		} else {
			err = w.inotify(ctx)
		}
		errc <- err
		cancel()
	}()
	w.flushLoop(ctx)
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("watch %s (policy %s, %s): %w", o.Root, o.Policy.Name, mode, err)
	}
	return nil
}

// flushLoop starts what is ready, several times per debounce interval, until ctx
// ends.
func (w *watcher) flushLoop(ctx context.Context) {
	tick := time.NewTicker(max(w.debounce/4, 50*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			w.flush(ctx, now)
		}
	}
}

// flush starts the keys that went a debounce interval without a change: each as its
// own workflow, or all as one batch when there are more than BatchAbove. While changes
// keep coming (a burst, a steady stream) ready keys are held back for up to another
// debounce interval (or maxBatch of them), so that they start together as a batch
// instead of a workflow each. Keys whose start failed wait for the next flush.
func (w *watcher) flush(ctx context.Context, now time.Time) {
	ready := w.ready(now.Add(-w.debounce))
	w.mu.Lock()
	if len(ready) > 0 && len(w.outbox) == 0 {
		w.outboxSince = now
	}
	w.outbox = append(w.outbox, ready...)
	busy := now.Sub(w.lastChange) < w.debounce/2
	if len(w.outbox) == 0 || busy && len(w.outbox) < maxBatch && now.Sub(w.outboxSince) < w.debounce {
		w.mu.Unlock()
		return
	}
	keys := w.outbox
	w.outbox = nil
	w.mu.Unlock()
	slices.Sort(keys)
	var err error
	if len(keys) > w.o.BatchAbove {
		err = w.o.Starter.Batch(ctx, keys)
	} else {
		err = w.o.Starter.Files(ctx, keys)
	}
	if err != nil {
		if ctx.Err() == nil {
			w.o.Log.Warn("watch: could not start replication; trying again", "policy", w.o.Policy.Name, "keys", len(keys), "err", err)
		}
		for _, k := range keys {
			w.touch(k, now)
		}
		return
	}
	w.o.Log.Info("watch: replication started", "policy", w.o.Policy.Name, "keys", len(keys), "batch", len(keys) > w.o.BatchAbove)
}

// snapshot is what a scan saw of each file.
type snapshot map[string]fileState

type fileState struct {
	size  int64
	mtime time.Time
	etag  string
}

// scan lists the source (excluded trees left out, rejected entries skipped: the
// reconcile reports them). A directory whose change stamp is the one prev's scan saw
// is not read: its files keep the states prev holds for them. On CephFS that makes a
// poll of a large, quiet tree read a handful of directories.
func (w *watcher) scan(ctx context.Context, prev snapshot) (snapshot, error) {
	stamp := w.o.DirStamp
	if stamp == nil {
		stamp = rctime
	}
	pr := newPruner(w.o.Root, stamp, w.stamps)
	if pr.unchanged("") && prev != nil {
		return prev, nil // nothing under the root changed: every stamp holds
	}
	snap := snapshot{}
	skip := func(dir string) bool {
		return w.o.Policy.ExcludesDir(dir) || pr.unchanged(dir)
	}
	for o, err := range w.o.Source.List(ctx, store.ListOptions{SkipDir: skip}) {
		if err != nil {
			return nil, err
		}
		if o.Rejected != "" || o.Unreadable {
			continue
		}
		snap[o.Key] = fileState{size: o.Size, mtime: o.ModTime, etag: o.ETag}
	}
	for k, st := range prev {
		if pr.carried(k) {
			snap[k] = st
		}
	}
	w.stamps = pr.next
	return snap, nil
}

// poll rescans every interval and records what was added, changed or removed since
// the scan before. The first scan is the baseline: what changed before the watcher
// started is the reconcile's.
func (w *watcher) poll(ctx context.Context, interval time.Duration) error {
	prev, err := w.scan(ctx, nil)
	if err != nil {
		return err
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		cur, err := w.scan(ctx, prev)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w.o.Log.Warn("watch: rescan failed; trying again next interval", "policy", w.o.Policy.Name, "err", err)
			continue
		}
		now := time.Now()
		for k, s := range cur {
			if p, ok := prev[k]; !ok || p != s {
				w.touch(k, now)
			}
		}
		for k := range maps.Keys(prev) {
			if _, ok := cur[k]; !ok {
				w.touch(k, now)
			}
		}
		prev = cur
	}
}
