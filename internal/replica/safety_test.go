package replica

import (
	"strings"
	"testing"

	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/wire"
)

func TestPlanSafety(t *testing.T) {
	p := &config.Policy{Mode: config.ModeMirror, Safety: config.Safety{MaxDelete: 10, MaxDeletePercent: 20}}
	plan := func(sourceKeys, objects, deletes int) *wire.PlanResult {
		return &wire.PlanResult{SourceKeys: sourceKeys, Destinations: []wire.DestinationPlan{{Destination: "s3", Objects: objects, Delete: deletes}}}
	}
	for _, c := range []struct {
		name string
		plan *wire.PlanResult
		stop string
	}{
		{"within limits", plan(100, 100, 5), ""},
		{"empty source over a full destination", plan(0, 100, 100), "source is empty"},
		{"over max_delete", plan(1000, 1000, 11), "max_delete 10"},
		{"over max_delete_percent", plan(100, 40, 9), "max_delete_percent 20"},
	} {
		stop, reason := PlanSafety(p, c.plan)
		if stop != (c.stop != "") || !strings.Contains(reason, c.stop) {
			t.Errorf("%s: stop=%v %q, want %q", c.name, stop, reason, c.stop)
		}
	}
	copyMode := *p
	copyMode.Mode = config.ModeCopy
	if stop, _ := PlanSafety(&copyMode, plan(0, 100, 0)); stop {
		t.Error("copy mode never deletes: an empty source is no reason to stop")
	}
}

func TestRejectKind(t *testing.T) {
	for reason, want := range map[string]string{
		"symlink leading outside /srv: the replicator only reads inside it":  wire.RejectLink,
		"broken symlink: its target does not exist":                          wire.RejectLink,
		"not a regular file (named pipe): only regular files are replicated": wire.RejectSpecial,
		"directory cannot be read (permission denied)":                       wire.RejectUnreadable,
		`key "a\x01b" holds control character U+0001: rename the file`:       wire.RejectName,
		`key "x" already exists with another name`:                           wire.RejectName,
	} {
		if got := RejectKind(reason); got != want {
			t.Errorf("RejectKind(%q) = %s, want %s", reason, got, want)
		}
	}
}
