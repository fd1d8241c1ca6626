package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/replica"
	"github.com/cloudrepl/replicator/internal/wire"
)

// AtomicChunk writes one page of an atomic batch whose destinations share one task
// queue, without stages: each small key is read into memory once and written to all
// its destinations at once, or to none (the engine's Direct: a create-only put per
// destination for a new key, rolled back everywhere if one destination fails). Keys
// larger than a worker holds in memory, and keys whose source changed while they were
// read, are returned for ReplicateFile runs of their own.
func (a *Activities) AtomicChunk(ctx context.Context, in wire.ChunkInput) (*wire.AtomicChunkResult, error) {
	w, err := a.openChunk(ctx, in.Policy, in.List, in.Page, in.Destinations)
	if err != nil {
		return nil, err
	}
	p := w.p
	counts := map[string]*wire.Counts{}
	for _, name := range in.Destinations {
		counts[name] = &wire.Counts{}
	}
	record := func(dest string, o wire.Outcome, n int64) {
		w.mu.Lock()
		defer w.mu.Unlock()
		counts[dest].Record(o, n)
	}
	var changed []string
	// A rollback or undo cleanup that could not be done fails the page (its retry
	// finds every key where it left it and finishes the job); a destination refusing a
	// key is that key's outcome.
	var unfinished []error
	var events []wire.ObjectEvent
	excluded, large := w.eachKey(ctx, min(in.LargeThreshold, sharedReadMax), func(job keyJob) {
		switch {
		case job.readErr != nil && ErrorClass(job.readErr) == wire.ErrSourceChanged:
			w.mu.Lock()
			changed = append(changed, job.key)
			w.mu.Unlock()
		case job.readErr != nil:
			for _, t := range job.targets {
				if ErrorClass(job.readErr) != wire.ErrRejected {
					record(t, wire.OutcomeFailed, 0)
				}
				w.deadLetter(ctx, job.key, t, job.readErr)
			}
		case !job.sv.Exists && p.Mode != config.ModeMirror:
			for _, t := range job.targets {
				record(t, wire.OutcomeSkipped, 0)
			}
		case !job.sv.Exists:
			for _, t := range job.targets {
				d := w.dests[t]
				res, err := a.Engine.Delete(ctx, d.t, replica.DeleteRequest{Key: job.key, Source: w.src, Windowed: true, Journal: w.journal})
				a.observeDelete(p.Name, t, res, err)
				if err != nil {
					record(t, wire.OutcomeFailed, 0)
					w.deadLetter(ctx, job.key, t, err)
					continue
				}
				record(t, res.Outcome, 0)
			}
		default:
			targets := make([]replica.DirectTarget, len(job.targets))
			for i, t := range job.targets {
				d := w.dests[t]
				targets[i] = replica.DirectTarget{Target: d.t, Body: replica.Body{Data: job.data, Limiter: d.lim.limiter}}
			}
			outs, err := a.Engine.Direct(ctx, targets, replica.WriteRequest{Key: job.key, Source: job.sv, RecordSkips: in.RecordSkips,
				VerifyContent: in.VerifyContent, Journal: w.journal}, in.Run, chunkTries)
			if err != nil && !slices.ContainsFunc(outs, func(o wire.KeyDestination) bool { return o.Outcome == wire.OutcomeFailed }) {
				w.mu.Lock()
				unfinished = append(unfinished, err)
				w.mu.Unlock()
				return
			}
			allRoutes := len(job.targets) == len(p.Route(job.key))
			var got []wire.Outcome
			results := make([]wire.DestinationOutcome, len(outs))
			for i, o := range outs {
				got = append(got, o.Outcome)
				results[i] = wire.DestinationOutcome{Destination: o.Destination, Outcome: o.Outcome, Bytes: o.Bytes, ErrorClass: o.ErrorClass, Error: o.Error}
			}
			if err == nil && allRoutes && everyDestinationHolds(got) {
				a.observeLag(p.Name, job.sv.ModTime, time.Now())
			}
			if ev := keyEvents(ctx, p, job.key, job.sv, results, allRoutes); len(ev) > 0 {
				w.mu.Lock()
				events = append(events, ev...)
				w.mu.Unlock()
			}
			for _, o := range outs {
				if o.Outcome == wire.OutcomeFailed {
					w.deadLetterClass(ctx, job.key, o.Destination, o.ErrorClass, o.Error)
					if o.ErrorClass == wire.ErrRejected {
						continue
					}
				}
				a.observe(p.Name, o.Destination, &wire.TransferResult{Outcome: o.Outcome, Bytes: o.Bytes}, nil)
				record(o.Destination, o.Outcome, o.Bytes)
			}
		}
	})
	if err := w.finish(ctx); err != nil {
		return nil, err
	}
	if err := errors.Join(unfinished...); err != nil {
		return nil, fmt.Errorf("atomic page %d: %w", in.Page, err)
	}
	res := &wire.AtomicChunkResult{Keys: len(w.keys), Excluded: excluded, Rejected: len(w.rejected), Large: large, Changed: changed, Events: events}
	if len(events) > 0 {
		res.EventSinks = len(p.EventsOut)
	}
	for _, name := range in.Destinations {
		res.Destinations = append(res.Destinations, wire.DestinationCounts{Destination: name, Counts: *counts[name]})
	}
	return res, nil
}
