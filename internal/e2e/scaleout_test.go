//go:build integration

package e2e

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// gauge reads one sample of the worker's /metrics: the metric with exactly these
// labels (in the exposition's order), or -1 when absent.
func gauge(t *testing.T, base, series string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, series)), 64)
			must(t, err)
			return v
		}
	}
	return -1
}

// waitForGauge waits until the worker reports want for series (its refresh loops run
// on their own clock), failing after 30 s.
func waitForGauge(t *testing.T, p *proc, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for gauge(t, p.metricsURL(t), series) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed %v; want %v", series, gauge(t, p.metricsURL(t), series), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGaugesOfSharedStateAgreeAcrossWorkers: drift and the last reconcile's time come
// from the state location, so a worker that ran nothing (started after the reconcile,
// as after a restart or a scale-out) reports what the one that ran it reports.
func TestGaugesOfSharedStateAgreeAcrossWorkers(t *testing.T) {
	w := newWorld(t, worldOptions{})
	first := w.startWorker()
	w.writeFile("a.txt", []byte("a"))
	w.writeFile("b.txt", []byte("b"))
	if r, code := w.reconcile("--dry-run"); code != 0 || r.dest("s3").Copy != 2 {
		t.Fatalf("dry run: exit %d %+v", code, r.Result)
	}
	drift := fmt.Sprintf(`replicator_drift_objects{destination="s3",kind="copy",policy=%q}`, w.policy)
	last := fmt.Sprintf(`replicator_last_reconcile_success_timestamp_seconds{policy=%q}`, w.policy)
	if got := gauge(t, first.metricsURL(t), drift); got != 2 {
		t.Fatalf("drift on the worker that planned: %v; want 2", got)
	}
	second := w.startWorker()
	waitForGauge(t, second, drift, 2) // a worker that ran nothing reports what the first does
	if got := gauge(t, second.metricsURL(t), last); got != 0 {
		t.Errorf("last success before any reconcile succeeded: %v; want 0", got)
	}
	first.stop(t)
	second.stop(t)

	before := time.Now()
	w.startWorker()
	if r, code := w.reconcile(); code != 0 || r.Result.Outcome != "ok" {
		t.Fatalf("reconcile: exit %d %+v", code, r.Result)
	}
	restarted := w.startWorker()
	waitForGauge(t, restarted, drift, 0)
	if got := gauge(t, restarted.metricsURL(t), last); got < float64(before.Unix()) || got > float64(time.Now().Unix()+1) {
		t.Errorf("last success on a worker started after the reconcile: %v; want the reconcile's time (after %d)", got, before.Unix())
	}
}

// TestTwoWorkersOneKilledMidBatch runs a batch on two worker processes and kills one
// with SIGKILL while it transfers: its activities time out on their heartbeats and
// the other worker takes them over; every file ends on every destination with its
// SHA-256, read back from the servers.
func TestTwoWorkersOneKilledMidBatch(t *testing.T) {
	// A bandwidth limit keeps the batch running long enough to kill a worker in it.
	w := newWorld(t, worldOptions{extra: "    limits: {bandwidth: 8MiB/s}\n"})
	var keys []string
	want := map[string]string{}
	for i := range 60 {
		size := 64 << 10
		if i%10 == 0 {
			size = 6 << 20
		}
		b := make([]byte, size)
		_, _ = rand.Read(b)
		k := fmt.Sprintf("batch/%02d/file-%03d.bin", i%7, i)
		want[k] = w.writeFile(k, b)
		keys = append(keys, k)
	}
	list := filepath.Join(w.dir, "keys.txt")
	must(t, os.WriteFile(list, []byte(strings.Join(keys, "\n")+"\n"), 0o644))
	workers := []*proc{w.startWorker(), w.startWorker()}
	type result struct {
		out  string
		code int
	}
	done := make(chan result, 1)
	go func() {
		out, code := w.starter("batch", list, "--wait", "--json", "--id", "scale-out")
		done <- result{out, code}
	}()
	// Kill whichever worker is sending bytes (a page of the key list goes to one
	// activity, on either worker).
	var victim *proc
	deadline := time.Now().Add(60 * time.Second)
	for victim == nil {
		for _, p := range workers {
			if gauge(t, p.metricsURL(t), `replicator_backend_sent_bytes_total{store="s3"}`) > 0 {
				victim = p
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no worker ever sent a byte:\n%s\n%s", workers[0].out.String(), workers[1].out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	victim.kill()
	var r result
	select {
	case r = <-done:
	case <-time.After(5 * time.Minute):
		t.Fatal("the batch did not end within 5 minutes of the kill")
	}
	if r.code != 0 {
		t.Fatalf("batch after a worker was killed: exit %d %s", r.code, r.out)
	}
	for _, dest := range []string{"s3", "gcs", "azure"} {
		s := w.destination(dest)
		for _, k := range keys {
			if got := readSHA(t, s, k); got != want[k] {
				t.Errorf("%s on %s: SHA-256 %s; want %s", k, dest, got, want[k])
			}
		}
	}
}

// TestLimitsHoldForTheCluster: two workers share each destination's limits (the
// gauges of both show half, summing to the policy's), the bytes both send to one
// destination during a batch stay near the policy's bandwidth and far below what two
// unshared workers would send (an upper bound only: a slow machine sends less), and a
// worker killed without leaving gives its share back once its record expires.
func TestLimitsHoldForTheCluster(t *testing.T) {
	const limit = 4 << 20
	w := newWorld(t, worldOptions{extra: "    limits: {bandwidth: 4MiB/s, concurrency: 4}\n"})
	w.workerArgs = []string{"--membership-interval", "1s"}
	first, second := w.startWorker(), w.startWorker()
	bw := fmt.Sprintf(`replicator_limit_bandwidth_bytes_per_second{destination="s3",policy=%q}`, w.policy)
	conc := fmt.Sprintf(`replicator_limit_concurrency{destination="s3",policy=%q}`, w.policy)
	for _, p := range []*proc{first, second} {
		waitForGauge(t, p, bw, limit/2)
		waitForGauge(t, p, conc, 2)
	}

	// 24 MiB in 256 files: four pages of the batch's key list, so that both workers
	// most likely run chunks of it at once (a page goes to one activity).
	var keys []string
	for i := range 256 {
		b := make([]byte, 96<<10)
		_, _ = rand.Read(b)
		k := fmt.Sprintf("limited/file-%03d.bin", i)
		w.writeFile(k, b)
		keys = append(keys, k)
	}
	list := filepath.Join(w.dir, "keys.txt")
	must(t, os.WriteFile(list, []byte(strings.Join(keys, "\n")+"\n"), 0o644))
	sent := func() float64 {
		return gauge(t, first.metricsURL(t), `replicator_backend_sent_bytes_total{store="s3"}`) +
			gauge(t, second.metricsURL(t), `replicator_backend_sent_bytes_total{store="s3"}`)
	}
	before, start := sent(), time.Now()
	if out, code := w.starter("batch", list, "--wait", "--json"); code != 0 {
		t.Fatalf("batch: exit %d %s", code, out)
	}
	rate := (sent() - before) / time.Since(start).Seconds()
	if gauge(t, first.metricsURL(t), `replicator_backend_sent_bytes_total{store="s3"}`) <= 0 || gauge(t, second.metricsURL(t), `replicator_backend_sent_bytes_total{store="s3"}`) <= 0 {
		// Temporal gave every page to one worker: the bound below still holds (one
		// worker at its half), but this run shows less than it could.
		t.Log("one worker ran every page of the batch")
	}
	// Each worker's limiter starts with a burst of its share's second: 24 MiB at the
	// shared 4 MiB/s take at least 5 s, unshared (8 MiB/s) 2 s.
	if rate > 1.5*limit {
		t.Errorf("two workers sent %.1f MiB/s to s3; the policy's limit is %d MiB/s for the cluster", rate/(1<<20), limit>>20)
	}
	t.Logf("two workers sent %.1f MiB/s to s3 under a cluster-wide limit of %d MiB/s", rate/(1<<20), limit>>20)

	first.kill() // no leave: its record expires after three intervals
	waitForGauge(t, second, bw, limit)
	waitForGauge(t, second, conc, 4)
}

// TestMetricsRequireTheBearerToken: with REPLICATOR_METRICS_TOKEN set, /metrics and
// /healthz answer only requests that carry it.
func TestMetricsRequireTheBearerToken(t *testing.T) {
	w := newWorld(t, worldOptions{})
	p := w.startWorker("REPLICATOR_METRICS_TOKEN=let-me-in")
	p.waitFor(t, "polling")
	base := p.metricsURL(t)
	get := func(path, auth string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		must(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/metrics", "/healthz"} {
		for _, auth := range []string{"", "Bearer wrong", "let-me-in"} {
			if code, body := get(path, auth); code != http.StatusUnauthorized || !strings.Contains(body, "REPLICATOR_METRICS_TOKEN") {
				t.Errorf("%s with %q: %d %q; want 401 naming the setting", path, auth, code, body)
			}
		}
	}
	if code, body := get("/metrics", "Bearer let-me-in"); code != http.StatusOK || !strings.Contains(body, "replicator_") {
		t.Errorf("/metrics with the token: %d", code)
	}
	if code, body := get("/healthz", "Bearer let-me-in"); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz with the token: %d %q", code, body)
	}
}
