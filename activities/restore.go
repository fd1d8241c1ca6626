package activities

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/replica"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
)

// restorePageSize is the keys per page of a restore's key list.
const restorePageSize = 64

// restoreFrom opens what a restore reads: the destination, or a view of it as it was
// at the time asked (its bucket's versions).
func (a *Activities) restoreFrom(ctx context.Context, spec wire.RestoreSpec) (*config.Policy, store.Store, error) {
	p, err := a.policy(spec.Policy)
	if err != nil {
		return nil, nil, err
	}
	_, t, err := a.destination(ctx, p, spec.From)
	if err != nil {
		return nil, nil, err
	}
	if spec.AsOf.IsZero() {
		return p, t.Store, nil
	}
	v, ok := store.VersionsOf(t.Store)
	if !ok {
		return nil, nil, asActivityError(&replica.Failure{Type: wire.ErrInvalid,
			Msg: fmt.Sprintf("destination %s cannot be read as of a time: only S3 destinations with bucket versioning keep past versions the replicator reads; restore its current replicas (without --as-of)", spec.From)})
	}
	return p, v.AsOf(spec.AsOf), nil
}

// restoreTo opens and checks the location a restore writes to: the policy's source,
// or the URL asked for. One that cannot be used fails for good, saying so.
func (a *Activities) restoreTo(ctx context.Context, p *config.Policy, spec wire.RestoreSpec) (store.Store, error) {
	var to store.Store
	var err error
	if spec.To == "" {
		to, err = a.source(ctx, p)
	} else {
		to, err = a.Stores.Get(ctx, backends.Spec{Name: "restore target", URL: spec.To})
		err = asActivityError(err)
	}
	if err != nil {
		return nil, err
	}
	if err := to.Check(ctx); err != nil {
		return nil, asActivityError(&replica.Failure{Type: wire.ErrInvalid, Err: err,
			Msg: fmt.Sprintf("the restore cannot write to its target: %v (create or mount it first)", err)})
	}
	return to, nil
}

// PlanRestore lists the destination under the restore's prefix (at its time) into a
// key list in the state location. A destination that cannot be read fails for good.
func (a *Activities) PlanRestore(ctx context.Context, in wire.RestoreInput) (*wire.PlanRestoreResult, error) {
	p, from, err := a.restoreFrom(ctx, in.RestoreSpec)
	if err != nil {
		return nil, err
	}
	if err := from.Check(ctx); err != nil {
		return nil, asActivityError(&replica.Failure{Type: wire.ErrInvalid, Err: err,
			Msg: fmt.Sprintf("the restore cannot read %s: %v", from.Name(), err)})
	}
	if _, err := a.restoreTo(ctx, p, in.RestoreSpec); err != nil {
		return nil, err
	}
	list := a.State.NewKeyList(p.Name, "restore-"+in.ID, restorePageSize)
	lastBeat := time.Now()
	n := 0
	for o, err := range from.List(ctx, store.ListOptions{Prefix: in.Prefix}) {
		if err != nil {
			return nil, asActivityError(fmt.Errorf("list %s: %w", from.Name(), err))
		}
		if o.Rejected != "" || o.Unreadable {
			continue // not a replica the replicator wrote: nothing to restore
		}
		if err := list.Add(ctx, o.Key); err != nil {
			return nil, asActivityError(err)
		}
		n++
		if time.Since(lastBeat) > 5*time.Second {
			activity.RecordHeartbeat(ctx, n)
			lastBeat = time.Now()
		}
	}
	l, err := list.Close(ctx)
	if err != nil {
		return nil, asActivityError(err)
	}
	return &wire.PlanRestoreResult{List: l}, nil
}

// restoreProgress is RestoreChunk's heartbeat: keys done and their counts, so that a
// retry goes on from there.
type restoreProgress struct {
	Done   int
	Result wire.RestoreResult
}

// RestoreChunk restores one page of a restore's key list through the engine: each
// replica verified by its SHA-256 while it streams, the target's objects replaced only
// when asked. A key that fails for good is counted and named; the page goes on.
func (a *Activities) RestoreChunk(ctx context.Context, in wire.RestoreChunkInput) (*wire.RestoreResult, error) {
	p, from, err := a.restoreFrom(ctx, in.RestoreSpec)
	if err != nil {
		return nil, err
	}
	to, err := a.restoreTo(ctx, p, in.RestoreSpec)
	if err != nil {
		return nil, err
	}
	keys, err := a.State.ReadKeyPage(ctx, in.List, in.Page)
	if err != nil {
		return nil, asActivityError(err)
	}
	var prog restoreProgress
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &prog)
	}
	t := replica.Target{Policy: p, Name: "restore target", Store: to}
	res := &prog.Result
	// A large file reports no progress of its own: the heartbeat goes on meanwhile.
	var mu sync.Mutex
	defer keepAlive(ctx, func() []any {
		mu.Lock()
		defer mu.Unlock()
		return []any{prog}
	})()
	for i := prog.Done; i < len(keys); i++ {
		out, err := a.Engine.Restore(ctx, t, replica.RestoreRequest{Key: keys[i], From: from, Overwrite: in.Overwrite})
		mu.Lock()
		switch {
		case err != nil && replica.FailureType(err) == "":
			mu.Unlock()
			return nil, asActivityError(err) // retried from this key
		case err != nil:
			res.Add(wire.RestoreResult{Failed: 1, Failures: []string{fmt.Sprintf("%q: %v", keys[i], err)}})
		case out.Outcome == wire.OutcomeCopied:
			res.Add(wire.RestoreResult{Restored: 1, Bytes: out.Bytes})
		case out.Outcome == wire.OutcomeLeft:
			res.Add(wire.RestoreResult{Left: 1, LeftKeys: []string{keys[i]}})
		default:
			res.Add(wire.RestoreResult{Skipped: 1})
		}
		prog.Done = i + 1
		mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	done := prog.Result
	return &done, nil
}
