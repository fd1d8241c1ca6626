package main

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cloudrepl/replicator/activities"
	"github.com/cloudrepl/replicator/workflows"
)

// registerWorkflows registers the workflows under their stable type names.
func registerWorkflows(w worker.Registry) {
	w.RegisterWorkflowWithOptions(workflows.ReplicateFile, workflow.RegisterOptions{Name: workflows.ReplicateFileName})
	w.RegisterWorkflowWithOptions(workflows.ReplicateBatch, workflow.RegisterOptions{Name: workflows.ReplicateBatchName})
	w.RegisterWorkflowWithOptions(workflows.Reconcile, workflow.RegisterOptions{Name: workflows.ReconcileName})
}

// registerActivities registers every activity under its explicit name.
func registerActivities(w worker.Registry, a *activities.Activities) {
	for name, fn := range map[string]any{
		activities.PrepareName:          a.Prepare,
		activities.TransferName:         a.Transfer,
		activities.CommitName:           a.Commit,
		activities.CleanupName:          a.Cleanup,
		activities.DeleteReplicaName:    a.DeleteReplica,
		activities.RecordDeadLetterName: a.RecordDeadLetter,
		activities.DescribePolicyName:   a.DescribePolicy,
		activities.ReplicateChunkName:   a.ReplicateChunk,
		activities.ReadKeyPageName:      a.ReadKeyPage,
		activities.StageChunkName:       a.StageChunk,
		activities.CommitChunkName:      a.CommitChunk,
		activities.PlanReconcileName:    a.PlanReconcile,
		activities.DeleteChunkName:      a.DeleteChunk,
		activities.FinishReconcileName:  a.FinishReconcile,
	} {
		w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
}
