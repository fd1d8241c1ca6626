package activities

import (
	"context"
	"fmt"
	"sync"

	"github.com/cloudrepl/replicator/internal/replica"
	"github.com/cloudrepl/replicator/internal/wire"

	"go.temporal.io/sdk/activity"

	"github.com/cloudrepl/replicator/internal/config"
)

// An atomic batch moves a page of small keys in three steps, each one activity per
// queue group or destination instead of a workflow per key: StageChunk stages every
// key of the page on its destinations, the workflow decides per key (commit when
// every routed destination staged it, compensate otherwise), CommitChunk makes the
// decided keys visible, and Cleanup removes the stages. Each key is still visible on
// all its destinations or on none.

// StageChunk stages one page of an atomic batch's keys on the given destinations:
// each key's source version is read once and put to the version's staging key on
// every destination that does not already hold it. Nothing becomes visible here. A
// key whose staging fails permanently on a destination gets a dead letter there; the
// workflow then compensates it everywhere. A key whose source changed while it was
// staged is marked Changed: its stages may hold different versions, so the workflow
// hands it to a ReplicateFile run of its own.
func (a *Activities) StageChunk(ctx context.Context, in wire.ChunkInput) (*wire.StageChunkResult, error) {
	w, err := a.openChunk(ctx, in.Policy, in.List, in.Page, in.Destinations)
	if err != nil {
		return nil, err
	}
	res := &wire.StageChunkResult{Keys: len(w.keys)}
	byIndex := make([]*wire.StagedKey, len(w.keys)) // the page's order, whichever key ends first
	stage := func(job keyJob) wire.StagedKey {
		sk := wire.StagedKey{Key: job.key, Source: job.sv}
		if job.readErr != nil {
			// A source that kept changing while it was read goes to its own
			// ReplicateFile run; one that cannot be read is a dead letter.
			sk.Changed = ErrorClass(job.readErr) == wire.ErrSourceChanged
			for _, t := range job.targets {
				sk.Destinations = append(sk.Destinations, failedOn(t, job.readErr))
				if !sk.Changed {
					w.deadLetter(ctx, job.key, t, job.readErr)
				}
			}
			return sk
		}
		outs := make([]wire.KeyDestination, len(job.targets))
		errs := make([]error, len(job.targets))
		var kwg sync.WaitGroup
		for i, t := range job.targets {
			kwg.Go(func() { outs[i], errs[i] = w.stageOn(ctx, in, job, t) })
		}
		kwg.Wait()
		for _, o := range outs {
			if o.ErrorClass == wire.ErrSourceChanged || o.ErrorClass == wire.ErrSourceMissing {
				sk.Changed = true
			}
		}
		sk.Destinations = outs
		if sk.Changed {
			return sk // its ReplicateFile run records what fails for good
		}
		for i, err := range errs {
			if err != nil {
				w.deadLetter(ctx, job.key, outs[i].Destination, err)
			}
		}
		return sk
	}
	excluded, large := w.eachKey(ctx, in.LargeThreshold, func(job keyJob) {
		sk := stage(job)
		byIndex[job.index] = &sk
	})
	if err := w.finish(ctx); err != nil {
		return nil, err
	}
	res.Excluded, res.Large, res.Rejected = excluded, large, len(w.rejected)
	for _, sk := range byIndex {
		if sk != nil {
			res.Staged = append(res.Staged, *sk)
		}
	}
	return res, nil
}

// stageOn stages one key on one destination, or propagates its source's delete there
// (mirror mode: deletes are not staged, as in ReplicateFile). A failure is returned
// both in the outcome and as the error, whose class the dead letter keeps.
func (w *chunkWork) stageOn(ctx context.Context, in wire.ChunkInput, job keyJob, dest string) (wire.KeyDestination, error) {
	d := w.dests[dest]
	out := wire.KeyDestination{Destination: dest}
	var res *wire.TransferResult
	var err error
	ok := d.lim.withSlot(ctx, func() {
		for r := newKeyRetry(w.p); r.next(ctx); {
			switch {
			case !job.sv.Exists && w.p.Mode != config.ModeMirror:
				res = &wire.TransferResult{Outcome: wire.OutcomeSkipped}
			case !job.sv.Exists:
				res, err = w.a.Engine.Delete(ctx, d.t, replica.DeleteRequest{Key: job.key, Source: w.src, Windowed: true, Journal: w.journal})
				w.a.observeDelete(w.p.Name, dest, res, err)
			default:
				res, err = w.a.Engine.Stage(ctx, d.t, replica.WriteRequest{Key: job.key, Source: job.sv, RecordSkips: in.RecordSkips,
					VerifyContent: in.VerifyContent, Journal: w.journal, Body: replica.Body{Source: w.src, Data: job.data, Limiter: d.lim.limiter}},
					wire.RunStagingKey(job.key, job.sv.Version, in.Run))
				w.a.observe(w.p.Name, dest, res, err)
			}
			if err == nil || isPermanent(err) || ErrorClass(err) == wire.ErrSourceChanged {
				return
			}
		}
	})
	if !ok {
		err = ctx.Err()
	}
	if err != nil {
		return failedOn(dest, err), err
	}
	out.Outcome, out.Bytes, out.Final = res.Outcome, res.Bytes, res.Final
	return out, nil
}

func failedOn(dest string, err error) wire.KeyDestination {
	return wire.KeyDestination{Destination: dest, Outcome: wire.OutcomeFailed, ErrorClass: ErrorClass(err), Error: err.Error()}
}

// CommitChunk makes staged versions visible under their final keys, each with the
// server-side copy of Commit, several at once within the policy's concurrency. It
// rolls forward: a transient failure that outlasts the chunk's own tries fails the
// activity, and its retry (the workflow retries it until done) skips what its
// heartbeats say was committed. A permanent failure on a destination is that key's
// dead letter there, as a failed commit of ReplicateFile is.
func (a *Activities) CommitChunk(ctx context.Context, in wire.CommitChunkInput) (*wire.CommitChunkResult, error) {
	p, err := a.policy(in.Policy)
	if err != nil {
		return nil, err
	}
	st := a.State
	w := &chunkWork{a: a, p: p, st: st, dests: map[string]chunkDest{}, journal: &replica.Journal{}, rejected: map[string]bool{}}
	res := &wire.CommitChunkResult{Keys: make([]wire.CommittedKey, len(in.Keys))}
	for i, k := range in.Keys {
		res.Keys[i] = wire.CommittedKey{Key: k.Key, Destinations: make([]wire.KeyDestination, len(k.Destinations))}
		if err := w.addDestinations(ctx, k.Destinations); err != nil {
			return nil, err
		}
	}
	// What an earlier attempt committed, from its last heartbeat.
	var earlier []wire.CommittedKey
	if activity.HasHeartbeatDetails(ctx) {
		if activity.GetHeartbeatDetails(ctx, &earlier) != nil || len(earlier) != len(in.Keys) {
			earlier = nil
		}
	}
	var mu sync.Mutex
	var transient error
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(p.Limits.Concurrency, 1))
	details := func() []wire.CommittedKey {
		mu.Lock()
		defer mu.Unlock()
		snap := make([]wire.CommittedKey, len(res.Keys))
		for i, k := range res.Keys {
			snap[i] = wire.CommittedKey{Key: k.Key, Destinations: append([]wire.KeyDestination(nil), k.Destinations...)}
		}
		return snap
	}
	stop := keepAlive(ctx, func() []any { return []any{details()} })
	for i, k := range in.Keys {
		for j, name := range k.Destinations {
			if earlier != nil && earlier[i].Key == k.Key && len(earlier[i].Destinations) > j && earlier[i].Destinations[j].Outcome != "" {
				res.Keys[i].Destinations[j] = earlier[i].Destinations[j]
				continue
			}
			if ctx.Err() != nil {
				break
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				d := w.dests[name]
				var out *wire.TransferResult
				var err error
				d.lim.withSlot(ctx, func() {
					for r := newKeyRetry(p); r.next(ctx); {
						req := replica.WriteRequest{Key: k.Key, Source: k.Source, Journal: w.journal}
						if in.Run != "" {
							req.Undo = wire.UndoKey(k.Key, in.Run)
						}
						if r.firstTry() && j < len(k.Finals) {
							req.Seen = k.Finals[j]
						}
						out, err = a.Engine.Commit(ctx, d.t, req, wire.RunStagingKey(k.Key, k.Source.Version, in.Run))
						if err == nil && out.Outcome == wire.OutcomeCopied {
							a.observe(p.Name, name, out, nil)
						}
						if err == nil || isPermanent(err) {
							return
						}
					}
				})
				if err != nil && isPermanent(err) {
					w.deadLetter(ctx, k.Key, name, err)
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && out != nil:
					res.Keys[i].Destinations[j] = wire.KeyDestination{Destination: name, Outcome: out.Outcome, Bytes: out.Bytes, Undo: out.Undo}
				case err != nil && isPermanent(err):
					res.Keys[i].Destinations[j] = failedOn(name, err)
				default:
					if err == nil {
						err = ctx.Err()
					}
					transient = fmt.Errorf("commit %s on %s: %w", k.Key, name, err)
				}
			})
		}
	}
	wg.Wait()
	stop()
	if err := w.journal.Flush(ctx, st, p.Name); err != nil {
		return nil, asActivityError(err)
	}
	if transient != nil {
		// Heartbeat what is done so that the retry does not count it as skipped.
		// Best effort: the SDK throttles heartbeats and sends none with a failure,
		// so a retry may find a commit done and report it skipped, never undone.
		activity.RecordHeartbeat(ctx, details())
		return nil, transient
	}
	if w.errs != nil {
		return nil, w.errs
	}
	return res, nil
}
