package activities

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/reconcile"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
)

// Reconcile activity names.
const (
	PlanReconcileName   = "PlanReconcile"
	DeleteChunkName     = "DeleteChunk"
	FinishReconcileName = "FinishReconcile"
)

// PlanInput asks for a reconcile plan of one policy.
type PlanInput struct {
	Policy string
	// PlanID names the plan's files in the state location.
	PlanID string
	// DryRun plans without committing manifests (nothing changes anywhere).
	DryRun bool
	// OverrideSafety lets a plan over the delete limits, or with an empty source, run.
	OverrideSafety bool
	// Checksum compares content of every object present on both sides.
	Checksum bool
}

// DestinationPlan counts one destination's plan.
type DestinationPlan struct {
	Destination string
	// Objects the destination listed (the replicator's own subtree excluded).
	Objects   int
	Unchanged int
	Copy      int
	Update    int
	Delete    int
	Adopt     int
	Extra     int
	Verify    int
	// Deletes is the list of keys to delete there.
	Deletes state.KeyList
}

// Pending is the number of objects the destination needs to change.
func (d DestinationPlan) Pending() int { return d.Copy + d.Update + d.Delete + d.Adopt + d.Verify }

// PlanResult is a reconcile plan: counts, and references to its key lists.
type PlanResult struct {
	PlanID       string
	SourceKeys   int
	Destinations []DestinationPlan
	// Sync lists keys that need a copy, an update, an adoption or a content check
	// on at least one destination.
	Sync state.KeyList
	// Plan is the key, in the state location, of the plan's lines (one JSON object
	// per key with its action per destination), for display.
	Plan string
	// Stopped and Reason: the plan must not run (safety).
	Stopped bool
	Reason  string
	// Checksum: the plan compares content, so the sync must read replicas.
	Checksum bool `json:",omitempty"`
}

// PlanLine is one line of a plan file.
type PlanLine struct {
	Key     string            `json:"key"`
	Actions map[string]string `json:"actions"`
}

// prefetchDepth is how far each stream of the merge reads ahead: two listing pages,
// so every backend has a request in flight while the merge works.
const prefetchDepth = 2000

// reconcilePageSize is the keys per page of a reconcile's lists.
const reconcilePageSize = 64

// PlanReconcile lists the source and every destination as sorted streams, merges them
// with the destination manifests (journal folded in), writes the plan and its key
// lists to the state location and returns counts. Unchanged files cost nothing but
// their listing entries. Delete safety is checked here.
func (a *Activities) PlanReconcile(ctx context.Context, in PlanInput) (*PlanResult, error) {
	p, err := a.policy(in.Policy)
	if err != nil {
		return nil, err
	}
	st, err := a.State(ctx)
	if err != nil {
		return nil, asActivityError(err)
	}
	src, err := a.source(ctx, p)
	if err != nil {
		return nil, err
	}
	res := &PlanResult{PlanID: in.PlanID, Checksum: in.Checksum || p.Checksum}
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
		plan     DestinationPlan
	}
	dests := make([]*destState, len(p.Destinations))
	rdests := make([]reconcile.Destination, len(p.Destinations))
	for i := range p.Destinations {
		d := &p.Destinations[i]
		_, s, err := a.destination(ctx, p, d.Name)
		if err != nil {
			return nil, err
		}
		j, err := st.ReadJournal(ctx, p.Name, d.Name)
		if err != nil {
			return nil, asActivityError(err)
		}
		mw, err := st.NewManifest(p.Name, d.Name)
		if err != nil {
			return nil, err
		}
		defer mw.Discard()
		ds := &destState{cfg: d, s: s, journal: j, manifest: mw,
			deletes: st.NewKeyList(p.Name, in.PlanID+"/delete-"+d.Name, reconcilePageSize), plan: DestinationPlan{Destination: d.Name}}
		dests[i] = ds
		rdests[i] = reconcile.Destination{
			Name:     d.Name,
			Manifest: reconcile.Prefetch(manifestEntries(j.Merged(st.Manifest(ctx, p.Name, d.Name))), prefetchDepth),
			Listing:  reconcile.Prefetch(countListing(s.List(ctx, store.ListOptions{}), &ds.plan.Objects), prefetchDepth),
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
	err = reconcile.Diff(reconcile.Prefetch(sourceEntries(src.List(ctx, store.ListOptions{}), p, &res.SourceKeys), prefetchDepth),
		rdests, reconcile.Options{Mirror: p.Mode == config.ModeMirror, Checksum: in.Checksum || p.Checksum, Routed: routed},
		func(d *reconcile.Decision) error {
			if time.Since(lastBeat) > 5*time.Second {
				activity.RecordHeartbeat(ctx, res.SourceKeys)
				lastBeat = time.Now()
			}
			line := PlanLine{Key: d.Key}
			needsSync := false
			for i, act := range d.Actions {
				ds := dests[i]
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
	res.Stopped, res.Reason = safetyStop(p, res)
	if res.Stopped && in.OverrideSafety {
		res.Stopped, res.Reason = false, "safety overridden by the operator: "+res.Reason
	}
	if a.Metrics != nil {
		for _, d := range res.Destinations {
			for kind, n := range map[string]int{"copy": d.Copy, "update": d.Update, "delete": d.Delete, "adopt": d.Adopt, "extra": d.Extra} {
				a.Metrics.Drift.WithLabelValues(p.Name, d.Destination, kind).Set(float64(n))
			}
		}
	}
	if in.DryRun || res.Stopped {
		return res, nil // manifests stay as they were: nothing changes
	}
	for _, ds := range dests {
		if err := ds.manifest.Commit(ctx, ds.journal); err != nil {
			return nil, asActivityError(err)
		}
	}
	return res, nil
}

// safetyStop applies the policy's delete limits and the empty-source guard.
func safetyStop(p *config.Policy, res *PlanResult) (bool, string) {
	for _, d := range res.Destinations {
		if res.SourceKeys == 0 && d.Objects > 0 && p.Mode == config.ModeMirror {
			return true, fmt.Sprintf("the source is empty but %s holds %d objects: an unmounted or emptied source must not wipe the destinations (re-run with the safety override if this is intended)", d.Destination, d.Objects)
		}
		if p.Safety.MaxDelete > 0 && d.Delete > p.Safety.MaxDelete {
			return true, fmt.Sprintf("%d deletes planned on %s, over safety.max_delete %d: nothing was deleted (check the source, or re-run with the safety override)", d.Delete, d.Destination, p.Safety.MaxDelete)
		}
		if p.Safety.MaxDeletePercent > 0 && d.Objects > 0 && float64(d.Delete)*100/float64(d.Objects) > p.Safety.MaxDeletePercent {
			return true, fmt.Sprintf("%d deletes planned on %s, %.1f%% of its %d objects, over safety.max_delete_percent %g: nothing was deleted (check the source, or re-run with the safety override)",
				d.Delete, d.Destination, float64(d.Delete)*100/float64(d.Objects), d.Objects, p.Safety.MaxDeletePercent)
		}
	}
	return false, ""
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

// sourceEntries turns the source listing into diff entries, dropping filtered keys.
func sourceEntries(list iter.Seq2[store.Object, error], p *config.Policy, count *int) iter.Seq2[reconcile.SourceEntry, error] {
	return func(yield func(reconcile.SourceEntry, error) bool) {
		for o, err := range list {
			if err != nil {
				yield(reconcile.SourceEntry{}, err)
				return
			}
			if !p.Selected(o.Key) {
				continue
			}
			*count++
			if !yield(reconcile.SourceEntry{Key: o.Key, Size: o.Size, Version: sourceVersion(o)}, nil) {
				return
			}
		}
	}
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

// DeleteChunkInput asks to delete one page of a destination's delete list.
type DeleteChunkInput struct {
	Policy      string
	Destination string
	List        state.KeyList
	Page        int
}

// DeleteChunk propagates source deletes to one destination for a page of keys. A key
// that reappeared at the source since the plan is kept. With a trash retention the
// object is first copied to .replicator/trash/<date>/.
func (a *Activities) DeleteChunk(ctx context.Context, in DeleteChunkInput) (*Counts, error) {
	p, st, src, keys, err := a.page(ctx, in.Policy, in.List, in.Page)
	if err != nil {
		return nil, err
	}
	_, dst, err := a.destination(ctx, p, in.Destination)
	if err != nil {
		return nil, err
	}
	c := &Counts{}
	for i, key := range keys {
		activity.RecordHeartbeat(ctx, i)
		if _, err := src.Stat(ctx, key); err == nil {
			c.Skipped++ // back at the source: the next sync copies it, nothing to delete
			continue
		} else if !store.IsNotFound(err) {
			return nil, asActivityError(err)
		}
		current, err := dst.Stat(ctx, key)
		if store.IsNotFound(err) {
			c.Skipped++
			continue
		}
		if err != nil {
			return nil, asActivityError(err)
		}
		if err := a.trash(ctx, p, dst, key, current.ETag); err != nil {
			return nil, err
		}
		if err := dst.Delete(ctx, key, store.DeleteOptions{}); err != nil {
			return nil, asActivityError(err)
		}
		if err := st.AppendManifest(ctx, p.Name, in.Destination, state.ManifestEntry{Key: key, ETag: current.ETag, Deleted: true}); err != nil {
			return nil, asActivityError(err)
		}
		c.Deleted++
		if a.Metrics != nil {
			a.Metrics.Objects.WithLabelValues(p.Name, in.Destination, OutcomeDeleted).Inc()
		}
	}
	return c, nil
}

// TrashPrefix is where deleted and overwritten objects are kept when the policy has
// a trash retention.
const TrashPrefix = store.InternalPrefix + "trash/"

// trash keeps the current object under the trash prefix, if the policy asks for it.
func (a *Activities) trash(ctx context.Context, p *config.Policy, dst store.Store, key, etag string) error {
	if p.Safety.TrashRetention == 0 {
		return nil
	}
	to := TrashPrefix + time.Now().UTC().Format("2006-01-02") + "/" + key
	if err := store.ValidateKey(to, 0); err != nil {
		return asActivityError(&store.Error{Code: store.CodeInvalid, Op: "trash", Store: dst.Name(), Key: key, Err: err})
	}
	_, err := dst.Copy(ctx, to, key, store.CopyOptions{})
	if store.IsNotFound(err) {
		return nil
	}
	return asActivityError(err)
}

// FinishReconcileInput closes a reconcile.
type FinishReconcileInput struct {
	Policy  string
	Outcome string
	// PlanID names the plan files to remove; "" keeps them (a dry run's plan is read
	// by the starter).
	PlanID string `json:",omitempty"`
}

// FinishReconcile records a successful reconcile's time and clears the drift gauges
// it repaired, and removes expired trash.
func (a *Activities) FinishReconcile(ctx context.Context, in FinishReconcileInput) error {
	p, err := a.policy(in.Policy)
	if err != nil {
		return err
	}
	if in.Outcome == "ok" && a.Metrics != nil {
		a.Metrics.LastReconcile.WithLabelValues(p.Name).SetToCurrentTime()
		for _, d := range p.Destinations {
			for _, kind := range []string{"copy", "update", "delete", "adopt"} {
				a.Metrics.Drift.WithLabelValues(p.Name, d.Name, kind).Set(0)
			}
		}
	}
	if in.PlanID != "" {
		st, err := a.State(ctx)
		if err != nil {
			return asActivityError(err)
		}
		if err := st.RemovePlan(ctx, p.Name, in.PlanID); err != nil {
			return asActivityError(err)
		}
	}
	if p.Safety.TrashRetention == 0 {
		return nil
	}
	cutoff := time.Now().UTC().Add(-time.Duration(p.Safety.TrashRetention)).Format("2006-01-02")
	for _, d := range p.Destinations {
		_, dst, err := a.destination(ctx, p, d.Name)
		if err != nil {
			return err
		}
		for o, err := range dst.List(ctx, store.ListOptions{Prefix: TrashPrefix, IncludeInternal: true}) {
			if err != nil {
				return asActivityError(err)
			}
			day := o.Key[len(TrashPrefix):]
			if len(day) >= 10 && day[:10] < cutoff {
				if err := dst.Delete(ctx, o.Key, store.DeleteOptions{}); err != nil {
					return asActivityError(err)
				}
			}
		}
	}
	return nil
}
