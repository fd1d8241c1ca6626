//go:build integration

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rcloneEnv configures rclone remotes s3:, gcs: and azure: for the local stack.
func rcloneEnv() []string {
	return []string{
		"RCLONE_CONFIG_S3_TYPE=s3", "RCLONE_CONFIG_S3_PROVIDER=Minio", "RCLONE_CONFIG_S3_ENDPOINT=" + os.Getenv("REPLICATOR_S3_ENDPOINT"),
		"RCLONE_CONFIG_S3_ACCESS_KEY_ID=" + os.Getenv("AWS_ACCESS_KEY_ID"), "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY=" + os.Getenv("AWS_SECRET_ACCESS_KEY"),
		"RCLONE_CONFIG_GCS_TYPE=google cloud storage", "RCLONE_CONFIG_GCS_ANONYMOUS=true",
		"RCLONE_CONFIG_GCS_ENDPOINT=http://" + os.Getenv("STORAGE_EMULATOR_HOST") + "/storage/v1/",
		"RCLONE_CONFIG_AZURE_TYPE=azureblob", "RCLONE_CONFIG_AZURE_ACCOUNT=devstoreaccount1",
		"RCLONE_CONFIG_AZURE_KEY=" + connField(os.Getenv("AZURE_STORAGE_CONNECTION_STRING"), "AccountKey"),
		"RCLONE_CONFIG_AZURE_ENDPOINT=" + os.Getenv("REPLICATOR_AZURE_ENDPOINT"),
	}
}

// rcloneSyncDryRun times `rclone sync --dry-run` of the world's source to one remote.
func rcloneSyncDryRun(t *testing.T, w *world, remote string) time.Duration {
	bin := filepath.Join(os.Getenv("REPLICATOR_TOOLS_BIN"), "rclone")
	target := map[string]string{"s3": "s3:" + s3Bucket + "/" + w.prefix, "gcs": "gcs:" + gcsBucket + "/" + w.prefix, "azure": "azure:" + azContainer + "/" + w.prefix}[remote]
	cmd := exec.Command(bin, "sync", "--dry-run", "--size-only", "--checkers", "16", "--exclude", ".replicator/**", w.src, target)
	cmd.Env = append(os.Environ(), rcloneEnv()...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("rclone %s: %v\n%s", remote, err, out.String())
	}
	el := time.Since(start)
	if strings.Contains(out.String(), "Skipped copy") || strings.Contains(out.String(), "Skipped delete") {
		t.Fatalf("rclone found differences on %s: the tree is not in sync\n%s", remote, out.String())
	}
	return el
}

// peakRSS reads a process's peak resident set, and resets it for the next reading.
func peakRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must(t, err)
	var kb int64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ = strconv.ParseInt(strings.Fields(line)[1], 10, 64)
		}
	}
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0o200)
	return kb << 10
}

// machine describes where a benchmark ran.
func machine() string {
	cpu, _ := os.ReadFile("/proc/cpuinfo")
	model := "unknown CPU"
	for _, line := range strings.Split(string(cpu), "\n") {
		if strings.HasPrefix(line, "model name") {
			model = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
			break
		}
	}
	var mem int64
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		fmt.Sscanf(string(b), "MemTotal: %d kB", &mem)
	}
	return fmt.Sprintf("Machine: %d cores (%s), %d GiB RAM, %s; MinIO, fake-gcs-server (filesystem) and Azurite (in memory) on loopback, sharing the cores with the worker and the tools.",
		runtime.NumCPU(), model, (mem+(1<<19))>>20, runtime.Version())
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestBenchNoopReconcile is the reconcile benchmark (`make bench-reconcile`, which sets
// REPLICATOR_BENCH=1): a no-op reconcile of a 20,000-file tree against the three
// destinations beside rclone `sync --dry-run` of the same tree to the same servers,
// alternating, and the worker's peak memory during the reconciles. It prints a
// markdown table and writes it to $REPLICATOR_BENCH_OUT when set. It asserts nothing
// about time.
func TestBenchNoopReconcile(t *testing.T) {
	if os.Getenv("REPLICATOR_BENCH") != "1" {
		t.Skip("a benchmark: run it with `make bench-reconcile`")
	}
	const n, runs = 20000, 5
	w := newWorld(t, worldOptions{mode: "mirror"})
	w.writeTree(n)
	wk := w.startWorker()
	for range 2 { // copy everything, then fold the journal into the manifests
		if _, code := w.reconcile(); code != 0 {
			t.Fatal("setup reconcile failed")
		}
	}
	peakRSS(t, wk.cmd.Process.Pid)
	var ours, rcS3, rcGCS, rcAz, rcAll []time.Duration
	var events int
	for range runs {
		start := time.Now()
		r, code := w.reconcile()
		ours = append(ours, time.Since(start))
		if code != 0 || r.dest("s3").Unchanged != n {
			t.Fatalf("no-op reconcile: exit %d %+v", code, r.Result)
		}
		events = len(history(t, r.WorkflowID).Events)
		rcS3 = append(rcS3, rcloneSyncDryRun(t, w, "s3"))
		rcGCS = append(rcGCS, rcloneSyncDryRun(t, w, "gcs"))
		rcAz = append(rcAz, rcloneSyncDryRun(t, w, "azure"))
		start = time.Now()
		var wg sync.WaitGroup
		for _, d := range []string{"s3", "gcs", "azure"} {
			wg.Add(1)
			go func() { defer wg.Done(); rcloneSyncDryRun(t, w, d) }()
		}
		wg.Wait()
		rcAll = append(rcAll, time.Since(start))
	}
	peak := peakRSS(t, wk.cmd.Process.Pid)
	spread := func(ds []time.Duration) string {
		return fmt.Sprintf("%.2f s (%.2f–%.2f)", median(ds).Seconds(), slices.Min(ds).Seconds(), slices.Max(ds).Seconds())
	}
	ratio := median(ours).Seconds() / median(rcAll).Seconds()
	verdict := "met"
	if ratio > 1.5 {
		verdict = "missed"
	}
	table := fmt.Sprintf(`## No-op reconcile of %d files against three destinations

%s %d runs each, alternating; median (min–max).
rclone v1.76.0 runs `+"`sync --dry-run --size-only --checkers 16`"+` (listing only, as the reconcile).

| what | time | vs rclone, three in parallel |
| --- | --- | --- |
| replicator `+"`starter reconcile --wait`"+` (all three destinations) | %s | %.2fx |
| rclone to MinIO | %s | |
| rclone to fake-gcs-server | %s | |
| rclone to Azurite | %s | |
| rclone to all three in parallel | %s | 1.00x |

History events of a no-op reconcile: %d (the e2e suite checks that 10 and 20,000 files give the same count). Worker peak RSS during the no-op reconciles: %d MiB.

Target: at most 1.50x rclone's dry-runs to the same destinations: %.2fx, %s.
`, n, machine(), runs, spread(ours), ratio, spread(rcS3), spread(rcGCS), spread(rcAz), spread(rcAll), events, peak>>20, ratio, verdict)
	fmt.Println(table)
	if out := os.Getenv("REPLICATOR_BENCH_OUT"); out != "" {
		must(t, os.WriteFile(out, []byte(table), 0o644))
	}
}
