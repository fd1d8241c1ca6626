package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudrepl/replicator/internal/wire"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/mocks"
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

// fakeTemporal stands in for the Temporal connection: it counts dials and gives a
// mock client whose ExecuteWorkflow records the batch input it was started with.
type fakeTemporal struct {
	t      *testing.T
	dials  int
	client *mocks.Client
	batch  *wire.ReplicateBatchInput
}

func newFakeTemporal(t *testing.T) *fakeTemporal {
	f := &fakeTemporal{t: t, client: mocks.NewClient(t)}
	f.client.On("Close").Return().Maybe()
	run := mocks.NewWorkflowRun(t)
	run.On("GetID").Return("batch/a/test").Maybe()
	run.On("GetRunID").Return("run-1").Maybe()
	f.client.On("ExecuteWorkflow", mock.Anything, mock.Anything, wire.ReplicateBatchName, mock.Anything).
		Run(func(args mock.Arguments) {
			in := args.Get(3).(wire.ReplicateBatchInput)
			f.batch = &in
		}).Return(run, nil).Maybe()
	return f
}

func (f *fakeTemporal) dial() (client.Client, error) {
	f.dials++
	return f.client, nil
}

// runStarter runs the command line with stdin and returns the exit code, stdout and
// stderr.
func (f *fakeTemporal) runStarter(stdin string, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut, f.dial)
	return code, out.String(), errOut.String()
}

// oneDirPolicy writes a config with one policy a over local directories.
func oneDirPolicy(t *testing.T) string {
	dir := t.TempDir()
	for _, d := range []string{"state", "src", "dst"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return writeConfig(t, "state: file://"+dir+"/state\npolicies:\n  - {name: a, source: file://"+dir+"/src, destinations: [{name: d, url: file://"+dir+"/dst}]}\n")
}

func TestUsageErrorsNeverDial(t *testing.T) {
	cfg := oneDirPolicy(t)
	for _, args := range [][]string{
		{"replicate", "--config", cfg},                 // no key
		{"replicate", "--config", cfg, "a", "/abs"},    // an invalid key among valid ones
		{"batch", "--config", cfg, "one", "two"},       // two files
		{"status", "--config", cfg, "x", "y"},          // two workflow IDs
		{"status", "--config", cfg, "--policy", "zzz"}, // unknown policy
		{"schedule", "frob", "--config", cfg},          // unknown subcommand
		{"failed", "lisst"},                            // misspelt subcommand
		{"policy", "validate", "extra", "--config", cfg},
		{"schedule", "backfill", "--config", cfg, "--start", "yesterday", "--end", "2026-01-01T00:00:00Z"},
		{"schedule", "backfill", "--config", cfg, "--start", "2026-01-02T00:00:00Z", "--end", "2026-01-01T00:00:00Z"},
		{"schedule", "create", "--config", cfg}, // the policy has no schedule
		{"reconcile", "now", "--config", cfg},
		{"verify", "--config", cfg, "--concurrency", "many"},
		{"batch", "--config", cfg, "-"}, // an empty list
	} {
		f := newFakeTemporal(t)
		code, _, stderr := f.runStarter("", args...)
		if code != exitUsage {
			t.Errorf("starter %v exited %d, want %d (stderr %q)", args, code, exitUsage, stderr)
		}
		if f.dials != 0 {
			t.Errorf("starter %v dialled Temporal for a usage error", args)
		}
		if !strings.HasPrefix(stderr, "starter: ") {
			t.Errorf("starter %v: stderr %q does not say what is wrong", args, stderr)
		}
	}
}

func TestGroupsWithoutSubcommandShowHelp(t *testing.T) {
	for _, args := range [][]string{{}, {"schedule"}, {"failed"}, {"policy"}} {
		f := newFakeTemporal(t)
		code, stdout, _ := f.runStarter("", args...)
		if code != exitOK || !strings.Contains(stdout, "Available Commands") {
			t.Errorf("starter %v exited %d with %q; want its help and 0", args, code, stdout)
		}
	}
}

func TestBatchRunsTheGoodLinesAndExits1ForTheBad(t *testing.T) {
	cfg := oneDirPolicy(t)
	f := newFakeTemporal(t)
	code, stdout, stderr := f.runStarter("good/a.txt\n../up\nb.pdf\r\n\nbad\x01name\n", "batch", "--config", cfg, "--json", "-")
	if code != exitFailed {
		t.Errorf("exit %d, want %d; stderr %q", code, exitFailed, stderr)
	}
	if f.batch == nil || f.batch.List.Count != 2 || f.batch.Policy != "a" {
		t.Fatalf("batch started with %+v, want the 2 valid keys of policy a", f.batch)
	}
	var out struct {
		Keys     int            `json:"keys"`
		Rejected []rejectedLine `json:"rejected"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("--json output %q: %v", stdout, err)
	}
	if out.Keys != 2 || len(out.Rejected) != 2 || out.Rejected[0].Line != 2 || out.Rejected[0].Key != "../up" || out.Rejected[1].Line != 5 || out.Rejected[1].Reason == "" {
		t.Errorf("--json output %+v", out)
	}
	for _, w := range []string{"line 2 refused", "line 5 refused"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q lacks %q", stderr, w)
		}
	}
	if f.dials != 1 {
		t.Errorf("dialled %d times, want once", f.dials)
	}

	// Every key valid: exit 0 and an empty rejected array for scripts.
	f = newFakeTemporal(t)
	code, stdout, stderr = f.runStarter("x\ny\n", "batch", "--config", cfg, "--json", "-")
	if code != exitOK || !strings.Contains(stdout, `"rejected": []`) || stderr != "" {
		t.Errorf("valid list: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// From a file, every line bad: nothing starts, exit 1.
	list := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(list, []byte("/abs\n./dot\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f = newFakeTemporal(t)
	code, _, stderr = f.runStarter("", "batch", "--config", cfg, list)
	if code != exitFailed || f.batch != nil || f.dials != 0 || !strings.Contains(stderr, "nothing was started") {
		t.Errorf("all lines bad: exit %d, batch %+v, %d dials, stderr %q", code, f.batch, f.dials, stderr)
	}
}

func TestFailedRetryWithNothingToRetryNeverDials(t *testing.T) {
	f := newFakeTemporal(t)
	code, stdout, _ := f.runStarter("", "failed", "retry", "--config", oneDirPolicy(t))
	if code != exitOK || f.dials != 0 || !strings.Contains(stdout, "no dead letters") {
		t.Errorf("exit %d, %d dials, stdout %q", code, f.dials, stdout)
	}
}

func TestConfigWithACredentialInAURLIsAUsageErrorThatHidesIt(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, "state: file://"+dir+"\npolicies:\n  - {name: a, source: file://"+dir+"/src, destinations: [{name: az, url: \"azblob://acct/c?sv=1&sig=TOPSECRET\"}]}\n")
	f := newFakeTemporal(t)
	code, stdout, stderr := f.runStarter("", "policy", "validate", "--config", cfg)
	if code != exitUsage || !strings.Contains(stderr, "destination az") || strings.Contains(stdout+stderr, "TOPSECRET") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestDisplayKeyQuotesWhatATerminalWouldGarble(t *testing.T) {
	for in, want := range map[string]string{
		"photos/a b.jpg": "photos/a b.jpg",
		"new\nline.txt":  `"new\nline.txt"`,
		"bad\xffbyte":    `"bad\xffbyte"`,
		"café.txt":       "café.txt",
	} {
		if got := displayKey(in); got != want {
			t.Errorf("displayKey(%q) = %s, want %s", in, got, want)
		}
	}
}
