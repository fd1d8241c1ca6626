//go:build integration

package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
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
	"github.com/cloudrepl/replicator/internal/wire"

	historypb "go.temporal.io/api/history/v1"
)

// benchCase is one transfer workload of `make bench`.
type benchCase struct {
	name  string
	files int
	size  int
	runs  int
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

// landed sums the bytes of the case's objects on a destination, read from its server.
func landed(t *testing.T, s store.Store, prefix string) int64 {
	var n int64
	for o, err := range s.List(context.Background(), store.ListOptions{Prefix: prefix}) {
		must(t, err)
		n += o.Size
	}
	return n
}

// freshServers restarts MinIO, fake-gcs-server and Azurite with no data before each
// measured run, so that every tool meets the same empty servers whatever ran before
// it: Azurite slows as objects pile up and keeps deleted blobs' memory for minutes,
// and fake-gcs-server's listings read every object of the bucket.
func freshServers(t *testing.T) {
	dir := os.Getenv("REPLICATOR_STACK_DIR")
	if dir == "" {
		t.Fatal("$REPLICATOR_STACK_DIR is not set: run the benchmark with `make bench`")
	}
	script := func(name string, args ...string) {
		cmd := exec.Command("bash", append([]string{filepath.Join("..", "..", "deploy", "local", name)}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	script("stop.sh", "minio", "gcs", "azurite")
	for _, d := range []string{"minio", "gcs", "azurite"} {
		must(t, os.RemoveAll(filepath.Join(dir, d)))
	}
	script("start.sh", "minio", "gcs", "azurite")
	createBuckets(t)
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
// landed under, and the worker's peak RSS and CPU time.
func runReplicator(t *testing.T, c benchCase, data string, keys []string, consistency string) (time.Duration, string, int64, time.Duration) {
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
	wk.waitFor(t, "msg=polling") // a worker is a daemon: its start is not the transfer's
	peakRSS(t, wk.cmd.Process.Pid)
	cpuBefore := cpuTime(t, wk.cmd.Process.Pid)
	profiled := make(chan struct{})
	if profile == "" {
		close(profiled)
	} else {
		// A CPU profile of the worker from the start of the run, saved before the
		// worker stops (REPLICATOR_BENCH_PROFILE_SECONDS long, 10 by default).
		secs := cmp.Or(os.Getenv("REPLICATOR_BENCH_PROFILE_SECONDS"), "10")
		go func() {
			defer close(profiled)
			saveCPUProfile(t, wk.metricsURL(t), secs, filepath.Join(profile, fmt.Sprintf("%s-%s-%d.pprof", c.name, consistency, time.Now().Unix())))
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
	if c.files == 1 && os.Getenv("REPLICATOR_BENCH_PHASES") == "1" {
		logActivityTimes(t, wire.FileWorkflowID(w.policy, keys[0]))
	}
	rss, cpu := peakRSS(t, wk.cmd.Process.Pid), cpuTime(t, wk.cmd.Process.Pid)-cpuBefore
	<-profiled
	wk.stop(t)
	return el, w.prefix, rss, cpu
}

// logActivityTimes logs how long each activity of a workflow took, from scheduled to
// closed: where a run's time went (REPLICATOR_BENCH_PHASES=1).
func logActivityTimes(t *testing.T, workflowID string) {
	scheduled := map[int64]*historypb.HistoryEvent{}
	for _, e := range history(t, workflowID).Events {
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			scheduled[e.EventId] = e
			continue
		}
		var id int64
		switch {
		case e.GetActivityTaskCompletedEventAttributes() != nil:
			id = e.GetActivityTaskCompletedEventAttributes().ScheduledEventId
		case e.GetActivityTaskFailedEventAttributes() != nil:
			id = e.GetActivityTaskFailedEventAttributes().ScheduledEventId
		default:
			continue
		}
		s := scheduled[id]
		a := s.GetActivityTaskScheduledEventAttributes()
		var in struct{ Destination string }
		if p := a.GetInput().GetPayloads(); len(p) > 0 {
			_ = json.Unmarshal(p[0].Data, &in)
		}
		t.Logf("%s %s: %v (at +%v)", a.ActivityType.Name, in.Destination, e.EventTime.AsTime().Sub(s.EventTime.AsTime()).Round(time.Millisecond),
			s.EventTime.AsTime().Sub(scheduled[minKey(scheduled)].EventTime.AsTime()).Round(time.Millisecond))
	}
}

func minKey(m map[int64]*historypb.HistoryEvent) int64 {
	return slices.Min(slices.Collect(maps.Keys(m)))
}

// cpuTime is the CPU time (user and system) a process has used so far.
func cpuTime(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	must(t, err)
	// Fields after the command name, which is in parentheses and may hold spaces:
	// utime and stime are the 14th and 15th fields of the line, in clock ticks.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// benchRow is one tool's runs of one case.
type benchRow struct {
	tool  string
	times []time.Duration
	rss   int64
	cpu   []time.Duration
	// run measures one run into a fresh prefix, checks what landed and returns the
	// time, the worker's peak RSS and CPU time (0 for other tools).
	run func(run int) (time.Duration, int64, time.Duration)
}

// TestBenchTransfers is `make bench`: each case runs the replicator (eventual, then
// atomic), rclone and the SDK-only limit program on the same servers, restarted
// empty before every run, in an order that rotates from run to run, every run into a
// fresh prefix; it checks that every byte landed on each server and prints a
// markdown table written to $REPLICATOR_BENCH_OUT. It asserts nothing about time.
func TestBenchTransfers(t *testing.T) {
	if os.Getenv("REPLICATOR_BENCH") != "1" {
		t.Skip("a benchmark: run it with `make bench`")
	}
	cases := []benchCase{
		// Five runs: the limit's own time of this case varies by a third from run to
		// run here, more than the margin the target asks about.
		{name: "one-1GiB", files: 1, size: 1 << 30, runs: 5},
		{name: "2000x16KiB", files: 2000, size: 16 << 10, runs: 3},
		{name: "200x8MiB", files: 200, size: 8 << 20, runs: 3},
	}
	// REPLICATOR_BENCH_CASES, REPLICATOR_BENCH_RUNS and REPLICATOR_BENCH_TOOLS narrow
	// a run while profiling.
	if only := os.Getenv("REPLICATOR_BENCH_CASES"); only != "" {
		cases = slices.DeleteFunc(cases, func(c benchCase) bool { return !slices.Contains(strings.Split(only, ","), c.name) })
	}
	if n, err := strconv.Atoi(os.Getenv("REPLICATOR_BENCH_RUNS")); err == nil && n > 0 {
		for i := range cases {
			cases[i].runs = n
		}
	}
	if len(cases) == 0 {
		t.Fatal("REPLICATOR_BENCH_CASES names no case: use one-1GiB, 2000x16KiB or 200x8MiB")
	}
	tools := []string{"eventual", "atomic", "rclone", "limit"}
	if only := os.Getenv("REPLICATOR_BENCH_TOOLS"); only != "" {
		tools = slices.DeleteFunc(tools, func(n string) bool { return !slices.Contains(strings.Split(only, ","), n) })
	}
	data := filepath.Join(os.TempDir(), "replicator-bench-data")
	limit := limitBinary(t)
	var rows, targets, atomicNotes []string
	for _, c := range cases {
		keys := writeBenchData(t, data, c)
		total := int64(c.files) * int64(c.size)
		replicator := func(mode string) *benchRow {
			r := &benchRow{tool: "replicator, " + mode}
			r.run = func(int) (time.Duration, int64, time.Duration) {
				el, prefix, rss, cpu := runReplicator(t, c, data, keys, mode)
				checkLanded(t, r.tool, c, prefix)
				return el, rss, cpu
			}
			return r
		}
		eventual, atomic := replicator("eventual"), replicator("atomic")
		rclone := &benchRow{tool: "rclone copy ×3", run: func(run int) (time.Duration, int64, time.Duration) {
			prefix := fmt.Sprintf("rclone-%d-%d", run, time.Now().UnixNano())
			el := rcloneCopyAll(t, filepath.Join(data, c.name), prefix+"/"+c.name)
			checkLanded(t, "rclone", c, prefix)
			return el, 0, 0
		}}
		sdk := &benchRow{tool: "limit (SDKs only)", run: func(run int) (time.Duration, int64, time.Duration) {
			prefix := fmt.Sprintf("limit-%d-%d", run, time.Now().UnixNano())
			el := runLimit(t, limit, filepath.Join(data, c.name), prefix+"/"+c.name)
			checkLanded(t, "limit", c, prefix)
			return el, 0, 0
		}}
		all := map[string]*benchRow{"eventual": eventual, "atomic": atomic, "rclone": rclone, "limit": sdk}
		for run := range c.runs {
			for i := range tools {
				r := all[tools[(i+run)%len(tools)]]
				freshServers(t)
				el, rss, cpu := r.run(run)
				r.times, r.rss = append(r.times, el), max(r.rss, rss)
				if cpu > 0 {
					r.cpu = append(r.cpu, cpu)
				}
				t.Logf("%s run %d: %s %.1f s, worker peak RSS %d MiB, worker CPU %.1f s", c.name, run, r.tool, el.Seconds(), rss>>20, cpu.Seconds())
			}
		}
		if len(rclone.times) == 0 || len(sdk.times) == 0 || len(eventual.times) == 0 {
			t.Fatal("REPLICATOR_BENCH_TOOLS must keep eventual, rclone and limit for the table's ratios")
		}
		mr, ml := median(rclone.times).Seconds(), median(sdk.times).Seconds()
		verdict := func(ok bool) string {
			if ok {
				return "met"
			}
			return "missed"
		}
		me := median(eventual.times).Seconds()
		targets = append(targets, fmt.Sprintf("- %s: %.2fx rclone (target ≤ 1.00x: %s); %.0f%% of the limit (target ≥ 80%%: %s)",
			c.name, me/mr, verdict(me <= mr), 100*ml/me, verdict(ml/me >= 0.8)))
		if c.files == 1 {
			targets = append(targets, fmt.Sprintf("- %s: worker peak RSS %d MiB (target < 256 MiB: %s); stretch goal 0.60x rclone: %s",
				c.name, eventual.rss>>20, verdict(eventual.rss < 256<<20), verdict(me <= 0.6*mr)))
		}
		if len(atomic.times) > 0 {
			ma := median(atomic.times).Seconds()
			note := fmt.Sprintf("- %s: %.2fx rclone, %.0f%% of the limit, %.2fx eventual mode", c.name, ma/mr, 100*ml/ma, ma/me)
			switch {
			case c.files == 1:
				note += fmt.Sprintf(" (target ≤ 1.25x eventual: %s)", verdict(ma <= 1.25*me))
			case c.size <= 1<<20:
				note += fmt.Sprintf(" (targets ≤ 1.50x eventual and ≤ 1.00x rclone: %s)", verdict(ma <= 1.5*me && ma <= mr))
			}
			atomicNotes = append(atomicNotes, note)
		}
		for _, r := range []*benchRow{eventual, atomic, rclone, sdk} {
			if len(r.times) == 0 {
				continue
			}
			m := median(r.times).Seconds()
			rss, cpu := "", ""
			if r.rss > 0 {
				rss = fmt.Sprintf("%d MiB", r.rss>>20)
			}
			if len(r.cpu) > 0 {
				cpu = fmt.Sprintf("%.1f s", median(r.cpu).Seconds())
			}
			rows = append(rows, fmt.Sprintf("| %s | %s | %.1f s (%.1f–%.1f) | %.0f MiB/s | %.2fx | %.0f%% | %s | %s |",
				c.name, r.tool, m, slices.Min(r.times).Seconds(), slices.Max(r.times).Seconds(),
				float64(total*3)/m/(1<<20), m/mr, 100*ml/m, rss, cpu))
		}
	}
	table := "## Transfers to MinIO, fake-gcs-server and Azurite at once: " + strings.Join(caseNames(cases), ", ") + "\n\n" +
		machine() + "\n\n" +
		fmt.Sprintf("Before every run of every tool the three emulators are restarted empty, so each meets the same servers; the order of the tools rotates from run to run. Each run writes into a fresh prefix, and the bytes that landed are counted on each server after it. Median (min–max) of %s.\n\n", runsOf(cases)) +
		"- replicator: one worker, `starter replicate --wait` (one file) or `starter batch --wait`, eventual and atomic mode; the GCS destination uses `tuning: {single_request: true}` (fake-gcs-server rehashes the whole object on every resumable chunk). Worker CPU is its user and system time during the run.\n" +
		"- rclone v1.76.0: `rclone copy --transfers 16`, one per destination, side by side.\n" +
		"- limit: deploy/bench/limit, each SDK's own uploader (S3 transfer manager, 16 MiB parts × 8; azblob UploadFile, 16 MiB blocks × 8; GCS one streamed request per object), 16 files in flight per destination, no hashing or metadata.\n\n" +
		"| case | tool | time | throughput (3 copies) | vs rclone | of the limit | worker peak RSS | worker CPU |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n" +
		strings.Join(rows, "\n") + "\n\nTargets (eventual mode, which is what rclone and the limit do; medians of this run):\n\n" + strings.Join(targets, "\n") + "\n"
	if len(atomicNotes) > 0 {
		table += "\nAtomic mode (a batch on one task queue writes each small file to every destination or none with one create-only put per destination, no stage; one large file is staged, committed by a server-side copy and cleaned up):\n\n" +
			strings.Join(atomicNotes, "\n") + "\n"
	}
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

// runsOf says how many runs each case had.
func runsOf(cs []benchCase) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%d runs of %s", c.runs, c.name))
	}
	return strings.Join(parts, ", ")
}

// saveCPUProfile takes a CPU profile of secs seconds from a worker started with
// --pprof (base is its metrics address) and writes it to path; a failure is logged,
// since a benchmark's numbers do not depend on its profile.
func saveCPUProfile(t *testing.T, base, secs, path string) {
	resp, err := http.Get(base + "/debug/pprof/profile?seconds=" + secs)
	if err != nil {
		t.Logf("profile: %v", err)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		t.Logf("profile %s: %v", path, err)
	}
}
