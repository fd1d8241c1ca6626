//go:build integration

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/store"
)

// benchCase is one transfer workload of `make bench`.
type benchCase struct {
	name  string
	files int
	size  int
	runs  int
	// atomicRuns is how many of the runs also time atomic mode, which runs a
	// workflow per file: over 8 minutes for 2,000 small files here.
	atomicRuns int
}

// writeBenchData writes a case's files (the same bytes every time) to dir once.
func writeBenchData(t *testing.T, dir string, c benchCase) []string {
	rng := rand.New(rand.NewPCG(uint64(c.files), uint64(c.size)))
	buf := make([]byte, c.size)
	var keys []string
	for i := range c.files {
		key := fmt.Sprintf("%s/f%05d.bin", c.name, i)
		p := filepath.Join(dir, key)
		keys = append(keys, key)
		if fi, err := os.Stat(p); err == nil && fi.Size() == int64(c.size) {
			continue
		}
		for j := 0; j < len(buf); j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && j+k < len(buf); k++ {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, buf, 0o644))
	}
	return keys
}

// landed sums the bytes of the case's objects on a destination, read from its
// server, then deletes the large ones, so that Azurite, which keeps them in memory,
// does not grow by gigabytes run after run. Small ones stay: Azurite takes ~14 ms
// per delete, longer than the run that wrote them.
func landed(t *testing.T, s store.Store, prefix string) int64 {
	ctx := context.Background()
	var n int64
	var keys []string
	for o, err := range s.List(ctx, store.ListOptions{Prefix: prefix}) {
		must(t, err)
		n += o.Size
		if o.Size >= 1<<20 {
			keys = append(keys, o.Key)
		}
	}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, k := range keys {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.Delete(ctx, k); err != nil {
				t.Errorf("clean up %s: %v", k, err)
			}
		})
	}
	wg.Wait()
	return n
}

// checkLanded fails the benchmark unless every destination under prefix holds the
// case's bytes, and clears them.
func checkLanded(t *testing.T, who string, c benchCase, prefix string) {
	w := &world{t: t, prefix: prefix}
	want := int64(c.files) * int64(c.size)
	for _, d := range []string{"s3", "gcs", "azure"} {
		if got := landed(t, w.destination(d), c.name+"/"); got != want {
			t.Fatalf("%s, %s: %d bytes landed on %s, want %d", who, c.name, got, d, want)
		}
	}
}

// rcloneCopyAll runs one `rclone copy` per destination side by side, as users do.
func rcloneCopyAll(t *testing.T, src, prefix string) time.Duration {
	bin := filepath.Join(os.Getenv("REPLICATOR_TOOLS_BIN"), "rclone")
	start := time.Now()
	var wg sync.WaitGroup
	for _, target := range []string{"s3:" + s3Bucket + "/" + prefix, "gcs:" + gcsBucket + "/" + prefix, "azure:" + azContainer + "/" + prefix} {
		wg.Go(func() {
			cmd := exec.Command(bin, "copy", "--transfers", "16", src, target)
			cmd.Env = append(os.Environ(), rcloneEnv()...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Errorf("rclone copy to %s: %v\n%s", target, err, out.String())
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// limitBinary builds deploy/bench/limit once.
func limitBinary(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "limit")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/cloudrepl/replicator/deploy/bench/limit").CombinedOutput(); err != nil {
		t.Fatalf("build the limit program: %v\n%s", err, out)
	}
	return bin
}

// runLimit uploads src to the three servers with the SDKs alone (case 5).
func runLimit(t *testing.T, bin, src, prefix string) time.Duration {
	cmd := exec.Command(bin, "--src", src, "--prefix", prefix, "--s3-bucket", s3Bucket, "--gcs-bucket", gcsBucket, "--azure-container", azContainer)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("limit: %v\n%s", err, out.String())
	}
	return time.Since(start)
}

// gcsSingleRequest is the bench config's tuning for fake-gcs-server, which rehashes
// the whole object on every resumable chunk: one streamed request per object.
const gcsSingleRequest = "\n        tuning: {single_request: true}"

// runReplicator replicates the case's keys with a fresh world (prefix, state,
// worker) in the given consistency mode; it returns the time, the prefix the bytes
// landed under and the worker's peak RSS.
func runReplicator(t *testing.T, c benchCase, data string, keys []string, consistency string) (time.Duration, string, int64) {
	w := newWorld(t, worldOptions{consistency: consistency, gcsExtra: gcsSingleRequest})
	for _, k := range keys { // hard links: the source root never reaches outside itself
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(w.src, k)), 0o755))
		must(t, os.Link(filepath.Join(data, k), filepath.Join(w.src, k)))
	}
	list := filepath.Join(w.dir, "keys.txt")
	must(t, os.WriteFile(list, []byte(strings.Join(keys, "\n")+"\n"), 0o644))
	profile := os.Getenv("REPLICATOR_BENCH_PROFILE") // a directory for CPU profiles
	if profile != "" {
		w.workerArgs = []string{"--pprof"}
	}
	wk := w.startWorker()
	peakRSS(t, wk.cmd.Process.Pid)
	if profile != "" {
		go func() {
			resp, err := http.Get(wk.metricsURL(t) + "/debug/pprof/profile?seconds=10")
			if err != nil {
				t.Logf("profile: %v", err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			_ = os.WriteFile(filepath.Join(profile, fmt.Sprintf("%s-%s-%d.pprof", c.name, consistency, time.Now().Unix())), b, 0o644)
		}()
	}
	start := time.Now()
	if c.files == 1 {
		if res, code := w.replicateWait(keys[0]); code != 0 {
			t.Fatalf("%s: replicate failed: %+v", c.name, res)
		}
	} else if out, code := w.starter("batch", list, "--wait", "--json"); code != 0 {
		t.Fatalf("%s: batch failed: %s", c.name, out)
	}
	el := time.Since(start)
	rss := peakRSS(t, wk.cmd.Process.Pid)
	wk.stop(t)
	return el, w.prefix, rss
}

// benchRow is one tool's runs of one case.
type benchRow struct {
	tool  string
	times []time.Duration
	rss   int64
}

// TestBenchTransfers is `make bench`: each case runs the replicator (eventual, then
// atomic), rclone and the SDK-only limit program alternately on the same servers,
// every run into a fresh prefix, checks that every byte landed on each server, and
// prints a markdown table written to $REPLICATOR_BENCH_OUT. It asserts nothing about
// time.
func TestBenchTransfers(t *testing.T) {
	if os.Getenv("REPLICATOR_BENCH") != "1" {
		t.Skip("a benchmark: run it with `make bench`")
	}
	cases := []benchCase{
		{name: "one-1GiB", files: 1, size: 1 << 30, runs: 3, atomicRuns: 1},
		{name: "2000x16KiB", files: 2000, size: 16 << 10, runs: 3, atomicRuns: 0},
		// Two runs: Azurite holds ~6.4 GiB per run with atomic rows, ~4.8 without, and
		// gives deleted blobs' memory back only every 10 minutes.
		{name: "200x8MiB", files: 200, size: 8 << 20, runs: 2, atomicRuns: 1},
	}
	// REPLICATOR_BENCH_CASES, REPLICATOR_BENCH_RUNS and REPLICATOR_BENCH_ATOMIC_RUNS
	// narrow a run while profiling.
	if only := os.Getenv("REPLICATOR_BENCH_CASES"); only != "" {
		cases = slices.DeleteFunc(cases, func(c benchCase) bool { return !slices.Contains(strings.Split(only, ","), c.name) })
	}
	if n, err := strconv.Atoi(os.Getenv("REPLICATOR_BENCH_RUNS")); err == nil && n > 0 {
		for i := range cases {
			cases[i].runs, cases[i].atomicRuns = n, min(n, cases[i].atomicRuns)
		}
	}
	if n, err := strconv.Atoi(os.Getenv("REPLICATOR_BENCH_ATOMIC_RUNS")); err == nil && n >= 0 {
		for i := range cases {
			cases[i].atomicRuns = min(n, cases[i].runs)
		}
	}
	if len(cases) == 0 {
		t.Fatal("REPLICATOR_BENCH_CASES names no case: use one-1GiB, 2000x16KiB or 200x8MiB")
	}
	data := filepath.Join(os.TempDir(), "replicator-bench-data")
	limit := limitBinary(t)
	var rows, targets []string
	for _, c := range cases {
		keys := writeBenchData(t, data, c)
		total := int64(c.files) * int64(c.size)
		eventual, atomic := &benchRow{tool: "replicator, eventual"}, &benchRow{tool: "replicator, atomic"}
		rclone, sdk := &benchRow{tool: "rclone copy ×3"}, &benchRow{tool: "limit (SDKs only)"}
		for run := range c.runs {
			for _, r := range []*benchRow{eventual, atomic} {
				if r == atomic && run >= c.atomicRuns {
					continue
				}
				mode := strings.TrimPrefix(r.tool, "replicator, ")
				el, prefix, rss := runReplicator(t, c, data, keys, mode)
				checkLanded(t, r.tool, c, prefix)
				r.times, r.rss = append(r.times, el), max(r.rss, rss)
				t.Logf("%s run %d: %s %.1f s, worker peak RSS %d MiB", c.name, run, r.tool, el.Seconds(), rss>>20)
			}
			prefix := fmt.Sprintf("rclone-%d-%d", run, time.Now().UnixNano())
			el := rcloneCopyAll(t, filepath.Join(data, c.name), prefix+"/"+c.name)
			checkLanded(t, rclone.tool, c, prefix)
			rclone.times = append(rclone.times, el)
			t.Logf("%s run %d: rclone %.1f s", c.name, run, el.Seconds())
			prefix = fmt.Sprintf("limit-%d-%d", run, time.Now().UnixNano())
			el = runLimit(t, limit, filepath.Join(data, c.name), prefix+"/"+c.name)
			checkLanded(t, sdk.tool, c, prefix)
			sdk.times = append(sdk.times, el)
			t.Logf("%s run %d: limit %.1f s", c.name, run, el.Seconds())
		}
		mr, ml := median(rclone.times).Seconds(), median(sdk.times).Seconds()
		me := median(eventual.times).Seconds()
		verdict := func(ok bool) string {
			if ok {
				return "met"
			}
			return "missed"
		}
		targets = append(targets, fmt.Sprintf("- %s: %.2fx rclone (target ≤ 1.00x: %s); %.0f%% of the limit (target ≥ 80%%: %s)",
			c.name, me/mr, verdict(me <= mr), 100*ml/me, verdict(ml/me >= 0.8)))
		if c.files == 1 {
			targets = append(targets, fmt.Sprintf("- %s: worker peak RSS %d MiB (target < 256 MiB: %s); stretch goal 0.60x rclone: %s",
				c.name, eventual.rss>>20, verdict(eventual.rss < 256<<20), verdict(me <= 0.6*mr)))
		}
		for _, r := range []*benchRow{eventual, atomic, rclone, sdk} {
			if len(r.times) == 0 {
				continue
			}
			m := median(r.times).Seconds()
			rss := ""
			if r.rss > 0 {
				rss = fmt.Sprintf("%d MiB", r.rss>>20)
			}
			rows = append(rows, fmt.Sprintf("| %s | %s | %.1f s (%.1f–%.1f) | %.0f MiB/s | %.2fx | %.0f%% | %s |",
				c.name, r.tool, m, slices.Min(r.times).Seconds(), slices.Max(r.times).Seconds(),
				float64(total*3)/m/(1<<20), m/mr, 100*ml/m, rss))
		}
	}
	table := "## Transfers to MinIO, fake-gcs-server and Azurite at once: " + strings.Join(caseNames(cases), ", ") + "\n\n" +
		machine() + "\n\n" +
		"Each run writes into a fresh prefix; the bytes that landed are counted on each server after every run. The tools alternate within each run; median (min–max) of the runs. Atomic mode is timed on one run of 1 GiB and of 200 x 8 MiB, not on 2,000 x 16 KiB (deploy/bench/README.md says why).\n\n" +
		"- replicator: one worker, `starter replicate --wait` (one file) or `starter batch --wait`; the GCS destination uses `tuning: {single_request: true}` (fake-gcs-server rehashes the whole object on every resumable chunk).\n" +
		"- rclone v1.76.0: `rclone copy --transfers 16`, one per destination, side by side.\n" +
		"- limit: deploy/bench/limit, each SDK's own uploader (S3 transfer manager, 16 MiB parts × 8; azblob UploadFile, 16 MiB blocks × 8; GCS one streamed request per object), 16 files in flight per destination, no hashing or metadata.\n\n" +
		"| case | tool | time | throughput (3 copies) | vs rclone | of the limit | worker peak RSS |\n| --- | --- | --- | --- | --- | --- | --- |\n" +
		strings.Join(rows, "\n") + "\n\nTargets (eventual mode, medians of this run):\n\n" + strings.Join(targets, "\n") + "\n"
	fmt.Println(table)
	if out := os.Getenv("REPLICATOR_BENCH_OUT"); out != "" {
		must(t, os.WriteFile(out, []byte(table), 0o644))
	}
}

func caseNames(cs []benchCase) []string {
	var names []string
	for _, c := range cs {
		names = append(names, c.name)
	}
	return names
}
