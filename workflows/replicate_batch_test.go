package workflows

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/cloudrepl/replicator/internal/wire"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

func describe(consistency string) *wire.PolicyDescription {
	return &wire.PolicyDescription{Mode: "copy", Consistency: consistency, Concurrency: 4,
		Groups: []wire.QueueGroup{{TaskQueue: "replication", Destinations: []string{"s3", "gcs"}}, {TaskQueue: "replication-azure", Destinations: []string{"azure"}}},
		Retry:  prep("eventual", "copy", true).Retry}
}

func chunk(copied int, large ...string) func(context.Context, wire.ChunkInput) (*wire.ChunkResult, error) {
	return func(_ context.Context, in wire.ChunkInput) (*wire.ChunkResult, error) {
		res := &wire.ChunkResult{Keys: 64, Large: large}
		for _, d := range in.Destinations {
			res.Destinations = append(res.Destinations, wire.DestinationCounts{Destination: d, Counts: wire.Counts{Copied: copied, Bytes: int64(copied) * 100}})
		}
		return res, nil
	}
}

func TestBatchChunksEveryPagePerQueueGroup(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.DescribePolicyName, mock.Anything, mock.Anything).Return(describe("eventual"), nil).Once()
	// 5 pages × 2 queue groups.
	env.OnActivity(wire.ReplicateChunkName, mock.Anything, mock.Anything).Return(chunk(64)).Times(10)
	env.ExecuteWorkflow(ReplicateBatch, wire.ReplicateBatchInput{Policy: "p", List: wire.KeyList{Pages: 5, Count: 320, PageSize: 64}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var sum wire.BatchSummary
	if err := env.GetWorkflowResult(&sum); err != nil {
		t.Fatal(err)
	}
	if sum.Keys != 320 || len(sum.Destinations) != 3 || sum.Totals().Copied != 3*320 || sum.Totals().Bytes != 3*320*100 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestBatchContinuesAsNew(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.ReplicateChunkName, mock.Anything, mock.Anything).Return(chunk(1)).Times(4)
	env.ExecuteWorkflow(ReplicateBatch, wire.ReplicateBatchInput{Policy: "p", List: wire.KeyList{Pages: 5}, PagesPerRun: 2, Description: describe("eventual")})
	err := env.GetWorkflowError()
	if !workflow.IsContinueAsNewError(err) {
		t.Fatalf("err = %v, want continue-as-new after 2 pages", err)
	}
}

func TestBatchGivesLargeFilesTheirOwnWorkflow(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.ReplicateChunkName, mock.Anything, mock.Anything).Return(chunk(1, "big.iso")).Once()
	env.OnWorkflow(wire.ReplicateFileName, mock.Anything, wire.ReplicateFileInput{Policy: "p", Key: "big.iso"}).Return(&wire.ReplicateFileResult{
		Outcome: wire.RunOK, Destinations: []wire.DestinationOutcome{{Destination: "s3", Outcome: "copied", Bytes: 1 << 30}}}, nil).Once()
	d := describe("eventual")
	d.Groups = d.Groups[:1]
	env.ExecuteWorkflow(ReplicateBatch, wire.ReplicateBatchInput{Policy: "p", List: wire.KeyList{Pages: 1}, Description: d})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var sum wire.BatchSummary
	_ = env.GetWorkflowResult(&sum)
	if sum.Large != 1 || sum.Totals().Bytes != 1<<30+200 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestAtomicBatchStartedBeforeChunksRunsAWorkflowPerKey(t *testing.T) {
	env := newEnv(t)
	env.OnGetVersion(atomicChunksVersion, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	env.OnActivity(wire.ReadKeyPageName, mock.Anything, mock.Anything).Return([]string{"a", "b"}, nil).Once()
	env.OnWorkflow(wire.ReplicateFileName, mock.Anything, mock.Anything).Return(&wire.ReplicateFileResult{
		Outcome: wire.RunCompensated, Destinations: []wire.DestinationOutcome{{Destination: "s3", Outcome: "rolled back"}}}, nil).Twice()
	env.ExecuteWorkflow(ReplicateBatch, wire.ReplicateBatchInput{Policy: "p", List: wire.KeyList{Pages: 1}, Description: describe("atomic")})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var sum wire.BatchSummary
	_ = env.GetWorkflowResult(&sum)
	if sum.Keys != 2 || sum.Totals().Failed != 2 {
		t.Fatalf("summary %+v", sum)
	}
}

// stageChunk answers StageChunk with the given outcome per key and destination
// ("staged" when a key is not in outcomes); changed keys are marked so.
func stageChunk(keys []string, outcomes map[string]wire.Outcome, changed ...string) func(context.Context, wire.ChunkInput) (*wire.StageChunkResult, error) {
	return func(_ context.Context, in wire.ChunkInput) (*wire.StageChunkResult, error) {
		res := &wire.StageChunkResult{Keys: len(keys)}
		for _, k := range keys {
			sk := wire.StagedKey{Key: k, Source: wire.SourceVersion{Exists: true, Version: "1:" + k, SHA256: "h-" + k, Size: 10},
				Changed: slices.Contains(changed, k)}
			for _, d := range in.Destinations {
				o := wire.KeyDestination{Destination: d, Outcome: wire.OutcomeStaged, Bytes: 10}
				if v, ok := outcomes[k+"@"+d]; ok {
					o = wire.KeyDestination{Destination: d, Outcome: v}
				}
				sk.Destinations = append(sk.Destinations, o)
			}
			res.Staged = append(res.Staged, sk)
		}
		return res, nil
	}
}

// doublesMu guards what the test doubles remember: the test environment runs mocked
// activities on goroutines of their own.
var doublesMu sync.Mutex

// commitAll answers CommitChunk with "copied" everywhere and remembers what it was
// asked to commit.
func commitAll(asked *[]string) func(context.Context, wire.CommitChunkInput) (*wire.CommitChunkResult, error) {
	return func(_ context.Context, in wire.CommitChunkInput) (*wire.CommitChunkResult, error) {
		doublesMu.Lock()
		defer doublesMu.Unlock()
		res := &wire.CommitChunkResult{}
		for _, k := range in.Keys {
			ck := wire.CommittedKey{Key: k.Key}
			for _, d := range k.Destinations {
				*asked = append(*asked, k.Key+"@"+d)
				ck.Destinations = append(ck.Destinations, wire.KeyDestination{Destination: d, Outcome: wire.OutcomeCopied})
			}
			res.Keys = append(res.Keys, ck)
		}
		return res, nil
	}
}

// cleanups remembers the stages each Cleanup removes.
func cleanups(removed map[string][]string) func(context.Context, wire.CleanupInput) error {
	return func(_ context.Context, in wire.CleanupInput) error {
		doublesMu.Lock()
		defer doublesMu.Unlock()
		removed[in.Destination] = append(removed[in.Destination], in.Keys...)
		return nil
	}
}

// atomicPage mocks one page of an atomic batch over describe's two queue groups: a
// StageChunk and a CommitChunk per group, a Cleanup per destination. It returns what
// was committed and which stages were removed.
func atomicPage(env *testsuite.TestWorkflowEnvironment, keys []string, outcomes map[string]wire.Outcome, changed ...string) (*[]string, map[string][]string) {
	env.OnActivity(wire.StageChunkName, mock.Anything, mock.Anything).Return(stageChunk(keys, outcomes, changed...)).Twice()
	committed := &[]string{}
	env.OnActivity(wire.CommitChunkName, mock.Anything, mock.Anything).Return(commitAll(committed)).Twice()
	removed := map[string][]string{}
	env.OnActivity(wire.CleanupName, mock.Anything, mock.Anything).Return(cleanups(removed)).Times(3)
	return committed, removed
}

func runAtomicBatch(t *testing.T, env *testsuite.TestWorkflowEnvironment) wire.BatchSummary {
	t.Helper()
	env.ExecuteWorkflow(ReplicateBatch, wire.ReplicateBatchInput{Policy: "p", List: wire.KeyList{Pages: 1}, Description: describe("atomic")})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var sum wire.BatchSummary
	if err := env.GetWorkflowResult(&sum); err != nil {
		t.Fatal(err)
	}
	return sum
}

func TestAtomicBatchStagesAPageCommitsItAndCleansUp(t *testing.T) {
	env := newEnv(t)
	c, removed := atomicPage(env, []string{"a", "b"}, map[string]wire.Outcome{"b@gcs": wire.OutcomeSkipped})
	sum := runAtomicBatch(t, env)
	committed := *c
	slices.Sort(committed)
	if want := []string{"a@azure", "a@gcs", "a@s3", "b@azure", "b@s3"}; !slices.Equal(committed, want) {
		t.Fatalf("committed %v, want %v", committed, want)
	}
	if len(removed["gcs"]) != 1 || len(removed["s3"]) != 2 || len(removed["azure"]) != 2 {
		t.Fatalf("stages removed: %v", removed)
	}
	if tot := sum.Totals(); sum.Keys != 2 || tot.Copied != 5 || tot.Skipped != 1 || tot.Bytes != 50 || tot.Failed != 0 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestAtomicBatchCompensatesAKeyThatFailedToStage(t *testing.T) {
	env := newEnv(t)
	c, removed := atomicPage(env, []string{"a", "b"}, map[string]wire.Outcome{"b@azure": wire.OutcomeFailed})
	sum := runAtomicBatch(t, env)
	committed := *c
	slices.Sort(committed)
	if want := []string{"a@azure", "a@gcs", "a@s3"}; !slices.Equal(committed, want) {
		t.Fatalf("committed %v, want only a: %v", committed, want)
	}
	stageB := wire.RunStagingKey("b", "1:b", testRun)
	if !slices.Contains(removed["s3"], stageB) || !slices.Contains(removed["gcs"], stageB) || slices.Contains(removed["azure"], stageB) {
		t.Fatalf("b's stages must go where they were made: %v", removed)
	}
	if tot := sum.Totals(); tot.Copied != 3 || tot.Failed != 3 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestAtomicBatchGivesAChangedKeyItsOwnWorkflow(t *testing.T) {
	env := newEnv(t)
	c, removed := atomicPage(env, []string{"a", "c"}, nil, "c")
	env.OnWorkflow(wire.ReplicateFileName, mock.Anything, wire.ReplicateFileInput{Policy: "p", Key: "c"}).Return(&wire.ReplicateFileResult{
		Outcome: wire.RunOK, Destinations: []wire.DestinationOutcome{{Destination: "s3", Outcome: "copied", Bytes: 11}}}, nil).Once()
	sum := runAtomicBatch(t, env)
	if slices.ContainsFunc(*c, func(s string) bool { return s[0] == 'c' }) {
		t.Fatalf("changed key committed from its chunk: %v", *c)
	}
	if !slices.Contains(removed["azure"], wire.RunStagingKey("c", "1:c", testRun)) {
		t.Fatalf("the changed key's stage stays: %v", removed)
	}
	if tot := sum.Totals(); tot.Copied != 4 || tot.Bytes != 41 {
		t.Fatalf("summary %+v", sum)
	}
}

// Destinations on two task queues take the staged path, whose commits roll forward.
func TestAtomicBatchCommitRollsForward(t *testing.T) {
	env := newEnv(t)
	d := describe("atomic")
	env.OnActivity(wire.StageChunkName, mock.Anything, mock.Anything).Return(stageChunk([]string{"a"}, nil)).Twice()
	// More failures than the policy's MaxAttempts (2): commits retry until done.
	env.OnActivity(wire.CommitChunkName, mock.Anything, mock.Anything).Return(nil, errors.New("server busy")).Times(4)
	var committed []string
	env.OnActivity(wire.CommitChunkName, mock.Anything, mock.Anything).Return(commitAll(&committed)).Twice()
	env.OnActivity(wire.CleanupName, mock.Anything, mock.Anything).Return(nil).Times(3)
	env.ExecuteWorkflow(ReplicateBatch, wire.ReplicateBatchInput{Policy: "p", List: wire.KeyList{Pages: 1}, Description: d})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(committed) != 3 {
		t.Fatalf("committed %v", committed)
	}
}

// Destinations on one task queue take the direct path: one AtomicChunk per page, and
// the keys it hands back (large, or changed while read) get a ReplicateFile each.
func TestAtomicBatchOnOneQueueWritesDirectly(t *testing.T) {
	env := newEnv(t)
	d := describe("atomic")
	d.Groups = d.Groups[:1]
	env.OnActivity(wire.AtomicChunkName, mock.Anything, mock.Anything).Return(func(_ context.Context, in wire.ChunkInput) (*wire.AtomicChunkResult, error) {
		if in.Run != testRun {
			return nil, errors.New("the chunk does not name its run")
		}
		return &wire.AtomicChunkResult{Keys: 64, Large: []string{"big"}, Changed: []string{"moving"}, Destinations: []wire.DestinationCounts{
			{Destination: "s3", Counts: wire.Counts{Copied: 62, Bytes: 620}}, {Destination: "gcs", Counts: wire.Counts{Copied: 60, Failed: 2}}}}, nil
	}).Once()
	for _, k := range []string{"big", "moving"} {
		env.OnWorkflow(wire.ReplicateFileName, mock.Anything, wire.ReplicateFileInput{Policy: "p", Key: k}).Return(&wire.ReplicateFileResult{
			Outcome: wire.RunOK, Destinations: []wire.DestinationOutcome{{Destination: "s3", Outcome: "copied", Bytes: 1}}}, nil).Once()
	}
	env.ExecuteWorkflow(ReplicateBatch, wire.ReplicateBatchInput{Policy: "p", List: wire.KeyList{Pages: 1}, Description: d})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var sum wire.BatchSummary
	if err := env.GetWorkflowResult(&sum); err != nil {
		t.Fatal(err)
	}
	if tot := sum.Totals(); sum.Keys != 64 || sum.Large != 1 || tot.Copied != 124 || tot.Failed != 2 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestAtomicBatchContinuesAsNewAfterFewerPages(t *testing.T) {
	env := newEnv(t)
	d := describe("atomic")
	env.OnActivity(wire.StageChunkName, mock.Anything, mock.Anything).Return(stageChunk(nil, nil)).Times(2 * atomicPagesPerRun)
	env.ExecuteWorkflow(ReplicateBatch, wire.ReplicateBatchInput{Policy: "p", List: wire.KeyList{Pages: atomicPagesPerRun + 1}, Description: d})
	if err := env.GetWorkflowError(); !workflow.IsContinueAsNewError(err) {
		t.Fatalf("err = %v, want continue-as-new after %d pages", err, atomicPagesPerRun)
	}
}

// testRun is what the test environment's workflow ID and run ID make of a batch run's
// name for its stages and undo copies.
const testRun = "default-test-workflow-id/default-test-run-id"

// A key whose commit fails for good on one destination is rolled back on the others,
// and counted failed everywhere; the other keys stay committed.
func TestAtomicBatchRollsBackAKeyWhoseCommitFailed(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(wire.StageChunkName, mock.Anything, mock.Anything).Return(stageChunk([]string{"a", "b"}, nil)).Twice()
	env.OnActivity(wire.CommitChunkName, mock.Anything, mock.Anything).Return(func(_ context.Context, in wire.CommitChunkInput) (*wire.CommitChunkResult, error) {
		res := &wire.CommitChunkResult{}
		for _, k := range in.Keys {
			ck := wire.CommittedKey{Key: k.Key}
			for _, d := range k.Destinations {
				o := wire.KeyDestination{Destination: d, Outcome: wire.OutcomeCopied, Undo: &wire.UndoState{ETag: "new-" + k.Key}}
				if k.Key == "b" && d == "gcs" {
					o = wire.KeyDestination{Destination: d, Outcome: wire.OutcomeFailed, ErrorClass: wire.ErrPermission}
				}
				ck.Destinations = append(ck.Destinations, o)
			}
			res.Keys = append(res.Keys, ck)
		}
		return res, nil
	}).Twice()
	var rolled []string
	env.OnActivity(wire.RollbackName, mock.Anything, mock.Anything).Return(func(_ context.Context, in wire.RollbackInput) (*wire.RollbackResult, error) {
		doublesMu.Lock()
		defer doublesMu.Unlock()
		res := &wire.RollbackResult{}
		for _, k := range in.Keys {
			rolled = append(rolled, k.Key+"@"+in.Destination)
			res.Outcomes = append(res.Outcomes, wire.OutcomeRolledBack)
		}
		return res, nil
	}).Twice()
	env.OnActivity(wire.CleanupName, mock.Anything, mock.Anything).Return(cleanups(map[string][]string{})).Times(3)
	sum := runAtomicBatch(t, env)
	slices.Sort(rolled)
	if want := []string{"b@azure", "b@s3"}; !slices.Equal(rolled, want) {
		t.Fatalf("rolled back %v, want %v", rolled, want)
	}
	if tot := sum.Totals(); tot.Copied != 3 || tot.Failed != 3 {
		t.Fatalf("summary %+v: want a copied on three, b failed on three", sum)
	}
}
