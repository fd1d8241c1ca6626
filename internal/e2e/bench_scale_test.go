//go:build integration

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.temporal.io/api/workflowservice/v1"
)

// scaleShape lays n files of 1 KiB out as shares are: two very wide directories
// (a tenth of the files each, at most 50,000) and the rest in directories of 100,
// two levels deep. It returns the keys in the order written.
func scaleShape(n int) []string {
	wide := min(50000, n/10)
	keys := make([]string, 0, n)
	for w := range 2 {
		for i := range wide {
			keys = append(keys, fmt.Sprintf("wide-%d/item-%06d.dat", w, i))
		}
	}
	for i := 0; len(keys) < n; i++ {
		keys = append(keys, fmt.Sprintf("tree/%03d/%03d/f%07d.dat", i/100/100%1000, i/100%100, i))
	}
	return keys
}

func writeScaleTree(t *testing.T, root string, keys []string) {
	t.Helper()
	content := bytes.Repeat([]byte("x"), 1024)
	made := map[string]bool{}
	for i, k := range keys {
		p := filepath.Join(root, k)
		if d := filepath.Dir(p); !made[d] {
			must(t, os.MkdirAll(d, 0o755))
			made[d] = true
		}
		copy(content, fmt.Sprintf("%d\n", i))
		must(t, os.WriteFile(p, content, 0o644))
	}
}

// scaleStep is one row of the scale table.
type scaleStep struct {
	size              int
	destination, step string
	wall, cpu         time.Duration
	rss               int64
	requests          float64 // per file, -1 when the destination makes none
	runs, maxEvents   int
	stateBytes        int64
	rcloneWall        time.Duration
	rcloneWhat        string
	// listing is how long listing the MinIO prefix took just before the row: every
	// MinIO row that lists is measured after one, so that MinIO's caches are in the
	// same state at every size (a listing after minutes of rest was twice as slow).
	listing time.Duration
}

func dirBytes(t *testing.T, dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// workflowsSince counts the workflow runs of a policy that started after since, and
// the longest history among them.
func workflowsSince(t *testing.T, policy string, since time.Time) (runs, maxEvents int) {
	c := temporalClient(t)
	var token []byte
	for {
		page, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query:         fmt.Sprintf("ReplicationPolicy = '%s' AND StartTime >= '%s'", policy, since.UTC().Format(time.RFC3339Nano)),
			NextPageToken: token,
		})
		must(t, err)
		for _, e := range page.Executions {
			runs++
			maxEvents = max(maxEvents, int(e.HistoryLength))
		}
		if token = page.NextPageToken; len(token) == 0 {
			return runs, maxEvents
		}
	}
}

// TestBenchScale is `make bench-scale`: for each size of REPLICATOR_SCALE_SIZES
// (default 10000,100000,1000000) a generated tree of 1 KiB files is copied to MinIO
// and to a local directory by a batch and by a reconcile, then reconciled with
// nothing to do, after touching 1% of the files, and (mirror) after deleting 1%;
// rclone copy and sync --dry-run do the same work to MinIO. Each row: wall time,
// time per file, the worker's peak RSS and CPU, requests per file, the runs and the
// longest history, the bytes in the state location. Asserts nothing about time.
func TestBenchScale(t *testing.T) {
	if os.Getenv("REPLICATOR_BENCH") != "1" {
		t.Skip("a benchmark: run it with `make bench-scale`")
	}
	sizes := []int{10000, 100000, 1000000}
	if s := os.Getenv("REPLICATOR_SCALE_SIZES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			must(t, err)
			sizes = append(sizes, n)
		}
	}
	var rows []scaleStep
	for _, n := range sizes {
		rows = append(rows, scaleRun(t, n)...)
		writeScaleTable(t, rows)
	}
}

func scaleRun(t *testing.T, n int) []scaleStep {
	w := newWorld(t, worldOptions{})
	keys := scaleShape(n)
	start := time.Now()
	writeScaleTree(t, w.src, keys)
	t.Logf("%d files written in %s", n, time.Since(start).Round(time.Second))
	state := filepath.Join(w.dir, "state")
	local := filepath.Join(w.dir, "local")
	for _, d := range []string{"batch", "reconcile"} {
		must(t, os.MkdirAll(filepath.Join(local, d), 0o755))
	}
	endpoint := os.Getenv("REPLICATOR_S3_ENDPOINT")
	// One policy per destination and way of copying, so each row's requests and
	// workflows are its own.
	policy := func(name, dest, url, mode string) string {
		return fmt.Sprintf(`  - name: %s-%s
    source: file://%s
    mode: %s
    safety: {max_delete: 100000000, max_delete_percent: 5}
    destinations: [{name: %s, url: %q}]
`, w.policy, name, w.src, mode, dest, url)
	}
	cfg := "state: file://" + state + "\npolicies:\n" +
		policy("s3-batch", "s3-batch", fmt.Sprintf("s3://%s/%s/batch?region=us-east-1&endpoint=%s", s3Bucket, w.prefix, endpoint), "copy") +
		policy("s3", "s3", fmt.Sprintf("s3://%s/%s/reconcile?region=us-east-1&endpoint=%s", s3Bucket, w.prefix, endpoint), "mirror") +
		policy("dir-batch", "dir-batch", "file://"+local+"/batch", "copy") +
		policy("dir", "dir", "file://"+local+"/reconcile", "mirror")
	must(t, os.WriteFile(w.configPath, []byte(cfg), 0o644))
	profile := os.Getenv("REPLICATOR_BENCH_PROFILE") // a directory for CPU profiles of the reconciles
	if profile != "" {
		w.workerArgs = []string{"--pprof"}
	}
	wk := w.startWorker()
	defer wk.stop(t) // workers share the task queue: the next size brings its own
	base := wk.metricsURL(t)
	pid := wk.cmd.Process.Pid

	var rows []scaleStep
	reconcilePrefix := w.prefix + "/reconcile/"
	measure := func(dest, step, policy string, run func() int) {
		var listing time.Duration
		if dest == "MinIO" && step != "first copy, batch" {
			listing = timeS3Listing(t, s3Bucket, reconcilePrefix)
		}
		peakRSS(t, pid) // resets the high-water mark
		before, cpu0, since := scrape(t, base), cpuTime(t, pid), time.Now()
		if profile != "" && !strings.HasPrefix(step, "first copy") {
			// The profile covers the plan: 5 s per 100,000 files.
			name := fmt.Sprintf("%d-%s-%s.pprof", n, dest, strings.NewReplacer(" ", "-", ",", "", "%", "pct").Replace(step))
			go saveCPUProfile(t, base, strconv.Itoa(max(1, n/20000)), filepath.Join(profile, name))
		}
		if code := run(); code != 0 {
			t.Fatalf("%s %s at %d files: exit %d", dest, step, n, code)
		}
		row := scaleStep{size: n, destination: dest, step: step, wall: time.Since(since), cpu: cpuTime(t, pid) - cpu0, rss: peakRSS(t, pid), requests: -1, listing: listing}
		after := scrape(t, base)
		storeName := strings.TrimPrefix(policy, w.policy+"-")
		var reqs float64
		for kind, v := range after[storeName] {
			reqs += v - before[storeName][kind]
		}
		if reqs > 0 {
			row.requests = reqs / float64(n)
		}
		row.runs, row.maxEvents = workflowsSince(t, policy, since)
		row.stateBytes = dirBytes(t, state)
		rows = append(rows, row)
		t.Logf("%d files, %s, %s: %s", n, dest, step, row.wall.Round(time.Millisecond))
	}
	starter := func(args ...string) int {
		_, bin := binaries(t)
		cmd := exec.Command(bin, append([]string{"--config", w.configPath}, args...)...)
		cmd.Env = append(os.Environ(), w.extraEnv...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("starter %v: %v\n%s", args, err, out)
			return 1
		}
		return 0
	}
	list := filepath.Join(w.dir, "keys.txt")
	must(t, os.WriteFile(list, []byte(strings.Join(keys, "\n")+"\n"), 0o644))
	// REPLICATOR_SCALE_ROWS=minio-reconcile measures only the reconciles to MinIO and
	// rclone's dry run: the rows MinIO's listing decides, in a third of the time.
	minioReconcileOnly := os.Getenv("REPLICATOR_SCALE_ROWS") == "minio-reconcile"
	dests := []struct{ dest, batchPolicy, policy string }{
		{"MinIO", w.policy + "-s3-batch", w.policy + "-s3"},
		{"directory", w.policy + "-dir-batch", w.policy + "-dir"},
	}
	if minioReconcileOnly {
		dests = dests[:1]
	}
	for _, d := range dests {
		if !minioReconcileOnly {
			measure(d.dest, "first copy, batch", d.batchPolicy, func() int { return starter("batch", "--policy", d.batchPolicy, "--wait", list) })
			// The batch's copies are not used again. At a million files each is 8 GiB
			// on disk (a 4 KiB block for the file and one for its metadata), and the
			// machine could not hold them all.
			if d.dest == "MinIO" {
				emptyS3Prefix(t, s3Bucket, w.prefix+"/batch/")
			} else {
				must(t, os.RemoveAll(filepath.Join(local, "batch")))
			}
		}
		measure(d.dest, "first copy, reconcile", d.policy, func() int { return starter("reconcile", "--policy", d.policy, "--wait") })
		measure(d.dest, "no-op reconcile", d.policy, func() int { return starter("reconcile", "--policy", d.policy, "--wait") })
	}
	// 1% of the files changed, then 1% deleted: each reconciled to both.
	for i := 0; i < n; i += 100 {
		p := filepath.Join(w.src, keys[i])
		must(t, os.WriteFile(p, []byte(fmt.Sprintf("touched %d\n", i)), 0o644))
	}
	for _, d := range dests {
		measure(d.dest, "reconcile after touching 1%", d.policy, func() int { return starter("reconcile", "--policy", d.policy, "--wait") })
	}
	for i := 1; i < n; i += 100 {
		must(t, os.Remove(filepath.Join(w.src, keys[i])))
	}
	for _, d := range dests {
		measure(d.dest, "mirror reconcile after deleting 1%", d.policy, func() int { return starter("reconcile", "--policy", d.policy, "--wait") })
	}

	// rclone, the same work to MinIO: a first copy, then a dry-run sync of the tree
	// as it now is against what the reconciles left (nothing to do).
	rclone := filepath.Join(os.Getenv("REPLICATOR_TOOLS_BIN"), "rclone")
	run := func(what string, args ...string) time.Duration {
		var listing time.Duration
		if strings.Contains(what, "dry-run") {
			listing = timeS3Listing(t, s3Bucket, reconcilePrefix)
		}
		cmd := exec.Command(rclone, args...)
		cmd.Env = append(os.Environ(), rcloneEnv()...)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("rclone %s: %v\n%s", what, err, out)
		}
		el := time.Since(start)
		rows = append(rows, scaleStep{size: n, destination: "MinIO", step: what, rcloneWall: el, rcloneWhat: "rclone", listing: listing})
		return el
	}
	if !minioReconcileOnly {
		run("rclone copy (first copy)", "copy", "--transfers", "16", "--checkers", "16", w.src, "s3:"+s3Bucket+"/"+w.prefix+"/rclone")
	}
	run("rclone sync --dry-run (no-op)", "sync", "--dry-run", "--size-only", "--checkers", "16", "--exclude", ".replicator/**", w.src, "s3:"+s3Bucket+"/"+w.prefix+"/reconcile")
	return rows
}

// timeS3Listing lists every object under prefix, a thousand to a request, and
// returns how long that took.
func timeS3Listing(t *testing.T, bucket, prefix string) time.Duration {
	c := s3Client(t)
	start := time.Now()
	pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		_, err := pages.NextPage(context.Background())
		must(t, err)
	}
	return time.Since(start)
}

// emptyS3Prefix deletes every object under prefix, a thousand to a request.
func emptyS3Prefix(t *testing.T, bucket, prefix string) {
	c := s3Client(t)
	ctx := context.Background()
	pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		must(t, err)
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]s3types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			ids[i] = s3types.ObjectIdentifier{Key: o.Key}
		}
		out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		must(t, err)
		if len(out.Errors) > 0 {
			t.Fatalf("delete under %s: %d errors, the first %s: %s", prefix, len(out.Errors), aws.ToString(out.Errors[0].Key), aws.ToString(out.Errors[0].Message))
		}
	}
}

func writeScaleTable(t *testing.T, rows []scaleStep) {
	var b strings.Builder
	fmt.Fprintf(&b, "# Scale: from ten thousand files to a million\n\n%s\n`make bench-scale` (REPLICATOR_SCALE_SIZES to choose sizes). Files of 1 KiB; two directories hold a tenth of the files each (at most 50,000), the rest are in directories of 100. One worker; requests are per file and destination (`replicator_backend_requests_total`); runs and events are the workflow runs the step started (continued runs included) and the longest history among them; state is the bytes in the state location after the step. MinIO listing is a listing of the reconcile prefix made just before the row, outside its time, so that every MinIO row finds MinIO's caches in the same state.\n\n", machine())
	fmt.Fprintf(&b, "| files | destination | step | wall | per file | worker peak RSS | worker CPU | requests/file | runs | max events | state | MinIO listing |\n| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rows {
		if r.rcloneWhat != "" {
			fmt.Fprintf(&b, "| %d | %s | %s | %.1f s | %.0f µs | | | | | | | %s |\n", r.size, r.destination, r.step, r.rcloneWall.Seconds(), float64(r.rcloneWall.Microseconds())/float64(r.size), listingCell(r.listing))
			continue
		}
		reqs := "-"
		if r.requests >= 0 {
			reqs = fmt.Sprintf("%.3f", r.requests)
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %.1f s | %.0f µs | %d MiB | %.1f s | %s | %d | %d | %.1f MiB | %s |\n", r.size, r.destination, r.step, r.wall.Seconds(),
			float64(r.wall.Microseconds())/float64(r.size), r.rss>>20, r.cpu.Seconds(), reqs, r.runs, r.maxEvents, float64(r.stateBytes)/(1<<20), listingCell(r.listing))
	}
	fmt.Println(b.String())
	if out := os.Getenv("REPLICATOR_BENCH_OUT"); out != "" {
		must(t, os.WriteFile(out, []byte(b.String()), 0o644))
	}
}

func listingCell(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}
