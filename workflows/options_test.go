package workflows

import (
	"testing"
	"time"
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
