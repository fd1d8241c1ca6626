// Command worker runs the replicator's Temporal worker: it polls the task queue
// "replication" (and "replication-<destination>" for destinations with a dedicated
// queue), runs the workflows and activities, and serves /metrics and /healthz.
//
// Usage: worker [--config replicator.yaml] [--queues replication,replication-aws-eu]
// [--metrics-addr 127.0.0.1:9464]
package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudrepl/replicator/internal/codec"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/trigger"
	"github.com/cloudrepl/replicator/internal/wire"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/worker"

	"github.com/cloudrepl/replicator/activities"
	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/metrics"
	"github.com/cloudrepl/replicator/internal/temporalclient"
	"github.com/cloudrepl/replicator/internal/version"
	"github.com/cloudrepl/replicator/workflows"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run() error {
	configPath := flag.String("config", "", "config file (default $REPLICATOR_CONFIG, else ./replicator.yaml)")
	queues := flag.String("queues", "", "comma-separated task queues to poll (default: replication and every dedicated destination queue of the config)")
	metricsAddr := flag.String("metrics-addr", envOr("REPLICATOR_METRICS_ADDR", "127.0.0.1:9464"), "address of /metrics and /healthz")
	stopTimeout := flag.Duration("stop-timeout", 30*time.Second, "how long running activities get to finish on SIGTERM before they are handed over")
	profile := flag.Bool("pprof", false, "also serve Go's profiler under /debug/pprof/ on the metrics address")
	showVersion := flag.Bool("version", false, "print the version stamped at build time and exit")
	eventsAddr := flag.String("events-addr", os.Getenv("REPLICATOR_EVENTS_ADDR"), "serve object-change notifications of bucket sources (S3 and MinIO webhooks, GCS Pub/Sub push, Azure Event Grid) on this address, under /events/s3, /events/gcs and /events/azure; requests must carry $REPLICATOR_EVENTS_SECRET; off when empty")
	watchSources := flag.Bool("watch", false, "also watch the source directory of every policy with watch settings and replicate changes as they happen (one watcher per policy among all workers)")
	codecAddr := flag.String("codec-addr", os.Getenv("REPLICATOR_CODEC_ADDR"), "serve the payload codec of REPLICATOR_CODEC_KEYS on this address (POST /encode, /decode: Temporal's remote codec, for the Web UI's codec endpoint setting); $REPLICATOR_CODEC_TOKEN, when set, is required as a bearer token; $REPLICATOR_CODEC_CORS_ORIGINS lists the Web UI origins allowed (default the local UI); off when empty")
	membershipInterval := flag.Duration("membership-interval", 10*time.Second, "how often the worker renews its membership record in the state location and re-reads the others', to share each destination's limits between the workers polling its queue (a record expires after three intervals)")
	memoryLimit := flag.String("memory-limit", "512MiB", "soft memory limit of the Go runtime (GOMEMLIMIT, when set, wins): the GC works harder near it instead of letting upload buffers pile up; 0 turns it off")
	flag.Parse()
	if *showVersion {
		fmt.Println("worker", version.String())
		return nil
	}

	if os.Getenv("GOMEMLIMIT") == "" {
		limit, err := config.ParseByteSize(*memoryLimit)
		if err != nil {
			return fmt.Errorf("--memory-limit: %w", err)
		}
		if limit > 0 {
			// Upload buffers are pointer-free, so collecting them more often costs
			// little; without a limit the heap may double the bytes in flight.
			debug.SetMemoryLimit(int64(limit))
		}
	}

	cfg, path, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	// Checked here, not when the first event or watched change arrives: a worker that
	// would name a private policy's workflows by their keys must not start.
	naming, err := trigger.NewNaming(cfg)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	log.Info("config loaded", "path", path, "policies", len(cfg.Policies))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return fmt.Errorf("metrics exporter: %w", err)
	}
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter)).Meter("temporal-sdk")

	c, err := temporalclient.Dial(func(o *client.Options) {
		o.MetricsHandler = temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{Meter: meter})
	})
	if err != nil {
		return err
	}
	defer c.Close()

	stores := backends.NewCache()
	stores.WrapTransport = m.CountRequests
	stores.WrapDriver = wrapDriver
	defer stores.Close()
	// The state location is opened once, here: a worker that cannot reach it says so
	// at start instead of failing every activity with the first error it met.
	openCtx, cancelOpen := context.WithTimeout(context.Background(), time.Minute)
	st, err := activities.OpenState(openCtx, cfg, stores)
	cancelOpen()
	if err != nil {
		return fmt.Errorf("open the state location %s: %w", redacted(cfg.State), err)
	}
	acts := activities.New(cfg, stores, st, m)

	var healthy atomic.Bool
	srv, err := serve(*metricsAddr, reg, c, &healthy, *profile)
	if err != nil {
		return err
	}
	defer srv.Close()
	log.Info("serving /metrics and /healthz", "addr", srv.Addr)

	polled := taskQueues(cfg, *queues)
	// The limits in replicator.yaml hold for the cluster: the worker joins before
	// it polls, so it starts with its share, not with the whole.
	members := &membership{st: st, acts: acts, log: log, interval: *membershipInterval, self: state.Member{ID: workerID()}}
	for _, q := range polled {
		members.self.Queues = append(members.self.Queues, q.name)
	}
	joinCtx, cancelJoin := context.WithTimeout(context.Background(), 30*time.Second)
	if err := members.refresh(joinCtx); err != nil {
		log.Warn("join the cluster's membership (limits stay this worker's alone until it succeeds)", "err", err)
	}
	cancelJoin()
	for _, q := range polled {
		w := worker.New(c, q.name, worker.Options{
			MaxConcurrentActivityExecutionSize: q.concurrency,
			WorkerStopTimeout:                  *stopTimeout,
			// Heartbeats carry transfer progress: the SDK's default throttle (0.8 of
			// the heartbeat timeout, 24 s at 30 s) leaves `--wait` bars and the Web
			// UI's pending activities a long way behind the bytes.
			MaxHeartbeatThrottleInterval: 2 * time.Second,
		})
		workflows.Register(w)
		activities.Register(w, acts)
		if err := w.Start(); err != nil {
			return fmt.Errorf("start worker on task queue %s: %w", q.name, err)
		}
		defer w.Stop()
		log.Info("polling", "task_queue", q.name, "max_concurrent_activities", q.concurrency)
	}
	healthy.Store(true)
	ctx, stopLoops := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stopLoops()
	gauges := make(chan struct{})
	go func() {
		defer close(gauges)
		refreshGauges(ctx, log, acts)
	}()
	membershipDone := make(chan struct{})
	go func() {
		defer close(membershipDone)
		members.run(ctx)
	}()
	if *codecAddr != "" {
		stopCodec, err := serveCodec(*codecAddr, log)
		if err != nil {
			return err
		}
		defer stopCodec()
	}
	if *eventsAddr != "" {
		stopEvents, err := serveEvents(*eventsAddr, os.Getenv("REPLICATOR_EVENTS_SECRET"), cfg, naming, c, log)
		if err != nil {
			return err
		}
		defer stopEvents()
	}
	if *watchSources {
		waitWatchers, err := watchPolicies(ctx, log, cfg, naming, c, st, stores)
		if err != nil {
			return err
		}
		defer waitWatchers()
	}

	<-ctx.Done()
	log.Info("stopping: running activities get the stop timeout to finish", "timeout", *stopTimeout)
	healthy.Store(false)
	<-gauges
	<-membershipDone
	return nil
}

// membership keeps this worker's record in the state location and shares every
// destination's limits between the workers polling its queue.
type membership struct {
	st       *state.State
	acts     *activities.Activities
	log      *slog.Logger
	interval time.Duration
	self     state.Member
	last     map[string]int
}

// refresh renews the record, counts the members per queue and applies the share.
func (m *membership) refresh(ctx context.Context) error {
	now := time.Now()
	m.self.Expires = now.Add(3 * m.interval)
	if err := m.st.Renew(ctx, m.self); err != nil {
		return err
	}
	members, err := m.st.Members(ctx, now)
	if err != nil {
		return err
	}
	counts := state.WorkersPerQueue(members)
	for _, q := range m.self.Queues {
		counts[q] = max(counts[q], 1) // this worker, whatever a listing lagging behind says
		if m.acts.Metrics != nil {
			m.acts.Metrics.ClusterWorkers.WithLabelValues(q).Set(float64(counts[q]))
		}
	}
	if !maps.Equal(counts, m.last) {
		m.log.Info("sharing limits between workers", "workers_per_queue", counts)
		m.last = counts
	}
	m.acts.ApplyShare(counts)
	return nil
}

// run refreshes every interval until ctx ends, then leaves, so the others take this
// worker's share at their next refresh.
func (m *membership) run(ctx context.Context) {
	tick := time.NewTicker(m.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := m.st.Leave(lctx, m.self.ID); err != nil {
				m.log.Warn("leave the membership", "err", err)
			}
			return
		case <-tick.C:
			rctx, cancel := context.WithTimeout(ctx, m.interval)
			if err := m.refresh(rctx); err != nil && ctx.Err() == nil {
				m.log.Warn("refresh the membership (the limits' share stays as it was)", "err", err)
			}
			cancel()
		}
	}
}

// workerID names this worker process in the membership: host, process and a random
// part, so two workers on one host never share a record.
func workerID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// refreshGauges keeps the gauges that describe shared state current until ctx ends.
func refreshGauges(ctx context.Context, log *slog.Logger, acts *activities.Activities) {
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := acts.RefreshSharedGauges(rctx); err != nil && ctx.Err() == nil {
			log.Warn("refresh the gauges of shared state (dead letters, drift, last reconcile)", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// redacted is a location URL without its query and user information, which may hold
// credentials, for messages.
func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

type queue struct {
	name        string
	concurrency int
}

// taskQueues lists the queues this worker polls: those asked for, or the default
// queue plus every dedicated destination queue, each sized to its destinations'
// concurrency.
func taskQueues(cfg *config.File, asked string) []queue {
	sizes := map[string]int{wire.DefaultTaskQueue: 0}
	for i := range cfg.Policies {
		p := &cfg.Policies[i]
		for j := range p.Destinations {
			d := &p.Destinations[j]
			sizes[d.TaskQueue(wire.DefaultTaskQueue)] += p.LimitsFor(d).Concurrency
		}
	}
	var names []string
	if asked != "" {
		names = strings.Split(asked, ",")
	} else {
		for n := range sizes {
			names = append(names, n)
		}
		slices.Sort(names)
	}
	var out []queue
	for _, n := range names {
		n = strings.TrimSpace(n)
		out = append(out, queue{name: n, concurrency: max(sizes[n], 16)})
	}
	return out
}

func serve(addr string, reg *prometheus.Registry, c client.Client, healthy *atomic.Bool, profile bool) (*http.Server, error) {
	mux := http.NewServeMux()
	if profile {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if !healthy.Load() {
			http.Error(w, "worker not running", http.StatusServiceUnavailable)
			return
		}
		if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
			http.Error(w, "temporal unreachable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w (set --metrics-addr or REPLICATOR_METRICS_ADDR)", addr, err)
	}
	var handler http.Handler = mux
	if token := os.Getenv("REPLICATOR_METRICS_TOKEN"); token != "" {
		handler = requireBearer(token, mux)
	}
	srv := &http.Server{Addr: ln.Addr().String(), Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("metrics server", "err", err)
		}
	}()
	return srv, nil
}

// serveCodec serves the payload codec for the Web UI.
func serveCodec(addr string, log *slog.Logger) (stop func(), err error) {
	c, err := codec.FromEnv()
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("--codec-addr needs the codec's keys: set %s (id=base64 32-byte key, the first encrypts) or %s", codec.KeysEnv, codec.KeysFileEnv)
	}
	origins := strings.Split(envOr("REPLICATOR_CODEC_CORS_ORIGINS", "http://127.0.0.1:8233,http://localhost:8233"), ",")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--codec-addr %s: %w", addr, err)
	}
	srv := &http.Server{Handler: c.Handler(os.Getenv("REPLICATOR_CODEC_TOKEN"), origins), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("codec server stopped", "err", err)
		}
	}()
	log.Info("serving the payload codec", "addr", ln.Addr().String(), "active_key", c.ActiveKeyID(), "token_required", os.Getenv("REPLICATOR_CODEC_TOKEN") != "")
	return func() { _ = srv.Close() }, nil
}

// requireBearer serves next only to requests that carry the token as a bearer
// token (compared in constant time): on an address other workloads reach, the
// metrics, the health check and the profiler are not everyone's.
func requireBearer(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="replicator worker"`)
			http.Error(w, "this endpoint requires the bearer token of REPLICATOR_METRICS_TOKEN (Authorization: Bearer <token>)", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// wrapDriver is set only in builds with the faultinject tag (worker/faults.go).
var wrapDriver func(backends.Spec, store.Store) store.Store

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
