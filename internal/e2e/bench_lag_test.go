//go:build integration

package e2e

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
)

// lagHistogram is the cumulative bucket counts of replicator_lag_seconds for one
// policy, scraped from a worker's /metrics.
type lagHistogram struct {
	bounds []float64 // upper bounds, +Inf last
	counts []float64 // cumulative counts
}

func scrapeLag(t *testing.T, metricsURL, policy string) lagHistogram {
	t.Helper()
	resp, err := http.Get(metricsURL + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	var h lagHistogram
	prefix := fmt.Sprintf(`replicator_lag_seconds_bucket{policy=%q,le="`, policy)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		le, rest, _ := strings.Cut(line, `"} `)
		bound, err := strconv.ParseFloat(le, 64)
		must(t, err)
		count, err := strconv.ParseFloat(rest, 64)
		must(t, err)
		h.bounds, h.counts = append(h.bounds, bound), append(h.counts, count)
	}
	return h
}

// since is the histogram of what was observed after before.
func (h lagHistogram) since(before lagHistogram) lagHistogram {
	d := lagHistogram{bounds: h.bounds, counts: slices.Clone(h.counts)}
	for i := range d.counts {
		if i < len(before.counts) {
			d.counts[i] -= before.counts[i]
		}
	}
	return d
}

func (h lagHistogram) total() float64 {
	if len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// quantile interpolates the q-quantile linearly within its bucket, as Prometheus's
// histogram_quantile does.
func (h lagHistogram) quantile(q float64) float64 {
	n := h.total()
	if n == 0 {
		return math.NaN()
	}
	rank := q * n
	lower, below := 0.0, 0.0
	for i, c := range h.counts {
		if c >= rank {
			upper := h.bounds[i]
			if math.IsInf(upper, 1) {
				return lower
			}
			return lower + (upper-lower)*(rank-below)/max(c-below, 1)
		}
		lower, below = h.bounds[i], c
	}
	return lower
}

// TestBenchLag writes 1 KiB files at steady rates into a directory a worker watches
// and reports, per rate, the lag from each file's write to its last destination
// (replicator_lag_seconds) and the workflows started per file.
func TestBenchLag(t *testing.T) {
	if os.Getenv("REPLICATOR_BENCH") != "1" {
		t.Skip("a benchmark: make bench-lag")
	}
	type phase struct {
		rate int           // files per second
		dur  time.Duration // how long it is kept up
	}
	phases := []phase{{20, 30 * time.Second}, {50, 20 * time.Second}, {100, 20 * time.Second}, {200, 20 * time.Second}, {400, 15 * time.Second}}
	const debounce = 250 * time.Millisecond
	w := newWorld(t, worldOptions{extra: fmt.Sprintf("    watch: {mode: inotify, debounce: %s}\n", debounce)})
	w.workerArgs = []string{"--watch"}
	wk := w.startWorker()
	wk.waitFor(t, "msg=watching")
	time.Sleep(time.Second)
	metrics := wk.metricsURL(t)
	payload := []byte(strings.Repeat("x", 1024))

	var rows, targets []string
	best := 0
	for i, ph := range phases {
		before := scrapeLag(t, metrics, w.policy)
		start := time.Now().UTC()
		files := ph.rate * int(ph.dur/time.Second)
		tick := time.NewTicker(time.Second / time.Duration(ph.rate))
		for n := range files {
			<-tick.C
			must(t, os.WriteFile(fmt.Sprintf("%s/r%d-%06d.bin", w.src, ph.rate, n), payload, 0o644))
		}
		tick.Stop()
		// Wait until every file of the phase was observed, or give up a minute later.
		var got lagHistogram
		deadline := time.Now().Add(time.Minute)
		for {
			got = scrapeLag(t, metrics, w.policy).since(before)
			if int(got.total()) >= files || time.Now().After(deadline) {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		resp, err := temporalClient(t).CountWorkflow(t.Context(), &workflowservice.CountWorkflowExecutionsRequest{
			Query: fmt.Sprintf("ReplicationPolicy = %q AND StartTime >= %q", w.policy, start.Format(time.RFC3339Nano))})
		must(t, err)
		p50, p99 := got.quantile(0.5), got.quantile(0.99)
		done := int(got.total())
		rows = append(rows, fmt.Sprintf("| %d files/s | %d | %d | %.2f s | %.2f s | %d (%.3f per file) |", ph.rate, files, done, p50, p99, resp.Count, float64(resp.Count)/float64(files)))
		t.Logf("phase %d: %d files/s, %d of %d files, p50 %.2f s, p99 %.2f s, %d workflows", i, ph.rate, done, files, p50, p99, resp.Count)
		if done == files && p99 < 5 {
			best = ph.rate
		}
		if i == 0 {
			verdict := "met"
			if !(done == files && p99 < 2) {
				verdict = "missed"
			}
			targets = append(targets, fmt.Sprintf("- p99 at a steady 20 files/s: %.2f s (target < 2 s: %s)", p99, verdict))
		}
	}
	verdict := "met"
	if best < 200 {
		verdict = "missed"
	}
	targets = append(targets, fmt.Sprintf("- highest steady rate tried with p99 under 5 s: %d files/s (goal 200 files/s: %s)", best, verdict))
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(l, "model name\t: "); ok {
				cpu = name
				break
			}
		}
	}
	table := fmt.Sprintf("## Lag under worker --watch: 1 KiB files at steady rates to MinIO, fake-gcs-server and Azurite\n\n"+
		"Machine: %d cores (%s), %s. One worker with `--watch` (inotify, `debounce: %s`), eventual mode, copy mode; each phase writes 1 KiB files into the watched directory at a steady rate, one after the other. "+
		"Lag is `replicator_lag_seconds` (a file's modification time to the moment the last of its three destinations holds it), its quantiles interpolated within the histogram's buckets (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5 s, ...) as Prometheus's histogram_quantile does; workflows are counted on the Temporal server (ReplicateFile runs and batches started during the phase).\n\n"+
		"| rate | files written | files replicated | p50 lag | p99 lag | workflows |\n| --- | --- | --- | --- | --- | --- |\n%s\n\nTargets:\n\n%s\n",
		runtime.NumCPU(), cpu, runtime.Version(), debounce, strings.Join(rows, "\n"), strings.Join(targets, "\n"))
	fmt.Println(table)
	if out := os.Getenv("REPLICATOR_BENCH_OUT"); out != "" {
		must(t, os.WriteFile(out, []byte(table), 0o644))
	}
}
