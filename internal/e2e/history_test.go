//go:build integration

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"go.temporal.io/api/enums/v1"
)

// history fetches a workflow's full history from the server.
func history(t *testing.T, workflowID string) *historypb.History {
	t.Helper()
	it := temporalClient(t).GetWorkflowHistory(context.Background(), workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		e, err := it.Next()
		must(t, err)
		h.Events = append(h.Events, e)
	}
	return h
}

// recordHistory writes the workflow's history to $REPLICATOR_RECORD_HISTORIES/name.json
// when that variable is set: how the replay tests' testdata is made from real runs.
// Beside it, name.execution holds the workflow and run ID (a history does not), which
// the replay needs where a workflow derives IDs from its own.
func recordHistory(t *testing.T, workflowID, name string) {
	dir := os.Getenv("REPLICATOR_RECORD_HISTORIES")
	if dir == "" {
		return
	}
	desc, err := temporalClient(t).DescribeWorkflowExecution(context.Background(), workflowID, "")
	must(t, err)
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(history(t, workflowID))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, name+".json"), b, 0o644))
	exec := desc.WorkflowExecutionInfo.Execution
	must(t, os.WriteFile(filepath.Join(dir, name+".execution"), []byte(exec.WorkflowId+"\n"+exec.RunId+"\n"), 0o644))
	t.Logf("recorded the history of %s as %s.json", workflowID, name)
}

// rawHistory is a workflow's history as the server stores and sends it: the binary
// protobuf encoding, payload bytes as they are, and its JSON form.
func rawHistory(t *testing.T, workflowID string) []byte {
	h := history(t, workflowID)
	bin, err := proto.Marshal(h)
	must(t, err)
	js, err := protojson.Marshal(h)
	must(t, err)
	return append(bin, js...)
}
