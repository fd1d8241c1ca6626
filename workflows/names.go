// Package workflows holds the replicator's workflow definitions: deterministic, no
// I/O, every decision on data recorded in history by an activity. Each exported
// workflow function delegates to a small run struct with setup and run steps.
package workflows

import (
	"go.temporal.io/sdk/temporal"
)

// Workflow type names (DESIGN section 7a).
const (
	ReplicateFileName  = "ReplicateFile"
	ReplicateBatchName = "ReplicateBatch"
)

// Signal and query names.
const (
	// TriggerSignal asks a running ReplicateFile to look at its key again once done.
	TriggerSignal = "trigger"
	// ProgressQuery returns a workflow's progress.
	ProgressQuery = "progress"
)

// Search attributes (DESIGN section 7a), registered on the dev server by
// deploy/local/start.sh.
var (
	PolicyAttr    = temporal.NewSearchAttributeKeyKeyword("ReplicationPolicy")
	KeyAttr       = temporal.NewSearchAttributeKeyKeyword("ReplicationKey")
	OutcomeAttr   = temporal.NewSearchAttributeKeyKeyword("ReplicationOutcome")
	BytesAttr     = temporal.NewSearchAttributeKeyInt64("ReplicationBytes")
	ConflictsAttr = temporal.NewSearchAttributeKeyInt64("ReplicationConflicts")
)

// Workflow outcomes, as in the ReplicationOutcome search attribute.
const (
	OutcomeOK          = "ok"
	OutcomePartial     = "partial"
	OutcomeFailed      = "failed"
	OutcomeCompensated = "compensated"
	OutcomeSkipped     = "skipped"
	OutcomeStopped     = "stopped"
)

// FileWorkflowID is the ID of the ReplicateFile workflow of one key: triggers for the
// same key meet in one workflow.
func FileWorkflowID(policy, key string) string { return "replicate/" + policy + "/" + key }

// BatchWorkflowID is the ID of a batch.
func BatchWorkflowID(policy, id string) string { return "batch/" + policy + "/" + id }
