package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/cloudrepl/replicator/internal/wire"
)

// Registry is what registers workflows: a worker, the test suite's environment and
// the replayer all are one.
type Registry interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}

// Register registers every workflow under its stable type name. The worker, the
// workflow tests and the replayer all call it, so they can never disagree.
func Register(r Registry) {
	r.RegisterWorkflowWithOptions(ReplicateFile, workflow.RegisterOptions{Name: wire.ReplicateFileName})
	r.RegisterWorkflowWithOptions(ReplicateBatch, workflow.RegisterOptions{Name: wire.ReplicateBatchName})
	r.RegisterWorkflowWithOptions(Reconcile, workflow.RegisterOptions{Name: wire.ReconcileName})
	r.RegisterWorkflowWithOptions(Restore, workflow.RegisterOptions{Name: wire.RestoreName})
	r.RegisterWorkflowWithOptions(DeliverEvents, workflow.RegisterOptions{Name: wire.DeliverEventsName})
}
