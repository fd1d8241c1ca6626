package workflows

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/mock"

	"github.com/cloudrepl/replicator/internal/wire"
)

func runRestore(t *testing.T, pages int, chunk func(wire.RestoreChunkInput) *wire.RestoreResult) *wire.RestoreResult {
	t.Helper()
	env := newEnv(t)
	env.OnActivity(wire.PlanRestoreName, mock.Anything, mock.Anything).Return(&wire.PlanRestoreResult{List: wire.KeyList{Pages: pages, Count: pages * 64}}, nil).Once()
	env.OnActivity(wire.RestoreChunkName, mock.Anything, mock.Anything).Return(func(_ context.Context, in wire.RestoreChunkInput) (*wire.RestoreResult, error) {
		return chunk(in), nil
	})
	env.ExecuteWorkflow(Restore, wire.RestoreInput{RestoreSpec: wire.RestoreSpec{Policy: "p", From: "s3"}, ID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res wire.RestoreResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	return &res
}

func TestRestoreEveryPage(t *testing.T) {
	var mu sync.Mutex // the test environment runs activities concurrently
	seen := map[int]bool{}
	res := runRestore(t, 20, func(in wire.RestoreChunkInput) *wire.RestoreResult {
		mu.Lock()
		defer mu.Unlock()
		if in.From != "s3" || in.Policy != "p" {
			t.Errorf("chunk input %+v", in)
		}
		seen[in.Page] = true
		return &wire.RestoreResult{Restored: 60, Skipped: 4, Bytes: 100}
	})
	if res.Outcome != wire.RunOK || res.Keys != 1280 || res.Restored != 1200 || res.Skipped != 80 || res.Bytes != 2000 || len(seen) != 20 {
		t.Fatalf("result %+v, pages %d", res, len(seen))
	}
}

func TestRestoreWithFailuresIsPartial(t *testing.T) {
	res := runRestore(t, 2, func(in wire.RestoreChunkInput) *wire.RestoreResult {
		if in.Page == 1 {
			return &wire.RestoreResult{Restored: 63, Failed: 1, Failures: []string{`"k": damaged`}}
		}
		return &wire.RestoreResult{Restored: 64}
	})
	if res.Outcome != wire.RunPartial || res.Failed != 1 || len(res.Failures) != 1 {
		t.Fatalf("result %+v", res)
	}
}
