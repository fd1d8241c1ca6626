package workflows

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cloudrepl/replicator/internal/wire"

	"go.temporal.io/sdk/workflow"
)

// atomicChunksVersion marks the change from a ReplicateFile child per key to staged
// chunks for atomic batches; runs that started before it keep their children.
const atomicChunksVersion = "atomic-batch-chunks"

// atomicPagesPerRun bounds an atomic run's pages below PagesPerRun: each page carries
// its keys' versions through stage, commit and cleanup, about 30 KiB of history.
const atomicPagesPerRun = 50

// atomicChunks runs pages [NextPage, stop) of an atomic batch, Concurrency pages at
// once: each page is staged everywhere, then every key that every routed destination
// staged is committed, and then the stages are removed. A key that failed to stage
// anywhere is compensated (its stages removed, no final key touched); a key whose
// source changed meanwhile, and every large key, gets a ReplicateFile run of its own.
func (r *batchRun) atomicChunks(ctx workflow.Context, stop int) error {
	if workflow.GetVersion(ctx, atomicUndoVersion, workflow.DefaultVersion, 1) == 1 {
		info := workflow.GetInfo(ctx)
		r.stageRun = info.WorkflowExecution.ID + "/" + info.WorkflowExecution.RunID
		// Small keys whose destinations all share one task queue need no stages: one
		// activity writes each to all of them or none.
		r.direct = len(r.in.Description.Groups) == 1 &&
			workflow.GetVersion(ctx, atomicDirectVersion, workflow.DefaultVersion, 1) == 1
	}
	slots := workflow.NewBufferedChannel(ctx, r.in.Concurrency)
	wg := workflow.NewWaitGroup(ctx)
	var errs []error
	var later []string
	for page := r.in.NextPage; page < stop && len(errs) == 0; page++ {
		slots.Send(ctx, struct{}{})
		wg.Add(1)
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer wg.Done()
			defer slots.Receive(ctx, nil)
			own, err := r.atomicPage(ctx, page)
			if err != nil {
				errs = append(errs, fmt.Errorf("page %d: %w", page, err))
			}
			for _, k := range own {
				if !slices.Contains(later, k) {
					later = append(later, k)
				}
			}
		})
	}
	wg.Wait(ctx)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.in.NextPage = stop
	return r.children(ctx, later)
}

// keyRoute is one key of an atomic page as its queue groups staged it.
type keyRoute struct {
	key     string
	source  wire.SourceVersion
	outs    []wire.KeyDestination
	queues  []string // the task queue of each of outs
	changed bool
	// versions are the source versions the groups read (several if it changed
	// between their reads).
	versions []string
	// undo holds, by destination, the undo copy a commit made there.
	undo map[string]string
}

func (k *keyRoute) failed() bool {
	return slices.ContainsFunc(k.outs, func(o wire.KeyDestination) bool { return o.Outcome == wire.OutcomeFailed })
}

// atomicDirectVersion marks the change to AtomicChunk for atomic batches whose
// destinations share one task queue.
const atomicDirectVersion = "atomic-direct"

// directPage writes one page with AtomicChunk and returns the keys that need a
// ReplicateFile run of their own (large, or changed while read).
func (r *batchRun) directPage(ctx workflow.Context, page int) ([]string, error) {
	g := r.in.Description.Groups[0]
	actx := chunkOptions(ctx, r.in.Description, g.TaskQueue, fmt.Sprintf("atomic chunk %d/%d → %v", page+1, r.in.List.Pages, g.Destinations))
	var res wire.AtomicChunkResult
	err := workflow.ExecuteActivity(actx, wire.AtomicChunkName, wire.ChunkInput{
		Policy: r.in.Policy, List: r.in.List, Page: page, Destinations: g.Destinations, LargeThreshold: r.in.LargeThreshold,
		RecordSkips: r.in.RecordSkips, VerifyContent: r.in.VerifyContent, Run: r.stageRun,
	}).Get(ctx, &res)
	if err != nil {
		return nil, err
	}
	r.in.Summary.Keys += res.Keys
	r.in.Summary.Excluded += res.Excluded
	r.in.Summary.Rejected += res.Rejected
	r.in.Summary.Large += len(res.Large)
	for _, d := range res.Destinations {
		r.in.Summary.Add(d.Destination, d.Counts)
	}
	r.events = append(r.events, res.Events...)
	r.eventSinks = max(r.eventSinks, res.EventSinks)
	r.deliverEvents(ctx)
	return append(res.Large, res.Changed...), nil
}

// atomicPage stages, decides, commits and cleans up one page, and returns the keys
// that need a ReplicateFile run of their own.
func (r *batchRun) atomicPage(ctx workflow.Context, page int) ([]string, error) {
	if r.direct {
		return r.directPage(ctx, page)
	}
	desc := r.in.Description
	stageFutures := make([]workflow.Future, len(desc.Groups))
	for gi, g := range desc.Groups {
		actx := chunkOptions(ctx, desc, g.TaskQueue, fmt.Sprintf("stage chunk %d/%d → %v", page+1, r.in.List.Pages, g.Destinations))
		stageFutures[gi] = workflow.ExecuteActivity(actx, wire.StageChunkName, wire.ChunkInput{
			Policy: r.in.Policy, List: r.in.List, Page: page, Destinations: g.Destinations, LargeThreshold: r.in.LargeThreshold,
			RecordSkips: r.in.RecordSkips, VerifyContent: r.in.VerifyContent, Run: r.stageRun,
		})
	}
	var keys []*keyRoute
	var later []string
	var errs []error
	for gi, f := range stageFutures {
		var res wire.StageChunkResult
		if err := f.Get(ctx, &res); err != nil {
			errs = append(errs, err)
			continue
		}
		if gi == 0 { // every group reads the same page: count it once
			r.in.Summary.Keys += res.Keys
			r.in.Summary.Excluded += res.Excluded
		}
		r.in.Summary.Rejected += res.Rejected
		for _, k := range res.Large {
			if !slices.Contains(later, k) {
				later = append(later, k)
				r.in.Summary.Large++
			}
		}
		for _, s := range res.Staged {
			i := slices.IndexFunc(keys, func(k *keyRoute) bool { return k.key == s.Key })
			if i < 0 {
				keys = append(keys, &keyRoute{key: s.Key, source: s.Source})
				i = len(keys) - 1
			}
			k := keys[i]
			k.changed = k.changed || s.Changed
			if !slices.Contains(k.versions, s.Source.Version) {
				k.versions = append(k.versions, s.Source.Version)
			}
			for _, o := range s.Destinations {
				k.outs = append(k.outs, o)
				k.queues = append(k.queues, desc.Groups[gi].TaskQueue)
			}
		}
	}
	// Stages of groups that answered are removed below, also when another failed.
	commits := map[string][]wire.CommitKey{} // by task queue
	for _, k := range keys {
		switch {
		case !k.source.Exists && len(k.versions) == 1:
			// A delete (mirror) or nothing to do (copy): deletes are not staged.
			for _, o := range k.outs {
				r.record(o.Destination, o.Outcome, o.Bytes)
			}
		case k.changed || len(k.versions) > 1:
			later = append(later, k.key)
		case k.failed() || len(errs) > 0:
			// Compensated: the failed destinations have their dead letters (written
			// by StageChunk); the others are rolled back.
			for _, o := range k.outs {
				r.record(o.Destination, wire.OutcomeFailed, 0)
			}
			r.stagedKeyEvents(ctx, k, k.outs, wire.RunCompensated)
		default:
			for i, o := range k.outs {
				if o.Outcome != wire.OutcomeStaged {
					r.record(o.Destination, o.Outcome, o.Bytes)
					continue
				}
				q := k.queues[i]
				n := len(commits[q])
				if n == 0 || commits[q][n-1].Key != k.key {
					commits[q] = append(commits[q], wire.CommitKey{Key: k.key, Source: k.source})
					n++
				}
				commits[q][n-1].Destinations = append(commits[q][n-1].Destinations, o.Destination)
				commits[q][n-1].Finals = append(commits[q][n-1].Finals, o.Final)
			}
		}
	}
	if err := r.commitChunks(ctx, page, keys, commits); err != nil {
		errs = append(errs, err)
	}
	if err := r.cleanupStages(ctx, keys); err != nil {
		errs = append(errs, err)
	}
	r.eventSinks = max(r.eventSinks, desc.EventSinks)
	r.deliverEvents(ctx)
	return later, errors.Join(errs...)
}

// commitChunks commits the decided keys, one CommitChunk per queue group, rolled
// forward until done (only permission and invalid-request errors stop a commit,
// and they become dead letters inside the activity).
func (r *batchRun) commitChunks(ctx workflow.Context, page int, keys []*keyRoute, commits map[string][]wire.CommitKey) error {
	type pending struct {
		f    workflow.Future
		keys []wire.CommitKey
	}
	var ps []pending
	for _, g := range r.in.Description.Groups { // groups, not the map: a fixed order
		ck := commits[g.TaskQueue]
		if len(ck) == 0 {
			continue
		}
		actx := commitChunkOptions(ctx, r.in.Description, g.TaskQueue, fmt.Sprintf("commit %d keys of chunk %d/%d → %v", len(ck), page+1, r.in.List.Pages, g.Destinations))
		ps = append(ps, pending{workflow.ExecuteActivity(actx, wire.CommitChunkName, wire.CommitChunkInput{Policy: r.in.Policy, Keys: ck, Run: r.stageRun}), ck})
	}
	type committed struct {
		dest, queue string
		out         wire.KeyDestination
	}
	var byKey []string // keys in commit order
	results := map[string][]committed{}
	var errs []error
	for _, p := range ps {
		var res wire.CommitChunkResult
		if err := p.f.Get(ctx, &res); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, k := range res.Keys {
			if _, seen := results[k.Key]; !seen {
				byKey = append(byKey, k.Key)
			}
			for _, d := range k.Destinations {
				results[k.Key] = append(results[k.Key], committed{d.Destination, queueOf(keys, k.Key, d.Destination), d})
			}
		}
	}
	// A key that failed to commit anywhere is rolled back everywhere it committed
	// (runs with undo copies; older runs leave it partial, as they did).
	rollbacks := map[string][]wire.RollbackKey{} // by destination
	queues := map[string]string{}
	var order []string
	for _, key := range byKey {
		outs := results[key]
		failed := slices.ContainsFunc(outs, func(c committed) bool { return c.out.Outcome == wire.OutcomeFailed })
		for _, c := range outs {
			if c.out.Undo != nil && c.out.Undo.Key != "" {
				setUndo(keys, key, c.dest, c.out.Undo.Key)
			}
			if failed && r.stageRun != "" && c.out.Outcome == wire.OutcomeCopied && c.out.Undo != nil {
				if _, ok := rollbacks[c.dest]; !ok {
					order = append(order, c.dest)
				}
				rollbacks[c.dest] = append(rollbacks[c.dest], wire.RollbackKey{Key: key, Undo: *c.out.Undo})
				queues[c.dest] = c.queue
			}
		}
	}
	rolled, err := r.rollback(ctx, order, queues, rollbacks)
	if err != nil {
		errs = append(errs, err)
	}
	for _, key := range byKey {
		staged := stagedBytes(keys, key)
		var final []wire.KeyDestination
		for _, c := range results[key] {
			outcome, n := c.out.Outcome, int64(0)
			if o, ok := rolled[key+"\x00"+c.dest]; ok {
				outcome = o
			} else if outcome == wire.OutcomeCopied {
				n = staged[c.dest]
			}
			r.record(c.dest, outcome, n)
			final = append(final, wire.KeyDestination{Destination: c.dest, Outcome: outcome, Bytes: n, ErrorClass: c.out.ErrorClass, Error: c.out.Error})
		}
		if i := slices.IndexFunc(keys, func(k *keyRoute) bool { return k.key == key }); i >= 0 {
			k := keys[i]
			for _, o := range k.outs { // destinations that held the version already
				if o.Outcome != wire.OutcomeStaged {
					final = append(final, o)
				}
			}
			outcome := wire.RunOK
			if len(rolled) > 0 && slices.ContainsFunc(final, func(d wire.KeyDestination) bool { return d.Outcome == wire.OutcomeFailed }) {
				outcome = wire.RunCompensated
			}
			r.stagedKeyEvents(ctx, k, final, outcome)
		}
	}
	return errors.Join(errs...)
}

// rollback undoes commits, one Rollback per destination (in order), rolled forward
// until done; it returns each key's outcome by key and destination.
func (r *batchRun) rollback(ctx workflow.Context, order []string, queues map[string]string, keys map[string][]wire.RollbackKey) (map[string]wire.Outcome, error) {
	futures := make([]workflow.Future, len(order))
	for i, dest := range order {
		actx := stageCleanupOptions(ctx, r.in.Description, queues[dest], fmt.Sprintf("roll back %d keys on %s", len(keys[dest]), dest))
		futures[i] = workflow.ExecuteActivity(actx, wire.RollbackName, wire.RollbackInput{Policy: r.in.Policy, Destination: dest, Keys: keys[dest]})
	}
	out := map[string]wire.Outcome{}
	var errs []error
	for i, f := range futures {
		var res wire.RollbackResult
		if err := f.Get(ctx, &res); err != nil {
			errs = append(errs, fmt.Errorf("roll back on %s: %w", order[i], err))
			continue
		}
		for j, k := range keys[order[i]] {
			if j < len(res.Outcomes) {
				out[k.Key+"\x00"+order[i]] = res.Outcomes[j]
			}
		}
	}
	return out, errors.Join(errs...)
}

// queueOf is the task queue that served key on dest.
func queueOf(keys []*keyRoute, key, dest string) string {
	for _, k := range keys {
		if k.key == key {
			for i, o := range k.outs {
				if o.Destination == dest {
					return k.queues[i]
				}
			}
		}
	}
	return wire.DefaultTaskQueue
}

// setUndo remembers the undo copy a commit made of key on dest, for the cleanup.
func setUndo(keys []*keyRoute, key, dest, undoKey string) {
	for _, k := range keys {
		if k.key == key {
			if k.undo == nil {
				k.undo = map[string]string{}
			}
			k.undo[dest] = undoKey
		}
	}
}

// stagedBytes is how many bytes each destination staged for key.
func stagedBytes(keys []*keyRoute, key string) map[string]int64 {
	m := map[string]int64{}
	for _, k := range keys {
		if k.key == key {
			for _, o := range k.outs {
				m[o.Destination] = o.Bytes
			}
		}
	}
	return m
}

// cleanupStages removes every stage the page made, one Cleanup per destination,
// retried until done.
func (r *batchRun) cleanupStages(ctx workflow.Context, keys []*keyRoute) error {
	type target struct {
		dest, queue string
		stages      []string
	}
	var targets []*target
	for _, k := range keys {
		for i, o := range k.outs {
			if o.Outcome != wire.OutcomeStaged {
				continue
			}
			ti := slices.IndexFunc(targets, func(t *target) bool { return t.dest == o.Destination })
			if ti < 0 {
				targets = append(targets, &target{dest: o.Destination, queue: k.queues[i]})
				ti = len(targets) - 1
			}
			for _, v := range k.versions {
				if s := wire.RunStagingKey(k.key, v, r.stageRun); !slices.Contains(targets[ti].stages, s) {
					targets[ti].stages = append(targets[ti].stages, s)
				}
			}
			if u := k.undo[o.Destination]; u != "" && !slices.Contains(targets[ti].stages, u) {
				targets[ti].stages = append(targets[ti].stages, u)
			}
		}
	}
	futures := make([]workflow.Future, len(targets))
	for i, t := range targets {
		actx := stageCleanupOptions(ctx, r.in.Description, t.queue, fmt.Sprintf("clean up %d stages on %s", len(t.stages), t.dest))
		futures[i] = workflow.ExecuteActivity(actx, wire.CleanupName, wire.CleanupInput{Policy: r.in.Policy, Destination: t.dest, Keys: t.stages})
	}
	var errs []error
	for i, f := range futures {
		if err := f.Get(ctx, nil); err != nil {
			errs = append(errs, fmt.Errorf("clean up stages on %s: %w", targets[i].dest, err))
		}
	}
	return errors.Join(errs...)
}

// record counts one destination outcome in the batch's summary.
func (r *batchRun) record(dest string, outcome wire.Outcome, n int64) {
	var c wire.Counts
	c.Record(outcome, n)
	r.in.Summary.Add(dest, c)
}
