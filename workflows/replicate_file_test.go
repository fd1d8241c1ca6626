package workflows

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudrepl/replicator/internal/wire"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cloudrepl/replicator/activities"
)

var three = []wire.Route{{Destination: "s3", TaskQueue: "replication"}, {Destination: "gcs", TaskQueue: "replication"}, {Destination: "azure", TaskQueue: "replication-azure"}}

func prep(consistency, mode string, exists bool) *wire.PrepareResult {
	return &wire.PrepareResult{
		Source:      wire.SourceVersion{Exists: exists, Version: "1:v", SHA256: "abc", Size: 10},
		Routes:      three,
		Mode:        mode,
		Consistency: consistency,
		StagingKey:  ".replicator/staging/x",
		Retry:       wire.RetrySettings{MaxAttempts: 2, MaxInterval: time.Second, Expiration: time.Minute, HeartbeatTimeout: 10 * time.Second},
	}
}

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	Register(env)
	activities.Register(env, nil)
	// The lag a run reports goes to the worker's metrics; no test here looks at it.
	env.OnActivity(wire.ObserveLagName, mock.Anything, mock.Anything).Return(nil).Maybe()
	t.Cleanup(func() { env.AssertExpectations(t) })
	return env
}

func permanent(typ string) error {
	return temporal.NewNonRetryableApplicationError("boom on purpose", typ, errors.New("cause"))
}

// dest matches an activity input for one destination.
func dest(name string) any {
	return mock.MatchedBy(func(in any) bool {
		switch v := in.(type) {
		case wire.TransferInput:
			return v.Destination == name
		case wire.CleanupInput:
			return v.Destination == name
		case wire.DeleteInput:
			return v.Destination == name
		case wire.DeadLetterInput:
			return v.Destination == name
		}
		return false
	})
}

func staged(in wire.TransferInput) bool { return in.StagingKey != "" }
func direct(in wire.TransferInput) bool { return in.StagingKey == "" }

func run(t *testing.T, env *testsuite.TestWorkflowEnvironment) *wire.ReplicateFileResult {
	t.Helper()
	env.ExecuteWorkflow(ReplicateFile, wire.ReplicateFileInput{Policy: "p", Key: "k"})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	var res wire.ReplicateFileResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	return &res
}

func outcomes(res *wire.ReplicateFileResult) map[string]wire.Outcome {
	m := map[string]wire.Outcome{}
	for _, d := range res.Destinations {
		m[d.Destination] = d.Outcome
	}
	return m
}

func TestEventualAllCopied(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(prep("eventual", "copy", true), nil).Once()
	env.OnActivity(wire.TransferName, mock.Anything, mock.MatchedBy(direct)).Return(&wire.TransferResult{Outcome: "copied", Bytes: 10}, nil).Times(3)
	res := run(t, env)
	if res.Outcome != wire.RunOK || len(res.Destinations) != 3 {
		t.Fatalf("result %+v", res)
	}
}

func TestEventualOneFailureIsDeadLetter(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(prep("eventual", "copy", true), nil).Once()
	env.OnActivity(wire.TransferName, mock.Anything, dest("s3")).Return(&wire.TransferResult{Outcome: "copied", Bytes: 10}, nil).Once()
	env.OnActivity(wire.TransferName, mock.Anything, dest("gcs")).Return(nil, permanent(wire.ErrPermission)).Once()
	env.OnActivity(wire.TransferName, mock.Anything, dest("azure")).Return(&wire.TransferResult{Outcome: "skipped"}, nil).Once()
	env.OnActivity(wire.RecordDeadLetterName, mock.Anything, dest("gcs")).Return(nil).Once()
	res := run(t, env)
	if res.Outcome != wire.RunPartial || outcomes(res)["gcs"] != "failed" || outcomes(res)["s3"] != "copied" {
		t.Fatalf("result %+v", res)
	}
}

func TestEventualAllFailed(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(prep("eventual", "copy", true), nil).Once()
	env.OnActivity(wire.TransferName, mock.Anything, mock.Anything).Return(nil, permanent(wire.ErrPermission)).Times(3)
	env.OnActivity(wire.RecordDeadLetterName, mock.Anything, mock.Anything).Return(nil).Times(3)
	if res := run(t, env); res.Outcome != wire.RunFailed {
		t.Fatalf("outcome %s", res.Outcome)
	}
}

func TestEventualSourceChangedCopiesAgain(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(prep("eventual", "copy", true), nil).Twice()
	env.OnActivity(wire.TransferName, mock.Anything, dest("s3")).Return(nil, permanent(wire.ErrSourceChanged)).Once()
	env.OnActivity(wire.TransferName, mock.Anything, mock.Anything).Return(&wire.TransferResult{Outcome: "copied", Bytes: 10}, nil).Times(5)
	res := run(t, env)
	if res.Outcome != wire.RunOK || res.Passes != 2 {
		t.Fatalf("result %+v", res)
	}
}

func TestAtomicStagesCommitsAndCleansUp(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(prep("atomic", "copy", true), nil).Once()
	env.OnActivity(wire.TransferName, mock.Anything, mock.MatchedBy(staged)).Return(&wire.TransferResult{Outcome: "staged", Bytes: 10}, nil).Times(3)
	env.OnActivity(wire.CommitName, mock.Anything, mock.Anything).Return(&wire.TransferResult{Outcome: "copied", Bytes: 10}, nil).Times(3)
	env.OnActivity(wire.CleanupName, mock.Anything, mock.Anything).Return(nil).Times(3)
	res := run(t, env)
	if res.Outcome != wire.RunOK {
		t.Fatalf("result %+v", res)
	}
}

func TestAtomicStagingFailureCompensatesEverywhere(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(prep("atomic", "copy", true), nil).Once()
	env.OnActivity(wire.TransferName, mock.Anything, dest("s3")).Return(&wire.TransferResult{Outcome: "staged", Bytes: 10}, nil).Once()
	env.OnActivity(wire.TransferName, mock.Anything, dest("gcs")).Return(&wire.TransferResult{Outcome: "staged", Bytes: 10}, nil).Once()
	env.OnActivity(wire.TransferName, mock.Anything, dest("azure")).Return(nil, permanent(wire.ErrPermission)).Once()
	// Every destination is cleaned, the failed one too: its multipart upload may be open.
	for _, d := range []string{"s3", "gcs", "azure"} {
		env.OnActivity(wire.CleanupName, mock.Anything, dest(d)).Return(nil).Once()
	}
	env.OnActivity(wire.RecordDeadLetterName, mock.Anything, dest("azure")).Return(nil).Once()
	res := run(t, env)
	if res.Outcome != wire.RunCompensated || outcomes(res)["s3"] != "rolled back" || outcomes(res)["azure"] != "failed" {
		t.Fatalf("result %+v", res)
	}
	env.AssertNotCalled(t, wire.CommitName, mock.Anything, mock.Anything)
}

func TestAtomicCompensationFailureFailsTheRun(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(prep("atomic", "copy", true), nil).Once()
	env.OnActivity(wire.TransferName, mock.Anything, dest("s3")).Return(nil, permanent(wire.ErrPermission)).Once()
	env.OnActivity(wire.TransferName, mock.Anything, mock.Anything).Return(&wire.TransferResult{Outcome: "staged"}, nil).Twice()
	env.OnActivity(wire.CleanupName, mock.Anything, dest("gcs")).Return(permanent(wire.ErrPermission)).Once()
	env.OnActivity(wire.CleanupName, mock.Anything, mock.Anything).Return(nil).Twice()
	// gcs staged and cannot be cleaned: the run must fail.
	env.ExecuteWorkflow(ReplicateFile, wire.ReplicateFileInput{Policy: "p", Key: "k"})
	if err := env.GetWorkflowError(); err == nil {
		t.Fatal("a compensation that cannot finish must fail the run visibly")
	}
}

func TestAtomicCleanupOfTheFailedDestinationIsBestEffort(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(prep("atomic", "copy", true), nil).Once()
	env.OnActivity(wire.TransferName, mock.Anything, dest("azure")).Return(nil, permanent(wire.ErrPermission)).Once()
	env.OnActivity(wire.TransferName, mock.Anything, mock.Anything).Return(&wire.TransferResult{Outcome: "staged"}, nil).Twice()
	env.OnActivity(wire.CleanupName, mock.Anything, dest("azure")).Return(permanent(wire.ErrPermission)).Once()
	env.OnActivity(wire.CleanupName, mock.Anything, mock.Anything).Return(nil).Twice()
	env.OnActivity(wire.RecordDeadLetterName, mock.Anything, dest("azure")).Return(nil).Once()
	if res := run(t, env); res.Outcome != wire.RunCompensated {
		t.Fatalf("outcome %s", res.Outcome)
	}
}

func TestAtomicSkipsDestinationsThatHoldTheVersion(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(prep("atomic", "copy", true), nil).Once()
	env.OnActivity(wire.TransferName, mock.Anything, dest("s3")).Return(&wire.TransferResult{Outcome: "skipped"}, nil).Once()
	env.OnActivity(wire.TransferName, mock.Anything, dest("gcs")).Return(&wire.TransferResult{Outcome: "superseded"}, nil).Once()
	env.OnActivity(wire.TransferName, mock.Anything, dest("azure")).Return(&wire.TransferResult{Outcome: "staged", Bytes: 10}, nil).Once()
	env.OnActivity(wire.CommitName, mock.Anything, dest("azure")).Return(&wire.TransferResult{Outcome: "copied", Bytes: 10}, nil).Once()
	env.OnActivity(wire.CleanupName, mock.Anything, dest("azure")).Return(nil).Once()
	res := run(t, env)
	if res.Outcome != wire.RunOK || outcomes(res)["s3"] != "skipped" || outcomes(res)["gcs"] != "superseded" {
		t.Fatalf("result %+v", res)
	}
}

// A commit that fails for good on one destination rolls the others back: the
// outcome is compensated, never a new version on some clouds only.
func TestAtomicCommitFailureRollsBackTheOthers(t *testing.T) {
	env := newEnv(t)
	var stages []string
	env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(prep("atomic", "copy", true), nil).Once()
	env.OnActivity(wire.TransferName, mock.Anything, mock.Anything).Return(func(_ context.Context, in wire.TransferInput) (*wire.TransferResult, error) {
		doublesMu.Lock()
		stages = append(stages, in.StagingKey)
		doublesMu.Unlock()
		return &wire.TransferResult{Outcome: "staged", Bytes: 10, Final: &wire.FinalState{Exists: true, ETag: "old"}}, nil
	}).Times(3)
	env.OnActivity(wire.CommitName, mock.Anything, dest("gcs")).Return(nil, permanent(wire.ErrPermission)).Once()
	env.OnActivity(wire.CommitName, mock.Anything, mock.Anything).Return(func(_ context.Context, in wire.TransferInput) (*wire.TransferResult, error) {
		if in.Undo == "" {
			return nil, errors.New("a commit over an existing key was asked to keep no undo copy")
		}
		return &wire.TransferResult{Outcome: "copied", Bytes: 10, ETag: "new", Undo: &wire.UndoState{Key: in.Undo, ETag: "new"}}, nil
	}).Twice()
	rolledBack := map[string]bool{}
	env.OnActivity(wire.RollbackName, mock.Anything, mock.Anything).Return(func(_ context.Context, in wire.RollbackInput) (*wire.RollbackResult, error) {
		doublesMu.Lock()
		defer doublesMu.Unlock()
		rolledBack[in.Destination] = len(in.Keys) == 1 && in.Keys[0].Undo.ETag == "new"
		return &wire.RollbackResult{Outcomes: []wire.Outcome{wire.OutcomeRolledBack}}, nil
	}).Twice()
	cleaned := map[string][]string{}
	env.OnActivity(wire.CleanupName, mock.Anything, mock.Anything).Return(cleanups(cleaned)).Times(3)
	env.OnActivity(wire.RecordDeadLetterName, mock.Anything, dest("gcs")).Return(nil).Once()
	res := run(t, env)
	if res.Outcome != wire.RunCompensated || outcomes(res)["s3"] != wire.OutcomeRolledBack || outcomes(res)["azure"] != wire.OutcomeRolledBack || outcomes(res)["gcs"] != wire.OutcomeFailed {
		t.Fatalf("result %+v", res)
	}
	if !rolledBack["s3"] || !rolledBack["azure"] || rolledBack["gcs"] {
		t.Fatalf("rolled back %v, want s3 and azure with the ETag their commit wrote", rolledBack)
	}
	if len(cleaned["s3"]) != 2 || len(cleaned["gcs"]) != 1 || !strings.HasPrefix(cleaned["s3"][1], wire.UndoPrefix) {
		t.Fatalf("cleanups %v, want the stage everywhere and the undo copy where a commit made one", cleaned)
	}
	if stages[0] == ".replicator/staging/x" || stages[0] != stages[1] {
		t.Fatalf("stages %v: want one stage per run, not the version's shared one", stages)
	}
}

func TestAtomicSourceChangedDuringStagingRestarts(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(prep("atomic", "copy", true), nil).Twice()
	env.OnActivity(wire.TransferName, mock.Anything, dest("s3")).Return(nil, permanent(wire.ErrSourceChanged)).Once()
	env.OnActivity(wire.TransferName, mock.Anything, mock.Anything).Return(&wire.TransferResult{Outcome: "staged", Bytes: 10}, nil).Times(5)
	env.OnActivity(wire.CleanupName, mock.Anything, mock.Anything).Return(nil).Times(6)
	env.OnActivity(wire.CommitName, mock.Anything, mock.Anything).Return(&wire.TransferResult{Outcome: "copied", Bytes: 10}, nil).Times(3)
	res := run(t, env)
	if res.Outcome != wire.RunOK || res.Passes != 2 {
		t.Fatalf("result %+v", res)
	}
}

func TestMissingSource(t *testing.T) {
	t.Run("copy mode skips", func(t *testing.T) {
		env := newEnv(t)
		env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(prep("eventual", "copy", false), nil).Once()
		if res := run(t, env); res.Outcome != wire.RunSkipped || len(res.Destinations) != 0 {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("mirror mode deletes", func(t *testing.T) {
		env := newEnv(t)
		env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(prep("eventual", "mirror", false), nil).Once()
		env.OnActivity(wire.DeleteReplicaName, mock.Anything, mock.Anything).Return(&wire.TransferResult{Outcome: "deleted"}, nil).Times(3)
		if res := run(t, env); res.Outcome != wire.RunOK || outcomes(res)["gcs"] != "deleted" {
			t.Fatalf("result %+v", res)
		}
	})
}

func TestExcludedKeyIsSkipped(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(&wire.PrepareResult{Excluded: true}, nil).Once()
	if res := run(t, env); res.Outcome != wire.RunSkipped {
		t.Fatalf("outcome %s", res.Outcome)
	}
}

func TestTriggerDuringRunLooksAgain(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(prep("eventual", "copy", true), nil).Twice()
	env.OnActivity(wire.TransferName, mock.Anything, mock.Anything).Return(&wire.TransferResult{Outcome: "copied", Bytes: 10}, nil).Times(3).After(time.Second)
	env.OnActivity(wire.TransferName, mock.Anything, mock.Anything).Return(&wire.TransferResult{Outcome: "skipped"}, nil).Times(3)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(wire.TriggerSignal, "test") }, 500*time.Millisecond)
	res := run(t, env)
	if res.Passes != 2 || res.Outcome != wire.RunOK || outcomes(res)["s3"] != "copied" {
		t.Fatalf("result %+v", res)
	}
}

func TestPrepareFailureFailsTheRun(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(nil, permanent(wire.ErrPermission)).Once()
	env.ExecuteWorkflow(ReplicateFile, wire.ReplicateFileInput{Policy: "p", Key: "k"})
	if env.GetWorkflowError() == nil {
		t.Fatal("want an error")
	}
}

// A source that changes during every pass ends the run failed, with a dead letter per
// destination saying so, not with an earlier pass's outcome.
func TestSourceChangingEveryPassIsReported(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.PrepareName, mock.Anything, mock.Anything).Return(prep("eventual", "copy", true), nil).Times(maxPasses)
	env.OnActivity(wire.TransferName, mock.Anything, mock.Anything).Return(nil, permanent(wire.ErrSourceChanged)).Times(3 * maxPasses)
	env.OnActivity(wire.RecordDeadLetterName, mock.Anything, mock.MatchedBy(func(in wire.DeadLetterInput) bool {
		return in.Class == wire.ErrSourceChanged && strings.Contains(in.Message, "changed during each")
	})).Return(nil).Times(3)
	res := run(t, env)
	if res.Outcome != wire.RunFailed || res.Passes != maxPasses || outcomes(res)["s3"] != wire.OutcomeFailed {
		t.Fatalf("result %+v", res)
	}
}
