package main

import (
	"context"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"go.temporal.io/sdk/client"
	"golang.org/x/term"
)

// Intervals between polls: a terminal redraws often enough to look alive; a JSON
// stream, read by scripts and logs, once a second.
const (
	terminalInterval = 500 * time.Millisecond
	jsonInterval     = time.Second
)

// view shows the board: bars on a terminal, JSON lines, or nothing.
type view interface {
	// show draws the board as it is now.
	show(b *board, now time.Time)
	// close draws the final state and releases the output.
	close(b *board, now time.Time)
}

// progressView picks how progress is shown (the rule): with --json, one JSON
// object per interval on stderr when --progress is given and nothing otherwise;
// without --json, bars on stderr only when both stdout and stderr are terminals, so
// that output redirected to a file or a pipe never holds escape codes.
func (e *env) progressView() (view, time.Duration) {
	switch {
	case e.g.json && e.g.progress:
		return &jsonView{w: e.errOut}, jsonInterval
	case e.g.json:
		return nil, 0
	case isTerminal(e.out) && isTerminal(e.errOut):
		return newTermView(e.errOut), terminalInterval
	}
	return nil, 0
}

// isTerminal tells whether w is a terminal (a pseudo-terminal included).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// watch runs wait while it shows the progress of roots, and returns what wait
// returned once the final state is drawn.
func (e *env) watch(ctx context.Context, c client.Client, roots []root, wait func() error) error {
	v, interval := e.progressView()
	if v == nil {
		return wait()
	}
	done := make(chan error, 1)
	go func() { done <- wait() }()
	b := newBoard()
	b.rejected = e.rejected
	f := newFollower(c, b, roots)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case err := <-done:
			// One last poll shows how each destination ended.
			f.poll(ctx)
			v.close(b, time.Now())
			return err
		case <-ticker.C:
			f.poll(ctx)
			v.show(b, time.Now())
		case <-ctx.Done():
			v.close(b, time.Now())
			return ctx.Err()
		}
	}
}

// jsonView writes one progress object per interval.
type jsonView struct{ w io.Writer }

func (v *jsonView) show(b *board, now time.Time) { _ = writeReport(v.w, now, b.lines) }

func (v *jsonView) close(b *board, now time.Time) { _ = writeReport(v.w, now, b.lines) }

// termView draws one mpb bar per line. The decorators only read texts this view
// stores atomically, so mpb's drawing goroutine never touches the board.
type termView struct {
	p    *mpb.Progress
	bars map[string]*termBar
}

type termBar struct {
	bar           *mpb.Bar
	label, status atomic.Pointer[string]
	done          bool
}

func newTermView(w io.Writer) *termView {
	return &termView{
		p:    mpb.New(mpb.WithOutput(w), mpb.WithWidth(32), mpb.WithRefreshRate(200*time.Millisecond)),
		bars: map[string]*termBar{},
	}
}

func (v *termView) show(b *board, _ time.Time) {
	withKey := b.withKeys()
	for _, l := range b.lines {
		tb := v.bars[l.id]
		if tb == nil {
			tb = &termBar{}
			read := func(p *atomic.Pointer[string]) decor.DecorFunc {
				return func(decor.Statistics) string {
					if s := p.Load(); s != nil {
						return *s
					}
					return ""
				}
			}
			tb.bar = v.p.AddBar(0,
				mpb.PrependDecorators(decor.Any(read(&tb.label), decor.WCSyncSpaceR)),
				mpb.AppendDecorators(decor.Any(read(&tb.status), decor.WC{C: decor.DextraSpace})),
			)
			v.bars[l.id] = tb
		}
		label, status := l.label(withKey), l.status()
		tb.label.Store(&label)
		tb.status.Store(&status)
		if tb.done {
			continue
		}
		done, total := l.counts()
		if total > 0 {
			tb.bar.SetTotal(total, false)
		}
		tb.bar.SetCurrent(done)
		if l.finished {
			tb.done = true
			if l.ok {
				tb.bar.SetTotal(max(total, done), true)
			} else {
				tb.bar.Abort(false) // keep the line, as far as it got
			}
		}
	}
}

func (v *termView) close(b *board, now time.Time) {
	v.show(b, now)
	for _, tb := range v.bars {
		if !tb.done {
			tb.done = true
			tb.bar.Abort(false)
		}
	}
	v.p.Wait()
}
