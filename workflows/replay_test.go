package workflows

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudrepl/replicator/internal/wire"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// The histories under testdata were recorded from real runs on the dev server and the
// three emulators (internal/e2e with REPLICATOR_RECORD_HISTORIES=workflows/testdata).
// Replaying them catches any change to the workflows that would break the runs in
// flight when a new worker version is deployed.

func replayer() worker.WorkflowReplayer {
	r := worker.NewWorkflowReplayer()
	Register(r)
	return r
}

func histories(t *testing.T) []string {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) < 9 {
		t.Fatalf("recorded histories: %v %v", files, err)
	}
	return files
}

func TestReplayRecordedHistories(t *testing.T) {
	for _, f := range histories(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if err := replay(f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}

// replay replays a recorded history, as the run it was recorded from when its
// .execution file names it (workflows that derive IDs from their own need that; the
// replayer makes one up otherwise).
func replay(file string) error {
	idFile := strings.TrimSuffix(file, ".json") + ".execution"
	ids, err := os.ReadFile(idFile)
	if os.IsNotExist(err) {
		return replayer().ReplayWorkflowHistoryFromJSONFile(nil, file)
	}
	if err != nil {
		return err
	}
	id, runID, _ := strings.Cut(strings.TrimSpace(string(ids)), "\n")
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	if err != nil {
		return err
	}
	return replayer().ReplayWorkflowHistoryWithOptions(nil, h, worker.ReplayWorkflowHistoryOptions{
		OriginalExecution: workflow.Execution{ID: id, RunID: runID}})
}

// nonDeterministicReplicateFile is ReplicateFile with one change a careless edit could
// make: it consults the destinations in reverse order. Replay must refuse it.
func nonDeterministicReplicateFile(ctx workflow.Context, in wire.ReplicateFileInput) (*wire.ReplicateFileResult, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 1})
	var prep wire.PrepareResult
	if err := workflow.ExecuteActivity(actx, wire.PrepareName, wire.PrepareInput{Policy: in.Policy, Key: in.Key}).Get(ctx, &prep); err != nil {
		return nil, err
	}
	for i := len(prep.Routes) - 1; i >= 0; i-- {
		_ = workflow.ExecuteActivity(actx, wire.CleanupName, wire.CleanupInput{Policy: in.Policy, Destination: prep.Routes[i].Destination})
	}
	return &wire.ReplicateFileResult{}, nil
}

func TestNonDeterministicVariantFailsReplay(t *testing.T) {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(nonDeterministicReplicateFile, workflow.RegisterOptions{Name: wire.ReplicateFileName})
	err := r.ReplayWorkflowHistoryFromJSONFile(nil, "testdata/replicate_file_eventual.json")
	if err == nil {
		t.Fatal("a non-deterministic variant replayed without error")
	}
	if !strings.Contains(err.Error(), "nondeterministic") && !strings.Contains(err.Error(), "non-deterministic") && !strings.Contains(err.Error(), "[TMPRL1100]") {
		t.Fatalf("replay failed, but not for non-determinism: %v", err)
	}
}
