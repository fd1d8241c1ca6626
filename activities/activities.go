package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/metrics"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
)

// DefaultTaskQueue is the task queue of workflows and of destinations without a
// dedicated one (DESIGN section 7a).
const DefaultTaskQueue = "replication"

// Activities hold what every activity needs: the config, open stores, the state
// location and the metrics. One value is registered per worker.
type Activities struct {
	Config  *config.File
	Stores  *backends.Cache
	Metrics *metrics.Metrics

	stateOnce sync.Once
	state     *state.State
	stateErr  error

	limitsMu sync.Mutex
	limits   map[string]*destLimits

	// sharedReads bounds the bytes of small sources held in memory at once for all
	// their destinations (ReplicateChunk).
	sharedReads *semaphore.Weighted
}

// destLimits bound one destination's transfers in this worker.
type destLimits struct {
	slots   chan struct{}
	limiter *rate.Limiter
}

// New returns the activities for a config.
func New(cfg *config.File, stores *backends.Cache, m *metrics.Metrics) *Activities {
	return &Activities{Config: cfg, Stores: stores, Metrics: m, limits: map[string]*destLimits{}, sharedReads: semaphore.NewWeighted(sharedReadBudget)}
}

// State opens the config's state location once.
func (a *Activities) State(ctx context.Context) (*state.State, error) {
	a.stateOnce.Do(func() {
		s, err := a.Stores.Get(ctx, backends.Spec{Name: "state", URL: a.Config.State, Options: store.Options{Credentials: a.Config.StateCredentials}})
		a.state, a.stateErr = state.New(s), err
	})
	return a.state, a.stateErr
}

func (a *Activities) policy(name string) (*config.Policy, error) {
	p, err := a.Config.Policy(name)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error()+": the worker's config differs from the starter's; deploy the same replicator.yaml", ErrPermission, err)
	}
	return p, nil
}

func (a *Activities) source(ctx context.Context, p *config.Policy) (store.Store, error) {
	s, err := a.Stores.Get(ctx, backends.Spec{Name: p.Name + "/source", URL: p.Source, Options: store.Options{Credentials: p.SourceCredentials}})
	return s, asActivityError(err)
}

func (a *Activities) destination(ctx context.Context, p *config.Policy, name string) (*config.Destination, store.Store, error) {
	d, err := p.Destination(name)
	if err != nil {
		return nil, nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrPermission, err)
	}
	s, err := a.Stores.Get(ctx, backends.Spec{Name: d.Name, URL: d.URL, Options: store.Options{
		Credentials: d.Credentials, StorageClass: d.StorageClass, SSE: d.SSE, SSEKMSKeyID: d.SSEKMSKeyID, Tuning: d.Tuning.Store(),
	}})
	return d, s, asActivityError(err)
}

func (a *Activities) limitsFor(p *config.Policy, d *config.Destination) *destLimits {
	a.limitsMu.Lock()
	defer a.limitsMu.Unlock()
	id := p.Name + "/" + d.Name
	if l, ok := a.limits[id]; ok {
		return l
	}
	lim := p.LimitsFor(d)
	l := &destLimits{slots: make(chan struct{}, max(lim.Concurrency, 1)), limiter: rate.NewLimiter(rate.Inf, 0)}
	if lim.Bandwidth > 0 {
		l.limiter = rate.NewLimiter(rate.Limit(lim.Bandwidth), int(min(int64(lim.Bandwidth), 4<<20)))
	}
	a.limits[id] = l
	return l
}

// asActivityError turns a store error into what Temporal should do with it:
// permission and invalid requests are non-retryable with a type, a mismatch means
// the source changed, anything else is retried.
func asActivityError(err error) error {
	if err == nil {
		return nil
	}
	switch store.CodeOf(err) {
	case store.CodePermission:
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrPermission, err)
	case store.CodeInvalid:
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalid, err)
	case store.CodeMismatch:
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrSourceChanged, err)
	}
	return err
}

// ErrorClass names the class of an activity error for dead letters and summaries.
func ErrorClass(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.Type() != "" {
		return ae.Type()
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return "Timeout"
	}
	return "Transient"
}

// sourceVersion builds the version string of a source object: its modification time
// orders versions, its ETag tells two states with the same time apart.
func sourceVersion(o store.Object) string {
	return strconv.FormatInt(o.ModTime.UnixNano(), 10) + ":" + o.ETag
}

// newerThan reports whether version a is strictly newer than b. Versions that do not
// parse are never newer, so a foreign or damaged record cannot block replication.
func newerThan(a, b string) bool {
	ta, okA := versionTime(a)
	tb, okB := versionTime(b)
	return okA && okB && ta > tb
}

func versionTime(v string) (int64, bool) {
	i := strings.IndexByte(v, ':')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:i], 10, 64)
	return n, err == nil
}

// StagingKey is where atomic mode stages one version of a key: fixed length whatever
// the key, and distinct per version so that two versions never share a stage.
func StagingKey(key, version string) string {
	sum := sha256.Sum256([]byte(key + "\x00" + version))
	return store.InternalPrefix + "staging/" + hex.EncodeToString(sum[:20])
}

func retrySettings(p *config.Policy) RetrySettings {
	return RetrySettings{
		MaxAttempts:      int32(p.Retry.MaxAttempts),
		MaxInterval:      time.Duration(p.Retry.MaxInterval),
		Expiration:       time.Duration(p.Retry.Expiration),
		HeartbeatTimeout: time.Duration(p.Retry.HeartbeatTimeout),
	}
}

func routes(p *config.Policy, key string) []Route {
	var out []Route
	for _, name := range p.Route(key) {
		d, _ := p.Destination(name)
		out = append(out, Route{Destination: name, TaskQueue: d.TaskQueue(DefaultTaskQueue)})
	}
	return out
}

// Prepare stats the source, routes the key and finds the version's SHA-256: from the
// source's own replicator metadata, the hash cache, or by reading it once.
func (a *Activities) Prepare(ctx context.Context, in PrepareInput) (*PrepareResult, error) {
	p, err := a.policy(in.Policy)
	if err != nil {
		return nil, err
	}
	res := &PrepareResult{Mode: p.Mode, Consistency: p.Consistency, Retry: retrySettings(p)}
	res.Routes = routes(p, in.Key)
	if len(res.Routes) == 0 {
		res.Excluded = true
		return res, nil
	}
	src, err := a.source(ctx, p)
	if err != nil {
		return nil, err
	}
	sv, err := a.prepareSource(ctx, p, src, in.Key)
	if err != nil {
		return nil, err
	}
	res.Source = sv
	if sv.Exists {
		res.StagingKey = StagingKey(in.Key, sv.Version)
	}
	return res, nil
}

// hashCacheMinSize is the size from which a version's SHA-256 is cached: below it,
// hashing the file again costs less than reading and writing a cache record.
const hashCacheMinSize = 4 << 20

func (a *Activities) prepareSource(ctx context.Context, p *config.Policy, src store.Store, key string) (SourceVersion, error) {
	attrs, err := src.Stat(ctx, key)
	if store.IsNotFound(err) {
		return SourceVersion{}, nil
	}
	if err != nil {
		return SourceVersion{}, asActivityError(err)
	}
	sv := sourceVersionOf(attrs)
	if attrs.SHA256 != "" && attrs.SourceSize == attrs.Size {
		// A bucket source written by the replicator carries its hash.
		sv.SHA256 = attrs.SHA256
		return sv, nil
	}
	st, err := a.State(ctx)
	if err != nil {
		return SourceVersion{}, asActivityError(err)
	}
	useCache := sv.Size >= hashCacheMinSize
	if useCache {
		cached, err := st.CachedHash(ctx, p.Name, key, sv.Version)
		if err != nil {
			return SourceVersion{}, asActivityError(err)
		}
		if cached != nil {
			sv.SHA256, sv.Fingerprint = cached.SHA256, cached.Fingerprint
			return sv, nil
		}
	}
	r, err := src.Open(ctx, key, 0)
	if err != nil {
		if store.IsNotFound(err) {
			return SourceVersion{}, nil
		}
		return SourceVersion{}, asActivityError(err)
	}
	defer r.Close()
	h := sha256.New()
	var fp store.FingerprintWriter
	n, err := io.Copy(io.MultiWriter(h, &fp), &heartbeatReader{ctx: ctx, r: r})
	if err != nil {
		return SourceVersion{}, asActivityError(fmt.Errorf("hash %s: %w", key, err))
	}
	if n != sv.Size {
		return SourceVersion{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("source %s changed while it was hashed (%d bytes read, %d stated)", key, n, sv.Size), ErrSourceChanged, nil)
	}
	sv.SHA256, sv.Fingerprint = hex.EncodeToString(h.Sum(nil)), fp.Sum().String()
	if useCache {
		if err := st.CacheHash(ctx, p.Name, key, state.HashEntry{Version: sv.Version, SHA256: sv.SHA256, Fingerprint: sv.Fingerprint}); err != nil {
			return SourceVersion{}, asActivityError(err)
		}
	}
	return sv, nil
}

// sourceVersionOf is what the source's attributes say of the version, all but its
// SHA-256. Empty metadata is nil, so that histories do not depend on how a driver
// returns none.
func sourceVersionOf(attrs *store.Attributes) SourceVersion {
	sv := SourceVersion{Exists: true, Version: sourceVersion(attrs.Object), Size: attrs.Size, ModTime: attrs.ModTime,
		ContentType: attrs.ContentType, Metadata: attrs.Metadata}
	if len(sv.Metadata) == 0 {
		sv.Metadata = nil
	}
	return sv
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
	if time.Since(h.last) > time.Second && activity.IsActivity(h.ctx) {
		activity.RecordHeartbeat(h.ctx, Progress{Bytes: h.n})
		h.last = time.Now()
	}
	return n, err
}

// Progress is the heartbeat detail of transfers: what `starter replicate --wait`
// shows while a transfer runs, and what a retry needs to resume the upload.
type Progress struct {
	Bytes int64
	Total int64
	// Target and Version identify the write the resume state belongs to.
	Target  string            `json:",omitempty"`
	Version string            `json:",omitempty"`
	Resume  store.ResumeState `json:",omitzero"`
}

// limitedReader holds a transfer to its destination's bandwidth limit.
type limitedReader struct {
	ctx context.Context
	r   io.Reader
	l   *rate.Limiter
}

func (lr limitedReader) Read(p []byte) (int, error) {
	if lr.l.Limit() == rate.Inf {
		return lr.r.Read(p)
	}
	if len(p) > lr.l.Burst() {
		p = p[:lr.l.Burst()]
	}
	n, err := lr.r.Read(p)
	if n > 0 {
		if werr := lr.l.WaitN(lr.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// Transfer writes one source version to one destination: directly, guarded by the
// destination's current state (create-only or if-match), or to the staging key in
// atomic mode. A destination that already holds the same SHA-256 is skipped without
// moving bytes; one whose recorded source version is newer is left alone.
func (a *Activities) Transfer(ctx context.Context, in TransferInput) (*TransferResult, error) {
	p, err := a.policy(in.Policy)
	if err != nil {
		return nil, err
	}
	d, dst, err := a.destination(ctx, p, in.Destination)
	if err != nil {
		return nil, err
	}
	src, err := a.source(ctx, p)
	if err != nil {
		return nil, err
	}
	lim := a.limitsFor(p, d)
	select {
	case lim.slots <- struct{}{}:
		defer func() { <-lim.slots }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	res, err := a.transfer(ctx, p, copyJob{src: src, dst: dst, lim: lim, heartbeat: true}, in)
	a.observe(p.Name, in.Destination, in.Source, res, err, in.StagingKey == "")
	return res, err
}

// copyJob is where a transfer reads and writes, and how.
type copyJob struct {
	src, dst store.Store
	lim      *destLimits
	// heartbeat records progress and resume state (the Transfer activity).
	heartbeat bool
	// sink, when set, collects the manifest entries for one journal write per chunk.
	sink *manifestSink
	// data is the source version read into memory and hashed once for every
	// destination (ReplicateChunk's small files); nil reads the source.
	data []byte
}

// transfer is Transfer's logic, shared with ReplicateChunk.
func (a *Activities) transfer(ctx context.Context, p *config.Policy, job copyJob, in TransferInput) (*TransferResult, error) {
	dst, sink := job.dst, job.sink
	if in.StagingKey == "" && in.Source.Size <= optimisticCreateMax && !in.VerifyContent {
		// Most small keys of a batch are new: a create-only put settles them in one
		// request instead of a stat and a put. A key that exists fails the
		// precondition having cost at most one small request, and takes the full path.
		obj, err := a.put(ctx, job, in, in.Key, store.Precondition{IfNoneMatch: true})
		if err == nil {
			if err := a.committed(ctx, p.Name, in.Destination, in.Key, in.Source, obj, sink); err != nil {
				return nil, err
			}
			return &TransferResult{Outcome: OutcomeCopied, Bytes: obj.Size, ETag: obj.ETag}, nil
		}
		if store.IsNotFound(err) {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("source %s disappeared during the copy", in.Key), ErrSourceMissing, err)
		}
		if !store.IsPrecondition(err) {
			return nil, asActivityError(err)
		}
	}
	for attempt := 0; ; attempt++ {
		current, err := dst.Stat(ctx, in.Key)
		exists := err == nil
		if err != nil && !store.IsNotFound(err) {
			return nil, asActivityError(err)
		}
		if exists && current.SHA256 == in.Source.SHA256 && in.VerifyContent {
			same, err := contentIs(ctx, dst, in.Key, in.Source.SHA256)
			if err != nil {
				return nil, asActivityError(err)
			}
			if !same {
				current.SHA256 = "" // its metadata lies about its bytes: rewrite it
			}
		}
		if exists {
			if current.SHA256 == in.Source.SHA256 {
				if in.RecordSkips {
					// A reconcile adopts what is already in place into the manifest.
					if err := a.committed(ctx, p.Name, in.Destination, in.Key, in.Source, &current.Object, sink); err != nil {
						return nil, err
					}
				}
				return &TransferResult{Outcome: OutcomeSkipped, ETag: current.ETag}, nil
			}
			if newerThan(current.SourceVersion, in.Source.Version) {
				return &TransferResult{Outcome: OutcomeSuperseded, ETag: current.ETag}, nil
			}
			if current.SHA256 == "" && p.Unmanaged == "leave" {
				return &TransferResult{Outcome: OutcomeLeft, ETag: current.ETag}, nil
			}
			if in.StagingKey == "" {
				if err := a.trash(ctx, p, dst, in.Key, current.ETag); err != nil {
					return nil, err
				}
			}
		}
		target, pre := in.Key, store.Precondition{IfNoneMatch: !exists}
		if exists {
			pre.IfMatch = current.ETag
		}
		if in.StagingKey != "" {
			target, pre = in.StagingKey, store.Precondition{}
		}
		obj, err := a.put(ctx, job, in, target, pre)
		if store.IsPrecondition(err) && attempt < 5 {
			continue // another writer got there first: look again and decide again
		}
		if store.IsNotFound(err) {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("source %s disappeared during the copy", in.Key), ErrSourceMissing, err)
		}
		if err != nil {
			return nil, asActivityError(err)
		}
		if in.StagingKey != "" {
			final := &FinalState{Exists: exists}
			if exists {
				final.ETag = current.ETag
			}
			return &TransferResult{Outcome: OutcomeStaged, Bytes: obj.Size, ETag: obj.ETag, Final: final}, nil
		}
		if err := a.committed(ctx, p.Name, in.Destination, in.Key, in.Source, obj, sink); err != nil {
			return nil, err
		}
		return &TransferResult{Outcome: OutcomeCopied, Bytes: obj.Size, ETag: obj.ETag}, nil
	}
}

// optimisticCreateMax is the largest source a transfer puts create-only before it
// looks at the destination: beyond it, a key that turns out to exist would have cost
// a large upload for nothing.
const optimisticCreateMax = 1 << 20

// contentIs reads an object and reports whether its bytes have the given SHA-256.
func contentIs(ctx context.Context, s store.Store, key, sha string) (bool, error) {
	r, err := s.Open(ctx, key, 0)
	if err != nil {
		return false, err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, &heartbeatReader{ctx: ctx, r: r}); err != nil {
		return false, fmt.Errorf("verify %s: %w", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)) == sha, nil
}

// put streams the source version to target, verifying its SHA-256 on the way.
func (a *Activities) put(ctx context.Context, job copyJob, in TransferInput, target string, pre store.Precondition) (*store.Object, error) {
	var r io.Reader
	if job.data != nil {
		r = store.NewVerified(job.data, in.Source.SHA256)
	} else {
		rc, err := job.src.Open(ctx, in.Key, 0)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		r = rc
		// The bytes were hashed in Prepare with their fingerprint: checking that
		// fingerprint catches a source changed since at a fraction of a second
		// SHA-256 pass per destination.
		if fp, err := store.ParseFingerprint(in.Source.Fingerprint); err == nil {
			r = store.NewFingerprinted(rc, in.Source.SHA256, fp)
		}
	}
	if job.lim.limiter.Limit() != rate.Inf {
		r = limitedReader{ctx: ctx, r: r, l: job.lim.limiter}
	}
	opts := store.PutOptions{
		SHA256: in.Source.SHA256, Size: in.Source.Size, ContentType: in.Source.ContentType,
		SourceVersion: in.Source.Version, Metadata: in.Source.Metadata, Precondition: pre,
	}
	if job.heartbeat && activity.IsActivity(ctx) {
		p := Progress{Total: in.Source.Size, Target: target, Version: in.Source.Version}
		opts.Resume = resumeState(ctx, p)
		var mu sync.Mutex
		opts.OnResumeState = func(rs store.ResumeState) {
			mu.Lock()
			p.Resume = rs
			activity.RecordHeartbeat(ctx, p)
			mu.Unlock()
		}
		// Once every byte went out, none moves while the server takes them in
		// (fake-gcs-server hashing and writing a 1 GiB single request, a multipart
		// completion), which took longer than the bench's 5 s heartbeat timeout: the
		// last progress is repeated until the driver returns. Before that, only real
		// progress heartbeats, so an upload stalled mid-body is still noticed.
		var stopIdle func()
		opts.Progress = func(n int64) {
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
		}
		defer func() {
			mu.Lock()
			stop := stopIdle
			mu.Unlock()
			if stop != nil {
				stop()
			}
		}()
	}
	return job.dst.Put(ctx, target, r, opts)
}

// resumeState is what an attempt passes as PutOptions.Resume: the upload an earlier
// attempt of the same write left in its last heartbeat, or an empty state meaning
// "keep the upload open if this attempt fails, a retry will resume it". The last
// attempt passes nil, so a failure aborts the upload and leaves nothing behind.
func resumeState(ctx context.Context, want Progress) *store.ResumeState {
	info := activity.GetInfo(ctx)
	if rp := info.RetryPolicy; rp != nil && rp.MaximumAttempts > 0 && info.Attempt >= rp.MaximumAttempts {
		return nil
	}
	var last Progress
	if activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &last) == nil &&
		last.Target == want.Target && last.Version == want.Version {
		return &last.Resume
	}
	return &store.ResumeState{}
}

// committed records a write that is now visible: the manifest journal gets the entry
// (through sink when the caller batches them) and any dead letter of the key on that
// destination is cleared.
func (a *Activities) committed(ctx context.Context, policy, destination, key string, sv SourceVersion, obj *store.Object, sink *manifestSink) error {
	st, err := a.State(ctx)
	if err != nil {
		return asActivityError(err)
	}
	e := state.ManifestEntry{Key: key, SourceVersion: sv.Version, SHA256: sv.SHA256, ETag: obj.ETag, Size: obj.Size}
	if sink != nil {
		sink.add(destination, e)
	} else if err := st.AppendManifest(ctx, policy, destination, e); err != nil {
		return asActivityError(err)
	}
	return asActivityError(st.ClearDeadLetter(ctx, policy, destination, key))
}

// manifestSink collects the manifest entries of a chunk, to write them as one journal
// object per destination instead of one per file.
type manifestSink struct {
	mu      sync.Mutex
	entries map[string][]state.ManifestEntry
}

func (s *manifestSink) add(destination string, e state.ManifestEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries == nil {
		s.entries = map[string][]state.ManifestEntry{}
	}
	s.entries[destination] = append(s.entries[destination], e)
}

// flush writes the collected entries, also when the chunk's context has ended, since
// the writes they record did happen.
func (s *manifestSink) flush(ctx context.Context, st *state.State, policy string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx = context.WithoutCancel(ctx)
	for dest, entries := range s.entries {
		if err := st.AppendManifest(ctx, policy, dest, entries...); err != nil {
			return err
		}
	}
	s.entries = nil
	return nil
}

func (a *Activities) observe(policy, destination string, sv SourceVersion, res *TransferResult, err error, final bool) {
	if a.Metrics == nil {
		return
	}
	if err != nil {
		a.Metrics.Objects.WithLabelValues(policy, destination, OutcomeFailed).Inc()
		return
	}
	a.Metrics.Objects.WithLabelValues(policy, destination, res.Outcome).Inc()
	if res.Outcome == OutcomeCopied || res.Outcome == OutcomeStaged {
		a.Metrics.Bytes.WithLabelValues(policy, destination).Add(float64(res.Bytes))
	}
	if final && res.Outcome == OutcomeCopied && !sv.ModTime.IsZero() {
		a.Metrics.Lag.WithLabelValues(policy, destination).Observe(time.Since(sv.ModTime).Seconds())
	}
}

// Commit makes a staged version visible under its final key with a server-side copy
// guarded like a direct write. A retry after a lost answer finds the final key
// already holding the hash and reports it skipped.
func (a *Activities) Commit(ctx context.Context, in TransferInput) (*TransferResult, error) {
	p, err := a.policy(in.Policy)
	if err != nil {
		return nil, err
	}
	_, dst, err := a.destination(ctx, p, in.Destination)
	if err != nil {
		return nil, err
	}
	return a.commit(ctx, p, dst, in, nil, in.Final)
}

// commit is Commit's logic, shared with CommitChunk, which collects the manifest
// entries in sink and heartbeats for all its keys itself. With seen (what the stage
// found under the final key) the first try writes with that as its precondition and
// skips the look: a precondition failure means another writer came in between, and
// the look and decision that follow are those of a commit without it.
func (a *Activities) commit(ctx context.Context, p *config.Policy, dst store.Store, in TransferInput, sink *manifestSink, seen *FinalState) (*TransferResult, error) {
	attrs := &store.Attributes{ContentType: in.Source.ContentType, SHA256: in.Source.SHA256, SourceVersion: in.Source.Version,
		SourceSize: in.Source.Size, Metadata: in.Source.Metadata}
	for attempt := 0; ; attempt++ {
		current := &store.Attributes{}
		exists := false
		if attempt == 0 && seen != nil {
			current.ETag, exists = seen.ETag, seen.Exists
		} else {
			got, err := dst.Stat(ctx, in.Key)
			if err != nil && !store.IsNotFound(err) {
				return nil, asActivityError(err)
			}
			if exists = err == nil; exists {
				current = got
			}
		}
		if exists && current.SHA256 == in.Source.SHA256 {
			return &TransferResult{Outcome: OutcomeSkipped, ETag: current.ETag}, nil
		}
		if exists && newerThan(current.SourceVersion, in.Source.Version) {
			return &TransferResult{Outcome: OutcomeSuperseded, ETag: current.ETag}, nil
		}
		if exists {
			if err := a.trash(ctx, p, dst, in.Key, current.ETag); err != nil {
				return nil, err
			}
		}
		pre := store.Precondition{IfNoneMatch: !exists}
		if exists {
			pre.IfMatch = current.ETag
		}
		stop := func() {}
		if sink == nil {
			stop = keepAlive(ctx, nil)
		}
		obj, err := dst.Copy(ctx, in.Key, in.StagingKey, store.CopyOptions{Attributes: attrs, Precondition: pre})
		stop()
		if store.IsPrecondition(err) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, asActivityError(err)
		}
		if err := a.committed(ctx, p.Name, in.Destination, in.Key, in.Source, obj, sink); err != nil {
			return nil, err
		}
		res := &TransferResult{Outcome: OutcomeCopied, Bytes: obj.Size, ETag: obj.ETag}
		a.observe(p.Name, in.Destination, in.Source, res, nil, true)
		return res, nil
	}
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

// UploadAborter is implemented by drivers that can find and abort unfinished
// multipart uploads of a key (S3), which a crashed transfer may leave behind.
type UploadAborter interface {
	AbortUploads(ctx context.Context, key string) error
}

// cleanupConcurrency is how many stages one Cleanup removes at once: an atomic
// batch cleans a page of them, and a delete costs ~14 ms on Azurite.
const cleanupConcurrency = 16

// Cleanup removes staging objects and aborts their unfinished uploads: the
// compensation of atomic mode and its last step after a commit.
func (a *Activities) Cleanup(ctx context.Context, in CleanupInput) error {
	p, err := a.policy(in.Policy)
	if err != nil {
		return err
	}
	_, dst, err := a.destination(ctx, p, in.Destination)
	if err != nil {
		return err
	}
	for _, k := range in.Keys {
		if !strings.HasPrefix(k, store.InternalPrefix) {
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("refusing to clean up %q: not a staging key", k), ErrInvalid, nil)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cleanupConcurrency)
	for _, k := range in.Keys {
		g.Go(func() error {
			if ab, ok := dst.(UploadAborter); ok {
				if err := ab.AbortUploads(gctx, k); err != nil {
					return asActivityError(err)
				}
			}
			return asActivityError(dst.Delete(gctx, k, store.DeleteOptions{}))
		})
	}
	return g.Wait()
}

// DeleteReplica propagates a source delete to one destination (mirror mode). An
// object whose recorded source version is newer than the delete's is kept.
func (a *Activities) DeleteReplica(ctx context.Context, in DeleteInput) (*TransferResult, error) {
	p, err := a.policy(in.Policy)
	if err != nil {
		return nil, err
	}
	_, dst, err := a.destination(ctx, p, in.Destination)
	if err != nil {
		return nil, err
	}
	current, err := dst.Stat(ctx, in.Key)
	if store.IsNotFound(err) {
		return &TransferResult{Outcome: OutcomeSkipped}, nil
	}
	if err != nil {
		return nil, asActivityError(err)
	}
	if err := dst.Delete(ctx, in.Key, store.DeleteOptions{}); err != nil {
		return nil, asActivityError(err)
	}
	st, err := a.State(ctx)
	if err != nil {
		return nil, asActivityError(err)
	}
	if err := st.AppendManifest(ctx, p.Name, in.Destination, state.ManifestEntry{Key: in.Key, ETag: current.ETag, Deleted: true}); err != nil {
		return nil, asActivityError(err)
	}
	if a.Metrics != nil {
		a.Metrics.Objects.WithLabelValues(p.Name, in.Destination, OutcomeDeleted).Inc()
	}
	return &TransferResult{Outcome: OutcomeDeleted, ETag: current.ETag}, nil
}

// RefreshDeadLetterGauge sets replicator_dead_letters from the state location, so the
// gauge counts the records that exist, whichever worker wrote or cleared them.
func (a *Activities) RefreshDeadLetterGauge(ctx context.Context) error {
	if a.Metrics == nil {
		return nil
	}
	st, err := a.State(ctx)
	if err != nil {
		return err
	}
	for _, p := range a.Config.Policies {
		counts, err := st.CountDeadLetters(ctx, p.Name)
		if err != nil {
			return err
		}
		for _, d := range p.Destinations {
			a.Metrics.DeadLetters.WithLabelValues(p.Name, d.Name).Set(float64(counts[d.Name]))
		}
	}
	return nil
}

// RecordDeadLetter writes the record of a permanent failure.
func (a *Activities) RecordDeadLetter(ctx context.Context, in DeadLetterInput) error {
	st, err := a.State(ctx)
	if err != nil {
		return asActivityError(err)
	}
	if err := st.RecordDeadLetter(ctx, state.DeadLetter{
		Policy: in.Policy, Key: in.Key, Destination: in.Destination, Class: in.Class,
		Message: in.Message, Attempts: in.Attempts, WorkflowID: in.WorkflowID,
	}); err != nil {
		return asActivityError(err)
	}
	if a.Metrics != nil {
		if counts, err := st.CountDeadLetters(ctx, in.Policy); err == nil {
			a.Metrics.DeadLetters.WithLabelValues(in.Policy, in.Destination).Set(float64(counts[in.Destination]))
		}
	}
	return nil
}
