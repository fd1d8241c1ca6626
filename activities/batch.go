package activities

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/cloudrepl/replicator/internal/replica"
	"github.com/cloudrepl/replicator/internal/wire"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
)

// DescribePolicy returns what a batch needs to plan its activities: the mode, the
// destinations grouped by task queue, the concurrency and the retry bounds.
func (a *Activities) DescribePolicy(_ context.Context, in wire.DescribePolicyInput) (*wire.PolicyDescription, error) {
	p, err := a.policy(in.Policy)
	if err != nil {
		return nil, err
	}
	if err := p.OneWayRefusal(); err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), wire.ErrInvalid, nil)
	}
	desc := &wire.PolicyDescription{Mode: p.Mode, Consistency: p.Consistency, Concurrency: p.Limits.Concurrency, Retry: retrySettings(p), EventSinks: len(p.EventsOut)}
	for _, d := range p.Destinations {
		q := d.TaskQueue(wire.DefaultTaskQueue)
		i := slices.IndexFunc(desc.Groups, func(g wire.QueueGroup) bool { return g.TaskQueue == q })
		if i < 0 {
			desc.Groups = append(desc.Groups, wire.QueueGroup{TaskQueue: q})
			i = len(desc.Groups) - 1
		}
		desc.Groups[i].Destinations = append(desc.Groups[i].Destinations, d.Name)
	}
	return desc, nil
}

// ReadKeyPage returns one page of a key list (atomic batches run a workflow per key).
func (a *Activities) ReadKeyPage(ctx context.Context, in wire.ReadKeyPageInput) ([]string, error) {
	keys, err := a.State.ReadKeyPage(ctx, in.List, in.Page)
	return keys, asActivityError(err)
}

// page resolves what a chunk activity works with: its policy, the state location,
// the policy's source and the keys of one page of a list.
func (a *Activities) page(ctx context.Context, policy string, list state.KeyList, page int) (*config.Policy, *state.State, store.Store, []string, error) {
	p, err := a.policy(policy)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	st := a.State
	keys, err := st.ReadKeyPage(ctx, list, page)
	if err != nil {
		return nil, nil, nil, nil, asActivityError(err)
	}
	src, err := a.source(ctx, p)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return p, st, src, keys, nil
}

// chunkTries is the fewest times a chunk tries one key before a failure that may
// pass makes the key a dead letter; the chunk itself is not failed for one bad key.
const chunkTries = 3

// keyRetry paces the attempts of one key inside a chunk as the policy's retry
// settings pace an activity's: a failure that may pass (a server restarting, a
// network blip) is tried again, backing off from 200ms up to max_interval, until
// max_attempts attempts were made or expiration has passed since the first (and at
// least chunkTries attempts). A fixed three quick tries turned every key in flight
// into a dead letter when a server was down for ten seconds (the fault suite's MinIO
// restart showed it). The chunk's heartbeats go on meanwhile.
type keyRetry struct {
	maxTries                int
	maxInterval, expiration time.Duration
	first                   time.Time
	tries                   int
}

func newKeyRetry(p *config.Policy) *keyRetry {
	return &keyRetry{maxTries: max(chunkTries, p.Retry.MaxAttempts), maxInterval: time.Duration(p.Retry.MaxInterval), expiration: time.Duration(p.Retry.Expiration)}
}

// next waits before every attempt but the first and reports whether to make one.
// The first attempt is always made, even when ctx has ended: the loops it drives
// must end with a result or an error (an ended context fails the attempt), never
// with neither, which reads as "no source" or "nothing done".
func (r *keyRetry) next(ctx context.Context) bool {
	if r.tries == 0 {
		r.first = time.Now()
		r.tries++
		return true
	}
	if ctx.Err() != nil || r.tries >= r.maxTries || (r.tries >= chunkTries && time.Since(r.first) >= r.expiration) {
		return false
	}
	wait := time.Duration(200<<min(r.tries-1, 16)) * time.Millisecond
	if r.maxInterval > 0 {
		wait = min(wait, r.maxInterval)
	}
	select {
	case <-time.After(wait):
	case <-ctx.Done():
		return false
	}
	r.tries++
	return true
}

// firstTry reports whether the attempt under way is the first.
func (r *keyRetry) firstTry() bool { return r.tries == 1 }

// chunkDest is one destination of a chunk activity.
type chunkDest struct {
	t   replica.Target
	lim *destLimits
}

// chunkWork is what the chunk activities share: one page of a key list, the policy's
// source and the destinations this activity serves, and the manifest entries its
// writes produce.
type chunkWork struct {
	a       *Activities
	p       *config.Policy
	st      *state.State
	src     store.Store
	keys    []string
	dests   map[string]chunkDest
	journal *replica.Journal

	mu       sync.Mutex
	done     int
	errs     error
	rejected map[string]bool // keys with a dead letter of class Rejected
}

// openChunk resolves a chunk's policy, state, source, keys and destinations.
func (a *Activities) openChunk(ctx context.Context, policy string, list state.KeyList, page int, destinations []string) (*chunkWork, error) {
	p, st, src, keys, err := a.page(ctx, policy, list, page)
	if err != nil {
		return nil, err
	}
	w := &chunkWork{a: a, p: p, st: st, src: src, keys: keys, dests: map[string]chunkDest{}, journal: &replica.Journal{}, rejected: map[string]bool{}}
	if err := w.addDestinations(ctx, destinations); err != nil {
		return nil, err
	}
	return w, nil
}

// addDestinations opens the named destinations the chunk does not hold yet.
func (w *chunkWork) addDestinations(ctx context.Context, names []string) error {
	for _, name := range names {
		if _, ok := w.dests[name]; ok {
			continue
		}
		d, t, err := w.a.destination(ctx, w.p, name)
		if err != nil {
			return err
		}
		w.dests[name] = chunkDest{t, w.a.limitsFor(w.p, d)}
	}
	return nil
}

// deadLetter records a key's permanent failure on a destination; a record that
// cannot be written fails the chunk (after its other keys), so nothing is lost.
func (w *chunkWork) deadLetter(ctx context.Context, key, dest string, err error) {
	w.deadLetterClass(ctx, key, dest, ErrorClass(err), err.Error())
}

// deadLetterClass records a key's permanent failure of a known class and message.
func (w *chunkWork) deadLetterClass(ctx context.Context, key, dest, class, message string) {
	if class == wire.ErrRejected {
		w.mu.Lock()
		w.rejected[key] = true
		w.mu.Unlock()
	}
	derr := w.st.RecordDeadLetter(ctx, state.DeadLetter{Policy: w.p.Name, Key: key, Destination: dest, Class: class,
		Message: message, Attempts: chunkTries, WorkflowID: activity.GetInfo(ctx).WorkflowExecution.ID})
	if derr != nil {
		w.mu.Lock()
		w.errs = errors.Join(w.errs, derr)
		w.mu.Unlock()
	}
}

// keyJob is one key of a chunk with its source read: data holds the bytes of a small
// source (read and hashed once for every destination), readErr a source that could
// not be read.
type keyJob struct {
	index   int // in the page
	key     string
	targets []string
	sv      wire.SourceVersion
	data    []byte
	readErr error
}

// eachKey runs fn for every key of the page routed to the chunk's destinations, up to
// the policy's concurrency at once, with the source read (retried chunkTries times).
// Keys larger than largeThreshold are not passed to fn but returned, for their own
// workflow. It heartbeats the number of keys done every second, whether or not a key
// finished, so that slow keys under a short heartbeat timeout do not fail the chunk.
func (w *chunkWork) eachKey(ctx context.Context, largeThreshold int64, fn func(keyJob)) (excluded int, large []string) {
	stop := keepAlive(ctx, func() []any {
		w.mu.Lock()
		defer w.mu.Unlock()
		return []any{w.done}
	})
	defer stop()
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(w.p.Limits.Concurrency, 1))
	for index, key := range w.keys {
		if ctx.Err() != nil {
			break
		}
		route := w.p.Route(key)
		if len(route) == 0 {
			excluded++
			continue
		}
		var targets []string
		for _, r := range route {
			if _, ok := w.dests[r]; ok {
				targets = append(targets, r)
			}
		}
		if len(targets) == 0 {
			continue // routed only to destinations of another queue group
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			defer func() {
				w.mu.Lock()
				w.done++
				w.mu.Unlock()
			}()
			job := keyJob{index: index, key: key, targets: targets}
			for r := newKeyRetry(w.p); r.next(ctx); {
				var release func()
				job.sv, job.data, release, job.readErr = w.a.readSource(ctx, w.p, w.src, key)
				if job.readErr == nil || isPermanent(job.readErr) {
					defer release()
					break
				}
				release()
			}
			if job.readErr == nil && job.sv.Exists && job.sv.Size > largeThreshold {
				w.mu.Lock()
				large = append(large, key)
				w.mu.Unlock()
				return
			}
			fn(job)
		}()
	}
	wg.Wait()
	return excluded, large
}

// finish writes the chunk's manifest entries and reports what went wrong.
func (w *chunkWork) finish(ctx context.Context) error {
	if err := w.journal.Flush(ctx, w.st, w.p.Name); err != nil {
		return asActivityError(err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return w.errs
}

// ReplicateChunk replicates one page of a batch's keys to the given destinations in
// eventual mode, several keys at once within the policy's concurrency. Small files
// thus cost a share of one activity instead of a workflow each. A key that fails
// permanently on a destination becomes a dead letter there; the chunk goes on.
// A retried chunk redoes its page, and keys already in place cost a metadata check.
func (a *Activities) ReplicateChunk(ctx context.Context, in wire.ChunkInput) (*wire.ChunkResult, error) {
	w, err := a.openChunk(ctx, in.Policy, in.List, in.Page, in.Destinations)
	if err != nil {
		return nil, err
	}
	p := w.p
	counts := map[string]*wire.Counts{}
	for _, name := range in.Destinations {
		counts[name] = &wire.Counts{}
	}
	record := func(dest string, outcome wire.Outcome, n int64) {
		w.mu.Lock()
		counts[dest].Record(outcome, n)
		w.mu.Unlock()
	}
	// replicateTo writes one key to one destination and returns its result (outcome
	// failed, or "" when the activity ended first).
	replicateTo := func(key, t string, sv wire.SourceVersion, data []byte) wire.DestinationOutcome {
		d := w.dests[t]
		var out *wire.TransferResult
		var err error
		ok := d.lim.withSlot(ctx, func() {
			for r := newKeyRetry(p); r.next(ctx); {
				if !sv.Exists {
					if p.Mode != config.ModeMirror {
						out = &wire.TransferResult{Outcome: wire.OutcomeSkipped}
						break
					}
					out, err = a.Engine.Delete(ctx, d.t, replica.DeleteRequest{Key: key, Source: w.src, Windowed: true, Journal: w.journal})
					a.observeDelete(p.Name, t, out, err)
				} else {
					out, err = a.Engine.Write(ctx, d.t, replica.WriteRequest{Key: key, Source: sv, RecordSkips: in.RecordSkips, VerifyContent: in.VerifyContent,
						Journal: w.journal, Body: replica.Body{Source: w.src, Data: data, Limiter: d.lim.limiter}})
					a.observe(p.Name, t, out, err)
				}
				if err == nil {
					break
				}
				if ErrorClass(err) == wire.ErrSourceChanged {
					// Only a streamed source can change under a put: data is a snapshot.
					if nsv, perr := a.Engine.Prepare(ctx, p.Name, w.src, key, nil); perr == nil {
						sv, data = nsv, nil
					}
				} else if isPermanent(err) {
					break
				}
			}
		})
		if !ok {
			return wire.DestinationOutcome{Destination: t}
		}
		if err != nil {
			if ErrorClass(err) != wire.ErrRejected { // a rejected key is counted as such, not as a failure
				record(t, wire.OutcomeFailed, 0)
			}
			w.deadLetter(ctx, key, t, err)
			return wire.DestinationOutcome{Destination: t, Outcome: wire.OutcomeFailed, ErrorClass: ErrorClass(err), Error: err.Error()}
		}
		record(t, out.Outcome, out.Bytes)
		return wire.DestinationOutcome{Destination: t, Outcome: out.Outcome, Bytes: out.Bytes}
	}
	var events []wire.ObjectEvent
	excluded, large := w.eachKey(ctx, in.LargeThreshold, func(job keyJob) {
		if job.readErr != nil {
			for _, t := range job.targets {
				if ErrorClass(job.readErr) != wire.ErrRejected {
					record(t, wire.OutcomeFailed, 0)
				}
				w.deadLetter(ctx, job.key, t, job.readErr)
			}
			return
		}
		// The destinations of a key move at once, each within its own limit of
		// transfers in flight on this worker, shared with every other activity.
		var kwg sync.WaitGroup
		results := make([]wire.DestinationOutcome, len(job.targets))
		for i, t := range job.targets {
			kwg.Go(func() { results[i] = replicateTo(job.key, t, job.sv, job.data) })
		}
		kwg.Wait()
		allRoutes := len(job.targets) == len(p.Route(job.key))
		outs := make([]wire.Outcome, len(results))
		for i, r := range results {
			outs[i] = r.Outcome
		}
		if job.sv.Exists && allRoutes && everyDestinationHolds(outs) {
			a.observeLag(p.Name, job.sv.ModTime, time.Now())
		}
		if ev := keyEvents(ctx, p, job.key, job.sv, results, allRoutes); len(ev) > 0 {
			w.mu.Lock()
			events = append(events, ev...)
			w.mu.Unlock()
		}
	})
	if err := w.finish(ctx); err != nil {
		return nil, err
	}
	res := &wire.ChunkResult{Keys: len(w.keys), Excluded: excluded, Large: large, Rejected: len(w.rejected), Events: events}
	if len(events) > 0 {
		res.EventSinks = len(p.EventsOut)
	}
	for _, name := range in.Destinations {
		res.Destinations = append(res.Destinations, wire.DestinationCounts{Destination: name, Counts: *counts[name]})
	}
	return res, nil
}

// everyDestinationHolds reports whether a key's outcomes leave it on every destination
// and at least one of them was written now: the moment its lag ends.
func everyDestinationHolds(outs []wire.Outcome) bool {
	wrote := false
	for _, o := range outs {
		switch o {
		case wire.OutcomeCopied:
			wrote = true
		case wire.OutcomeSkipped:
		default:
			return false
		}
	}
	return wrote
}

// sharedReadMax is the largest source ReplicateChunk reads into memory once for all
// its destinations, hashing it once; larger ones stream to each destination, each
// put hashing its own read. sharedReadBudget bounds such bytes on one worker.
const (
	sharedReadMax    = 16 << 20
	sharedReadBudget = 128 << 20
)

// readSource prepares a source version for a chunk: one of up to sharedReadMax bytes
// is read into memory within the worker's budget and hashed on the way (the
// engine's ReadSmall), so one read serves every destination; a larger one is
// prepared like ReplicateFile's. release returns the budget once the destinations
// are done.
func (a *Activities) readSource(ctx context.Context, p *config.Policy, src store.Store, key string) (sv wire.SourceVersion, data []byte, release func(), err error) {
	release = func() {}
	attrs, err := src.Stat(ctx, key)
	if store.IsNotFound(err) {
		return wire.SourceVersion{}, nil, release, nil
	}
	if err != nil {
		return wire.SourceVersion{}, nil, release, err
	}
	if attrs.Size > sharedReadMax {
		sv, err = a.Engine.Prepare(ctx, p.Name, src, key, nil)
		return sv, nil, release, err
	}
	if err := a.sharedReads.Acquire(ctx, max(attrs.Size, 1)); err != nil {
		return wire.SourceVersion{}, nil, release, err
	}
	release = func() { a.sharedReads.Release(max(attrs.Size, 1)) }
	sv, data, err = replica.ReadSmall(ctx, src, key, attrs)
	return sv, data, release, err
}

// isPermanent reports an error no retry can fix: anything but a transient failure or
// a changed source (which is prepared again).
func isPermanent(err error) bool {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.NonRetryable() && ae.Type() != wire.ErrSourceChanged
	}
	typ := replica.FailureType(err)
	return typ != "" && typ != wire.ErrSourceChanged
}
