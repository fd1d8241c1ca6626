package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloudrepl/replicator/internal/wire"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
)

// atomicDirs is an atomic policy over real directories: a source and two
// destinations, with the state location beside them.
type atomicDirs struct {
	root string
	a    *Activities
	env  *testsuite.TestActivityEnvironment
}

func newAtomicDirs(t *testing.T) *atomicDirs {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"src", "one", "two", "state"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse(strings.NewReader(fmt.Sprintf(`state: file://%[1]s/state
policies:
  - name: p
    source: file://%[1]s/src
    consistency: atomic
    destinations:
      - {name: one, url: "file://%[1]s/one"}
      - {name: two, url: "file://%[1]s/two"}
`, root)))
	if err != nil {
		t.Fatal(err)
	}
	stores := backends.NewCache()
	t.Cleanup(func() { stores.Close() })
	st, err := OpenState(context.Background(), cfg, stores)
	if err != nil {
		t.Fatal(err)
	}
	a := New(cfg, stores, st, nil)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivityWithOptions(a.StageChunk, activity.RegisterOptions{Name: wire.StageChunkName})
	env.RegisterActivityWithOptions(a.CommitChunk, activity.RegisterOptions{Name: wire.CommitChunkName})
	return &atomicDirs{root: root, a: a, env: env}
}

func (d *atomicDirs) write(t *testing.T, key, content string) {
	t.Helper()
	p := filepath.Join(d.root, "src", key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// list stores keys as a key list in the state location.
func (d *atomicDirs) list(t *testing.T, keys ...string) state.KeyList {
	t.Helper()
	l, err := d.a.State.WriteKeyList(context.Background(), "p", "test", slices.Values(keys), 64)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (d *atomicDirs) exists(dest, key string) bool {
	_, err := os.Stat(filepath.Join(d.root, dest, key))
	return err == nil
}

func TestStageChunkStagesWithoutTouchingFinalKeys(t *testing.T) {
	d := newAtomicDirs(t)
	d.write(t, "a.txt", "alpha")
	d.write(t, "b/c.txt", "gamma")
	v, err := d.env.ExecuteActivity(wire.StageChunkName, wire.ChunkInput{Policy: "p", List: d.list(t, "a.txt", "b/c.txt"), Destinations: []string{"one", "two"}, LargeThreshold: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var res wire.StageChunkResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	if res.Keys != 2 || len(res.Staged) != 2 || res.Staged[0].Key != "a.txt" || res.Staged[1].Key != "b/c.txt" {
		t.Fatalf("staged %+v", res)
	}
	for _, sk := range res.Staged {
		for _, o := range sk.Destinations {
			if o.Outcome != wire.OutcomeStaged || sk.Changed {
				t.Errorf("%s on %s: %+v", sk.Key, o.Destination, o)
			}
			if d.exists(o.Destination, sk.Key) {
				t.Errorf("%s is visible on %s before its commit", sk.Key, o.Destination)
			}
			if !d.exists(o.Destination, wire.StagingKey(sk.Key, sk.Source.Version)) {
				t.Errorf("%s has no stage on %s", sk.Key, o.Destination)
			}
		}
	}
}

func TestCommitChunkResumesFromItsHeartbeat(t *testing.T) {
	d := newAtomicDirs(t)
	d.write(t, "a.txt", "alpha")
	d.write(t, "b.txt", "beta")
	v, err := d.env.ExecuteActivity(wire.StageChunkName, wire.ChunkInput{Policy: "p", List: d.list(t, "a.txt", "b.txt"), Destinations: []string{"one", "two"}, LargeThreshold: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var staged wire.StageChunkResult
	if err := v.Get(&staged); err != nil {
		t.Fatal(err)
	}
	in := wire.CommitChunkInput{Policy: "p"}
	for _, sk := range staged.Staged {
		in.Keys = append(in.Keys, wire.CommitKey{Key: sk.Key, Source: sk.Source, Destinations: []string{"one", "two"}})
	}
	// An earlier attempt committed a.txt on "one" and then failed: its heartbeat
	// says so, and the stage it copied from is gone since.
	earlier := []wire.CommittedKey{
		{Key: "a.txt", Destinations: []wire.KeyDestination{{Destination: "one", Outcome: wire.OutcomeCopied, Bytes: 5}, {}}},
		{Key: "b.txt", Destinations: []wire.KeyDestination{{}, {}}},
	}
	d.env.SetHeartbeatDetails(earlier)
	v, err = d.env.ExecuteActivity(wire.CommitChunkName, in)
	if err != nil {
		t.Fatal(err)
	}
	var res wire.CommitChunkResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	for i, k := range res.Keys {
		for j, o := range k.Destinations {
			if o.Outcome != wire.OutcomeCopied {
				t.Errorf("%s on %s: %+v, want copied", k.Key, in.Keys[i].Destinations[j], o)
			}
		}
	}
	// The heartbeat's entry was taken as done: "one" did not get a.txt from this
	// attempt (it was never really committed in this test), the rest did.
	if d.exists("one", "a.txt") || !d.exists("two", "a.txt") || !d.exists("one", "b.txt") || !d.exists("two", "b.txt") {
		t.Fatal("the commit redid what its heartbeat said was done, or skipped what it did not")
	}
	st := d.a.State
	for dest, want := range map[string]int{"one": 1, "two": 2} {
		j, err := st.ReadJournal(context.Background(), "p", dest)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, err := range j.Merged(st.Manifest(context.Background(), "p", dest)) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != want {
			t.Errorf("manifest of %s has %d entries, want %d (one per commit of this attempt)", dest, n, want)
		}
	}
}

func TestCommitChunkLooksAgainWhenAnotherWriterCameBetween(t *testing.T) {
	d := newAtomicDirs(t)
	d.write(t, "a.txt", "alpha")
	v, err := d.env.ExecuteActivity(wire.StageChunkName, wire.ChunkInput{Policy: "p", List: d.list(t, "a.txt"), Destinations: []string{"one"}, LargeThreshold: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var staged wire.StageChunkResult
	if err := v.Get(&staged); err != nil {
		t.Fatal(err)
	}
	sk := staged.Staged[0]
	if f := sk.Destinations[0].Final; f == nil || f.Exists {
		t.Fatalf("the stage saw %+v under the final key, want nothing", f)
	}
	// Meanwhile a newer version of a.txt reached "one" by another run.
	_, dst, err := d.a.destination(context.Background(), mustPolicy(t, d.a), "one")
	if err != nil {
		t.Fatal(err)
	}
	newer := []byte("alpha, edited")
	if _, err := dst.Store.Put(context.Background(), "a.txt", bytes.NewReader(newer), store.PutOptions{SHA256: sha256Hex(newer), Size: int64(len(newer)),
		SourceVersion: "9000000000000000000:x"}); err != nil {
		t.Fatal(err)
	}
	v, err = d.env.ExecuteActivity(wire.CommitChunkName, wire.CommitChunkInput{Policy: "p", Keys: []wire.CommitKey{
		{Key: "a.txt", Source: sk.Source, Destinations: []string{"one"}, Finals: []*wire.FinalState{sk.Destinations[0].Final}}}})
	if err != nil {
		t.Fatal(err)
	}
	var res wire.CommitChunkResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	if o := res.Keys[0].Destinations[0].Outcome; o != wire.OutcomeSuperseded {
		t.Fatalf("commit outcome %q, want superseded", o)
	}
	if got, _ := os.ReadFile(filepath.Join(d.root, "one", "a.txt")); !bytes.Equal(got, newer) {
		t.Fatalf("the newer version was replaced by %q", got)
	}
}

func mustPolicy(t *testing.T, a *Activities) *config.Policy {
	p, err := a.policy("p")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
