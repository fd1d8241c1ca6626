package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// rateWindow is how far back the rate looks: long enough to smooth heartbeats that
// arrive about once a second, short enough to show a destination slowing down.
const rateWindow = 10 * time.Second

// meter keeps the byte count of one destination honest: the count shown is the
// largest one ever reported for the source version, so it never goes backwards when
// an attempt restarts lower or a part is sent again; such restarts are counted as
// retries instead.
type meter struct {
	// total is the source version's size: set, never summed across attempts.
	total int64
	// done is the largest count seen: what is drawn.
	done int64
	// last is the count the current attempt reported last.
	last int64
	// attempt is Temporal's attempt number of the activity that reported last.
	attempt int32
	// retries counts restarts: a new attempt, or a count lower than the last one.
	retries int
	// samples of done, oldest first, within rateWindow of the newest.
	samples []sample
}

type sample struct {
	at   time.Time
	done int64
}

// setTotal records the source version's size; 0 (unknown) never replaces a size.
func (m *meter) setTotal(total int64) {
	if total > 0 {
		m.total = total
	}
}

// observe records that the attempt reported bytes at now.
func (m *meter) observe(now time.Time, bytes int64, attempt int32) {
	switch {
	case attempt > m.attempt && m.attempt != 0:
		m.retries += int(attempt - m.attempt)
	case attempt == m.attempt && bytes < m.last:
		m.retries++ // the same attempt started over (a part or upload sent again)
	}
	if attempt > m.attempt {
		m.attempt = attempt
	}
	m.last = bytes
	m.done = max(m.done, bytes)
	if m.total > 0 {
		m.done = min(m.done, m.total)
	}
	m.sample(now)
}

// complete marks every byte of the version as written.
func (m *meter) complete(now time.Time) {
	if m.total > m.done {
		m.done = m.total
	}
	m.sample(now)
}

func (m *meter) sample(now time.Time) {
	if n := len(m.samples); n > 0 && m.total > 0 && m.samples[n-1].done >= m.total {
		// Every byte is written: the rate stays the one the transfer ended with,
		// rather than decaying while a commit or a cleanup runs.
		return
	}
	m.samples = append(m.samples, sample{now, m.done})
	cut := 0
	for cut < len(m.samples)-2 && now.Sub(m.samples[cut+1].at) >= rateWindow {
		cut++
	}
	m.samples = m.samples[cut:]
}

// rate is the bytes per second over the window, and whether there are enough
// samples to tell.
func (m *meter) rate() (float64, bool) {
	if len(m.samples) < 2 {
		return 0, false
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	d := last.at.Sub(first.at).Seconds()
	if d <= 0 {
		return 0, false
	}
	return float64(last.done-first.done) / d, true
}

// eta is the time left at the current rate, and whether it is known.
func (m *meter) eta() (time.Duration, bool) {
	r, ok := m.rate()
	if !ok || r <= 0 || m.total <= 0 {
		return 0, false
	}
	left := float64(m.total - m.done)
	return time.Duration(math.Ceil(left/r)) * time.Second, true
}

// lineKind says what a progress line counts.
type lineKind string

const (
	// kindDestination: the bytes of one key on one destination.
	kindDestination lineKind = "destination"
	// kindBatchDestination: the keys a batch finished on one destination.
	kindBatchDestination lineKind = "batch-destination"
	// kindBatch: the keys a batch finished on all destinations.
	kindBatch lineKind = "batch"
	// kindPhase: a workflow without counts yet (a reconcile planning).
	kindPhase lineKind = "phase"
)

// progressLine is one line of progress: one destination of one key, one destination
// of a batch, or a batch's total.
type progressLine struct {
	id          string
	kind        lineKind
	workflowID  string
	key         string
	destination string
	// phase is what runs now: prepare, transfer, stage, commit, cleanup, delete, or
	// the outcome once finished.
	phase string
	// version of the source the bytes belong to; a new one (the source changed and
	// the workflow took another pass) starts a new count, shown with its pass.
	version string
	pass    int
	bytes   meter
	// Keys of a batch line: done of total, and how many failed or were rejected.
	keys, keysTotal, failed, rejected int
	finished, ok                      bool
}

// label is what precedes the bar: the destination, with the key when several keys
// are shown.
func (l *progressLine) label(withKey bool) string {
	switch l.kind {
	case kindBatch:
		return "total"
	case kindPhase:
		return l.workflowID
	}
	if withKey && l.key != "" {
		return l.key + " → " + l.destination
	}
	return l.destination
}

// counts is what the bar fills: bytes for a destination, keys for a batch.
func (l *progressLine) counts() (done, total int64) {
	if l.kind == kindDestination {
		return l.bytes.done, l.bytes.total
	}
	return int64(l.keys), int64(l.keysTotal)
}

// status is the text after the bar: counts, rate, ETA and phase.
func (l *progressLine) status() string {
	var parts []string
	switch l.kind {
	case kindDestination:
		if l.bytes.total > 0 {
			parts = append(parts, humanBytes(l.bytes.done)+" / "+humanBytes(l.bytes.total))
		} else {
			parts = append(parts, humanBytes(l.bytes.done))
		}
		parts = append(parts, l.rateText())
		if !l.finished && (l.bytes.total == 0 || l.bytes.done < l.bytes.total) {
			if eta, ok := l.bytes.eta(); ok {
				parts = append(parts, "ETA "+eta.String())
			} else {
				parts = append(parts, "ETA -")
			}
		}
	case kindBatchDestination, kindBatch:
		parts = append(parts, fmt.Sprintf("%d / %d keys", l.keys, l.keysTotal), humanBytes(l.bytes.done), l.rateText())
		if l.failed > 0 || l.kind == kindBatch {
			parts = append(parts, fmt.Sprintf("%d failed", l.failed))
		}
		if l.kind == kindBatch {
			parts = append(parts, fmt.Sprintf("%d rejected", l.rejected))
		}
	}
	phase := l.phase
	if l.pass > 1 {
		phase += fmt.Sprintf(" (pass %d: the source changed)", l.pass)
	}
	if l.bytes.retries > 0 && !l.finished {
		phase += fmt.Sprintf(" retry %d", l.bytes.retries)
	}
	if phase != "" {
		parts = append(parts, phase)
	}
	return strings.Join(parts, "  ")
}

func (l *progressLine) rateText() string {
	if r, ok := l.bytes.rate(); ok {
		return humanBytes(int64(r)) + "/s"
	}
	return "-/s"
}

// lineReport is the JSON of one line in a progress object.
type lineReport struct {
	Kind        lineKind `json:"kind"`
	WorkflowID  string   `json:"workflow_id"`
	Key         string   `json:"key,omitempty"`
	Destination string   `json:"destination,omitempty"`
	Phase       string   `json:"phase,omitempty"`
	Pass        int      `json:"pass,omitempty"`
	// Bytes never decrease within a pass; Total is the source version's size.
	Bytes int64 `json:"bytes"`
	Total int64 `json:"total,omitempty"`
	// BytesPerSecond and ETASeconds are absent until two samples are seen.
	BytesPerSecond *float64 `json:"bytes_per_second,omitempty"`
	ETASeconds     *float64 `json:"eta_seconds,omitempty"`
	// Retries counts restarted attempts (the bytes count on from the largest seen).
	Retries   int  `json:"retries,omitempty"`
	Keys      *int `json:"keys,omitempty"`
	KeysTotal *int `json:"keys_total,omitempty"`
	Failed    *int `json:"failed,omitempty"`
	Rejected  *int `json:"rejected,omitempty"`
	Finished  bool `json:"finished"`
}

// progressReport is one object of the `--json --progress` stream on stderr.
type progressReport struct {
	Time  time.Time    `json:"time"`
	Lines []lineReport `json:"lines"`
}

func (l *progressLine) report() lineReport {
	r := lineReport{Kind: l.kind, WorkflowID: l.workflowID, Key: l.key, Destination: l.destination, Phase: l.phase,
		Bytes: l.bytes.done, Total: l.bytes.total, Retries: l.bytes.retries, Finished: l.finished}
	if l.pass > 1 {
		r.Pass = l.pass
	}
	if rate, ok := l.bytes.rate(); ok {
		r.BytesPerSecond = &rate
		if eta, ok := l.bytes.eta(); ok && !l.finished {
			s := eta.Seconds()
			r.ETASeconds = &s
		}
	}
	if l.kind == kindBatch || l.kind == kindBatchDestination {
		keys, total, failed := l.keys, l.keysTotal, l.failed
		r.Keys, r.KeysTotal, r.Failed = &keys, &total, &failed
		if l.kind == kindBatch {
			rejected := l.rejected
			r.Rejected = &rejected
		}
	}
	return r
}

// writeReport writes one progress object as a line of JSON.
func writeReport(w io.Writer, now time.Time, lines []*progressLine) error {
	rep := progressReport{Time: now.UTC(), Lines: make([]lineReport, 0, len(lines))}
	for _, l := range lines {
		rep.Lines = append(rep.Lines, l.report())
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
