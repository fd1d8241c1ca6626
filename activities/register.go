package activities

import (
	"go.temporal.io/sdk/activity"

	"github.com/cloudrepl/replicator/internal/wire"
)

// Registry is what registers activities: a worker or the test suite's environment.
type Registry interface {
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

// Register registers every activity of a under its name in package wire, the name
// workflows schedule it by. The worker and the workflow tests both call it. a may be
// nil where the activities are only mocked.
func Register(r Registry, a *Activities) {
	for _, act := range []struct {
		name string
		fn   any
	}{
		{wire.PrepareName, a.Prepare},
		{wire.TransferName, a.Transfer},
		{wire.CommitName, a.Commit},
		{wire.CleanupName, a.Cleanup},
		{wire.DeleteReplicaName, a.DeleteReplica},
		{wire.RecordDeadLetterName, a.RecordDeadLetter},
		{wire.DescribePolicyName, a.DescribePolicy},
		{wire.ReplicateChunkName, a.ReplicateChunk},
		{wire.ReadKeyPageName, a.ReadKeyPage},
		{wire.StageChunkName, a.StageChunk},
		{wire.CommitChunkName, a.CommitChunk},
		{wire.PlanReconcileName, a.PlanReconcile},
		{wire.DeleteChunkName, a.DeleteChunk},
		{wire.FinishReconcileName, a.FinishReconcile},
		{wire.RollbackName, a.Rollback},
		{wire.AtomicChunkName, a.AtomicChunk},
		{wire.SendEventsName, a.SendEvents},
		{wire.ObserveLagName, a.ObserveLag},
		{wire.SyncChunkName, a.SyncChunk},
		{wire.PlanRestoreName, a.PlanRestore},
		{wire.RestoreChunkName, a.RestoreChunk},
	} {
		r.RegisterActivityWithOptions(act.fn, activity.RegisterOptions{Name: act.name})
	}
}
