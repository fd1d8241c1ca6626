package activities

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/cloudrepl/replicator/internal/bisync"
	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/reconcile"
	"github.com/cloudrepl/replicator/internal/replica"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
)

// planBidirectional plans a bidirectional policy: side A (the source) and side B (its
// destination) are listed as sorted streams and merged with both sides' last-synced
// records in one pass; each key's change on each side decides what it needs. The
// plan's items, with what was seen, go to the state location for SyncChunk.
func (a *Activities) planBidirectional(ctx context.Context, p *config.Policy, in wire.PlanInput) (*wire.PlanResult, error) {
	st := a.State
	sideA, err := a.source(ctx, p)
	if err != nil {
		return nil, err
	}
	dest := &p.Destinations[0]
	_, tb, err := a.destination(ctx, p, dest.Name)
	if err != nil {
		return nil, err
	}
	bp := &wire.BidirectionalPlan{Destination: dest.Name}
	res := &wire.PlanResult{PlanID: in.PlanID, Bidirectional: bp}
	for _, s := range []struct {
		side bisync.Side
		s    store.Store
	}{{bisync.SideA, sideA}, {bisync.SideB, tb.Store}} {
		if err := s.s.Check(ctx); err != nil {
			res.Stopped = true
			res.Reason = fmt.Sprintf("side %s (%s) cannot be read (unmounted, missing or denied), so nothing was planned: %v", s.side, s.s.Name(), err)
			return res, nil
		}
	}
	type sideState struct {
		journal  *state.Journal
		manifest *state.ManifestWriter
		records  int
	}
	sides := map[bisync.Side]*sideState{}
	records := map[bisync.Side]iter.Seq2[bisync.Synced, error]{}
	for _, side := range []bisync.Side{bisync.SideA, bisync.SideB} {
		name := replica.SideManifest(side)
		mw, err := st.NewManifest(ctx, p.Name, name)
		if err != nil {
			return nil, asActivityError(err)
		}
		defer mw.Discard()
		j, err := st.ReadJournal(ctx, p.Name, name)
		if err != nil {
			return nil, asActivityError(err)
		}
		defer j.Close()
		sides[side] = &sideState{journal: j, manifest: mw}
		records[side] = reconcilePrefetch(syncedEntries(j.Merged(st.Manifest(ctx, p.Name, name))))
	}
	items := st.NewKeyList(p.Name, in.PlanID+"/bidirectional", reconcilePageSize)
	planFile, err := os.CreateTemp("", "replicator-plan-*.jsonl")
	if err != nil {
		return nil, err
	}
	defer os.Remove(planFile.Name())
	defer planFile.Close()
	planW := bufio.NewWriter(planFile)
	rejects := &planRejects{a: a, ctx: ctx, p: p, wfID: activity.GetInfo(ctx).WorkflowExecution.ID, record: !in.DryRun}
	listA := reconcilePrefetch(sideEntries(sideA.List(ctx, store.ListOptions{SkipDir: p.ExcludesDir}), p, &bp.A.Objects, rejects.source))
	listB := reconcilePrefetch(sideEntries(tb.Store.List(ctx, store.ListOptions{SkipDir: p.ExcludesDir}), p, &bp.B.Objects, rejects.source))
	lastBeat := time.Now()
	err = bisync.Merge(listA, listB, records[bisync.SideA], records[bisync.SideB], func(it bisync.Item) error {
		if time.Since(lastBeat) > 5*time.Second {
			activity.RecordHeartbeat(ctx, bp.A.Objects+bp.B.Objects)
			lastBeat = time.Now()
		}
		for side, rec := range map[bisync.Side]*bisync.Synced{bisync.SideA: it.SyncedA, bisync.SideB: it.SyncedB} {
			if rec != nil {
				sides[side].records++
				if err := sides[side].manifest.Add(state.ManifestEntry{Key: rec.Key, SHA256: rec.SHA256, ETag: rec.ETag, Size: rec.Size, Vector: rec.Vector.String()}); err != nil {
					return err
				}
			}
		}
		dec := bisync.Decide(it)
		// A name the receiving side would store under another name is refused by
		// name here instead of failing the sync.
		if to := receiver(dec.Action, sideA, tb.Store); to != nil {
			if err := store.CheckKey(to, it.Key); err != nil {
				rejects.destination(it.Key, dest.Name, err)
				return nil
			}
		}
		line := wire.PlanLine{Key: it.Key, Conflict: dec.Conflict}
		switch dec.Action {
		case bisync.Nothing:
			return nil
		case bisync.CopyToA:
			bp.A.Copy++
			line.Actions = map[string]string{"a": "copy from b"}
		case bisync.CopyToB:
			bp.B.Copy++
			line.Actions = map[string]string{"b": "copy from a"}
		case bisync.DeleteOnA:
			bp.A.Delete++
			line.Actions = map[string]string{"a": "delete (deleted on b)"}
		case bisync.DeleteOnB:
			bp.B.Delete++
			line.Actions = map[string]string{"b": "delete (deleted on a)"}
		case bisync.BothChanged:
			bp.BothChanged++
			ca, cb := it.Changes()
			line.Actions = map[string]string{"a": string(ca), "b": string(cb)}
			line.Conflict = "possible: " + p.Conflict + " if the contents differ"
		case bisync.Forget:
			bp.Forget++
			line.Actions = map[string]string{"a": "forget (deleted on both)", "b": "forget (deleted on both)"}
		}
		if dec.Conflict != "" {
			bp.Conflicts++
		}
		b, err := json.Marshal(replica.Planned{Item: it, Decision: dec})
		if err != nil {
			return err
		}
		if err := items.Add(ctx, string(b)); err != nil {
			return err
		}
		b, _ = json.Marshal(line)
		_, err = planW.Write(append(b, '\n'))
		return err
	})
	if err != nil {
		return nil, asActivityError(err)
	}
	if rejects.err != nil {
		return nil, asActivityError(fmt.Errorf("record rejected entries: %w", rejects.err))
	}
	res.Rejected, res.Unknown = rejects.counts.Counts(), rejects.dirs
	res.SourceKeys = bp.A.Objects
	if bp.Items, err = items.Close(ctx); err != nil {
		return nil, asActivityError(err)
	}
	if err := planW.Flush(); err != nil {
		return nil, err
	}
	if res.Plan, err = a.storePlan(ctx, st, p.Name, in.PlanID, planFile); err != nil {
		return nil, asActivityError(err)
	}
	res.Stopped, res.Reason = replica.BidirectionalSafety(p, bp, sides[bisync.SideA].records, sides[bisync.SideB].records)
	if res.Stopped && in.OverrideSafety {
		res.Stopped, res.Reason = false, "safety overridden by the operator: "+res.Reason
	}
	if err := a.recordDrift(ctx, p.Name, map[string]map[string]int{dest.Name: {"copy": bp.B.Copy, "delete": bp.B.Delete,
		"copy-to-source": bp.A.Copy, "delete-on-source": bp.A.Delete, "both-changed": bp.BothChanged}}); err != nil {
		return nil, asActivityError(err)
	}
	if in.DryRun || res.Stopped {
		return res, nil
	}
	for _, s := range sides {
		if err := s.manifest.Commit(ctx, s.journal); errors.Is(err, state.ErrManifestMoved) {
			activity.GetLogger(ctx).Info("another run stored the records first; this plan's are dropped", "policy", p.Name)
		} else if err != nil {
			return nil, asActivityError(err)
		}
	}
	return res, nil
}

// receiver is the side an action writes a key to, nil when it writes none.
func receiver(act bisync.Action, a, b store.Store) store.Store {
	switch act {
	case bisync.CopyToA:
		return a
	case bisync.CopyToB:
		return b
	}
	return nil
}

func reconcilePrefetch[T any](seq iter.Seq2[T, error]) iter.Seq2[T, error] {
	return reconcile.Prefetch(seq, prefetchDepth)
}

// sideEntries turns a side's listing into merge entries (see selected).
func sideEntries(list iter.Seq2[store.Object, error], p *config.Policy, count *int, reject func(store.Object)) iter.Seq2[bisync.Listed, error] {
	return func(yield func(bisync.Listed, error) bool) {
		for o, err := range selected(list, p, count, reject) {
			e := bisync.Listed{Key: o.Key, Size: o.Size, ETag: o.ETag}
			if o.Rejected != "" || o.Unreadable {
				e = bisync.Listed{Key: o.Key, Held: true, Subtree: o.Unreadable}
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

func syncedEntries(seq iter.Seq2[state.ManifestEntry, error]) iter.Seq2[bisync.Synced, error] {
	return func(yield func(bisync.Synced, error) bool) {
		for e, err := range seq {
			if err != nil {
				yield(bisync.Synced{}, err)
				return
			}
			v, err := bisync.ParseVector(e.Vector)
			if err != nil {
				yield(bisync.Synced{}, fmt.Errorf("sync record of %s: %w", e.Key, err))
				return
			}
			if !yield(bisync.Synced{Key: e.Key, SHA256: e.SHA256, ETag: e.ETag, Size: e.Size, Vector: v}, nil) {
				return
			}
		}
	}
}

// syncProgress is SyncChunk's heartbeat: the items done and what they did, so that a
// retried attempt goes on where the last stopped.
type syncProgress struct {
	Done   int
	Counts wire.SyncCounts
}

// SyncChunk carries out one page of a bidirectional plan, key by key, through the
// engine (conditional writes and deletes on what the plan saw, records written once
// both sides agree). A key that fails for good is a dead letter; the page goes on.
func (a *Activities) SyncChunk(ctx context.Context, in wire.SyncChunkInput) (*wire.SyncCounts, error) {
	p, err := a.policy(in.Policy)
	if err != nil {
		return nil, err
	}
	if p.Mode != config.ModeBidirectional || len(p.Destinations) != 1 {
		return nil, asActivityError(&replica.Failure{Type: wire.ErrPermission, Msg: fmt.Sprintf("policy %s is not bidirectional in the worker's config: deploy the same replicator.yaml", p.Name)})
	}
	sideA, err := a.source(ctx, p)
	if err != nil {
		return nil, err
	}
	dest := p.Destinations[0].Name
	_, tb, err := a.destination(ctx, p, dest)
	if err != nil {
		return nil, err
	}
	ta := replica.Target{Policy: p, Name: "source", Store: sideA}
	lines, err := a.State.ReadKeyPage(ctx, in.List, in.Page)
	if err != nil {
		return nil, asActivityError(err)
	}
	var prog syncProgress
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &prog)
	}
	c := &prog.Counts
	wfID := activity.GetInfo(ctx).WorkflowExecution.ID
	// A large file's copy reports no progress of its own: the heartbeat goes on
	// meanwhile, with the keys done so far.
	var mu sync.Mutex
	snapshot := func() []any {
		mu.Lock()
		defer mu.Unlock()
		return []any{prog}
	}
	defer keepAlive(ctx, snapshot)()
	for i := prog.Done; i < len(lines); i++ {
		var pl replica.Planned
		if err := json.Unmarshal([]byte(lines[i]), &pl); err != nil {
			return nil, asActivityError(&replica.Failure{Type: wire.ErrInvalid, Msg: fmt.Sprintf("plan item %d of page %d is damaged: %v", i, in.Page, err)})
		}
		out, err := a.Engine.SyncKey(ctx, ta, tb, pl, bisync.Rule(p.Conflict))
		mu.Lock()
		if err != nil {
			class := replica.FailureType(err)
			if class == "" {
				mu.Unlock()
				return nil, asActivityError(err) // retried: the page goes on from this key
			}
			c.Failed++
			if err := a.State.RecordDeadLetter(ctx, state.DeadLetter{Policy: p.Name, Key: pl.Key, Destination: dest, Class: class,
				Message: err.Error(), Attempts: int(activity.GetInfo(ctx).Attempt), WorkflowID: wfID}); err != nil {
				mu.Unlock()
				return nil, asActivityError(err)
			}
		} else {
			a.tallySync(p.Name, dest, c, out)
		}
		prog.Done = i + 1
		mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	done := prog.Counts
	return &done, nil
}

// tallySync counts one key's outcome and reports it in the metrics.
func (a *Activities) tallySync(policy, dest string, c *wire.SyncCounts, out *replica.SyncOutcome) {
	result := "copied"
	switch out.Did {
	case string(bisync.CopyToA):
		c.CopiedToA++
	case string(bisync.CopyToB):
		c.CopiedToB++
	case string(bisync.DeleteOnA):
		c.DeletedOnA++
		result = "deleted"
	case string(bisync.DeleteOnB):
		c.DeletedOnB++
		result = "deleted"
	case replica.SyncInSync, string(bisync.Forget):
		c.InSync++
		result = "skipped"
	case replica.SyncChanged:
		c.Changed++
		result = "superseded"
	}
	c.Bytes += out.Bytes
	if out.Conflict != "" {
		c.Conflicts++
	}
	if out.Kept != "" {
		c.Add(wire.SyncCounts{Kept: []string{out.Kept}})
	}
	if a.Metrics == nil {
		return
	}
	a.Metrics.Objects.WithLabelValues(policy, dest, result).Inc()
	if out.Bytes > 0 {
		a.Metrics.Bytes.WithLabelValues(policy, dest).Add(float64(out.Bytes))
	}
	if out.Conflict != "" {
		a.Metrics.Conflicts.WithLabelValues(policy, out.Conflict).Inc()
	}
}
