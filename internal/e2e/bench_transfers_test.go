//go:build integration

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// rcloneCopyAll runs one `rclone copy` per destination side by side, as users do.
func rcloneCopyAll(t *testing.T, src, prefix string) time.Duration {
	bin := filepath.Join(os.Getenv("REPLICATOR_TOOLS_BIN"), "rclone")
	start := time.Now()
	var wg sync.WaitGroup
	for _, target := range []string{"s3:" + s3Bucket + "/" + prefix, "gcs:" + gcsBucket + "/" + prefix, "azure:" + azContainer + "/" + prefix} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(bin, "copy", "--transfers", "16", src, target)
			cmd.Env = append(os.Environ(), rcloneEnv()...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Errorf("rclone copy to %s: %v\n%s", target, err, out.String())
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// TestBenchTransfers is `make bench`: each case runs the replicator (eventual mode)
// and rclone alternately on the same servers, every run into a fresh prefix, checks
// the bytes that landed on each server, and prints a markdown table written to
// $REPLICATOR_BENCH_OUT. It asserts nothing about time.
func TestBenchTransfers(t *testing.T) {
	if os.Getenv("REPLICATOR_BENCH") != "1" {
		t.Skip("a benchmark: run it with `make bench`")
	}
	cases := []benchCase{
		{name: "one-1GiB", files: 1, size: 1 << 30, runs: 2},
		{name: "2000x16KiB", files: 2000, size: 16 << 10, runs: 3},
		{name: "200x8MiB", files: 200, size: 8 << 20, runs: 2},
	}
	data := filepath.Join(os.TempDir(), "replicator-bench-data")
	var rows []string
	for _, c := range cases {
		keys := writeBenchData(t, data, c)
		total := int64(c.files) * int64(c.size)
		var ours, theirs []time.Duration
		var rss int64
		for run := range c.runs {
			// The replicator: a fresh world (prefix, state, worker) per run.
			w := newWorld(t, worldOptions{})
			for _, k := range keys { // hard links: the source root never reaches outside itself
				must(t, os.MkdirAll(filepath.Dir(filepath.Join(w.src, k)), 0o755))
				must(t, os.Link(filepath.Join(data, k), filepath.Join(w.src, k)))
			}
			list := filepath.Join(w.dir, "keys.txt")
			must(t, os.WriteFile(list, []byte(strings.Join(keys, "\n")+"\n"), 0o644))
			wk := w.startWorker()
			peakRSS(t, wk.cmd.Process.Pid)
			start := time.Now()
			if c.files == 1 {
				if _, code := w.replicateWait(keys[0]); code != 0 {
					t.Fatalf("%s: replicate failed", c.name)
				}
			} else if out, code := w.starter("batch", list, "--wait", "--json"); code != 0 {
				t.Fatalf("%s: batch failed: %s", c.name, out)
			}
			ours = append(ours, time.Since(start))
			rss = max(rss, peakRSS(t, wk.cmd.Process.Pid))
			wk.stop(t)
			for _, d := range []string{"s3", "gcs", "azure"} {
				if got := landed(t, w.destination(d), c.name+"/"); got != total {
					t.Fatalf("%s run %d: %d bytes landed on %s, want %d", c.name, run, got, d, total)
				}
			}
			// rclone into another fresh prefix on the same servers.
			prefix := fmt.Sprintf("rclone-%s-%d-%d", c.name, run, time.Now().UnixNano())
			theirs = append(theirs, rcloneCopyAll(t, filepath.Join(data, c.name), prefix+"/"+c.name))
		}
		mo, mt := median(ours), median(theirs)
		spread := func(ds []time.Duration) string {
			return fmt.Sprintf("%.1f s (%.1f–%.1f)", median(ds).Seconds(), slices.Min(ds).Seconds(), slices.Max(ds).Seconds())
		}
		rows = append(rows, fmt.Sprintf("| %s to all three | %s | %.0f MiB/s | %s | %.2fx | %d MiB |",
			c.name, spread(ours), float64(total*3)/mo.Seconds()/(1<<20), spread(theirs), mo.Seconds()/mt.Seconds(), rss>>20))
	}
	table := "## Transfers to MinIO, fake-gcs-server and Azurite at once (eventual mode)\n\n" +
		"Replicator (`starter replicate --wait` or `starter batch --wait`, one worker) and rclone v1.76.0 (`rclone copy --transfers 16`, one per destination side by side), alternating, each run into a fresh prefix; bytes that landed checked on each server; median (min–max).\n\n" +
		"| case | replicator | replicator throughput (3 copies) | rclone | replicator / rclone | worker peak RSS |\n| --- | --- | --- | --- | --- | --- |\n" +
		strings.Join(rows, "\n") + "\n"
	fmt.Println(table)
	if out := os.Getenv("REPLICATOR_BENCH_OUT"); out != "" {
		must(t, os.WriteFile(out, []byte(table), 0o644))
	}
}
