package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cloudrepl/replicator/internal/store"
)

// FuzzKeyLines: a key list of any bytes yields only valid keys, reports every other
// non-empty line with its number and a reason, and loses no line.
func FuzzKeyLines(f *testing.F) {
	f.Add([]byte("a.txt\nb/c.pdf\r\n\n"))
	f.Add([]byte("ok\n\x00bad\n/abs\n" + strings.Repeat("x", store.MaxKeyBytes+10) + "\nlast"))
	f.Add([]byte("caf\xc3\xa9\n\xff\xfe\n"))
	f.Fuzz(func(t *testing.T, input []byte) {
		var rejected []rejectedLine
		var readErr error
		var keys []string
		for k := range keyLines(bytes.NewReader(input), &rejected, &readErr) {
			if err := store.ValidateKey(k, 0); err != nil {
				t.Fatalf("yielded invalid key %q: %v", k, err)
			}
			keys = append(keys, k)
		}
		if readErr != nil {
			t.Fatalf("reading from memory failed: %v", readErr)
		}
		lines, empty := 0, 0
		for _, l := range bytes.Split(input, []byte("\n")) {
			lines++
			if len(bytes.TrimSuffix(l, []byte("\r"))) == 0 {
				empty++
			}
		}
		prev := 0
		for _, r := range rejected {
			if r.Reason == "" || r.Line <= prev || r.Line > lines {
				t.Fatalf("rejection %+v: no reason, or line out of order or range (%d lines)", r, lines)
			}
			prev = r.Line
		}
		if got := len(keys) + len(rejected) + empty; got != lines {
			t.Fatalf("%d keys + %d rejected + %d empty = %d; the input has %d lines", len(keys), len(rejected), empty, got, lines)
		}
	})
}
