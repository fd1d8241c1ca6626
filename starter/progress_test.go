package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// A restarted attempt that reports fewer bytes keeps the largest count and is
// counted as a retry; a heartbeat without a size keeps the version's size.
func TestMeterNeverGoesBackwards(t *testing.T) {
	var m meter
	m.setTotal(900 << 20)
	t0 := time.Unix(1000, 0)
	steps := []struct {
		bytes   int64
		attempt int32
	}{{16 << 20, 1}, {48 << 20, 1}, {32 << 20, 2}, {40 << 20, 2}, {64 << 20, 2}, {8 << 20, 2}, {900 << 20, 2}}
	var last int64
	for i, s := range steps {
		m.setTotal(0)
		m.observe(t0.Add(time.Duration(i)*time.Second), s.bytes, s.attempt)
		if m.done < last {
			t.Fatalf("step %d: count went from %d back to %d", i, last, m.done)
		}
		last = m.done
		if m.total != 900<<20 {
			t.Fatalf("step %d: total %d, want the version's size", i, m.total)
		}
	}
	// One retry for attempt 2, one for the restart inside it (64 MiB, then 8 MiB).
	if m.retries != 2 {
		t.Errorf("retries = %d, want 2", m.retries)
	}
	if m.done != 900<<20 {
		t.Errorf("done = %d, want the whole size", m.done)
	}
}

func TestMeterRateAndETA(t *testing.T) {
	var m meter
	m.setTotal(100 << 20)
	t0 := time.Unix(1000, 0)
	if _, ok := m.rate(); ok {
		t.Fatal("a rate with no samples")
	}
	m.observe(t0, 0, 1)
	m.observe(t0.Add(2*time.Second), 20<<20, 1)
	r, ok := m.rate()
	if !ok || r != 10<<20 {
		t.Fatalf("rate = %v, %v; want 10 MiB/s", r, ok)
	}
	if eta, ok := m.eta(); !ok || eta != 8*time.Second {
		t.Fatalf("eta = %v, %v; want 8s", eta, ok)
	}
	// Samples older than the window stop counting.
	m.observe(t0.Add(2*time.Second+rateWindow+time.Second), 21<<20, 1)
	m.observe(t0.Add(2*time.Second+rateWindow+2*time.Second), 22<<20, 1)
	if r, _ := m.rate(); r >= 10<<20 {
		t.Errorf("rate %v still counts samples older than %v", r, rateWindow)
	}
}

func sampleBoard() *board {
	b := newBoard()
	t0 := time.Unix(1000, 0)
	for i, dest := range []string{"s3", "gcs", "azure"} {
		l := b.line("replicate/p/k\x00"+dest, func(l *progressLine) {
			l.kind, l.workflowID, l.key, l.destination, l.phase = kindDestination, "replicate/p/k", "k", dest, "stage"
		})
		l.bytes.setTotal(64 << 20)
		l.bytes.observe(t0, 0, 1)
		l.bytes.observe(t0.Add(time.Second), int64(i+1)<<20, 1)
	}
	return b
}

func TestProgressReportIsOneJSONObjectPerLine(t *testing.T) {
	var buf bytes.Buffer
	b := sampleBoard()
	if err := writeReport(&buf, time.Unix(1001, 0), b.lines); err != nil {
		t.Fatal(err)
	}
	b.lines[0].bytes.observe(time.Unix(1002, 0), 5<<20, 1)
	if err := writeReport(&buf, time.Unix(1002, 0), b.lines); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	n := 0
	for sc.Scan() {
		var rep progressReport
		if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
			t.Fatalf("line %d is not a JSON object: %v\n%s", n+1, err, sc.Text())
		}
		if len(rep.Lines) != 3 {
			t.Fatalf("line %d: %d lines, want one per destination", n+1, len(rep.Lines))
		}
		for _, l := range rep.Lines {
			if l.Total != 64<<20 || l.BytesPerSecond == nil || l.Phase != "stage" || l.Destination == "" {
				t.Errorf("line %d: incomplete destination %+v", n+1, l)
			}
		}
		n++
	}
	if n != 2 {
		t.Fatalf("%d objects, want 2", n)
	}
}

// Off a terminal (a file, a pipe, a buffer) nothing draws bars, and without
// --progress a --json run writes no progress at all.
func TestNoBarsOffATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, c := range []struct {
		name           string
		json, progress bool
		out, errOut    io.Writer
		want           string
	}{
		{"buffers", false, false, &bytes.Buffer{}, &bytes.Buffer{}, "none"},
		{"pipes", false, false, w, w, "none"},
		{"json", true, false, w, w, "none"},
		{"json progress", true, true, w, w, "json"},
	} {
		e := &env{g: &globals{json: c.json, progress: c.progress}, out: c.out, errOut: c.errOut}
		v, _ := e.progressView()
		got := "none"
		switch v.(type) {
		case *jsonView:
			got = "json"
		case *termView:
			got = "terminal"
		}
		if got != c.want {
			t.Errorf("%s: %s progress, want %s", c.name, got, c.want)
		}
	}
}

// escapes are the terminal control sequences mpb writes.
var escapes = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// On a pseudo-terminal the bars draw one line per destination, each with its counts
// and a rate; with stdout redirected they do not draw.
func TestBarsOnATerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(tty, &pty.Winsize{Rows: 40, Cols: 160}); err != nil {
		t.Fatal(err)
	}
	read := make(chan string)
	go func() {
		b, _ := io.ReadAll(ptmx)
		read <- string(b)
	}()
	e := &env{g: &globals{}, out: tty, errOut: tty}
	v, _ := e.progressView()
	if _, ok := v.(*termView); !ok {
		t.Fatalf("%T on a terminal, want bars", v)
	}
	b := sampleBoard()
	v.show(b, time.Unix(1001, 0))
	time.Sleep(300 * time.Millisecond) // let mpb draw a frame
	for _, l := range b.lines {
		l.bytes.observe(time.Unix(1002, 0), 64<<20, 1)
		l.finished, l.ok, l.phase = true, true, "copied"
	}
	v.close(b, time.Unix(1002, 0))
	tty.Close()
	out := <-read
	if !escapes.MatchString(out) {
		t.Errorf("no cursor movement: the bars were not redrawn in place:\n%q", out)
	}
	text := escapes.ReplaceAllString(out, "")
	t.Logf("drawn:\n%s", text)
	for _, dest := range []string{"s3", "gcs", "azure"} {
		re := regexp.MustCompile(`(?m)^` + dest + `\s.*\d+\.\d MiB / 64\.0 MiB\s+\S+ ?[KMG]?i?B/s`)
		if !re.MatchString(text) {
			t.Errorf("no line for %s with its counts and a rate:\n%s", dest, text)
		}
	}
	if strings.Count(text, "copied") < 3 {
		t.Errorf("the final frame does not show every destination copied:\n%s", text)
	}

	// Stdout redirected to a file: nothing is drawn even though stderr is a
	// terminal, so no escape code ends up in a log.
	f, err := os.Create(t.TempDir() + "/out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e = &env{g: &globals{}, out: f, errOut: os.Stderr}
	if v, _ := e.progressView(); v != nil {
		t.Errorf("%T with stdout in a file, want no progress", v)
	}
}

// Once every byte is written the rate stays the transfer's, and there is no ETA,
// however long the commit that follows takes.
func TestMeterRateFrozenWhenComplete(t *testing.T) {
	var m meter
	m.setTotal(10 << 20)
	t0 := time.Unix(1000, 0)
	m.observe(t0, 0, 1)
	m.observe(t0.Add(time.Second), 10<<20, 1)
	m.complete(t0.Add(5 * time.Second))
	m.observe(t0.Add(9*time.Second), 10<<20, 1)
	if r, ok := m.rate(); !ok || r != 10<<20 {
		t.Fatalf("rate = %v, %v after completion; want the transfer's 10 MiB/s", r, ok)
	}
	l := &progressLine{kind: kindDestination, destination: "s3", phase: "commit", bytes: m}
	if s := l.status(); strings.Contains(s, "ETA") {
		t.Errorf("a complete transfer shows an ETA: %q", s)
	}
}

// --progress without --json is refused before anything connects: the bars need no
// flag, and off a terminal the stream must be parseable.
func TestProgressNeedsJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"status", "--progress"}, strings.NewReader(""), &out, &errOut, nil)
	if code != exitUsage || !strings.Contains(errOut.String(), "--progress only applies with --json") {
		t.Fatalf("exit %d, stderr %q; want a usage error naming --json", code, errOut.String())
	}
}
