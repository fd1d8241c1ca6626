package main

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/cloudrepl/replicator/internal/store"
)

func TestKeyLinesReportsBadLinesAndKeepsTheRest(t *testing.T) {
	long := strings.Repeat("x", store.MaxKeyBytes+10)
	in := "a.txt\r\n\n../escape\nb/c.pdf\n" + long + "\nbad\x01ctl\nd//e\n\xffnot-utf8\nlast"
	var rejected []rejectedLine
	var readErr error
	keys := slices.Collect(keyLines(strings.NewReader(in), &rejected, &readErr))
	if readErr != nil {
		t.Fatal(readErr)
	}
	if want := []string{"a.txt", "b/c.pdf", "last"}; !slices.Equal(keys, want) {
		t.Errorf("keys = %q, want %q", keys, want)
	}
	var lines []int
	for _, r := range rejected {
		lines = append(lines, r.Line)
		if r.Reason == "" {
			t.Errorf("line %d refused without a reason", r.Line)
		}
	}
	if want := []int{3, 5, 6, 7, 8}; !slices.Equal(lines, want) {
		t.Errorf("refused lines %v, want %v (%+v)", lines, want, rejected)
	}
	if len(rejected) == 5 {
		if r := rejected[1]; !strings.Contains(r.Reason, "longer than 1024 bytes") || len(r.Key) > 100 {
			t.Errorf("long line reported as %+v", r)
		}
		if r := rejected[0]; r.Key != "../escape" {
			t.Errorf("line 3 reported as %+v", r)
		}
	}
}

func TestKeyLinesLongLastLine(t *testing.T) {
	var rejected []rejectedLine
	var readErr error
	keys := slices.Collect(keyLines(strings.NewReader("ok\n"+strings.Repeat("y", 3*store.MaxKeyBytes)), &rejected, &readErr))
	if readErr != nil || !slices.Equal(keys, []string{"ok"}) || len(rejected) != 1 || rejected[0].Line != 2 {
		t.Fatalf("keys %q, rejected %+v, err %v", keys, rejected, readErr)
	}
}

func TestKeyLinesReadError(t *testing.T) {
	var rejected []rejectedLine
	var readErr error
	boom := errors.New("disk on fire")
	keys := slices.Collect(keyLines(io.MultiReader(strings.NewReader("a\nb\n"), iotest.ErrReader(boom)), &rejected, &readErr))
	if !errors.Is(readErr, boom) || !slices.Equal(keys, []string{"a", "b"}) {
		t.Fatalf("keys %q, read error %v; want a, b then %v", keys, readErr, boom)
	}
}
