//go:build integration && chaos

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.temporal.io/sdk/temporal"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
)

// The fault suite: replications run while something breaks (a worker killed, an
// emulator frozen or restarted, the Temporal server restarted, a destination removed,
// the source changed under a transfer, a mount emptied, a disk full, a flood of
// duplicate triggers), and afterwards an independent client (rclone check
// --download, or the SDKs reading back) compares every destination with the source.
// Nothing acknowledged may be lost, no destination may hold a partial or mixed
// object, nothing of the replicator's (stages, undo copies, multipart uploads) may be
// left, and every failure must be visible. `make chaos` runs every scenario at full
// length and writes deploy/chaos/results.md; the test command runs the same scenarios
// shortened (REPLICATOR_CHAOS=fast: smaller files, a shorter freeze, no 5 GiB file).

// chaosRow is one line of the results table.
type chaosRow struct {
	Scenario, Mode, Result, Checked string
	Took                            time.Duration
}

type chaosSuite struct {
	full bool
	rows []chaosRow
}

// scenario runs fn as a subtest and records its row: passed, failed, or skipped
// with the reason fn gave.
func (s *chaosSuite) scenario(t *testing.T, name, mode string, fn func(t *testing.T) (checked string)) {
	var checked string
	ran := false
	start := time.Now()
	ok := t.Run(name+" ("+mode+")", func(t *testing.T) { ran = true; checked = fn(t) })
	if !ran {
		return // left out by -run
	}
	row := chaosRow{Scenario: name, Mode: mode, Checked: checked, Took: time.Since(start).Round(time.Second)}
	switch {
	case !ok:
		row.Result = "FAILED"
	case checked == "" || strings.HasPrefix(checked, "skipped: "):
		row.Result = "skipped"
		row.Checked = strings.TrimPrefix(checked, "skipped: ")
	default:
		row.Result = "passed"
	}
	s.rows = append(s.rows, row)
}

func TestChaos(t *testing.T) {
	s := &chaosSuite{full: os.Getenv("REPLICATOR_CHAOS") == "full"}
	size := func(fast, full int) int {
		if s.full {
			return full
		}
		return fast
	}
	for _, consistency := range []string{"eventual", "atomic"} {
		s.scenario(t, "worker killed (SIGKILL) mid-transfer of a large file to all three, restarted", consistency, func(t *testing.T) string {
			return chaosWorkerKilled(t, consistency, size(96<<20, 512<<20))
		})
	}
	freeze := time.Duration(size(20, 60)) * time.Second
	s.scenario(t, fmt.Sprintf("Azurite frozen (SIGSTOP) for %s during a batch", freeze), "eventual", func(t *testing.T) string {
		return chaosServerFault(t, "azurite", func() { freezeServer(t, "azurite", freeze) })
	})
	s.scenario(t, "MinIO stopped and restarted during a batch", "eventual", func(t *testing.T) string {
		return chaosServerFault(t, "minio", func() { restartServer(t, "minio", 10*time.Second) })
	})
	s.scenario(t, "Temporal dev server restarted (same database) during a batch", "eventual", func(t *testing.T) string {
		return chaosServerFault(t, "temporal", func() { restartServer(t, "temporal", 3*time.Second) })
	})
	s.scenario(t, "Temporal dev server restarted (same database) during a reconcile", "eventual", chaosTemporalRestartDuringReconcile)
	for _, consistency := range []string{"eventual", "atomic"} {
		s.scenario(t, "a destination fails for good: its bucket removed mid-batch", consistency, func(t *testing.T) string {
			return chaosBucketRemoved(t, consistency)
		})
	}
	for _, consistency := range []string{"eventual", "atomic"} {
		s.scenario(t, "a destination fails for good: access denied (wrong S3 credentials)", consistency, func(t *testing.T) string {
			return chaosAccessDenied(t, consistency)
		})
	}
	for _, change := range []string{"rewritten", "truncated", "deleted"} {
		s.scenario(t, "the source file "+change+" during its transfer", "eventual", func(t *testing.T) string {
			return chaosSourceChanged(t, change, size(64<<20, 256<<20))
		})
	}
	s.scenario(t, "the source mount replaced by an empty directory before a mirror reconcile", "mirror", chaosEmptiedMount)
	s.scenario(t, "50 duplicate triggers of one key from 10 processes at once", "eventual", chaosDuplicateTriggers)
	s.scenario(t, "a local destination's disk full (tmpfs)", "eventual", chaosDestinationDiskFull)
	s.scenario(t, "the state location's disk full (tmpfs)", "eventual", chaosStateDiskFull)
	s.scenario(t, "a sparse 5.5 GiB file to S3 (over the 5 GiB single-request limit)", "eventual", func(t *testing.T) string {
		if !s.full {
			return "skipped: in `make chaos` only (5.5 GiB through MinIO takes minutes)"
		}
		return chaosSparseOver5GiB(t)
	})
	if out := os.Getenv("REPLICATOR_CHAOS_REPORT"); out != "" {
		writeChaosReport(t, out, s)
	}
}

// chaosWorld is a world with a retry policy that outlasts the faults: a transfer is
// retried for ten minutes, backing off to five seconds.
func chaosWorld(t *testing.T, o worldOptions) *world {
	o.retry = "{max_interval: 5s, expiration: 10m, heartbeat_timeout: 10s}"
	return newWorld(t, o)
}

// writeSet writes n small files of varied sizes and, when large > 0, one large file;
// it returns each key's SHA-256.
func writeSet(w *world, n, large int) map[string]string {
	want := map[string]string{}
	for i := range n {
		key := fmt.Sprintf("docs/%02d/file-%03d.bin", i%7, i)
		want[key] = w.writeFile(key, randomBytes(1024+(i*7919)%(256<<10)))
	}
	if large > 0 {
		want["media/large.bin"] = w.writeFile("media/large.bin", randomBytes(large))
	}
	return want
}

// startBatch starts a batch over keys without waiting and returns its workflow ID.
func startBatch(t *testing.T, w *world, keys []string) string {
	t.Helper()
	list := filepath.Join(w.dir, fmt.Sprintf("keys-%d.txt", time.Now().UnixNano()))
	must(t, os.WriteFile(list, []byte(strings.Join(keys, "\n")+"\n"), 0o644))
	id := fmt.Sprintf("chaos-%d", time.Now().UnixNano())
	if _, code := w.starter("batch", "--id", id, list); code != 0 {
		t.Fatalf("starter batch: exit %d", code)
	}
	return wire.BatchWorkflowID(w.policy, id)
}

// waitResult waits for a workflow's result, through a restarting Temporal server.
// A worker of workers that exits meanwhile fails the test at once, with its output:
// nothing would finish the run.
func waitResult(t *testing.T, id string, limit time.Duration, into any, workers ...*proc) error {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Until(deadline))
		got := make(chan error, 1)
		go func() { got <- temporalClient(t).GetWorkflow(ctx, id, "").Get(ctx, into) }()
		var err error
	wait:
		for {
			select {
			case err = <-got:
				break wait
			case <-time.After(time.Second):
				for _, p := range workers {
					select {
					case <-p.done:
						cancel()
						t.Fatalf("the worker exited while %s ran (%v):\n%s", id, p.cmd.ProcessState, p.out.String())
					default:
					}
				}
			}
		}
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		var failed *temporal.WorkflowExecutionError
		if errors.As(err, &failed) {
			return err // the workflow failed: no use waiting
		}
		time.Sleep(time.Second)
	}
}

// waitBytes waits until the worker has sent at least n bytes to every destination.
func waitBytes(t *testing.T, p *proc, n float64) {
	t.Helper()
	base := p.metricsURL(t)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		sent := sentBytes(t, base)
		if sent["s3"] >= n && sent["gcs"] >= n && sent["azure"] >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the destinations never got %.0f bytes each: %v", n, sent)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// remotes are rclone's names of the world's three destinations.
func remotes(w *world) map[string]string {
	return map[string]string{
		"s3":    "s3:" + w.bucket + "/" + w.prefix,
		"gcs":   "gcs:" + gcsBucket + "/" + w.prefix,
		"azure": "azure:" + azContainer + "/" + w.prefix,
	}
}

// rcloneCheck compares the source with each named destination, downloading every
// object (rclone check --download): an independent client, not the replicator's
// drivers. The replicator's own .replicator/ subtree is left out of the comparison
// and checked by noLeftovers.
func rcloneCheck(t *testing.T, w *world, dests ...string) {
	t.Helper()
	bin := filepath.Join(os.Getenv("REPLICATOR_TOOLS_BIN"), "rclone")
	for _, d := range dests {
		cmd := exec.Command(bin, "check", "--download", "--checkers", "8", "--exclude", ".replicator/**", w.src, remotes(w)[d])
		cmd.Env = append(os.Environ(), rcloneEnv()...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("rclone check --download %s: %v\n%s", d, err, out.String())
		}
	}
}

// noLeftovers fails when a destination still holds a stage or undo copy, or S3 an
// unfinished multipart upload, under the world's prefix.
func noLeftovers(t *testing.T, w *world, dests ...string) {
	t.Helper()
	for _, d := range dests {
		for _, k := range listAll(t, w.destination(d)) {
			if strings.HasPrefix(k, wire.StagingPrefix) || strings.HasPrefix(k, wire.UndoPrefix) {
				t.Errorf("%s still holds %s", d, k)
			}
		}
	}
	if slices.Contains(dests, "s3") {
		ups, err := s3Client(t).ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(w.bucket), Prefix: aws.String(w.prefix + "/")})
		must(t, err)
		if len(ups.Uploads) > 0 {
			t.Errorf("S3 still holds %d unfinished multipart uploads", len(ups.Uploads))
		}
	}
}

// failedCount sums a batch summary's failed keys.
func failedCount(s *wire.BatchSummary) int {
	n := 0
	for _, d := range s.Destinations {
		n += d.Failed
	}
	return n
}

const allChecked = "rclone check --download of all three against the source; no stage, undo copy or S3 multipart upload left"

func chaosWorkerKilled(t *testing.T, consistency string, large int) string {
	w := chaosWorld(t, worldOptions{consistency: consistency, extra: "    limits: {bandwidth: 24MiB/s}\n"})
	want := writeSet(w, 40, large)
	first := w.startWorker()
	id := startBatch(t, w, slices.Sorted(maps.Keys(want)))
	waitBytes(t, first, float64(large)/3)
	first.kill()
	w.startWorker()
	var sum wire.BatchSummary
	must(t, waitResult(t, id, 10*time.Minute, &sum))
	if n := failedCount(&sum); n != 0 {
		t.Fatalf("%d keys failed after the restart: %+v", n, sum)
	}
	rcloneCheck(t, w, "s3", "gcs", "azure")
	noLeftovers(t, w, "s3", "gcs", "azure")
	return fmt.Sprintf("killed after a third of a %d MiB file and 40 small ones; the batch finished with no failure on a new worker; %s", large>>20, allChecked)
}

// stackControl says whether this process may stop and start the stack's servers:
// only on a stack of its own (with-stack.sh sets REPLICATOR_STACK_DIR).
func stackControl(t *testing.T) string {
	dir := os.Getenv("REPLICATOR_STACK_DIR")
	if dir == "" {
		return "skipped: needs a stack of its own (make chaos, or the test command), which sets REPLICATOR_STACK_DIR"
	}
	return ""
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func stackScript(t *testing.T, script string, args ...string) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(repoRoot(), "deploy", "local", script)}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", script, args, err, out)
	}
}

// restartServer stops a server of the stack, waits, and starts it again on the same
// data (start.sh waits until it is healthy).
func restartServer(t *testing.T, part string, down time.Duration) {
	stackScript(t, "stop.sh", part)
	time.Sleep(down)
	stackScript(t, "start.sh", part)
}

// freezeServer stops a server's process group with SIGSTOP for d, then resumes it.
func freezeServer(t *testing.T, part string, d time.Duration) {
	b, err := os.ReadFile(filepath.Join(os.Getenv("REPLICATOR_STACK_DIR"), "run", part+".pid"))
	must(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	must(t, err)
	must(t, syscall.Kill(-pid, syscall.SIGSTOP))
	defer func() { must(t, syscall.Kill(-pid, syscall.SIGCONT)) }()
	time.Sleep(d)
}

// chaosServerFault runs a batch of 60 small files and one of 48 MiB at a limited
// rate, applies fault once bytes flow, and expects the batch to finish without a
// failure and every destination to match the source.
func chaosServerFault(t *testing.T, part string, fault func()) string {
	if skip := stackControl(t); skip != "" {
		return skip
	}
	w := chaosWorld(t, worldOptions{extra: "    limits: {bandwidth: 16MiB/s}\n"})
	want := writeSet(w, 60, 48<<20)
	p := w.startWorker()
	id := startBatch(t, w, slices.Sorted(maps.Keys(want)))
	waitBytes(t, p, 8<<20)
	fault()
	var sum wire.BatchSummary
	must(t, waitResult(t, id, 10*time.Minute, &sum, p))
	if n := failedCount(&sum); n != 0 {
		t.Fatalf("%d keys failed: %+v; dead letters: %+v", n, sum, deadLetters(t, w))
	}
	rcloneCheck(t, w, "s3", "gcs", "azure")
	noLeftovers(t, w, "s3", "gcs", "azure")
	return "the batch (60 small files, one of 48 MiB) finished with no failure; " + allChecked
}

func chaosTemporalRestartDuringReconcile(t *testing.T) string {
	if skip := stackControl(t); skip != "" {
		return skip
	}
	w := chaosWorld(t, worldOptions{extra: "    limits: {bandwidth: 16MiB/s}\n"})
	writeSet(w, 200, 32<<20)
	p := w.startWorker()
	out, code := w.starter("reconcile", "--json")
	if code != 0 {
		t.Fatalf("starter reconcile: exit %d", code)
	}
	var started struct {
		WorkflowID string `json:"workflow_id"`
	}
	must(t, json.Unmarshal([]byte(out), &started))
	waitBytes(t, p, 4<<20)
	restartServer(t, "temporal", 3*time.Second)
	var res wire.ReconcileResult
	must(t, waitResult(t, started.WorkflowID, 10*time.Minute, &res, p))
	if res.Outcome != wire.RunOK {
		t.Fatalf("reconcile outcome %s (%s)", res.Outcome, res.Reason)
	}
	rcloneCheck(t, w, "s3", "gcs", "azure")
	noLeftovers(t, w, "s3", "gcs", "azure")
	again, code := w.reconcile()
	if code != 0 || again.dest("s3").Copy+again.dest("gcs").Copy+again.dest("azure").Copy != 0 {
		t.Errorf("the reconcile after it is not a no-op: exit %d %+v", code, again.Result.Destinations)
	}
	return "the reconcile (200 small files, one of 32 MiB) ended ok, the next one is a no-op; " + allChecked
}

func chaosBucketRemoved(t *testing.T, consistency string) string {
	bucket := fmt.Sprintf("chaos-removed-%d", time.Now().UnixNano())
	_, err := s3Client(t).CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	must(t, err)
	w := chaosWorld(t, worldOptions{consistency: consistency, s3Bucket: bucket, extra: "    limits: {bandwidth: 16MiB/s}\n"})
	want := writeSet(w, 60, 48<<20)
	p := w.startWorker()
	id := startBatch(t, w, slices.Sorted(maps.Keys(want)))
	waitBytes(t, p, 8<<20)
	removeBucket(t, bucket)
	return checkS3FailedForGood(t, w, consistency, want, id, p)
}

func chaosAccessDenied(t *testing.T, consistency string) string {
	w := chaosWorld(t, worldOptions{consistency: consistency, s3Profile: "refused"})
	writeAWSProfiles(t, w)
	want := writeSet(w, 30, 16<<20)
	p := w.startWorker()
	id := startBatch(t, w, slices.Sorted(maps.Keys(want)))
	return checkS3FailedForGood(t, w, consistency, want, id, p)
}

// checkS3FailedForGood waits for a batch whose S3 destination failed for good and
// checks what each mode promises: eventual finishes GCS and Azure, atomic leaves a
// key failed on S3 on neither; the failures are dead letters and counted.
func checkS3FailedForGood(t *testing.T, w *world, consistency string, want map[string]string, id string, p *proc) string {
	var sum wire.BatchSummary
	if err := waitResult(t, id, 10*time.Minute, &sum, p); err != nil {
		t.Fatalf("the batch did not end with a summary: %v", err)
	}
	letters := deadLetters(t, w)
	failedOnS3 := map[string]bool{}
	for _, l := range letters {
		if l.Destination == "s3" {
			failedOnS3[l.Key] = true
		}
	}
	if len(failedOnS3) == 0 || failedCount(&sum) == 0 {
		t.Fatalf("no visible failure: %d dead letters, summary %+v", len(letters), sum)
	}
	gcs, az := w.destination("gcs"), w.destination("azure")
	for key, sha := range want {
		onGCS, onAzure := exists(t, gcs, key), exists(t, az, key)
		switch {
		case consistency == "eventual" && (!onGCS || !onAzure):
			t.Errorf("%s is missing on GCS (%v) or Azure (%v): eventual mode must finish the destinations that work", key, onGCS, onAzure)
		case consistency == "atomic" && failedOnS3[key] && (onGCS || onAzure):
			t.Errorf("%s failed on S3 but is on GCS (%v) or Azure (%v): atomic mode must show it on all or none", key, onGCS, onAzure)
		}
		if onGCS && readSHA(t, gcs, key) != sha {
			t.Errorf("GCS holds another %s", key)
		}
		if onAzure && readSHA(t, az, key) != sha {
			t.Errorf("Azure holds another %s", key)
		}
	}
	noLeftovers(t, w, "gcs", "azure")
	if consistency == "eventual" {
		rcloneCheck(t, w, "gcs", "azure")
		return fmt.Sprintf("dead letters for S3: %d of %d keys, counted in the batch summary; GCS and Azure hold every file (rclone check --download); no stage left there", len(failedOnS3), len(want))
	}
	return fmt.Sprintf("dead letters for S3: %d of %d keys, and those are on neither GCS nor Azure (rolled back or never committed); what GCS and Azure hold reads back with the source's SHA-256; no stage or undo copy left there", len(failedOnS3), len(want))
}

// removeBucket empties and deletes an S3 bucket while the replicator writes to it.
func removeBucket(t *testing.T, bucket string) {
	t.Helper()
	c := s3Client(t)
	ctx := context.Background()
	for attempt := 0; ; attempt++ {
		objs, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
		must(t, err)
		for _, o := range objs.Contents {
			_, _ = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: o.Key})
		}
		ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
		must(t, err)
		for _, u := range ups.Uploads {
			_, _ = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: u.Key, UploadId: u.UploadId})
		}
		if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err == nil {
			return
		} else if attempt > 100 {
			t.Fatalf("remove bucket %s: %v", bucket, err)
		}
	}
}

func chaosSourceChanged(t *testing.T, change string, size int) string {
	w := chaosWorld(t, worldOptions{extra: "    limits: {bandwidth: 16MiB/s}\n"})
	key := "media/changing.bin"
	old := w.writeFile(key, randomBytes(size))
	p := w.startWorker()
	if _, code := w.starter("replicate", key); code != 0 {
		t.Fatal("trigger failed")
	}
	waitBytes(t, p, float64(size)/4)
	path := filepath.Join(w.src, key)
	var final string
	switch change {
	case "rewritten":
		final = w.writeFile(key, randomBytes(size))
	case "truncated":
		must(t, os.Truncate(path, 1<<20))
		b, err := os.ReadFile(path)
		must(t, err)
		final = sha(b)
	case "deleted":
		must(t, os.Remove(path))
	}
	var res wire.ReplicateFileResult
	err := waitResult(t, wire.FileWorkflowID(w.policy, key), 10*time.Minute, &res)
	t.Logf("the run ended with %v: %+v", err, res)
	// Whatever the run said, each destination holds nothing, the old version whole,
	// or the final one whole: never a mix.
	for _, d := range []string{"s3", "gcs", "azure"} {
		if !exists(t, w.destination(d), key) {
			continue
		}
		if got := readSHA(t, w.destination(d), key); got != old && got != final {
			t.Errorf("%s holds a version of %s that the source never had (SHA-256 %s)", d, key, got)
		}
	}
	// The next reconcile converges on the source.
	if _, code := w.reconcile(); code != 0 {
		t.Fatalf("reconcile after the change: exit %d", code)
	}
	if change == "deleted" {
		for _, d := range []string{"s3", "gcs", "azure"} {
			if exists(t, w.destination(d), key) && readSHA(t, w.destination(d), key) != old {
				t.Errorf("%s holds a partial %s after its source was deleted", d, key)
			}
		}
		noLeftovers(t, w, "s3", "gcs", "azure")
		return "no destination holds a partial or mixed object (each read back); no stage or multipart upload left"
	}
	rcloneCheck(t, w, "s3", "gcs", "azure")
	noLeftovers(t, w, "s3", "gcs", "azure")
	return "during the run no destination held a mixed object (each read back); after the next reconcile " + allChecked
}

func chaosEmptiedMount(t *testing.T) string {
	w := chaosWorld(t, worldOptions{mode: "mirror"})
	want := writeSet(w, 50, 0)
	w.startWorker()
	if r, code := w.reconcile(); code != 0 || r.Result.Outcome != string(wire.RunOK) {
		t.Fatalf("first reconcile: exit %d %s", code, r.Result.Outcome)
	}
	// The share's mount replaced by an empty file system, as when an NFS mount fails
	// and the mount point underneath is empty.
	how := "an empty tmpfs mounted over the source"
	if err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", w.src).Run(); err != nil {
		how = "the source directory moved away and an empty one put in its place (mount refused: " + err.Error() + ")"
		must(t, os.Rename(w.src, w.src+".real"))
		must(t, os.Mkdir(w.src, 0o755))
		t.Cleanup(func() { _ = os.Remove(w.src); _ = os.Rename(w.src+".real", w.src) })
	} else {
		t.Cleanup(func() { _ = exec.Command("umount", w.src).Run() })
	}
	r, code := w.reconcile()
	if code == 0 || r.Result.Outcome != string(wire.RunStopped) {
		t.Errorf("the reconcile over the emptied source: exit %d, outcome %s; want stopped", code, r.Result.Outcome)
	}
	t.Logf("stopped: %s", r.Result.Reason)
	if strings.HasPrefix(how, "an empty tmpfs") {
		// Lazily: the worker still holds the empty mount open, as it would a failed
		// share; the directory driver must notice the mount changed under it.
		must(t, exec.Command("umount", "-l", w.src).Run())
	} else {
		must(t, os.Remove(w.src))
		must(t, os.Rename(w.src+".real", w.src))
	}
	rcloneCheck(t, w, "s3", "gcs", "azure")
	// The share back: the same worker sees it again, and has nothing to do.
	again, code := w.reconcile()
	if code != 0 || again.dest("s3").Delete+again.dest("s3").Copy+again.dest("gcs").Delete+again.dest("azure").Delete != 0 {
		t.Errorf("the reconcile with the share back: exit %d %+v", code, again.Result)
	}
	return fmt.Sprintf("%s: the mirror reconcile stopped and deleted nothing; all %d files still on all three (rclone check --download); with the share back the same worker's next reconcile was a no-op", how, len(want))
}

func chaosDuplicateTriggers(t *testing.T) string {
	w := chaosWorld(t, worldOptions{s3Bucket: s3VersionedBucket})
	w.startWorker()
	key := "hot/contested.bin"
	sum := w.writeFile(key, randomBytes(3<<20))
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, code := w.starter("replicate", key, key, key, key, key); code != 0 {
				t.Errorf("a trigger process exited %d", code)
			}
		})
	}
	wg.Wait()
	var res wire.ReplicateFileResult
	must(t, waitResult(t, wire.FileWorkflowID(w.policy, key), 5*time.Minute, &res))
	out, err := s3Client(t).ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String(s3VersionedBucket), Prefix: aws.String(w.prefix + "/" + key)})
	must(t, err)
	if len(out.Versions) != 1 {
		t.Errorf("%d versions of the key in the versioned bucket after 50 triggers, want 1", len(out.Versions))
	}
	for _, d := range []string{"s3", "gcs", "azure"} {
		if got := readSHA(t, w.destination(d), key); got != sum {
			t.Errorf("%s: SHA-256 %s, want %s", d, got, sum)
		}
	}
	return "one write: one version in a versioned S3 bucket; every replica read back with the source's SHA-256"
}

// tmpfs mounts a tmpfs of size at dir, or says why the scenario cannot run.
func tmpfs(t *testing.T, dir, size string) string {
	must(t, os.MkdirAll(dir, 0o755))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		return fmt.Sprintf("skipped: cannot mount a tmpfs here (%v: %s); needs root or CAP_SYS_ADMIN", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return ""
}

// localWorld rewrites the world's config: its source to a directory destination at
// dst and to GCS, with the state at state.
func localWorld(t *testing.T, w *world, dst, state string) {
	cfg := fmt.Sprintf(`state: file://%s
policies:
  - name: %s
    source: file://%s
    retry: {max_attempts: 3, max_interval: 1s, heartbeat_timeout: 5s}
    destinations:
      - name: local
        url: file://%s
      - name: gcs
        url: gs://%s/%s
`, state, w.policy, w.src, dst, gcsBucket, w.prefix)
	must(t, os.WriteFile(w.configPath, []byte(cfg), 0o644))
}

func chaosDestinationDiskFull(t *testing.T) string {
	w := chaosWorld(t, worldOptions{})
	dst := filepath.Join(w.dir, "small-disk")
	if skip := tmpfs(t, dst, "12m"); skip != "" {
		return skip
	}
	localWorld(t, w, dst, filepath.Join(w.dir, "state"))
	want := map[string]string{}
	for i := range 8 {
		key := fmt.Sprintf("scans/%d.tif", i)
		want[key] = w.writeFile(key, randomBytes(3<<20))
	}
	w.startWorker()
	r, code := w.reconcile()
	if code == 0 {
		t.Fatalf("24 MiB onto a 12 MiB disk succeeded: %+v", r.Result)
	}
	letters := deadLetters(t, w)
	full := 0
	for _, l := range letters {
		if l.Destination == "local" {
			full++
		}
	}
	if full == 0 {
		t.Fatalf("no dead letter for the full disk: %+v", letters)
	}
	checkLocal := func() {
		entries, err := os.ReadDir(filepath.Join(dst, "scans"))
		must(t, err)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dst, "scans", e.Name()))
			must(t, err)
			if want["scans/"+e.Name()] != sha(b) {
				t.Errorf("the full disk holds %s, which is no whole source file (%d bytes)", e.Name(), len(b))
			}
		}
	}
	checkLocal()
	for key, sha := range want {
		if got := readSHA(t, w.destination("gcs"), key); got != sha {
			t.Errorf("GCS %s: %s, want %s", key, got, sha)
		}
	}
	// Room again: the next reconcile completes.
	must(t, exec.Command("mount", "-o", "remount,size=64m", dst).Run())
	if r, code := w.reconcile(); code != 0 {
		t.Fatalf("reconcile with room again: exit %d %+v", code, r.Result)
	}
	checkLocal()
	if n, _ := os.ReadDir(filepath.Join(dst, "scans")); len(n) != len(want) {
		t.Errorf("%d files on the local destination after the repair, want %d", len(n), len(want))
	}
	return fmt.Sprintf("%d dead letters for the full disk, only whole files on it, GCS complete (read back); after room was made the next reconcile completed", full)
}

func chaosStateDiskFull(t *testing.T) string {
	w := chaosWorld(t, worldOptions{})
	state := filepath.Join(w.dir, "small-state")
	if skip := tmpfs(t, state, "64k"); skip != "" {
		return skip
	}
	filler := filepath.Join(state, "filler")
	_ = exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=4k", "count=64").Run() // ends in "no space left": the point
	must(t, os.MkdirAll(filepath.Join(w.dir, "copy"), 0o755))
	localWorld(t, w, filepath.Join(w.dir, "copy"), state)
	want := writeSet(w, 300, 0)
	w.startWorker()
	_, stderr, code := w.starterErr("reconcile", "--wait", "--json")
	if code == 0 {
		t.Fatal("a reconcile with a full state location succeeded")
	}
	if !strings.Contains(stderr, "is full") {
		t.Errorf("the failure does not say the state location is full:\n%s", stderr)
	}
	must(t, os.Remove(filler))
	must(t, exec.Command("mount", "-o", "remount,size=64m", state).Run())
	if r, code := w.reconcile(); code != 0 || r.Result.Outcome != string(wire.RunOK) {
		t.Fatalf("reconcile with room again: exit %d %+v", code, r.Result)
	}
	for key, sum := range want {
		b, err := os.ReadFile(filepath.Join(w.dir, "copy", key))
		if err != nil || sha(b) != sum {
			t.Errorf("%s on the local copy: %v", key, err)
		}
	}
	return fmt.Sprintf("the reconcile failed (exit %d) saying the state location's file system is full; with room again the next one copied all %d files, each read back", code, len(want))
}

func chaosSparseOver5GiB(t *testing.T) string {
	var st syscall.Statfs_t
	must(t, syscall.Statfs(os.Getenv("REPLICATOR_STACK_DIR"), &st))
	if free := st.Bavail * uint64(st.Bsize); free < 14<<30 {
		return fmt.Sprintf("skipped: MinIO's disk has %d GiB free; 5.5 GiB stored needs 14 GiB with room to spare", free>>30)
	}
	w := chaosWorld(t, worldOptions{extra: "    rules: [{match: \"**\", to: [s3]}]\n"})
	key := "backup/disk.img"
	path := filepath.Join(w.src, key)
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	must(t, err)
	const size = 5<<30 + 512<<20
	for _, off := range []int64{0, 2 << 30, 5<<30 + 100<<20} {
		_, err := f.WriteAt(randomBytes(1<<20), off)
		must(t, err)
	}
	must(t, f.Truncate(size))
	must(t, f.Close())
	sum := fileSHA(t, path)
	w.startWorker()
	res, code := w.replicateWait(key)
	if code != 0 || res[0].Outcome != "ok" || res[0].SHA256 != sum {
		t.Fatalf("replicate: exit %d %+v", code, res)
	}
	head, err := s3Client(t).HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(s3Bucket), Key: aws.String(w.prefix + "/" + key), ChecksumMode: s3types.ChecksumModeEnabled})
	must(t, err)
	if aws.ToInt64(head.ContentLength) != size {
		t.Errorf("S3 holds %d bytes, want %d", aws.ToInt64(head.ContentLength), size)
	}
	if got := readSHA(t, w.destination("s3"), key); got != sum {
		t.Errorf("S3 reads back with SHA-256 %s, want %s", got, sum)
	}
	noLeftovers(t, w, "s3")
	return "5.5 GiB in a multipart upload; HEAD size and a full read-back SHA-256 match; no multipart upload left"
}

func writeChaosReport(t *testing.T, path string, s *chaosSuite) {
	var b strings.Builder
	fmt.Fprintf(&b, "# Fault suite results\n\n")
	fmt.Fprintf(&b, "Written by `make chaos` (deploy/local/chaos.sh): `go test -tags 'integration chaos' -run TestChaos ./internal/e2e/` with REPLICATOR_CHAOS=%s, on %s, %d CPUs, %s.\n\n",
		map[bool]string{true: "full", false: "fast"}[s.full], runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "| scenario | mode | result | what was checked afterwards | took |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range s.rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.Scenario, r.Mode, r.Result, strings.ReplaceAll(r.Checked, "|", "\\|"), r.Took)
	}
	must(t, os.WriteFile(path, []byte(b.String()), 0o644))
	t.Logf("wrote %s", path)
}

// exists reports whether a destination holds key.
func exists(t *testing.T, s store.Store, key string) bool {
	t.Helper()
	_, err := s.Stat(context.Background(), key)
	if store.IsNotFound(err) {
		return false
	}
	must(t, err)
	return true
}

func fileSHA(t *testing.T, path string) string {
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	must(t, err)
	return hex.EncodeToString(h.Sum(nil))
}
