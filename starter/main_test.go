package main

import (
	"os"
	"path/filepath"
	"testing"
)

func writeConfig(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "replicator.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := writeConfig(t, "state: file://"+dir+"/state\npolicies:\n  - {name: a, source: file://"+dir+"/src, destinations: [{name: d, url: file://"+dir+"/dst}]}\n  - {name: b, source: file://"+dir+"/src, destinations: [{name: d, url: file://"+dir+"/dst}]}\n")
	bad := writeConfig(t, "state: file:///s\npolicies:\n  - {name: a, source: ftp://x, destinations: []}\n")
	for _, d := range []string{"state", "src", "dst"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"policy", "validate", "--config", good}, 0},
		{[]string{"policy", "validate", "--config", good, "--check"}, 0},
		{[]string{"policy", "validate", "--config", bad}, 2},
		{[]string{"policy", "validate", "--config", filepath.Join(dir, "missing.yaml")}, 2},
		{[]string{"replicate", "--config", good, "k"}, 2},                     // two policies, no --policy
		{[]string{"replicate", "--config", good, "--policy", "zzz", "k"}, 2},  // unknown policy
		{[]string{"replicate", "--config", good, "--policy", "a", "../k"}, 2}, // invalid key
		{[]string{"replicate", "--config", good, "--policy", "a"}, 2},         // no key
		{[]string{"frobnicate"}, 2},
		{[]string{"status", "--bogus-flag"}, 2},
		{[]string{"failed", "list", "--config", good, "--policy", "a", "--json"}, 0},
	} {
		if got := execute(c.args); got != c.want {
			t.Errorf("starter %v exited %d, want %d", c.args, got, c.want)
		}
	}
	// A location that does not exist fails the check: exit 1, the config is valid.
	missing := writeConfig(t, "state: file://"+dir+"/state\npolicies:\n  - {name: a, source: file://"+dir+"/not-mounted, destinations: [{name: d, url: file://"+dir+"/dst}]}\n")
	if got := execute([]string{"policy", "validate", "--check", "--config", missing}); got != 1 {
		t.Errorf("validate --check of a missing source exited %d, want 1", got)
	}
}
