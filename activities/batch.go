package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
)

// DescribePolicy returns what a batch needs to plan its activities: the mode, the
// destinations grouped by task queue, the concurrency and the retry bounds.
func (a *Activities) DescribePolicy(_ context.Context, in DescribePolicyInput) (*PolicyDescription, error) {
	p, err := a.policy(in.Policy)
	if err != nil {
		return nil, err
	}
	desc := &PolicyDescription{Mode: p.Mode, Consistency: p.Consistency, Concurrency: p.Limits.Concurrency, Retry: retrySettings(p)}
	for _, d := range p.Destinations {
		q := d.TaskQueue(DefaultTaskQueue)
		i := slices.IndexFunc(desc.Groups, func(g QueueGroup) bool { return g.TaskQueue == q })
		if i < 0 {
			desc.Groups = append(desc.Groups, QueueGroup{TaskQueue: q})
			i = len(desc.Groups) - 1
		}
		desc.Groups[i].Destinations = append(desc.Groups[i].Destinations, d.Name)
	}
	return desc, nil
}

// ReadKeyPage returns one page of a key list (atomic batches run a workflow per key).
func (a *Activities) ReadKeyPage(ctx context.Context, in ReadKeyPageInput) ([]string, error) {
	st, err := a.State(ctx)
	if err != nil {
		return nil, asActivityError(err)
	}
	keys, err := st.ReadKeyPage(ctx, in.List, in.Page)
	return keys, asActivityError(err)
}

// page resolves what a chunk activity works with: its policy, the state location,
// the policy's source and the keys of one page of a list.
func (a *Activities) page(ctx context.Context, policy string, list state.KeyList, page int) (*config.Policy, *state.State, store.Store, []string, error) {
	p, err := a.policy(policy)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	st, err := a.State(ctx)
	if err != nil {
		return nil, nil, nil, nil, asActivityError(err)
	}
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

// chunkTries is how often a chunk retries one key's transient failure before the key
// becomes a dead letter; the chunk itself is not failed for one bad key.
const chunkTries = 3

// ReplicateChunk replicates one page of a batch's keys to the given destinations in
// eventual mode, several keys at once within the policy's concurrency. Small files
// thus cost a share of one activity instead of a workflow each. A key that fails
// permanently on a destination becomes a dead letter there; the chunk goes on.
// A retried chunk redoes its page, and keys already in place cost a metadata check.
func (a *Activities) ReplicateChunk(ctx context.Context, in ChunkInput) (*ChunkResult, error) {
	p, st, src, keys, err := a.page(ctx, in.Policy, in.List, in.Page)
	if err != nil {
		return nil, err
	}
	type dest struct {
		cfg *config.Destination
		s   store.Store
		lim *destLimits
	}
	dests := map[string]dest{}
	for _, name := range in.Destinations {
		d, s, err := a.destination(ctx, p, name)
		if err != nil {
			return nil, err
		}
		dests[name] = dest{d, s, a.limitsFor(p, d)}
	}

	res := &ChunkResult{Keys: len(keys)}
	sink := &manifestSink{}
	counts := map[string]*Counts{}
	for _, name := range in.Destinations {
		counts[name] = &Counts{}
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		done     int
		firstErr error
	)
	sem := make(chan struct{}, max(p.Limits.Concurrency, 1))
	record := func(dest, outcome string, n int64) {
		mu.Lock()
		counts[dest].Record(outcome, n)
		mu.Unlock()
	}
	deadLetter := func(key, dest string, err error) {
		record(dest, OutcomeFailed, 0)
		derr := st.RecordDeadLetter(ctx, state.DeadLetter{Policy: p.Name, Key: key, Destination: dest, Class: ErrorClass(err),
			Message: err.Error(), Attempts: chunkTries, WorkflowID: activity.GetInfo(ctx).WorkflowExecution.ID})
		if derr != nil {
			mu.Lock()
			firstErr = errors.Join(firstErr, derr)
			mu.Unlock()
		}
	}
	replicateTo := func(key, t string, sv SourceVersion, data []byte) {
		d := dests[t]
		select {
		case d.lim.slots <- struct{}{}:
			defer func() { <-d.lim.slots }()
		case <-ctx.Done():
			return
		}
		var out *TransferResult
		var err error
		for try := 0; try < chunkTries; try++ {
			if !sv.Exists {
				if p.Mode != config.ModeMirror {
					out = &TransferResult{Outcome: OutcomeSkipped}
					break
				}
				out, err = a.DeleteReplica(ctx, DeleteInput{Policy: p.Name, Destination: t, Key: key})
			} else {
				job := copyJob{src: src, dst: d.s, lim: d.lim, sink: sink, data: data}
				out, err = a.transfer(ctx, p, job, TransferInput{Policy: p.Name, Destination: t, Key: key, Source: sv, RecordSkips: in.RecordSkips, VerifyContent: in.VerifyContent})
				a.observe(p.Name, t, sv, out, err, true)
			}
			if err == nil {
				break
			}
			if ErrorClass(err) == ErrSourceChanged {
				// Only a streamed source can change under a put: data is a snapshot.
				if nsv, perr := a.prepareSource(ctx, p, src, key); perr == nil {
					sv, data = nsv, nil
				}
			} else if isPermanent(err) {
				break
			}
			sleep(ctx, try)
		}
		if err != nil {
			deadLetter(key, t, err)
			return
		}
		record(t, out.Outcome, out.Bytes)
	}
	// The chunk's liveness: a heartbeat every second whether or not a key finished,
	// so that slow keys under a short heartbeat timeout do not fail the chunk.
	defer keepAlive(ctx, func() []any {
		mu.Lock()
		defer mu.Unlock()
		return []any{done}
	})()
	for _, key := range keys {
		if ctx.Err() != nil {
			break
		}
		route := p.Route(key)
		if len(route) == 0 {
			res.Excluded++
			continue
		}
		var targets []string
		for _, r := range route {
			if _, ok := dests[r]; ok {
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
				mu.Lock()
				done++
				mu.Unlock()
			}()
			var sv SourceVersion
			var data []byte
			var err error
			for try := 0; try < chunkTries; try++ {
				var release func()
				if sv, data, release, err = a.readSource(ctx, p, src, key); err == nil || isPermanent(err) {
					defer release()
					break
				}
				release()
				sleep(ctx, try)
			}
			if err != nil {
				for _, t := range targets {
					deadLetter(key, t, err)
				}
				return
			}
			if sv.Exists && sv.Size > in.LargeThreshold {
				mu.Lock()
				res.Large = append(res.Large, key)
				mu.Unlock()
				return
			}
			// The destinations of a key move at once, each within its own limit of
			// transfers in flight on this worker, shared with every other activity.
			var kwg sync.WaitGroup
			for _, t := range targets {
				kwg.Go(func() { replicateTo(key, t, sv, data) })
			}
			kwg.Wait()
		}()
	}
	wg.Wait()
	if err := sink.flush(ctx, st, p.Name); err != nil {
		return nil, asActivityError(err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if firstErr != nil {
		return nil, firstErr
	}
	for _, name := range in.Destinations {
		res.Destinations = append(res.Destinations, DestinationCounts{Destination: name, Counts: *counts[name]})
	}
	return res, nil
}

// sharedReadMax is the largest source ReplicateChunk reads into memory once for all
// its destinations, hashing it once; larger ones stream to each destination, each
// put hashing its own read. sharedReadBudget bounds such bytes on one worker.
const (
	sharedReadMax    = 16 << 20
	sharedReadBudget = 128 << 20
)

// readSource is prepareSource for a chunk: a source up to sharedReadMax is read into
// memory within the worker's budget and hashed on the way, so one read serves every
// destination. A write during the read would tear the snapshot, so the source is
// stated again after it: a changed version is a changed source. release returns the
// budget once the destinations are done.
func (a *Activities) readSource(ctx context.Context, p *config.Policy, src store.Store, key string) (sv SourceVersion, data []byte, release func(), err error) {
	release = func() {}
	attrs, err := src.Stat(ctx, key)
	if store.IsNotFound(err) {
		return SourceVersion{}, nil, release, nil
	}
	if err != nil {
		return SourceVersion{}, nil, release, asActivityError(err)
	}
	if attrs.Size > sharedReadMax {
		sv, err = a.prepareSource(ctx, p, src, key)
		return sv, nil, release, err
	}
	if err := a.sharedReads.Acquire(ctx, max(attrs.Size, 1)); err != nil {
		return SourceVersion{}, nil, release, err
	}
	release = func() { a.sharedReads.Release(max(attrs.Size, 1)) }
	r, err := src.Open(ctx, key, 0)
	if store.IsNotFound(err) {
		return SourceVersion{}, nil, release, nil
	}
	if err != nil {
		return SourceVersion{}, nil, release, asActivityError(err)
	}
	data = make([]byte, attrs.Size+1)
	n, err := io.ReadFull(r, data)
	r.Close()
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return SourceVersion{}, nil, release, asActivityError(fmt.Errorf("read %s: %w", key, err))
	}
	after, serr := src.Stat(ctx, key)
	if int64(n) != attrs.Size || serr != nil || sourceVersion(after.Object) != sourceVersion(attrs.Object) {
		return SourceVersion{}, nil, release, temporal.NewApplicationError(
			fmt.Sprintf("source %s changed while it was read (%d bytes read, %d stated)", key, n, attrs.Size), ErrSourceChanged)
	}
	data = data[:n]
	sum := sha256.Sum256(data)
	sv = sourceVersionOf(attrs)
	sv.SHA256 = hex.EncodeToString(sum[:])
	return sv, data, release, nil
}

func isPermanent(err error) bool {
	var ae *temporal.ApplicationError
	return errors.As(err, &ae) && ae.NonRetryable() && ae.Type() != ErrSourceChanged
}

func sleep(ctx context.Context, try int) {
	select {
	case <-time.After(time.Duration(200<<try) * time.Millisecond):
	case <-ctx.Done():
	}
}
