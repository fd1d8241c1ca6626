//go:build integration

package trigger

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/temporalclient"
	"github.com/cloudrepl/replicator/internal/wire"
	"github.com/cloudrepl/replicator/workflows"
)

// dial connects to the dev server of the test stack; no worker polls the default
// queue under this test's policy name, so what it starts stays running until it is
// terminated.
func dial(t *testing.T) client.Client {
	t.Helper()
	if os.Getenv("TEMPORAL_ADDRESS") == "" {
		t.Skip("TEMPORAL_ADDRESS is not set: run under deploy/local/with-stack.sh")
	}
	c, err := temporalclient.Dial(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestTriggersOfOneKeyJoinOneRun(t *testing.T) {
	c := dial(t)
	ctx := context.Background()
	policy := "trigger-test-" + time.Now().UTC().Format("150405.000000000")
	first, err := Naming{}.File(ctx, c, policy, "photos/a b.jpg", "watch")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.TerminateWorkflow(ctx, first.GetID(), "", "test done") })
	second, err := Naming{}.File(ctx, c, policy, "photos/a b.jpg", "event")
	if err != nil {
		t.Fatal(err)
	}
	if first.GetID() != wire.FileWorkflowID(policy, "photos/a b.jpg") || second.GetRunID() != first.GetRunID() {
		t.Fatalf("runs %s/%s and %s/%s, want one run of %s", first.GetID(), first.GetRunID(), second.GetID(), second.GetRunID(), wire.FileWorkflowID(policy, "photos/a b.jpg"))
	}
	desc, err := c.DescribeWorkflowExecution(ctx, first.GetID(), "")
	if err != nil {
		t.Fatal(err)
	}
	// Both triggers reached the run: the start's signal and the second one. A worker
	// of another package's tests may be running a workflow task of this run (it polls
	// the same queue and fails the run for its unknown policy): the server then writes
	// the second signal once that task ends, so the history is read until it shows.
	signals := 0
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		signals = 0
		it := c.GetWorkflowHistory(ctx, first.GetID(), first.GetRunID(), false, 0)
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			if a := e.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.SignalName == wire.TriggerSignal {
				signals++
			}
		}
		if signals >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if signals != 2 {
		t.Errorf("%d trigger signals in the run's history, want 2", signals)
	}
	policyAttr, _ := desc.WorkflowExecutionInfo.GetSearchAttributes().GetIndexedFields()[workflows.PolicyAttr.GetName()]
	if policyAttr == nil {
		t.Errorf("the run lacks the %s search attribute", workflows.PolicyAttr.GetName())
	}
}

func TestBatchStoresItsKeysAndStarts(t *testing.T) {
	c := dial(t)
	ctx := context.Background()
	stores := backends.NewCache()
	t.Cleanup(func() { stores.Close() })
	s, err := stores.Get(ctx, backends.Spec{Name: "state", URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	st := state.New(s)
	keys := make([]string, 150)
	for i := range keys {
		keys[i] = "k/" + time.Duration(i).String()
	}
	policy := "trigger-test-" + time.Now().UTC().Format("150405.000000000")
	id := NewBatchID(time.Now())
	list, err := StoreKeys(ctx, st, policy, id, slices.Values(keys))
	if err != nil {
		t.Fatal(err)
	}
	if list.Count != 150 || list.PageSize != BatchPageSize {
		t.Fatalf("list %+v", list)
	}
	var read []string
	for page := range (150 + BatchPageSize - 1) / BatchPageSize {
		got, err := st.ReadKeyPage(ctx, list, page)
		if err != nil {
			t.Fatal(err)
		}
		read = append(read, got...)
	}
	if !slices.Equal(read, keys) {
		t.Fatalf("read back %d keys, not the 150 stored", len(read))
	}
	run, err := Batch(ctx, c, policy, id, list, BatchOptions{Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.TerminateWorkflow(ctx, run.GetID(), "", "test done") })
	if run.GetID() != wire.BatchWorkflowID(policy, id) {
		t.Errorf("batch ID %s", run.GetID())
	}
}
