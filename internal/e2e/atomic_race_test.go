//go:build integration

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestAtomicBatchAndFileOfOneVersionAtOnce runs an atomic batch and ReplicateFile runs
// of the same versions at the same time. Before stages were per run, whichever
// cleaned up first removed the other's stage and left its commit retrying forever;
// now both end, and every destination holds the right SHA-256.
func TestAtomicBatchAndFileOfOneVersionAtOnce(t *testing.T) {
	w := newWorld(t, worldOptions{consistency: "atomic"})
	w.startWorker()
	sums := map[string]string{}
	var keys []string
	for i := range 20 {
		k := filepathKey(i)
		sums[k] = w.writeFile(k, randomBytes(4096+i))
		keys = append(keys, k)
	}
	list := filepath.Join(w.dir, "keys.txt")
	must(t, os.WriteFile(list, []byte(strings.Join(keys, "\n")+"\n"), 0o644))
	var wg sync.WaitGroup
	var batchOut string
	var batchCode, fileCode int
	wg.Go(func() { batchOut, batchCode = w.starter("batch", list, "--wait", "--json", "--id", "race") })
	wg.Go(func() { _, fileCode = w.replicateWait(keys...) })
	wg.Wait()
	if batchCode != 0 || fileCode != 0 {
		t.Fatalf("batch exit %d, replicate exit %d: both must succeed\n%s", batchCode, fileCode, batchOut)
	}
	for _, d := range []string{"s3", "gcs", "azure"} {
		s := w.destination(d)
		for k, sum := range sums {
			if got := readSHA(t, s, k); got != sum {
				t.Errorf("%s: %s reads back %s, want %s", d, k, got, sum)
			}
		}
		for _, k := range listAll(t, s) {
			if strings.HasPrefix(k, ".replicator/") {
				t.Errorf("%s: %s left behind", d, k)
			}
		}
	}
}

// TestThrottledTransferOutlastsHeartbeatTimeouts replicates a file that the policy's
// bandwidth limit makes take several times the heartbeat timeout (5 s here) per part:
// heartbeats while a part is in flight keep it alive, and it arrives whole.
func TestThrottledTransferOutlastsHeartbeatTimeouts(t *testing.T) {
	w := newWorld(t, worldOptions{extra: "    limits: {bandwidth: 2MiB/s}\n    rules: [{match: \"**\", to: [gcs]}]\n",
		gcsExtra: "\n        tuning: {part_size: 16MiB, threshold: 1MiB}"})
	w.startWorker()
	sum := w.writeFile("slow.bin", randomBytes(24<<20))
	res, code := w.replicateWait("slow.bin")
	if code != 0 || res[0].outcome("gcs") != "copied" {
		t.Fatalf("exit %d %+v", code, res)
	}
	if got := readSHA(t, w.destination("gcs"), "slow.bin"); got != sum {
		t.Fatalf("replica %s, want %s", got, sum)
	}
}
