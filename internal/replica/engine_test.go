package replica

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/store/localstore"
	"github.com/cloudrepl/replicator/internal/wire"
)

// dirs is a policy over real directories: a source, one destination and the state
// location, with the engine over them.
type dirs struct {
	root   string
	src    store.Store
	dst    store.Store
	engine *Engine
	policy *config.Policy
}

func open(t *testing.T, dir, name string) store.Store {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := localstore.New(context.Background(), store.Options{Name: name, URL: &url.URL{Scheme: "file", Path: dir}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newDirs(t *testing.T) *dirs {
	t.Helper()
	root := t.TempDir()
	d := &dirs{root: root, src: open(t, filepath.Join(root, "src"), "src"), dst: open(t, filepath.Join(root, "dst"), "dst"),
		policy: &config.Policy{Name: "p", Mode: config.ModeMirror, Unmanaged: "overwrite"}}
	d.engine = New(state.New(open(t, filepath.Join(root, "state"), "state")))
	return d
}

func (d *dirs) target() Target { return Target{Policy: d.policy, Name: "dst", Store: d.dst} }

// writeSource writes a source file and returns its prepared version.
func (d *dirs) writeSource(t *testing.T, key, content string, mtime time.Time) wire.SourceVersion {
	t.Helper()
	p := filepath.Join(d.root, "src", key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	sv, err := d.engine.Prepare(context.Background(), "p", d.src, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sv
}

func (d *dirs) write(t *testing.T, key string, sv wire.SourceVersion) wire.Outcome {
	t.Helper()
	res, err := d.engine.Write(context.Background(), d.target(), WriteRequest{Key: key, Source: sv, Body: Body{Source: d.src}})
	if err != nil {
		t.Fatalf("write %s: %v", key, err)
	}
	return res.Outcome
}

func (d *dirs) replica(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.root, "dst", key))
	if err != nil {
		t.Fatalf("read replica %s: %v", key, err)
	}
	return string(b)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestWriteCopiesThenSkipsTheSameHash(t *testing.T) {
	d := newDirs(t)
	sv := d.writeSource(t, "a/invoice.pdf", "2026-001", time.Time{})
	if got := d.write(t, "a/invoice.pdf", sv); got != wire.OutcomeCopied {
		t.Fatalf("first write: %s", got)
	}
	if got := d.write(t, "a/invoice.pdf", sv); got != wire.OutcomeSkipped {
		t.Fatalf("second write of the same version: %s, want skipped", got)
	}
	if d.replica(t, "a/invoice.pdf") != "2026-001" {
		t.Fatal("replica bytes differ from the source")
	}
	// A large file takes the look-first path: the same hash is skipped there too.
	big := strings.Repeat("x", optimisticCreateMax+1)
	bsv := d.writeSource(t, "big.bin", big, time.Time{})
	if d.write(t, "big.bin", bsv) != wire.OutcomeCopied || d.write(t, "big.bin", bsv) != wire.OutcomeSkipped {
		t.Fatal("large file: want copied, then skipped")
	}
}

func TestLaterVersionAtTheDestinationIsKept(t *testing.T) {
	d := newDirs(t)
	old := d.writeSource(t, "k", "first", time.Time{})
	time.Sleep(10 * time.Millisecond) // a later change time
	newer := d.writeSource(t, "k", "second", time.Time{})
	if d.write(t, "k", newer) != wire.OutcomeCopied {
		t.Fatal("newer version not copied")
	}
	// A batch that read the older version into memory arrives late: the guard keeps
	// the newer.
	res, err := d.engine.Write(context.Background(), d.target(), WriteRequest{Key: "k", Source: old, Body: Body{Data: []byte("first")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Outcome; got != wire.OutcomeSuperseded {
		t.Fatalf("late older version: %s, want superseded", got)
	}
	if d.replica(t, "k") != "second" {
		t.Fatal("the older version replaced the newer one")
	}
}

func TestRestoredOlderFileIsReplicated(t *testing.T) {
	d := newDirs(t)
	d.write(t, "contract.pdf", d.writeSource(t, "contract.pdf", "signed v2", time.Time{}))
	// Restored from backup: older content with an older mtime (cp -p, rsync -t), but
	// a new change time, which no user can set back.
	restored := d.writeSource(t, "contract.pdf", "signed v1", time.Now().Add(-365*24*time.Hour))
	if got := d.write(t, "contract.pdf", restored); got != wire.OutcomeCopied {
		t.Fatalf("restored file: %s, want copied", got)
	}
	if d.replica(t, "contract.pdf") != "signed v1" {
		t.Fatal("the restored content did not reach the destination")
	}
}

func TestVersionOrder(t *testing.T) {
	if !Later("20:b", "10:a") || Later("10:a", "20:b") || Later("10:a", "10:b") || Later("junk", "10:a") || Later("10:a", "junk") {
		t.Fatal("Later orders by the leading number only, and never for versions that do not parse")
	}
}

// racingStore lets another writer in once, right before the engine's first
// conditional write: what a second worker does.
type racingStore struct {
	store.Store
	once   sync.Once
	writer func()
}

func (r *racingStore) Put(ctx context.Context, key string, body io.Reader, opts store.PutOptions) (*store.Object, error) {
	if opts.Precondition.IfMatch != "" || opts.Precondition.IfNoneMatch {
		r.once.Do(r.writer)
	}
	return r.Store.Put(ctx, key, body, opts)
}

func TestPreconditionConflictLooksAgainAndDecidesAgain(t *testing.T) {
	d := newDirs(t)
	sv := d.writeSource(t, "k", "ours", time.Time{})
	theirs := []byte("theirs, written by another worker")
	rs := &racingStore{Store: d.dst, writer: func() {
		if _, err := d.dst.Put(context.Background(), "k", bytes.NewReader(theirs), store.PutOptions{SHA256: sha(theirs), Size: int64(len(theirs)), SourceVersion: "1:other"}); err != nil {
			t.Error(err)
		}
	}}
	res, err := d.engine.Write(context.Background(), Target{Policy: d.policy, Name: "dst", Store: rs}, WriteRequest{Key: "k", Source: sv, Body: Body{Source: d.src}})
	if err != nil {
		t.Fatal(err)
	}
	// The other writer's version is older ("1:"), so ours replaces it on the next look.
	if res.Outcome != wire.OutcomeCopied || d.replica(t, "k") != "ours" {
		t.Fatalf("after a conflict: %s, replica %q", res.Outcome, d.replica(t, "k"))
	}
}

func TestOverwriteAndDeleteKeepEveryVersionInTheTrash(t *testing.T) {
	d := newDirs(t)
	d.policy.Safety.TrashRetention = config.Duration(24 * time.Hour)
	for _, content := range []string{"v1", "v2", "v3"} {
		time.Sleep(2 * time.Millisecond)
		d.write(t, "k", d.writeSource(t, "k", content, time.Time{}))
	}
	if err := os.Remove(filepath.Join(d.root, "src", "k")); err != nil {
		t.Fatal(err)
	}
	d.writeSource(t, "other", "keeps the source non-empty", time.Time{})
	res, err := d.engine.Delete(context.Background(), d.target(), DeleteRequest{Key: "k", Source: d.src})
	if err != nil || res.Outcome != wire.OutcomeDeleted {
		t.Fatalf("delete: %v %v", res, err)
	}
	var kept []string
	for o, err := range d.dst.List(context.Background(), store.ListOptions{Prefix: TrashPrefix, IncludeInternal: true}) {
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(d.root, "dst", o.Key))
		kept = append(kept, string(b))
	}
	if strings.Join(kept, ",") != "v1,v2,v3" {
		t.Fatalf("trash holds %q, want every replaced or deleted version: v1,v2,v3", kept)
	}
}

func TestGuardedDelete(t *testing.T) {
	ctx := context.Background()
	d := newDirs(t)
	d.write(t, "gone", d.writeSource(t, "gone", "x", time.Time{}))
	d.write(t, "back", d.writeSource(t, "back", "y", time.Time{}))
	os.Remove(filepath.Join(d.root, "src", "gone"))

	// A key back at the source is kept.
	if res, err := d.engine.Delete(ctx, d.target(), DeleteRequest{Key: "back", Source: d.src}); err != nil || res.Outcome != wire.OutcomeSkipped {
		t.Fatalf("key present at the source: %v %v", res, err)
	}
	// An emptied (unmounted) source deletes nothing.
	os.Remove(filepath.Join(d.root, "src", "back"))
	_, err := d.engine.Delete(ctx, d.target(), DeleteRequest{Key: "gone", Source: d.src})
	if FailureType(err) != ErrSafety || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("delete over an empty source: %v, want a Safety refusal", err)
	}
	if d.replica(t, "gone") != "x" {
		t.Fatal("the replica was deleted over an empty source")
	}
	d.writeSource(t, "present", "z", time.Time{})

	// The object changed after it was looked at: the delete does not take it.
	rs := &deleteRacer{Store: d.dst, before: func() {
		b := []byte("rewritten")
		a, _ := d.dst.Stat(ctx, "gone")
		if _, err := d.dst.Put(ctx, "gone", bytes.NewReader(b), store.PutOptions{SHA256: sha(b), Size: int64(len(b)), Precondition: store.Precondition{IfMatch: a.ETag}}); err != nil {
			t.Error(err)
		}
	}}
	res, err := d.engine.Delete(ctx, Target{Policy: d.policy, Name: "dst", Store: rs}, DeleteRequest{Key: "gone", Source: d.src})
	if err != nil || res.Outcome != wire.OutcomeSuperseded || d.replica(t, "gone") != "rewritten" {
		t.Fatalf("delete racing a write: %v %v", res, err)
	}

	// Outside a reconcile, max_delete bounds the deletes per window.
	d.policy.Safety.MaxDelete = 2
	for _, k := range []string{"w1", "w2", "w3"} {
		d.write(t, k, d.writeSource(t, k, k, time.Time{}))
		os.Remove(filepath.Join(d.root, "src", k))
	}
	outcomes := []string{}
	for _, k := range []string{"w1", "w2", "w3"} {
		res, err := d.engine.Delete(ctx, d.target(), DeleteRequest{Key: k, Source: d.src, Windowed: true})
		switch {
		case err != nil:
			outcomes = append(outcomes, FailureType(err))
		default:
			outcomes = append(outcomes, string(res.Outcome))
		}
	}
	if strings.Join(outcomes, ",") != "deleted,deleted,Safety" || d.replica(t, "w3") != "w3" {
		t.Fatalf("windowed deletes: %v, want deleted,deleted,Safety and w3 kept", outcomes)
	}
	// A window later, deletes are admitted again.
	d.engine.Now = func() time.Time { return time.Now().Add(DeleteWindow + time.Minute) }
	if res, err := d.engine.Delete(ctx, d.target(), DeleteRequest{Key: "w3", Source: d.src, Windowed: true}); err != nil || res.Outcome != wire.OutcomeDeleted {
		t.Fatalf("after the window: %v %v", res, err)
	}
}

// deleteRacer lets another writer in right before the engine's delete.
type deleteRacer struct {
	store.Store
	before func()
}

func (r *deleteRacer) Delete(ctx context.Context, key string, opts store.DeleteOptions) error {
	r.before()
	return r.Store.Delete(ctx, key, opts)
}

func TestStageAndCommit(t *testing.T) {
	ctx := context.Background()
	d := newDirs(t)
	d.write(t, "k", d.writeSource(t, "k", "old", time.Time{}))
	time.Sleep(2 * time.Millisecond)
	sv := d.writeSource(t, "k", "new", time.Time{})
	stage := wire.StagingKey("k", sv.Version)
	res, err := d.engine.Stage(ctx, d.target(), WriteRequest{Key: "k", Source: sv, Body: Body{Source: d.src}}, stage)
	if err != nil || res.Outcome != wire.OutcomeStaged || res.Final == nil || !res.Final.Exists {
		t.Fatalf("stage: %+v %v", res, err)
	}
	if d.replica(t, "k") != "old" {
		t.Fatal("staging changed the final key")
	}
	res, err = d.engine.Commit(ctx, d.target(), WriteRequest{Key: "k", Source: sv, Seen: res.Final}, stage)
	if err != nil || res.Outcome != wire.OutcomeCopied || d.replica(t, "k") != "new" {
		t.Fatalf("commit: %+v %v", res, err)
	}
	// A retried commit finds the hash in place.
	res, err = d.engine.Commit(ctx, d.target(), WriteRequest{Key: "k", Source: sv}, stage)
	if err != nil || res.Outcome != wire.OutcomeSkipped {
		t.Fatalf("retried commit: %+v %v", res, err)
	}
	if err := d.engine.Cleanup(ctx, d.target(), []string{stage}); err != nil {
		t.Fatal(err)
	}
	if err := d.engine.Cleanup(ctx, d.target(), []string{"k"}); FailureType(err) != wire.ErrInvalid {
		t.Fatalf("cleanup of a user key: %v, want refused", err)
	}
}

func TestCommitKeepsUndoAndRollbackRestores(t *testing.T) {
	ctx := context.Background()
	d := newDirs(t)
	d.write(t, "k", d.writeSource(t, "k", "previous", time.Time{}))
	time.Sleep(2 * time.Millisecond)
	sv := d.writeSource(t, "k", "committed", time.Time{})
	stage, undoKey := wire.RunStagingKey("k", sv.Version, "run-1"), wire.UndoKey("k", "run-1")
	if _, err := d.engine.Stage(ctx, d.target(), WriteRequest{Key: "k", Source: sv, Body: Body{Source: d.src}}, stage); err != nil {
		t.Fatal(err)
	}
	res, err := d.engine.Commit(ctx, d.target(), WriteRequest{Key: "k", Source: sv, Undo: undoKey}, stage)
	if err != nil || res.Outcome != wire.OutcomeCopied || res.Undo == nil || res.Undo.Key != undoKey || d.replica(t, "k") != "committed" {
		t.Fatalf("commit: %+v %v", res, err)
	}
	if got, err := d.engine.Rollback(ctx, d.target(), "k", *res.Undo); err != nil || got != wire.OutcomeRolledBack {
		t.Fatalf("rollback: %s %v", got, err)
	}
	if d.replica(t, "k") != "previous" {
		t.Fatalf("after the rollback the final key holds %q, want the previous version", d.replica(t, "k"))
	}
	if a, err := d.dst.Stat(ctx, "k"); err != nil || a.SHA256 != sha([]byte("previous")) {
		t.Fatalf("the restored version lost its metadata: %+v %v", a, err)
	}
	if _, err := d.dst.Stat(ctx, undoKey); !store.IsNotFound(err) {
		t.Fatalf("the undo copy is left after the rollback: %v", err)
	}
	// Rolled back twice (a lost answer): still rolled back, nothing changes.
	if got, err := d.engine.Rollback(ctx, d.target(), "k", *res.Undo); err != nil || got != wire.OutcomeRolledBack || d.replica(t, "k") != "previous" {
		t.Fatalf("second rollback: %s %v", got, err)
	}
}

func TestRollbackOfANewKeyDeletesItUnlessRewritten(t *testing.T) {
	ctx := context.Background()
	d := newDirs(t)
	for i, key := range []string{"new-a", "new-b"} {
		sv := d.writeSource(t, key, "first", time.Time{})
		stage := wire.RunStagingKey(key, sv.Version, "run")
		if _, err := d.engine.Stage(ctx, d.target(), WriteRequest{Key: key, Source: sv, Body: Body{Source: d.src}}, stage); err != nil {
			t.Fatal(err)
		}
		res, err := d.engine.Commit(ctx, d.target(), WriteRequest{Key: key, Source: sv, Undo: wire.UndoKey(key, "run")}, stage)
		if err != nil || res.Undo == nil || res.Undo.Key != "" {
			t.Fatalf("commit of a new key: %+v %v", res, err)
		}
		if i == 1 {
			// A later write replaced the commit: the rollback must leave it.
			later := []byte("later")
			if _, err := d.dst.Put(ctx, key, bytes.NewReader(later), store.PutOptions{SHA256: sha(later), Size: int64(len(later)), Precondition: store.Precondition{IfMatch: res.Undo.ETag}}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := d.engine.Rollback(ctx, d.target(), key, *res.Undo)
		switch {
		case err != nil:
			t.Fatal(err)
		case i == 0 && (got != wire.OutcomeRolledBack || fileExists(filepath.Join(d.root, "dst", key))):
			t.Fatalf("rollback of a created key: %s, still there: %v", got, fileExists(filepath.Join(d.root, "dst", key)))
		case i == 1 && (got != wire.OutcomeSuperseded || d.replica(t, key) != "later"):
			t.Fatalf("rollback over a later write: %s, replica %q", got, d.replica(t, key))
		}
	}
}

func TestCommitWithoutItsStage(t *testing.T) {
	ctx := context.Background()
	d := newDirs(t)
	sv := d.writeSource(t, "k", "v", time.Time{})
	_, err := d.engine.Commit(ctx, d.target(), WriteRequest{Key: "k", Source: sv}, wire.RunStagingKey("k", sv.Version, "gone"))
	if FailureType(err) != wire.ErrStageMissing {
		t.Fatalf("commit without a stage or the version: %v, want StageMissing", err)
	}
	d.write(t, "k", sv) // another run committed the version
	res, err := d.engine.Commit(ctx, d.target(), WriteRequest{Key: "k", Source: sv}, wire.RunStagingKey("k", sv.Version, "gone"))
	if err != nil || res.Outcome != wire.OutcomeSkipped {
		t.Fatalf("commit whose stage is gone but whose version is in place: %+v %v", res, err)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestSweepRemovesOnlyOldStagesAndUndoCopies(t *testing.T) {
	ctx := context.Background()
	d := newDirs(t)
	put := func(key string) {
		b := []byte(key)
		if _, err := d.dst.Put(ctx, key, bytes.NewReader(b), store.PutOptions{SHA256: sha(b), Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
	}
	oldStage, oldUndo := wire.RunStagingKey("a", "1:x", "dead-run"), wire.UndoKey("a", "dead-run")
	put(oldStage)
	put(oldUndo)
	put("user/file.txt")
	old := time.Now().Add(-48 * time.Hour)
	for _, k := range []string{oldStage, oldUndo, "user/file.txt"} {
		must(t, os.Chtimes(filepath.Join(d.root, "dst", k), old, old))
	}
	fresh := wire.RunStagingKey("b", "1:y", "running")
	put(fresh)
	rep, err := d.engine.Sweep(ctx, d.target(), time.Now().Add(-SweepGrace))
	if err != nil || rep.Stages != 1 || rep.Undo != 1 {
		t.Fatalf("sweep: %+v %v", rep, err)
	}
	for k, want := range map[string]bool{oldStage: false, oldUndo: false, fresh: true, "user/file.txt": true} {
		if fileExists(filepath.Join(d.root, "dst", k)) != want {
			t.Errorf("%s present: %v, want %v", k, !want, want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// denyingStore refuses puts onto user keys, as a bucket policy on the final prefix
// would.
type denyingStore struct{ store.Store }

func (d denyingStore) Put(ctx context.Context, key string, body io.Reader, opts store.PutOptions) (*store.Object, error) {
	if !store.IsInternal(key) {
		return nil, store.Errorf(store.CodePermission, "put", d.Name(), key, "", "access denied")
	}
	return d.Store.Put(ctx, key, body, opts)
}

func TestDirectAtomicWriteIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	d := newDirs(t)
	second := open(t, filepath.Join(d.root, "dst2"), "dst2")
	targets := func(deny bool) []DirectTarget {
		var s store.Store = second
		if deny {
			s = denyingStore{second}
		}
		return []DirectTarget{{Target: d.target()}, {Target: Target{Policy: d.policy, Name: "dst2", Store: s}}}
	}
	data := func(content string) (wire.SourceVersion, Body) {
		sv := d.writeSource(t, "k", content, time.Time{})
		return sv, Body{Data: []byte(content)}
	}
	write := func(content string, deny bool) ([]wire.KeyDestination, error) {
		sv, body := data(content)
		ts := targets(deny)
		for i := range ts {
			ts[i].Body = body
		}
		return d.engine.Direct(ctx, ts, WriteRequest{Key: "k", Source: sv}, "run-"+content, 2)
	}
	// A new key, one destination denying: the other loses the key it got.
	outs, err := write("first", true)
	if err == nil || outs[0].Outcome != wire.OutcomeRolledBack || outs[1].Outcome != wire.OutcomeFailed || fileExists(filepath.Join(d.root, "dst", "k")) {
		t.Fatalf("new key, second destination denying: %+v %v", outs, err)
	}
	// Both accept: written everywhere, no undo copy left.
	if outs, err := write("second", false); err != nil || outs[0].Outcome != wire.OutcomeCopied || outs[1].Outcome != wire.OutcomeCopied {
		t.Fatalf("both accepting: %+v %v", outs, err)
	}
	time.Sleep(2 * time.Millisecond)
	// An existing key, one destination denying: the other gets its previous version back.
	outs, err = write("third", true)
	if err == nil || outs[0].Outcome != wire.OutcomeRolledBack || d.replica(t, "k") != "second" {
		t.Fatalf("existing key, second destination denying: %+v %v, replica %q", outs, err, d.replica(t, "k"))
	}
	for _, dir := range []string{"dst", "dst2"} {
		if entries, _ := os.ReadDir(filepath.Join(d.root, dir, ".replicator", "undo")); len(entries) > 0 {
			t.Errorf("%s: undo copies left: %v", dir, entries)
		}
	}
}

// undeletableStore refuses deletes of user keys, so a rollback cannot remove what it
// created.
type undeletableStore struct{ store.Store }

func (u undeletableStore) Delete(ctx context.Context, key string, opts store.DeleteOptions) error {
	if !store.IsInternal(key) {
		return store.Errorf(store.CodePermission, "delete", u.Name(), key, "", "access denied")
	}
	return u.Store.Delete(ctx, key, opts)
}

func TestDirectWhoseRollbackFailsSaysUnfinished(t *testing.T) {
	d := newDirs(t)
	second := open(t, filepath.Join(d.root, "dst2"), "dst2")
	sv := d.writeSource(t, "k", "new", time.Time{})
	body := Body{Data: []byte("new")}
	targets := []DirectTarget{
		{Target: Target{Policy: d.policy, Name: "dst", Store: undeletableStore{d.dst}}, Body: body},
		{Target: Target{Policy: d.policy, Name: "dst2", Store: denyingStore{second}}, Body: body},
	}
	outs, err := d.engine.Direct(context.Background(), targets, WriteRequest{Key: "k", Source: sv}, "run", 1)
	if err == nil || slices.ContainsFunc(outs, func(o wire.KeyDestination) bool { return o.Outcome == wire.OutcomeFailed }) {
		t.Fatalf("a rollback that failed must read as unfinished (an error, no failed result): %+v %v", outs, err)
	}
	if !strings.Contains(err.Error(), "roll back") {
		t.Errorf("the error should say the rollback failed: %v", err)
	}
}

// countingStore counts the puts and stats a destination receives.
type countingStore struct {
	store.Store
	puts, stats atomic.Int32
}

func (c *countingStore) Put(ctx context.Context, key string, body io.Reader, opts store.PutOptions) (*store.Object, error) {
	c.puts.Add(1)
	return c.Store.Put(ctx, key, body, opts)
}

func (c *countingStore) Stat(ctx context.Context, key string) (*store.Attributes, error) {
	c.stats.Add(1)
	return c.Store.Stat(ctx, key)
}

func (c *countingStore) take() (puts, stats int32) { return c.puts.Swap(0), c.stats.Swap(0) }

func TestSmallWritesLearnWhetherKeysAreNew(t *testing.T) {
	d := newDirs(t)
	cs := &countingStore{Store: d.dst}
	target := Target{Policy: d.policy, Name: "dst", Store: cs}
	write := func(key string, sv wire.SourceVersion) {
		t.Helper()
		res, err := d.engine.Write(context.Background(), target, WriteRequest{Key: key, Source: sv, Body: Body{Source: d.src}})
		if err != nil || res.Outcome != wire.OutcomeCopied {
			t.Fatalf("write %s: %v, %+v", key, err, res)
		}
	}
	expect := func(what string, puts, stats int32) {
		t.Helper()
		if p, s := cs.take(); p != puts || s != stats {
			t.Fatalf("%s: %d puts and %d stats, want %d and %d", what, p, s, puts, stats)
		}
	}
	keys := []string{"a", "b", "c", "d", "e"}
	for _, k := range keys {
		write(k, d.writeSource(t, k, "v1 "+k, time.Time{}))
	}
	expect("new keys", 5, 0) // one create-only put each
	for _, k := range keys {
		write(k, d.writeSource(t, k, "v2 "+k, time.Time{}))
	}
	// The first two updates try create-only and are refused; the next look first.
	expect("updates", 2+5, 5)
	write("f", d.writeSource(t, "f", "new", time.Time{}))
	expect("a new key among updates", 1, 1) // the look finds it missing: back to create-only
	write("g", d.writeSource(t, "g", "new", time.Time{}))
	expect("the next new key", 1, 0)
	for _, k := range append(keys, "f", "g") {
		if got, want := d.replica(t, k), map[bool]string{true: "new", false: "v2 " + k}[k == "f" || k == "g"]; got != want {
			t.Fatalf("replica %s: %q, want %q", k, got, want)
		}
	}
	// Another destination of the policy learns on its own.
	other := &countingStore{Store: open(t, filepath.Join(d.root, "dst2"), "dst2")}
	for _, k := range keys {
		if _, err := d.engine.Write(context.Background(), Target{Policy: d.policy, Name: "dst2", Store: other}, WriteRequest{Key: k, Source: d.writeSource(t, k, "v3 "+k, time.Time{}), Body: Body{Source: d.src}}); err != nil {
			t.Fatal(err)
		}
	}
	if p, s := other.take(); p != 5 || s != 0 {
		t.Fatalf("a second destination: %d puts and %d stats, want 5 and 0", p, s)
	}
}
