package activities

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/semaphore"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/bisync"
	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/metrics"
	"github.com/cloudrepl/replicator/internal/replica"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
)

// Activities hold what every activity needs: the config, open stores, the state
// location, the replication engine and the metrics. One value is registered per
// worker; main builds its parts and injects them.
type Activities struct {
	Config  *config.File
	Stores  *backends.Cache
	State   *state.State
	Engine  *replica.Engine
	Metrics *metrics.Metrics

	limitsMu sync.Mutex
	limits   map[string]*destLimits

	// sharedReads bounds the bytes of small sources held in memory at once for all
	// their destinations (ReplicateChunk).
	sharedReads *semaphore.Weighted
}

// New returns the activities for a config, over opened stores and state location.
func New(cfg *config.File, stores *backends.Cache, st *state.State, m *metrics.Metrics) *Activities {
	return &Activities{Config: cfg, Stores: stores, State: st, Engine: replica.New(st), Metrics: m,
		limits: map[string]*destLimits{}, sharedReads: semaphore.NewWeighted(sharedReadBudget)}
}

// OpenState opens a config's state location through the store cache.
func OpenState(ctx context.Context, cfg *config.File, stores *backends.Cache) (*state.State, error) {
	s, err := stores.Get(ctx, backends.Spec{Name: "state", URL: cfg.State, Options: store.Options{Credentials: cfg.StateCredentials}})
	if err != nil {
		return nil, err
	}
	return state.New(s), nil
}

func (a *Activities) policy(name string) (*config.Policy, error) {
	p, err := a.Config.Policy(name)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error()+": the worker's config differs from the starter's; deploy the same replicator.yaml", wire.ErrPermission, nil)
	}
	return p, nil
}

func (a *Activities) source(ctx context.Context, p *config.Policy) (store.Store, error) {
	s, err := a.Stores.Get(ctx, backends.Spec{Name: p.Name + "/source", URL: p.Source, Options: store.Options{Credentials: p.SourceCredentials}})
	return s, asActivityError(err)
}

func (a *Activities) destination(ctx context.Context, p *config.Policy, name string) (*config.Destination, replica.Target, error) {
	d, err := p.Destination(name)
	if err != nil {
		return nil, replica.Target{}, temporal.NewNonRetryableApplicationError(err.Error(), wire.ErrPermission, nil)
	}
	s, err := a.Stores.Get(ctx, backends.Spec{Name: d.Name, URL: d.URL, Options: store.Options{
		Credentials: d.Credentials, StorageClass: d.StorageClass, SSE: d.SSE, SSEKMSKeyID: d.SSEKMSKeyID, Tuning: d.Tuning.Store(),
	}})
	return d, replica.Target{Policy: p, Name: d.Name, Store: s}, asActivityError(err)
}

// target resolves a policy and one of its destinations, opened.
func (a *Activities) target(ctx context.Context, policy, destination string) (*config.Policy, *config.Destination, replica.Target, error) {
	p, err := a.policy(policy)
	if err != nil {
		return nil, nil, replica.Target{}, err
	}
	d, t, err := a.destination(ctx, p, destination)
	return p, d, t, err
}

func (a *Activities) limitsFor(p *config.Policy, d *config.Destination) *destLimits {
	a.limitsMu.Lock()
	defer a.limitsMu.Unlock()
	id := p.Name + "/" + d.Name
	if l, ok := a.limits[id]; ok {
		return l
	}
	l := newDestLimits(p.LimitsFor(d))
	a.limits[id] = l
	return l
}

// asActivityError turns an engine or store error into what Temporal should do with
// it: the types no retry can fix are non-retryable with that type, anything else is
// retried.
func asActivityError(err error) error {
	if err == nil {
		return nil
	}
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return err
	}
	if typ := replica.FailureType(err); typ != "" {
		// No cause: Temporal would print it after the message, the same text again.
		return temporal.NewNonRetryableApplicationError(err.Error(), typ, nil)
	}
	return err
}

// ErrorClass names the class of an engine, store or activity error for dead letters
// and summaries.
func ErrorClass(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.Type() != "" {
		return ae.Type()
	}
	if typ := replica.FailureType(err); typ != "" {
		return typ
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return "Timeout"
	}
	return "Transient"
}

func retrySettings(p *config.Policy) wire.RetrySettings {
	return wire.RetrySettings{
		MaxAttempts:      int32(p.Retry.MaxAttempts),
		MaxInterval:      time.Duration(p.Retry.MaxInterval),
		Expiration:       time.Duration(p.Retry.Expiration),
		HeartbeatTimeout: time.Duration(p.Retry.HeartbeatTimeout),
	}
}

func routes(p *config.Policy, key string) []wire.Route {
	var out []wire.Route
	for _, name := range p.Route(key) {
		d, _ := p.Destination(name)
		out = append(out, wire.Route{Destination: name, TaskQueue: d.TaskQueue(wire.DefaultTaskQueue)})
	}
	return out
}

// Prepare stats the source, routes the key and finds the version's SHA-256 (the
// engine's Prepare), heartbeating while it reads.
func (a *Activities) Prepare(ctx context.Context, in wire.PrepareInput) (*wire.PrepareResult, error) {
	p, err := a.policy(in.Policy)
	if err != nil {
		return nil, err
	}
	if err := p.OneWayRefusal(); err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), wire.ErrInvalid, nil)
	}
	res := &wire.PrepareResult{Mode: p.Mode, Consistency: p.Consistency, Retry: retrySettings(p), EventSinks: len(p.EventsOut)}
	res.Routes = routes(p, in.Key)
	for _, r := range res.Routes {
		d, _ := p.Destination(r.Destination)
		if b := int64(p.LimitsFor(d).Bandwidth); b > 0 && (res.Bandwidth == 0 || b < res.Bandwidth) {
			res.Bandwidth = b
		}
	}
	if len(res.Routes) == 0 {
		res.Excluded = true
		return res, nil
	}
	src, err := a.source(ctx, p)
	if err != nil {
		return nil, err
	}
	sv, err := a.Engine.Prepare(ctx, p.Name, src, in.Key, heartbeatReads(ctx))
	if err != nil {
		return nil, asActivityError(err)
	}
	res.Source = sv
	if sv.Exists {
		res.StagingKey = wire.StagingKey(in.Key, sv.Version)
	}
	return res, nil
}

// heartbeatReads wraps a long read so that it heartbeats its progress.
func heartbeatReads(ctx context.Context) func(io.Reader) io.Reader {
	if !activity.IsActivity(ctx) {
		return nil
	}
	return func(r io.Reader) io.Reader { return &heartbeatReader{ctx: ctx, r: r} }
}

// heartbeatReader heartbeats the bytes read so far, so a long read shows progress and
// a stuck one is noticed.
type heartbeatReader struct {
	ctx  context.Context
	r    io.Reader
	n    int64
	last time.Time
}

func (h *heartbeatReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.n += int64(n)
	if time.Since(h.last) > time.Second {
		activity.RecordHeartbeat(h.ctx, wire.Progress{Bytes: h.n})
		h.last = time.Now()
	}
	return n, err
}

// Transfer writes one source version to one destination through the engine:
// directly (eventual mode) or to the staging key (atomic mode), within the
// destination's limits on this worker, heartbeating progress and resume state.
func (a *Activities) Transfer(ctx context.Context, in wire.TransferInput) (*wire.TransferResult, error) {
	p, d, t, err := a.target(ctx, in.Policy, in.Destination)
	if err != nil {
		return nil, err
	}
	src, err := a.source(ctx, p)
	if err != nil {
		return nil, err
	}
	lim := a.limitsFor(p, d)
	req := replica.WriteRequest{Key: in.Key, Source: in.Source, RecordSkips: in.RecordSkips, VerifyContent: in.VerifyContent,
		Body: replica.Body{Source: src, Limiter: lim.limiter, Hooks: transferHooks(ctx, in.Source)}}
	var res *wire.TransferResult
	if !lim.withSlot(ctx, func() {
		if in.StagingKey != "" {
			res, err = a.Engine.Stage(ctx, t, req, in.StagingKey)
		} else {
			res, err = a.Engine.Write(ctx, t, req)
		}
	}) {
		return nil, ctx.Err()
	}
	a.observe(p.Name, in.Destination, res, err)
	return res, asActivityError(err)
}

// transferHooks heartbeat a put's progress and resume state, and hand a retry the
// upload its earlier attempt left.
func transferHooks(ctx context.Context, sv wire.SourceVersion) func(target string) replica.Hooks {
	if !activity.IsActivity(ctx) {
		return nil
	}
	return func(target string) replica.Hooks {
		p := wire.Progress{Total: sv.Size, Target: target, Version: sv.Version}
		var mu sync.Mutex
		var stopIdle func()
		var lastSent time.Time
		return replica.Hooks{
			Resume: resumeState(ctx, p),
			OnResumeState: func(rs store.ResumeState) {
				mu.Lock()
				defer mu.Unlock()
				p.Resume = wire.ResumeState(rs)
				activity.RecordHeartbeat(ctx, p)
			},
			// Once every byte went out, none moves while the server takes them in
			// (fake-gcs-server hashing and writing a 1 GiB single request, a
			// multipart completion), which took longer than the bench's 5 s
			// heartbeat timeout: the last progress is repeated until the driver
			// returns. Before that, only real progress heartbeats, so an upload
			// stalled mid-body is still noticed.
			Progress: func(n int64) {
				mu.Lock()
				defer mu.Unlock()
				p.Bytes = n
				activity.RecordHeartbeat(ctx, p)
				if n >= p.Total && stopIdle == nil {
					stopIdle = keepAlive(ctx, func() []any {
						mu.Lock()
						defer mu.Unlock()
						return []any{p}
					})
				}
			},
			// Bytes read by the driver: progress within a part, so that a part
			// slowed by limits.bandwidth or a slow link never looks stalled (the
			// SDK throttles the heartbeats themselves).
			Sent: func(n int64) {
				mu.Lock()
				defer mu.Unlock()
				p.Sent = n
				if time.Since(lastSent) >= 500*time.Millisecond {
					lastSent = time.Now()
					activity.RecordHeartbeat(ctx, p)
				}
			},
			Done: func() {
				mu.Lock()
				stop := stopIdle
				mu.Unlock()
				if stop != nil {
					stop()
				}
			},
		}
	}
}

// resumeState is what an attempt passes as PutOptions.Resume: the upload an earlier
// attempt of the same write left in its last heartbeat, or an empty state meaning
// "keep the upload open if this attempt fails, a retry will resume it". The last
// attempt passes nil, so a failure aborts the upload and leaves nothing behind.
func resumeState(ctx context.Context, want wire.Progress) *store.ResumeState {
	info := activity.GetInfo(ctx)
	if rp := info.RetryPolicy; rp != nil && rp.MaximumAttempts > 0 && info.Attempt >= rp.MaximumAttempts {
		return nil
	}
	var last wire.Progress
	if activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &last) == nil &&
		last.Target == want.Target && last.Version == want.Version {
		rs := store.ResumeState(last.Resume)
		return &rs
	}
	return &store.ResumeState{}
}

// observe counts one destination's result of a write.
func (a *Activities) observe(policy, destination string, res *wire.TransferResult, err error) {
	if a.Metrics == nil {
		return
	}
	if err != nil {
		a.Metrics.Objects.WithLabelValues(policy, destination, string(wire.OutcomeFailed)).Inc()
		return
	}
	a.Metrics.Objects.WithLabelValues(policy, destination, string(res.Outcome)).Inc()
	if res.Outcome == wire.OutcomeCopied || res.Outcome == wire.OutcomeStaged {
		a.Metrics.Bytes.WithLabelValues(policy, destination).Add(float64(res.Bytes))
	}
}

// observeLag records a key's lag: from its source change to done, when the last of
// its routed destinations holds it.
func (a *Activities) observeLag(policy string, changed, done time.Time) {
	if a.Metrics == nil || changed.IsZero() || done.Before(changed) {
		return
	}
	a.Metrics.Lag.WithLabelValues(policy).Observe(done.Sub(changed).Seconds())
}

// ObserveLag records the lag of a key a ReplicateFile run wrote to every routed
// destination (a local activity: metrics are the worker's, not the workflow's).
func (a *Activities) ObserveLag(_ context.Context, in wire.LagInput) error {
	a.observeLag(in.Policy, in.Changed, in.Done)
	return nil
}

// Commit makes a staged version visible under its final key (the engine's Commit),
// heartbeating while the server copies.
func (a *Activities) Commit(ctx context.Context, in wire.TransferInput) (*wire.TransferResult, error) {
	p, _, t, err := a.target(ctx, in.Policy, in.Destination)
	if err != nil {
		return nil, err
	}
	res, err := a.Engine.Commit(ctx, t, replica.WriteRequest{Key: in.Key, Source: in.Source, Seen: in.Final, Undo: in.Undo,
		KeepAlive: func() func() { return keepAlive(ctx, nil) }}, in.StagingKey)
	if err == nil && res.Outcome == wire.OutcomeCopied {
		a.observe(p.Name, in.Destination, res, nil)
	}
	return res, asActivityError(err)
}

// Rollback undoes commits on one destination (the engine's Rollback, key by key): the
// compensation of an atomic replication whose commit failed for good elsewhere.
func (a *Activities) Rollback(ctx context.Context, in wire.RollbackInput) (*wire.RollbackResult, error) {
	_, _, t, err := a.target(ctx, in.Policy, in.Destination)
	if err != nil {
		return nil, err
	}
	stop := keepAlive(ctx, nil)
	defer stop()
	res := &wire.RollbackResult{}
	for _, k := range in.Keys {
		out, err := a.Engine.Rollback(ctx, t, k.Key, k.Undo)
		if err != nil {
			return nil, asActivityError(err)
		}
		res.Outcomes = append(res.Outcomes, out)
	}
	return res, nil
}

// keepAlive heartbeats every second until stop is called, with the details that
// details returns (none when it is nil): a server-side copy of a large object reports
// no progress, and can outlast the heartbeat timeout (1 GiB on fake-gcs-server takes
// longer than the 5 s the tests use); a chunk's slow keys likewise. Work that hangs
// is bounded by the drivers' request timeouts and the activity's start-to-close.
func keepAlive(ctx context.Context, details func() []any) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				var d []any
				if details != nil {
					d = details()
				}
				activity.RecordHeartbeat(ctx, d...)
			}
		}
	}()
	return func() { close(done) }
}

// Cleanup removes staging objects and aborts their unfinished uploads: the
// compensation of atomic mode and its last step after a commit.
func (a *Activities) Cleanup(ctx context.Context, in wire.CleanupInput) error {
	_, _, t, err := a.target(ctx, in.Policy, in.Destination)
	if err != nil {
		return err
	}
	return asActivityError(a.Engine.Cleanup(ctx, t, in.Keys))
}

// DeleteReplica propagates a source delete to one destination (mirror mode, decided
// by a per-file run) through the engine's guarded delete, counted against the
// policy's delete window.
func (a *Activities) DeleteReplica(ctx context.Context, in wire.DeleteInput) (*wire.TransferResult, error) {
	p, _, t, err := a.target(ctx, in.Policy, in.Destination)
	if err != nil {
		return nil, err
	}
	src, err := a.source(ctx, p)
	if err != nil {
		return nil, err
	}
	res, err := a.Engine.Delete(ctx, t, replica.DeleteRequest{Key: in.Key, Source: src, Windowed: true})
	a.observeDelete(p.Name, in.Destination, res, err)
	return res, asActivityError(err)
}

func (a *Activities) observeDelete(policy, destination string, res *wire.TransferResult, err error) {
	if a.Metrics != nil && err == nil && res.Outcome == wire.OutcomeDeleted {
		a.Metrics.Objects.WithLabelValues(policy, destination, string(wire.OutcomeDeleted)).Inc()
	}
}

// RefreshSharedGauges sets the gauges that describe shared state from the state
// location: replicator_dead_letters (the records that exist, whichever worker wrote or
// cleared them), and replicator_drift_objects and
// replicator_last_reconcile_success_timestamp_seconds (each policy's reconcile status,
// whichever worker ran the reconcile). Every worker therefore reports the same values,
// after a restart too. A policy never reconciled reports a last success of 0.
func (a *Activities) RefreshSharedGauges(ctx context.Context) error {
	if a.Metrics == nil {
		return nil
	}
	for _, p := range a.Config.Policies {
		counts, err := a.State.CountDeadLetters(ctx, p.Name)
		if err != nil {
			return err
		}
		for _, d := range p.Destinations {
			a.Metrics.DeadLetters.WithLabelValues(p.Name, d.Name).Set(float64(counts[d.Name]))
		}
		s, err := a.State.ReconcileStatus(ctx, p.Name)
		if err != nil {
			return err
		}
		last := 0.0
		if !s.LastSuccess.IsZero() {
			last = float64(s.LastSuccess.UnixNano()) / 1e9
		}
		a.Metrics.LastReconcile.WithLabelValues(p.Name).Set(last)
		if p.Mode == config.ModeBidirectional {
			// Counted from zero, so that a rate or an alert sees the series before
			// the first conflict.
			for _, kind := range []string{replica.ConflictBoth, bisync.ConflictModifyDelete} {
				a.Metrics.Conflicts.WithLabelValues(p.Name, kind).Add(0)
			}
		}
		for dest, kinds := range s.Drift {
			for kind, n := range kinds {
				a.Metrics.Drift.WithLabelValues(p.Name, dest, kind).Set(float64(n))
			}
		}
	}
	return nil
}

// RecordDeadLetter writes the record of a permanent failure.
func (a *Activities) RecordDeadLetter(ctx context.Context, in wire.DeadLetterInput) error {
	if err := a.State.RecordDeadLetter(ctx, state.DeadLetter{
		Policy: in.Policy, Key: in.Key, Destination: in.Destination, Class: in.Class,
		Message: in.Message, Attempts: in.Attempts, WorkflowID: in.WorkflowID,
	}); err != nil {
		return asActivityError(err)
	}
	if a.Metrics != nil {
		if counts, err := a.State.CountDeadLetters(ctx, in.Policy); err == nil {
			a.Metrics.DeadLetters.WithLabelValues(in.Policy, in.Destination).Set(float64(counts[in.Destination]))
		}
	}
	return nil
}
