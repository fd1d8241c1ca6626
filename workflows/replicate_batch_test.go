package workflows

import (
	"context"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/workflow"

	"github.com/cloudrepl/replicator/activities"
	"github.com/cloudrepl/replicator/internal/state"
)

func describe(consistency string) *activities.PolicyDescription {
	return &activities.PolicyDescription{Mode: "copy", Consistency: consistency, Concurrency: 4,
		Groups: []activities.QueueGroup{{TaskQueue: "replication", Destinations: []string{"s3", "gcs"}}, {TaskQueue: "replication-azure", Destinations: []string{"azure"}}},
		Retry:  prep("eventual", "copy", true).Retry}
}

func chunk(copied int, large ...string) func(context.Context, activities.ChunkInput) (*activities.ChunkResult, error) {
	return func(_ context.Context, in activities.ChunkInput) (*activities.ChunkResult, error) {
		res := &activities.ChunkResult{Keys: 64, Large: large}
		for _, d := range in.Destinations {
			res.Destinations = append(res.Destinations, activities.DestinationCounts{Destination: d, Counts: activities.Counts{Copied: copied, Bytes: int64(copied) * 100}})
		}
		return res, nil
	}
}

func TestBatchChunksEveryPagePerQueueGroup(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.DescribePolicyName, mock.Anything, mock.Anything).Return(describe("eventual"), nil).Once()
	// 5 pages × 2 queue groups.
	env.OnActivity(activities.ReplicateChunkName, mock.Anything, mock.Anything).Return(chunk(64)).Times(10)
	env.ExecuteWorkflow(ReplicateBatch, ReplicateBatchInput{Policy: "p", List: state.KeyList{Pages: 5, Count: 320, PageSize: 64}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var sum BatchSummary
	if err := env.GetWorkflowResult(&sum); err != nil {
		t.Fatal(err)
	}
	if sum.Keys != 320 || len(sum.Destinations) != 3 || sum.Totals().Copied != 3*320 || sum.Totals().Bytes != 3*320*100 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestBatchContinuesAsNew(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.ReplicateChunkName, mock.Anything, mock.Anything).Return(chunk(1)).Times(4)
	env.ExecuteWorkflow(ReplicateBatch, ReplicateBatchInput{Policy: "p", List: state.KeyList{Pages: 5}, PagesPerRun: 2, Description: describe("eventual")})
	err := env.GetWorkflowError()
	if !workflow.IsContinueAsNewError(err) {
		t.Fatalf("err = %v, want continue-as-new after 2 pages", err)
	}
}

func TestBatchGivesLargeFilesTheirOwnWorkflow(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.ReplicateChunkName, mock.Anything, mock.Anything).Return(chunk(1, "big.iso")).Once()
	env.OnWorkflow(ReplicateFileName, mock.Anything, ReplicateFileInput{Policy: "p", Key: "big.iso"}).Return(&ReplicateFileResult{
		Outcome: OutcomeOK, Destinations: []DestinationOutcome{{Destination: "s3", Outcome: "copied", Bytes: 1 << 30}}}, nil).Once()
	d := describe("eventual")
	d.Groups = d.Groups[:1]
	env.ExecuteWorkflow(ReplicateBatch, ReplicateBatchInput{Policy: "p", List: state.KeyList{Pages: 1}, Description: d})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var sum BatchSummary
	_ = env.GetWorkflowResult(&sum)
	if sum.Large != 1 || sum.Totals().Bytes != 1<<30+200 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestAtomicBatchRunsAWorkflowPerKey(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(activities.ReadKeyPageName, mock.Anything, mock.Anything).Return([]string{"a", "b"}, nil).Once()
	env.OnWorkflow(ReplicateFileName, mock.Anything, mock.Anything).Return(&ReplicateFileResult{
		Outcome: OutcomeCompensated, Destinations: []DestinationOutcome{{Destination: "s3", Outcome: "rolled back"}}}, nil).Twice()
	env.ExecuteWorkflow(ReplicateBatch, ReplicateBatchInput{Policy: "p", List: state.KeyList{Pages: 1}, Description: describe("atomic")})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var sum BatchSummary
	_ = env.GetWorkflowResult(&sum)
	if sum.Keys != 2 || sum.Totals().Failed != 2 {
		t.Fatalf("summary %+v", sum)
	}
}
