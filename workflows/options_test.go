package workflows

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestTransferTimeCoversTheBandwidthLimit(t *testing.T) {
	const gib = 1 << 30
	if got := transferTime(10<<20, 0); got != time.Hour+10*time.Second {
		t.Errorf("10 MiB unlimited: %s", got)
	}
	// 10 GiB at 1 MiB/s needs 10,240 s: the attempt gets twice that, not an hour.
	if got := transferTime(10*gib, 1<<20); got < 2*10240*time.Second {
		t.Errorf("10 GiB at 1 MiB/s: %s, shorter than the transfer needs", got)
	}
}

func TestSummaryKeyBoundsLongKeys(t *testing.T) {
	if summaryKey("a/b.pdf") != "a/b.pdf" {
		t.Fatal("a short key must be shown whole")
	}
	long := strings.Repeat("é", 500) + "/invoice.pdf"
	got := summaryKey(long)
	if len(got) > maxSummaryKey+len("…") || !utf8.ValidString(got) || !strings.HasSuffix(got, "/invoice.pdf") {
		t.Fatalf("summary of a long key: %q (%d bytes)", got, len(got))
	}
}
