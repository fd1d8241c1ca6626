package activities

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/cloudrepl/replicator/internal/replica"
	"github.com/cloudrepl/replicator/internal/wire"

	"go.temporal.io/sdk/activity"

	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/reconcile"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
)

// prefetchDepth is how far each stream of the merge reads ahead: two listing pages,
// so every backend has a request in flight while the merge works.
const prefetchDepth = 2000

// reconcilePageSize is the keys per page of a reconcile's lists.
const reconcilePageSize = 64

// PlanReconcile lists the source and every destination as sorted streams, merges them
// with the destination manifests (journal folded in), writes the plan and its key
// lists to the state location and returns counts. Unchanged files cost nothing but
// their listing entries. Delete safety is checked here.
func (a *Activities) PlanReconcile(ctx context.Context, in wire.PlanInput) (*wire.PlanResult, error) {
	p, err := a.policy(in.Policy)
	if err != nil {
		return nil, err
	}
	if p.Mode == config.ModeBidirectional {
		return a.planBidirectional(ctx, p, in)
	}
	st := a.State
	src, err := a.source(ctx, p)
	if err != nil {
		return nil, err
	}
	res := &wire.PlanResult{PlanID: in.PlanID, Checksum: in.Checksum || p.Checksum}
	if err := src.Check(ctx); err != nil {
		res.Stopped = true
		res.Reason = fmt.Sprintf("the source cannot be read (unmounted, missing or denied), so nothing was planned: %v", err)
		return res, nil
	}
	type destState struct {
		cfg      *config.Destination
		s        store.Store
		journal  *state.Journal
		manifest *state.ManifestWriter
		deletes  *state.KeyListWriter
		plan     wire.DestinationPlan
	}
	dests := make([]*destState, len(p.Destinations))
	rdests := make([]reconcile.Destination, len(p.Destinations))
	for i := range p.Destinations {
		d := &p.Destinations[i]
		_, t, err := a.destination(ctx, p, d.Name)
		if err != nil {
			return nil, err
		}
		mw, err := st.NewManifest(ctx, p.Name, d.Name)
		if err != nil {
			return nil, asActivityError(err)
		}
		defer mw.Discard()
		j, err := st.ReadJournal(ctx, p.Name, d.Name)
		if err != nil {
			return nil, asActivityError(err)
		}
		defer j.Close()
		ds := &destState{cfg: d, s: t.Store, journal: j, manifest: mw,
			deletes: st.NewKeyList(p.Name, in.PlanID+"/delete-"+d.Name, reconcilePageSize), plan: wire.DestinationPlan{Destination: d.Name}}
		dests[i] = ds
		rdests[i] = reconcile.Destination{
			Name:     d.Name,
			Manifest: reconcile.Prefetch(manifestEntries(j.Merged(st.Manifest(ctx, p.Name, d.Name))), prefetchDepth),
			Listing:  reconcile.Prefetch(countListing(t.Store.List(ctx, store.ListOptions{}), &ds.plan.Objects), prefetchDepth),
		}
	}
	sync := st.NewKeyList(p.Name, in.PlanID+"/sync", reconcilePageSize)
	planFile, err := os.CreateTemp("", "replicator-plan-*.jsonl")
	if err != nil {
		return nil, err
	}
	defer os.Remove(planFile.Name())
	defer planFile.Close()
	planW := bufio.NewWriter(planFile)

	var routeKey string
	var route []string
	routed := func(key, dest string) bool {
		if key != routeKey {
			routeKey, route = key, p.Route(key)
		}
		return slices.Contains(route, dest)
	}
	lastBeat := time.Now()
	rejects := &planRejects{a: a, ctx: ctx, p: p, wfID: activity.GetInfo(ctx).WorkflowExecution.ID, record: !in.DryRun}
	listing := src.List(ctx, store.ListOptions{SkipDir: p.ExcludesDir})
	err = reconcile.Diff(reconcile.Prefetch(sourceEntries(listing, p, &res.SourceKeys, rejects.source), prefetchDepth),
		rdests, reconcile.Options{Mirror: p.Mode == config.ModeMirror, Checksum: in.Checksum || p.Checksum, Routed: routed},
		func(d *reconcile.Decision) error {
			if time.Since(lastBeat) > 5*time.Second {
				activity.RecordHeartbeat(ctx, res.SourceKeys)
				lastBeat = time.Now()
			}
			line := wire.PlanLine{Key: d.Key}
			needsSync := false
			for i, act := range d.Actions {
				ds := dests[i]
				if act == reconcile.Copy || act == reconcile.Update || act == reconcile.Adopt {
					// A name this destination would store under another name is
					// refused here, by name, instead of failing every sync.
					if err := store.CheckKey(ds.s, d.Key); err != nil {
						rejects.destination(d.Key, ds.cfg.Name, err)
						continue
					}
				}
				if m := d.Manifest[i]; m != nil {
					if err := ds.manifest.Add(state.ManifestEntry{Key: m.Key, SourceVersion: m.SourceVersion, SHA256: m.SHA256, ETag: m.ETag, Size: m.Size}); err != nil {
						return err
					}
				}
				switch act {
				case reconcile.Unchanged:
					if d.Source != nil && routed(d.Key, ds.cfg.Name) {
						ds.plan.Unchanged++
					}
					continue
				case reconcile.Copy:
					ds.plan.Copy++
				case reconcile.Update:
					ds.plan.Update++
				case reconcile.Adopt:
					ds.plan.Adopt++
				case reconcile.Verify:
					ds.plan.Verify++
				case reconcile.Extra:
					ds.plan.Extra++
				case reconcile.Delete:
					ds.plan.Delete++
					if err := ds.deletes.Add(ctx, d.Key); err != nil {
						return err
					}
				}
				needsSync = needsSync || act == reconcile.Copy || act == reconcile.Update || act == reconcile.Adopt || act == reconcile.Verify
				if line.Actions == nil {
					line.Actions = map[string]string{}
				}
				line.Actions[ds.cfg.Name] = string(act)
			}
			if needsSync {
				if err := sync.Add(ctx, d.Key); err != nil {
					return err
				}
			}
			if line.Actions != nil {
				b, _ := json.Marshal(line)
				planW.Write(append(b, '\n'))
			}
			return nil
		})
	if err != nil {
		return nil, asActivityError(err)
	}
	if rejects.err != nil {
		return nil, asActivityError(fmt.Errorf("record rejected entries: %w", rejects.err))
	}
	res.Rejected, res.Unknown = rejects.counts.Counts(), rejects.dirs
	if a.Metrics != nil {
		for _, reason := range []string{wire.RejectName, wire.RejectSpecial, wire.RejectLink, wire.RejectUnreadable, wire.RejectDestinationName} {
			a.Metrics.Rejected.WithLabelValues(p.Name, reason).Set(float64(rejects.counts.Of(reason)))
		}
	}
	if res.Sync, err = sync.Close(ctx); err != nil {
		return nil, asActivityError(err)
	}
	for _, ds := range dests {
		if ds.plan.Deletes, err = ds.deletes.Close(ctx); err != nil {
			return nil, asActivityError(err)
		}
		res.Destinations = append(res.Destinations, ds.plan)
	}
	if err := planW.Flush(); err != nil {
		return nil, err
	}
	if res.Plan, err = a.storePlan(ctx, st, p.Name, in.PlanID, planFile); err != nil {
		return nil, asActivityError(err)
	}
	res.Stopped, res.Reason = replica.PlanSafety(p, res)
	if res.Stopped && in.OverrideSafety {
		res.Stopped, res.Reason = false, "safety overridden by the operator: "+res.Reason
	}
	drift := map[string]map[string]int{}
	for _, d := range res.Destinations {
		drift[d.Destination] = map[string]int{"copy": d.Copy, "update": d.Update, "delete": d.Delete, "adopt": d.Adopt, "extra": d.Extra}
	}
	if err := a.recordDrift(ctx, p.Name, drift); err != nil {
		return nil, asActivityError(err)
	}
	if in.DryRun || res.Stopped {
		return res, nil // manifests stay as they were: nothing changes
	}
	for _, ds := range dests {
		if err := ds.manifest.Commit(ctx, ds.journal); errors.Is(err, state.ErrManifestMoved) {
			activity.GetLogger(ctx).Info("another run stored the manifest first; this plan's is dropped", "policy", p.Name, "destination", ds.cfg.Name)
		} else if err != nil {
			return nil, asActivityError(err)
		}
	}
	return res, nil
}

func (a *Activities) storePlan(ctx context.Context, st *state.State, policy, id string, f *os.File) (string, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	key := state.PlanKey(policy, id)
	_, err = st.Store().Put(ctx, key, f, store.PutOptions{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n, ContentType: "application/x-ndjson"})
	return key, err
}

// selected filters a listing for a plan: keys the policy filters out are dropped
// first (a filter applies before any validation); rejected entries and directories of
// unknown state are reported through reject and passed on (the caller holds them, so
// that nothing changes under them); the rest are counted.
func selected(list iter.Seq2[store.Object, error], p *config.Policy, count *int, reject func(store.Object)) iter.Seq2[store.Object, error] {
	return func(yield func(store.Object, error) bool) {
		for o, err := range list {
			if err != nil {
				yield(store.Object{}, err)
				return
			}
			if o.Unreadable && p.ExcludesDir(o.Key) || !o.Unreadable && !p.Selected(o.Key) {
				continue
			}
			if o.Rejected != "" || o.Unreadable {
				reject(o)
			} else {
				*count++
			}
			if !yield(o, nil) {
				return
			}
		}
	}
}

// sourceEntries turns the source listing into diff entries (see selected).
func sourceEntries(list iter.Seq2[store.Object, error], p *config.Policy, count *int, reject func(store.Object)) iter.Seq2[reconcile.SourceEntry, error] {
	return func(yield func(reconcile.SourceEntry, error) bool) {
		for o, err := range selected(list, p, count, reject) {
			e := reconcile.SourceEntry{Key: o.Key, Size: o.Size, Version: replica.VersionOf(o)}
			if o.Rejected != "" || o.Unreadable {
				e = reconcile.SourceEntry{Key: o.Key, Held: true, Subtree: o.Unreadable}
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// destination records a key that one destination cannot hold under its name.
func (r *planRejects) destination(key, dest string, why error) {
	var err error
	if r.record {
		err = r.a.Engine.Reject(r.ctx, r.p.Name, key, dest, why.Error(), r.wfID)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts.Add(wire.RejectDestinationName)
	r.err = errors.Join(r.err, err)
}

// maxUnknown bounds the directories of unknown state a plan lists by name.
const maxUnknown = 20

// planRejects records what a plan could not replicate: a dead letter of class
// Rejected per entry and routed destination, counts by reason, and the directories
// that could not be read.
type planRejects struct {
	a      *Activities
	ctx    context.Context
	p      *config.Policy
	wfID   string
	record bool // a dry run counts without writing records
	mu     sync.Mutex
	counts replica.Rejections
	dirs   []string
	err    error
}

func (r *planRejects) source(o store.Object) {
	kind := replica.RejectKind(o.Rejected)
	if o.Unreadable {
		kind = wire.RejectUnreadable
	}
	reason := o.Rejected
	if o.Unreadable && reason == "" {
		reason = "the directory could not be read: nothing under it is copied or deleted until it can"
	}
	dests := r.p.Route(o.Key)
	if o.Unreadable {
		dests = nil
		for _, d := range r.p.Destinations {
			dests = append(dests, d.Name)
		}
	}
	var errs error
	for _, d := range dests {
		if r.record {
			errs = errors.Join(errs, r.a.Engine.Reject(r.ctx, r.p.Name, o.Key, d, reason, r.wfID))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts.Add(kind)
	if o.Unreadable && len(r.dirs) < maxUnknown {
		r.dirs = append(r.dirs, o.Key)
	}
	r.err = errors.Join(r.err, errs)
}

func manifestEntries(seq iter.Seq2[state.ManifestEntry, error]) iter.Seq2[reconcile.ManifestEntry, error] {
	return func(yield func(reconcile.ManifestEntry, error) bool) {
		for e, err := range seq {
			if !yield(reconcile.ManifestEntry{Key: e.Key, SourceVersion: e.SourceVersion, SHA256: e.SHA256, ETag: e.ETag, Size: e.Size}, err) || err != nil {
				return
			}
		}
	}
}

func countListing(list iter.Seq2[store.Object, error], n *int) iter.Seq2[reconcile.DestEntry, error] {
	return func(yield func(reconcile.DestEntry, error) bool) {
		for o, err := range list {
			if err == nil {
				*n++
			}
			if !yield(reconcile.DestEntry{Key: o.Key, Size: o.Size, ETag: o.ETag}, err) || err != nil {
				return
			}
		}
	}
}

// DeleteChunk propagates source deletes to one destination for a page of keys. A key
// that reappeared at the source since the plan is kept. With a trash retention the
// object is first copied to .replicator/trash/<date>/.
func (a *Activities) DeleteChunk(ctx context.Context, in wire.DeleteChunkInput) (*wire.Counts, error) {
	p, _, src, keys, err := a.page(ctx, in.Policy, in.List, in.Page)
	if err != nil {
		return nil, err
	}
	_, t, err := a.destination(ctx, p, in.Destination)
	if err != nil {
		return nil, err
	}
	c := &wire.Counts{}
	for i, key := range keys {
		activity.RecordHeartbeat(ctx, i)
		res, err := a.Engine.Delete(ctx, t, replica.DeleteRequest{Key: key, Source: src, SourceVouched: true})
		a.observeDelete(p.Name, in.Destination, res, err)
		if err != nil {
			return nil, asActivityError(err)
		}
		c.Record(res.Outcome, 0)
	}
	return c, nil
}

// driftKinds are the kinds of replicator_drift_objects.
var driftKinds = []string{"copy", "update", "delete", "adopt", "extra", "copy-to-source", "delete-on-source", "both-changed"}

// recordDrift stores what a plan found out of sync in the policy's reconcile status
// and shows it in this worker's gauges at once (the others read it within their
// refresh interval).
func (a *Activities) recordDrift(ctx context.Context, policy string, drift map[string]map[string]int) error {
	if err := a.State.UpdateReconcileStatus(ctx, policy, func(s *state.ReconcileStatus) { s.Drift = drift }); err != nil {
		return fmt.Errorf("record the plan's drift: %w", err)
	}
	if a.Metrics != nil {
		for dest, kinds := range drift {
			for kind, n := range kinds {
				a.Metrics.Drift.WithLabelValues(policy, dest, kind).Set(float64(n))
			}
		}
	}
	return nil
}

// FinishReconcile records a successful reconcile's time and clears the drift gauges
// it repaired, removes the plan, purges expired trash and sweeps every destination of
// stages and undo copies older than replica.SweepGrace (what terminated or failed
// runs left), reporting what it removed.
func (a *Activities) FinishReconcile(ctx context.Context, in wire.FinishReconcileInput) (*wire.FinishReconcileResult, error) {
	p, err := a.policy(in.Policy)
	if err != nil {
		return nil, err
	}
	if in.Outcome == wire.RunOK {
		// The time and the repaired drift go to the state location, which every
		// worker's gauges read (RefreshSharedGauges); this worker's at once.
		now := time.Now()
		err := a.State.UpdateReconcileStatus(ctx, p.Name, func(s *state.ReconcileStatus) {
			s.LastSuccess = now
			for _, kinds := range s.Drift {
				for kind := range kinds {
					kinds[kind] = 0
				}
			}
		})
		if err != nil {
			return nil, asActivityError(err)
		}
		if a.Metrics != nil {
			a.Metrics.LastReconcile.WithLabelValues(p.Name).Set(float64(now.UnixNano()) / 1e9)
			for _, d := range p.Destinations {
				for _, kind := range driftKinds {
					a.Metrics.Drift.WithLabelValues(p.Name, d.Name, kind).Set(0)
				}
			}
		}
	}
	if in.PlanID != "" {
		if err := a.State.RemovePlan(ctx, p.Name, in.PlanID); err != nil {
			return nil, asActivityError(err)
		}
	}
	if in.PlanID != "" && (in.Outcome == wire.RunOK || in.Outcome == wire.RunPartial) && p.Mode != config.ModeBidirectional {
		for _, d := range p.Destinations {
			if _, err := a.State.CompactManifest(ctx, p.Name, d.Name); err != nil {
				return nil, asActivityError(err)
			}
		}
	}
	res := &wire.FinishReconcileResult{}
	cutoff := time.Now().Add(-replica.SweepGrace)
	for _, d := range p.Destinations {
		_, t, err := a.destination(ctx, p, d.Name)
		if err != nil {
			return nil, err
		}
		if err := a.Engine.PurgeTrash(ctx, t); err != nil {
			return nil, asActivityError(err)
		}
		rep, err := a.Engine.Sweep(ctx, t, cutoff)
		if err != nil {
			return nil, asActivityError(err)
		}
		if rep.Stages+rep.Undo+rep.Uploads > 0 {
			activity.GetLogger(ctx).Info("swept what failed runs left", "policy", p.Name, "destination", d.Name, "stages", rep.Stages, "undo", rep.Undo, "uploads", rep.Uploads)
			res.Swept = append(res.Swept, rep)
		}
	}
	return res, nil
}
