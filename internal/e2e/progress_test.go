//go:build integration

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// escapeCodes are the terminal control sequences a progress library writes.
var escapeCodes = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// starterOnTerminal runs the starter with stdout and stderr on one pseudo-terminal,
// as an operator's shell runs it, and returns what it drew (escape codes kept) and
// its exit code.
func (w *world) starterOnTerminal(args ...string) (string, int) {
	w.t.Helper()
	_, bin := binaries(w.t)
	cmd := exec.Command(bin, append([]string{"--config", w.configPath, "--policy", w.policy}, args...)...)
	cmd.Env = append(os.Environ(), w.extraEnv...)
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		w.t.Fatalf("starter %v on a pseudo-terminal: %v", args, err)
	}
	defer ptmx.Close()
	var out bytes.Buffer
	// Linux reports EIO on the terminal's side once the starter has exited and
	// closed its end: that is the end of the output.
	if _, err := io.Copy(&out, ptmx); err != nil && !errors.Is(err, syscall.EIO) {
		w.t.Fatalf("read the starter's terminal: %v", err)
	}
	code := 0
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			w.t.Fatalf("starter %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), code
}

// drawnLine is a destination's progress line as drawn on the terminal.
type drawnLine struct {
	dest        string
	done, total float64 // MiB
	rate        string
	rest        string
}

// barLine matches "s3     [====>----]  12.0 MiB / 96.0 MiB  8.0 MiB/s  ETA 11s  stage".
var barLine = regexp.MustCompile(`^(.+?)\s+\[[^\]]*\]\s+([\d.]+) (B|KiB|MiB|GiB) / ([\d.]+) (B|KiB|MiB|GiB)\s+(-/s|[\d.]+ (?:B|KiB|MiB|GiB)/s)(.*)$`)

func mib(v, unit string) float64 {
	f, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "B":
		return f / (1 << 20)
	case "KiB":
		return f / 1024
	case "GiB":
		return f * 1024
	}
	return f
}

// drawnLines reads the destination lines out of a terminal's output, frame after
// frame, in the order they were drawn.
func drawnLines(out string) []drawnLine {
	text := escapeCodes.ReplaceAllString(out, "")
	var lines []drawnLine
	for _, s := range strings.FieldsFunc(text, func(r rune) bool { return r == '\r' || r == '\n' }) {
		m := barLine.FindStringSubmatch(strings.TrimSpace(s))
		if m == nil {
			continue
		}
		lines = append(lines, drawnLine{dest: m[1], done: mib(m[2], m[3]), total: mib(m[4], m[5]), rate: m[6], rest: m[7]})
	}
	return lines
}

// checkDrawn asserts what the issue asks of the bars: a line per destination, byte
// counts that never go backwards against a total that never changes, and a rate.
func checkDrawn(t *testing.T, out string, dests []string, size float64) map[string][]drawnLine {
	t.Helper()
	if !escapeCodes.MatchString(out) {
		t.Errorf("nothing was redrawn in place on the terminal:\n%q", out)
	}
	t.Logf("drawn on the terminal:\n%s", escapeCodes.ReplaceAllString(out, ""))
	byDest := map[string][]drawnLine{}
	for _, l := range drawnLines(out) {
		byDest[l.dest] = append(byDest[l.dest], l)
	}
	for _, d := range dests {
		ls := byDest[d]
		if len(ls) < 2 {
			t.Errorf("%s: %d frames drawn, want several:\n%s", d, len(ls), escapeCodes.ReplaceAllString(out, ""))
			continue
		}
		rated := false
		for i, l := range ls {
			if l.total != size {
				t.Errorf("%s frame %d: total %.1f MiB, want the file's %.1f MiB", d, i, l.total, size)
			}
			if i > 0 && l.done < ls[i-1].done {
				t.Errorf("%s frame %d: count went back from %.1f to %.1f MiB", d, i, ls[i-1].done, l.done)
			}
			rated = rated || l.rate != "-/s"
		}
		if !rated {
			t.Errorf("%s: no frame shows a rate", d)
		}
		if last := ls[len(ls)-1]; last.done != size {
			t.Errorf("%s: the last frame shows %.1f of %.1f MiB", d, last.done, size)
		}
	}
	return byDest
}

// TestReplicateWaitOnATerminal replicates a file slowed by the policy's bandwidth
// limit, in atomic mode, with `replicate --wait` on a pseudo-terminal: one line per
// destination, monotonic counts of the file's size, a rate, and the stage phase.
func TestReplicateWaitOnATerminal(t *testing.T) {
	w := newWorld(t, worldOptions{consistency: "atomic", extra: "    limits: {bandwidth: 48MiB/s}\n"})
	const size = 96
	w.writeFile("video/big.mov", randomBytes(size<<20))
	w.startWorker()
	out, code := w.starterOnTerminal("replicate", "--wait", "video/big.mov")
	if code != 0 {
		t.Fatalf("replicate --wait exited %d:\n%s", code, out)
	}
	byDest := checkDrawn(t, out, []string{"s3", "gcs", "azure"}, size)
	staged := false
	for _, ls := range byDest {
		for _, l := range ls {
			staged = staged || strings.Contains(l.rest, "stage")
		}
	}
	if !staged {
		t.Errorf("no frame shows the stage phase:\n%s", escapeCodes.ReplaceAllString(out, ""))
	}
	// The result table follows the bars.
	if !regexp.MustCompile(`video/big\.mov\s+ok`).MatchString(out) {
		t.Errorf("no result table after the bars:\n%s", escapeCodes.ReplaceAllString(out, ""))
	}
}

// progressObject is one line of the `--json --progress` stream.
type progressObject struct {
	Lines []struct {
		Kind           string   `json:"kind"`
		WorkflowID     string   `json:"workflow_id"`
		Destination    string   `json:"destination"`
		Phase          string   `json:"phase"`
		Bytes          int64    `json:"bytes"`
		Total          int64    `json:"total"`
		BytesPerSecond *float64 `json:"bytes_per_second"`
		Finished       bool     `json:"finished"`
	} `json:"lines"`
}

// checkProgressStream asserts that stderr is a stream of JSON progress objects with
// monotonic counts of size on every destination, and a rate.
func checkProgressStream(t *testing.T, stderr string, dests []string, size int64) {
	t.Helper()
	// By workflow and destination: status -f follows several workflows at once.
	last := map[string]int64{}
	finals := map[string]int64{}
	objects, rated := 0, false
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		var o progressObject
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("stderr line %d is not a JSON progress object: %v\n%s", objects+1, err, sc.Text())
		}
		objects++
		for _, l := range o.Lines {
			if l.Kind != "destination" {
				continue
			}
			if l.Total != size {
				t.Errorf("object %d, %s: total %d, want the file's %d", objects, l.Destination, l.Total, size)
			}
			k := l.WorkflowID + " " + l.Destination
			if l.Bytes < last[k] {
				t.Errorf("object %d, %s: bytes went back from %d to %d", objects, k, last[k], l.Bytes)
			}
			last[k] = l.Bytes
			finals[l.Destination] = l.Bytes
			rated = rated || (l.BytesPerSecond != nil && *l.BytesPerSecond > 0)
		}
	}
	if objects < 2 {
		t.Fatalf("%d progress objects on stderr, want one per second of the transfer:\n%s", objects, stderr)
	}
	for _, d := range dests {
		if finals[d] != size {
			t.Errorf("%s: the stream ends at %d of %d bytes", d, finals[d], size)
		}
	}
	for k, n := range last {
		if n != size {
			t.Errorf("%s: the stream ends at %d of %d bytes", k, n, size)
		}
	}
	if !rated {
		t.Error("no progress object has a rate")
	}
}

// TestReplicateWaitJSONProgress: with `--json --progress` off a terminal, stderr is a
// stream of JSON progress objects and stdout the result, neither with escape codes;
// `status --follow` streams the same for a workflow started without --wait; and
// `--json` alone writes no progress.
func TestReplicateWaitJSONProgress(t *testing.T) {
	w := newWorld(t, worldOptions{extra: "    limits: {bandwidth: 48MiB/s}\n"})
	const size = 80 << 20
	w.writeFile("a.bin", randomBytes(size))
	w.writeFile("b.bin", randomBytes(size))
	w.startWorker()
	stdout, stderr, code := w.starterStreams("replicate", "--wait", "--json", "--progress", "a.bin")
	if code != 0 {
		t.Fatalf("replicate exited %d:\n%s", code, stderr)
	}
	if escapeCodes.MatchString(stdout + stderr) {
		t.Errorf("escape codes written off a terminal:\n%q\n%q", stdout, stderr)
	}
	var res []fileResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || len(res) != 1 {
		t.Fatalf("stdout is not the result: %v\n%s", err, stdout)
	}
	checkProgressStream(t, stderr, []string{"s3", "gcs", "azure"}, size)

	// status --follow of a run started without --wait.
	if _, _, code := w.starterStreams("replicate", "b.bin"); code != 0 {
		t.Fatal("replicate b.bin failed")
	}
	stdout, stderr, code = w.starterStreams("status", "--follow", "--json", "--progress", "replicate/"+w.policy+"/b.bin")
	if code != 0 {
		t.Fatalf("status --follow exited %d:\n%s", code, stderr)
	}
	checkProgressStream(t, stderr, []string{"s3", "gcs", "azure"}, size)
	if !strings.Contains(stdout, `"status": "Completed"`) {
		t.Errorf("status --follow did not end with the completed workflow:\n%s", stdout)
	}

	// --json without --progress: the result only.
	w.writeFile("a.bin", randomBytes(size))
	_, stderr, code = w.starterStreams("replicate", "--wait", "--json", "a.bin")
	if code != 0 || stderr != "" {
		t.Errorf("replicate --wait --json exited %d and wrote on stderr:\n%s", code, stderr)
	}
}

// TestBatchWaitOnATerminal: a batch with small files, one large file (its own
// workflow) and a refused line draws the large file's destinations and a total line
// with the keys done, failed and rejected.
func TestBatchWaitOnATerminal(t *testing.T) {
	w := newWorld(t, worldOptions{extra: "    limits: {bandwidth: 48MiB/s}\n"})
	const size = 80
	w.writeFile("big.bin", randomBytes(size<<20))
	keys := "big.bin\n../refused\n"
	for i := range 5 {
		k := "small/" + strconv.Itoa(i)
		w.writeFile(k, randomBytes(4<<10))
		keys += k + "\n"
	}
	list := w.dir + "/keys.txt"
	must(t, os.WriteFile(list, []byte(keys), 0o644))
	w.startWorker()
	out, code := w.starterOnTerminal("batch", "--wait", list)
	// The refused line makes the command exit 1 once the rest ran.
	if code != 1 {
		t.Fatalf("batch --wait exited %d, want 1 for the refused line:\n%s", code, out)
	}
	checkDrawn(t, out, []string{"big.bin → s3", "big.bin → gcs", "big.bin → azure"}, size)
	text := escapeCodes.ReplaceAllString(out, "")
	total := regexp.MustCompile(`total\s+\[[^\]]*\]\s+(\d+) / 6 keys .*?(\d+) failed\s+1 rejected`)
	frames := total.FindAllStringSubmatch(text, -1)
	if len(frames) == 0 {
		t.Fatalf("no total line with keys, failed and rejected:\n%s", text)
	}
	prev := 0
	for _, f := range frames {
		n, _ := strconv.Atoi(f[1])
		if n < prev {
			t.Errorf("the total's keys went back from %d to %d", prev, n)
		}
		prev = n
	}
	if prev != 6 {
		t.Errorf("the last total shows %d of 6 keys:\n%s", prev, text)
	}
}

// TestVersionFlags: both binaries print the version their build stamped.
func TestVersionFlags(t *testing.T) {
	worker, starter := binaries(t)
	for _, bin := range []string{worker, starter} {
		out, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil || !strings.Contains(string(out), e2eVersion) {
			t.Errorf("%s --version: %v\n%s", bin, err, out)
		}
	}
	out, err := exec.Command(starter, "completion", "bash").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "complete -o default") {
		t.Errorf("starter completion bash: %v\n%.300s", err, out)
	}
}

// TestProgressAcrossWorkerKill kills the worker mid-upload while `replicate --wait
// --json --progress` watches: the new worker's attempt is shown as a retry and the
// byte count never goes back, though the attempt starts over from the parts stored.
func TestProgressAcrossWorkerKill(t *testing.T) {
	// The SDK sends heartbeats to the server at most every 0.8 heartbeat timeouts
	// (4 s here): the upload is slowed so that some arrive before the kill.
	w := newWorld(t, worldOptions{extra: "    rules: [{match: \"**\", to: [s3]}]\n    limits: {bandwidth: 16MiB/s}\n"})
	const size = 160 << 20
	w.writeFile("video/raw.mov", randomBytes(size))
	first := w.startWorker()
	_, bin := binaries(t)
	cmd := exec.Command(bin, "--config", w.configPath, "--policy", w.policy, "replicate", "--wait", "--json", "--progress", "video/raw.mov")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	must(t, err)
	must(t, cmd.Start())
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var all strings.Builder
	killed := false
	for l := range lines {
		all.WriteString(l + "\n")
		if killed {
			continue
		}
		var o progressObject
		if json.Unmarshal([]byte(l), &o) == nil {
			for _, pl := range o.Lines {
				if pl.Destination == "s3" && pl.Bytes >= 32<<20 && !pl.Finished {
					first.kill()
					w.startWorker()
					killed = true
				}
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("replicate --wait: %v\n%s", err, all.String())
	}
	if !killed {
		t.Fatalf("the transfer never reached 32 MiB:\n%s", all.String())
	}
	checkProgressStream(t, all.String(), []string{"s3"}, size)
	var retried bool
	sc := bufio.NewScanner(strings.NewReader(all.String()))
	for sc.Scan() {
		var o struct {
			Lines []struct {
				Retries int `json:"retries"`
			} `json:"lines"`
		}
		_ = json.Unmarshal(sc.Bytes(), &o)
		for _, l := range o.Lines {
			retried = retried || l.Retries > 0
		}
	}
	if !retried {
		t.Errorf("the new worker's attempt is not shown as a retry:\n%s", all.String())
	}
}

// starterStreams runs the starter off a terminal, with stdout and stderr captured
// apart.
func (w *world) starterStreams(args ...string) (stdout, stderr string, code int) {
	w.t.Helper()
	_, bin := binaries(w.t)
	cmd := exec.Command(bin, append([]string{"--config", w.configPath, "--policy", w.policy}, args...)...)
	cmd.Env = append(os.Environ(), w.extraEnv...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		w.t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// TestReconcileAndPolicyFollowProgress: `reconcile --wait --json --progress` streams
// the reconcile's phase, its sync batch per destination and the large file's bytes;
// `status -f --policy` follows every running workflow of the policy.
func TestReconcileAndPolicyFollowProgress(t *testing.T) {
	w := newWorld(t, worldOptions{extra: "    limits: {bandwidth: 32MiB/s}\n"})
	const size = 72 << 20
	w.writeFile("large.bin", randomBytes(size))
	w.writeFile("small.txt", []byte("small"))
	w.startWorker()
	_, stderr, code := w.starterStreams("reconcile", "--wait", "--json", "--progress")
	if code != 0 {
		t.Fatalf("reconcile exited %d:\n%s", code, stderr)
	}
	checkProgressStream(t, stderr, []string{"s3", "gcs", "azure"}, size)
	kinds := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		var o progressObject
		_ = json.Unmarshal(sc.Bytes(), &o)
		for _, l := range o.Lines {
			kinds[l.Kind+" "+l.Phase] = true
			kinds[l.Kind] = true
		}
	}
	for _, k := range []string{"phase sync", "batch", "batch-destination", "destination"} {
		if !kinds[k] {
			t.Errorf("no %q line in the reconcile's progress (saw %v)", k, kinds)
		}
	}

	// Two new versions replicating without --wait, followed by policy.
	w.writeFile("large.bin", randomBytes(size))
	w.writeFile("other.bin", randomBytes(size))
	if _, _, code := w.starterStreams("replicate", "large.bin", "other.bin"); code != 0 {
		t.Fatal("replicate failed")
	}
	// status -f --policy follows what Temporal's visibility lists as running, which
	// may lag a start by a moment.
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, _, _ := w.starterStreams("status", "--json")
		if strings.Count(out, `"status": "Running"`) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two workflows are not listed as running:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, stderr, code = w.starterStreams("status", "-f", "--json", "--progress")
	if code != 0 {
		t.Fatalf("status -f --policy exited %d:\n%s", code, stderr)
	}
	seen := map[string]bool{}
	sc = bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		var o progressObject
		_ = json.Unmarshal(sc.Bytes(), &o)
		for _, l := range o.Lines {
			seen[l.WorkflowID] = true
		}
	}
	for _, k := range []string{"large.bin", "other.bin"} {
		if !seen["replicate/"+w.policy+"/"+k] {
			t.Errorf("status -f --policy did not follow %s (followed %v)", k, seen)
		}
	}
	checkProgressStream(t, stderr, []string{"s3", "gcs", "azure"}, size)
}
