// Package trigger starts replication work on Temporal. It is the one place that knows
// how a key's ReplicateFile is started or joined and how a batch's key list is stored
// and its ReplicateBatch started, so that every way in (the starter, and the directory
// watcher and event endpoint after it) starts work the same way and coalesces with the
// others on the same workflow IDs.
package trigger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"iter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/wire"
	"github.com/cloudrepl/replicator/workflows"
)

// BatchPageSize is the number of keys per page of a stored key list: one chunk
// activity's share of a batch.
const BatchPageSize = 64

// File starts the key's ReplicateFile workflow (replicate/<policy>/<key>, or an HMAC
// of the key for a private policy), or signals the running one so that it looks at
// the key again before it ends (Signal-With-Start: triggers from any origin coalesce
// into one run). origin says who triggered ("starter", "watch", "event") and is
// carried by the signal.
func (n Naming) File(ctx context.Context, c client.Client, policy, key, origin string) (client.WorkflowRun, error) {
	attrs := []temporal.SearchAttributeUpdate{workflows.PolicyAttr.ValueSet(policy)}
	summary := fmt.Sprintf("replicate a key of policy %s", policy)
	if !n.Private(policy) {
		attrs = append(attrs, workflows.KeyAttr.ValueSet(key))
		summary = fmt.Sprintf("replicate %s (policy %s)", key, policy)
	}
	opts := client.StartWorkflowOptions{
		ID:                    n.FileWorkflowID(policy, key),
		TaskQueue:             wire.DefaultTaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(attrs...),
		StaticSummary:         summary,
	}
	run, err := c.SignalWithStartWorkflow(ctx, opts.ID, wire.TriggerSignal, origin, opts,
		wire.ReplicateFileName, wire.ReplicateFileInput{Policy: policy, Key: key})
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", opts.ID, err)
	}
	return run, nil
}

// NewBatchID is a batch ID that sorts by time: the start time in UTC and a random
// suffix, so two batches started in the same second never share an ID.
func NewBatchID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// StoreKeys writes keys as the key list of batch id in the state location, in pages of
// BatchPageSize, and returns the reference a ReplicateBatch takes.
func StoreKeys(ctx context.Context, st *state.State, policy, id string, keys iter.Seq[string]) (state.KeyList, error) {
	list, err := st.WriteKeyList(ctx, policy, id, keys, BatchPageSize)
	if err != nil {
		return list, fmt.Errorf("store the key list of batch %s: %w", id, err)
	}
	return list, nil
}

// BatchOptions tune a ReplicateBatch; zero values take the workflow's defaults.
type BatchOptions struct {
	// Concurrency is the number of chunk activities in flight.
	Concurrency int
	// PagesPerRun is the number of pages a run handles before it continues as new.
	PagesPerRun int
}

// Batch starts the ReplicateBatch workflow batch/<policy>/<id> over a stored key list.
func Batch(ctx context.Context, c client.Client, policy, id string, list state.KeyList, o BatchOptions) (client.WorkflowRun, error) {
	opts := client.StartWorkflowOptions{
		ID:                    wire.BatchWorkflowID(policy, id),
		TaskQueue:             wire.DefaultTaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.PolicyAttr.ValueSet(policy)),
		StaticSummary:         fmt.Sprintf("batch of %d keys (policy %s)", list.Count, policy),
	}
	run, err := c.ExecuteWorkflow(ctx, opts, wire.ReplicateBatchName,
		wire.ReplicateBatchInput{Policy: policy, List: list, Concurrency: o.Concurrency, PagesPerRun: o.PagesPerRun})
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", opts.ID, err)
	}
	return run, nil
}
