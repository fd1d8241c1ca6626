package workflows

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/cloudrepl/replicator/activities"
)

var three = []activities.Route{{Destination: "s3", TaskQueue: "replication"}, {Destination: "gcs", TaskQueue: "replication"}, {Destination: "azure", TaskQueue: "replication-azure"}}

func prep(consistency, mode string, exists bool) *activities.PrepareResult {
	return &activities.PrepareResult{
		Source:      activities.SourceVersion{Exists: exists, Version: "1:v", SHA256: "abc", Size: 10},
		Routes:      three,
		Mode:        mode,
		Consistency: consistency,
		StagingKey:  ".replicator/staging/x",
		Retry:       activities.RetrySettings{MaxAttempts: 2, MaxInterval: time.Second, Expiration: time.Minute, HeartbeatTimeout: 10 * time.Second},
	}
}

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(ReplicateFile, workflow.RegisterOptions{Name: ReplicateFileName})
	env.RegisterWorkflowWithOptions(ReplicateBatch, workflow.RegisterOptions{Name: ReplicateBatchName})
	env.RegisterWorkflowWithOptions(Reconcile, workflow.RegisterOptions{Name: ReconcileName})
	var a *activities.Activities
	for name, fn := range map[string]any{
		activities.PrepareName: a.Prepare, activities.TransferName: a.Transfer, activities.CommitName: a.Commit,
		activities.CleanupName: a.Cleanup, activities.DeleteReplicaName: a.DeleteReplica, activities.RecordDeadLetterName: a.RecordDeadLetter,
		activities.DescribePolicyName: a.DescribePolicy, activities.ReplicateChunkName: a.ReplicateChunk, activities.ReadKeyPageName: a.ReadKeyPage,
		activities.StageChunkName: a.StageChunk, activities.CommitChunkName: a.CommitChunk,
		activities.PlanReconcileName: a.PlanReconcile, activities.DeleteChunkName: a.DeleteChunk, activities.FinishReconcileName: a.FinishReconcile,
	} {
		env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
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
		case activities.TransferInput:
			return v.Destination == name
		case activities.CleanupInput:
			return v.Destination == name
		case activities.DeleteInput:
			return v.Destination == name
		case activities.DeadLetterInput:
			return v.Destination == name
		}
		return false
	})
}

func staged(in activities.TransferInput) bool { return in.StagingKey != "" }
func direct(in activities.TransferInput) bool { return in.StagingKey == "" }

func run(t *testing.T, env *testsuite.TestWorkflowEnvironment) *ReplicateFileResult {
	t.Helper()
	env.ExecuteWorkflow(ReplicateFile, ReplicateFileInput{Policy: "p", Key: "k"})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	var res ReplicateFileResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	return &res
}

func outcomes(res *ReplicateFileResult) map[string]string {
	m := map[string]string{}
	for _, d := range res.Destinations {
		m[d.Destination] = d.Outcome
	}
	return m
}

func TestEventualAllCopied(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PrepareName, mock.Anything, mock.Anything).Return(prep("eventual", "copy", true), nil).Once()
	env.OnActivity(activities.TransferName, mock.Anything, mock.MatchedBy(direct)).Return(&activities.TransferResult{Outcome: "copied", Bytes: 10}, nil).Times(3)
	res := run(t, env)
	if res.Outcome != OutcomeOK || len(res.Destinations) != 3 {
		t.Fatalf("result %+v", res)
	}
}

func TestEventualOneFailureIsDeadLetter(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PrepareName, mock.Anything, mock.Anything).Return(prep("eventual", "copy", true), nil).Once()
	env.OnActivity(activities.TransferName, mock.Anything, dest("s3")).Return(&activities.TransferResult{Outcome: "copied", Bytes: 10}, nil).Once()
	env.OnActivity(activities.TransferName, mock.Anything, dest("gcs")).Return(nil, permanent(activities.ErrPermission)).Once()
	env.OnActivity(activities.TransferName, mock.Anything, dest("azure")).Return(&activities.TransferResult{Outcome: "skipped"}, nil).Once()
	env.OnActivity(activities.RecordDeadLetterName, mock.Anything, dest("gcs")).Return(nil).Once()
	res := run(t, env)
	if res.Outcome != OutcomePartial || outcomes(res)["gcs"] != "failed" || outcomes(res)["s3"] != "copied" {
		t.Fatalf("result %+v", res)
	}
}

func TestEventualAllFailed(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PrepareName, mock.Anything, mock.Anything).Return(prep("eventual", "copy", true), nil).Once()
	env.OnActivity(activities.TransferName, mock.Anything, mock.Anything).Return(nil, permanent(activities.ErrPermission)).Times(3)
	env.OnActivity(activities.RecordDeadLetterName, mock.Anything, mock.Anything).Return(nil).Times(3)
	if res := run(t, env); res.Outcome != OutcomeFailed {
		t.Fatalf("outcome %s", res.Outcome)
	}
}

func TestEventualSourceChangedCopiesAgain(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PrepareName, mock.Anything, mock.Anything).Return(prep("eventual", "copy", true), nil).Twice()
	env.OnActivity(activities.TransferName, mock.Anything, dest("s3")).Return(nil, permanent(activities.ErrSourceChanged)).Once()
	env.OnActivity(activities.TransferName, mock.Anything, mock.Anything).Return(&activities.TransferResult{Outcome: "copied", Bytes: 10}, nil).Times(5)
	res := run(t, env)
	if res.Outcome != OutcomeOK || res.Passes != 2 {
		t.Fatalf("result %+v", res)
	}
}

func TestAtomicStagesCommitsAndCleansUp(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PrepareName, mock.Anything, mock.Anything).Return(prep("atomic", "copy", true), nil).Once()
	env.OnActivity(activities.TransferName, mock.Anything, mock.MatchedBy(staged)).Return(&activities.TransferResult{Outcome: "staged", Bytes: 10}, nil).Times(3)
	env.OnActivity(activities.CommitName, mock.Anything, mock.Anything).Return(&activities.TransferResult{Outcome: "copied", Bytes: 10}, nil).Times(3)
	env.OnActivity(activities.CleanupName, mock.Anything, mock.Anything).Return(nil).Times(3)
	res := run(t, env)
	if res.Outcome != OutcomeOK {
		t.Fatalf("result %+v", res)
	}
}

func TestAtomicStagingFailureCompensatesEverywhere(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PrepareName, mock.Anything, mock.Anything).Return(prep("atomic", "copy", true), nil).Once()
	env.OnActivity(activities.TransferName, mock.Anything, dest("s3")).Return(&activities.TransferResult{Outcome: "staged", Bytes: 10}, nil).Once()
	env.OnActivity(activities.TransferName, mock.Anything, dest("gcs")).Return(&activities.TransferResult{Outcome: "staged", Bytes: 10}, nil).Once()
	env.OnActivity(activities.TransferName, mock.Anything, dest("azure")).Return(nil, permanent(activities.ErrPermission)).Once()
	// Every destination is cleaned, the failed one too: its multipart upload may be open.
	for _, d := range []string{"s3", "gcs", "azure"} {
		env.OnActivity(activities.CleanupName, mock.Anything, dest(d)).Return(nil).Once()
	}
	env.OnActivity(activities.RecordDeadLetterName, mock.Anything, dest("azure")).Return(nil).Once()
	res := run(t, env)
	if res.Outcome != OutcomeCompensated || outcomes(res)["s3"] != "rolled back" || outcomes(res)["azure"] != "failed" {
		t.Fatalf("result %+v", res)
	}
	env.AssertNotCalled(t, activities.CommitName, mock.Anything, mock.Anything)
}

func TestAtomicCompensationFailureFailsTheRun(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PrepareName, mock.Anything, mock.Anything).Return(prep("atomic", "copy", true), nil).Once()
	env.OnActivity(activities.TransferName, mock.Anything, dest("s3")).Return(nil, permanent(activities.ErrPermission)).Once()
	env.OnActivity(activities.TransferName, mock.Anything, mock.Anything).Return(&activities.TransferResult{Outcome: "staged"}, nil).Twice()
	env.OnActivity(activities.CleanupName, mock.Anything, dest("gcs")).Return(permanent(activities.ErrPermission)).Once()
	env.OnActivity(activities.CleanupName, mock.Anything, mock.Anything).Return(nil).Twice()
	// gcs staged and cannot be cleaned: the run must fail.
	env.ExecuteWorkflow(ReplicateFile, ReplicateFileInput{Policy: "p", Key: "k"})
	if err := env.GetWorkflowError(); err == nil {
		t.Fatal("a compensation that cannot finish must fail the run visibly")
	}
}

func TestAtomicCleanupOfTheFailedDestinationIsBestEffort(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PrepareName, mock.Anything, mock.Anything).Return(prep("atomic", "copy", true), nil).Once()
	env.OnActivity(activities.TransferName, mock.Anything, dest("azure")).Return(nil, permanent(activities.ErrPermission)).Once()
	env.OnActivity(activities.TransferName, mock.Anything, mock.Anything).Return(&activities.TransferResult{Outcome: "staged"}, nil).Twice()
	env.OnActivity(activities.CleanupName, mock.Anything, dest("azure")).Return(permanent(activities.ErrPermission)).Once()
	env.OnActivity(activities.CleanupName, mock.Anything, mock.Anything).Return(nil).Twice()
	env.OnActivity(activities.RecordDeadLetterName, mock.Anything, dest("azure")).Return(nil).Once()
	if res := run(t, env); res.Outcome != OutcomeCompensated {
		t.Fatalf("outcome %s", res.Outcome)
	}
}

func TestAtomicSkipsDestinationsThatHoldTheVersion(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PrepareName, mock.Anything, mock.Anything).Return(prep("atomic", "copy", true), nil).Once()
	env.OnActivity(activities.TransferName, mock.Anything, dest("s3")).Return(&activities.TransferResult{Outcome: "skipped"}, nil).Once()
	env.OnActivity(activities.TransferName, mock.Anything, dest("gcs")).Return(&activities.TransferResult{Outcome: "superseded"}, nil).Once()
	env.OnActivity(activities.TransferName, mock.Anything, dest("azure")).Return(&activities.TransferResult{Outcome: "staged", Bytes: 10}, nil).Once()
	env.OnActivity(activities.CommitName, mock.Anything, dest("azure")).Return(&activities.TransferResult{Outcome: "copied", Bytes: 10}, nil).Once()
	env.OnActivity(activities.CleanupName, mock.Anything, dest("azure")).Return(nil).Once()
	res := run(t, env)
	if res.Outcome != OutcomeOK || outcomes(res)["s3"] != "skipped" || outcomes(res)["gcs"] != "superseded" {
		t.Fatalf("result %+v", res)
	}
}

func TestAtomicCommitFailureIsPartial(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PrepareName, mock.Anything, mock.Anything).Return(prep("atomic", "copy", true), nil).Once()
	env.OnActivity(activities.TransferName, mock.Anything, mock.Anything).Return(&activities.TransferResult{Outcome: "staged", Bytes: 10}, nil).Times(3)
	env.OnActivity(activities.CommitName, mock.Anything, dest("gcs")).Return(nil, permanent(activities.ErrPermission)).Once()
	env.OnActivity(activities.CommitName, mock.Anything, mock.Anything).Return(&activities.TransferResult{Outcome: "copied", Bytes: 10}, nil).Twice()
	env.OnActivity(activities.CleanupName, mock.Anything, mock.Anything).Return(nil).Times(3)
	env.OnActivity(activities.RecordDeadLetterName, mock.Anything, dest("gcs")).Return(nil).Once()
	if res := run(t, env); res.Outcome != OutcomePartial {
		t.Fatalf("outcome %s", res.Outcome)
	}
}

func TestAtomicSourceChangedDuringStagingRestarts(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PrepareName, mock.Anything, mock.Anything).Return(prep("atomic", "copy", true), nil).Twice()
	env.OnActivity(activities.TransferName, mock.Anything, dest("s3")).Return(nil, permanent(activities.ErrSourceChanged)).Once()
	env.OnActivity(activities.TransferName, mock.Anything, mock.Anything).Return(&activities.TransferResult{Outcome: "staged", Bytes: 10}, nil).Times(5)
	env.OnActivity(activities.CleanupName, mock.Anything, mock.Anything).Return(nil).Times(6)
	env.OnActivity(activities.CommitName, mock.Anything, mock.Anything).Return(&activities.TransferResult{Outcome: "copied", Bytes: 10}, nil).Times(3)
	res := run(t, env)
	if res.Outcome != OutcomeOK || res.Passes != 2 {
		t.Fatalf("result %+v", res)
	}
}

func TestMissingSource(t *testing.T) {
	t.Run("copy mode skips", func(t *testing.T) {
		env := newEnv(t)
		env.OnActivity(activities.PrepareName, mock.Anything, mock.Anything).Return(prep("eventual", "copy", false), nil).Once()
		if res := run(t, env); res.Outcome != OutcomeSkipped || len(res.Destinations) != 0 {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("mirror mode deletes", func(t *testing.T) {
		env := newEnv(t)
		env.OnActivity(activities.PrepareName, mock.Anything, mock.Anything).Return(prep("eventual", "mirror", false), nil).Once()
		env.OnActivity(activities.DeleteReplicaName, mock.Anything, mock.Anything).Return(&activities.TransferResult{Outcome: "deleted"}, nil).Times(3)
		if res := run(t, env); res.Outcome != OutcomeOK || outcomes(res)["gcs"] != "deleted" {
			t.Fatalf("result %+v", res)
		}
	})
}

func TestExcludedKeyIsSkipped(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PrepareName, mock.Anything, mock.Anything).Return(&activities.PrepareResult{Excluded: true}, nil).Once()
	if res := run(t, env); res.Outcome != OutcomeSkipped {
		t.Fatalf("outcome %s", res.Outcome)
	}
}

func TestTriggerDuringRunLooksAgain(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PrepareName, mock.Anything, mock.Anything).Return(prep("eventual", "copy", true), nil).Twice()
	env.OnActivity(activities.TransferName, mock.Anything, mock.Anything).Return(&activities.TransferResult{Outcome: "copied", Bytes: 10}, nil).Times(3).After(time.Second)
	env.OnActivity(activities.TransferName, mock.Anything, mock.Anything).Return(&activities.TransferResult{Outcome: "skipped"}, nil).Times(3)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(TriggerSignal, "test") }, 500*time.Millisecond)
	res := run(t, env)
	if res.Passes != 2 || res.Outcome != OutcomeOK || outcomes(res)["s3"] != "copied" {
		t.Fatalf("result %+v", res)
	}
}

func TestPrepareFailureFailsTheRun(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.PrepareName, mock.Anything, mock.Anything).Return(nil, permanent(activities.ErrPermission)).Once()
	env.ExecuteWorkflow(ReplicateFile, ReplicateFileInput{Policy: "p", Key: "k"})
	if env.GetWorkflowError() == nil {
		t.Fatal("want an error")
	}
}
