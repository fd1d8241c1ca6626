package wire

// Workflow type names (DESIGN section 7a).
const (
	ReplicateFileName  = "ReplicateFile"
	ReplicateBatchName = "ReplicateBatch"
	ReconcileName      = "Reconcile"
	// RestoreName copies a destination's replicas back to the source (or another
	// location): `starter restore`.
	RestoreName = "Restore"
	// DeliverEventsName delivers a run's outbound events, apart from the run so
	// that a sink that is down never holds the replication up.
	DeliverEventsName = "DeliverEvents"
)

// Activity type names. Workflows schedule activities by these names and the worker
// registers each activity under its name once (activities.Register): method names
// alone would collide between structs (DESIGN section 7).
const (
	PrepareName          = "Prepare"
	TransferName         = "Transfer"
	CommitName           = "Commit"
	CleanupName          = "Cleanup"
	DeleteReplicaName    = "DeleteReplica"
	RecordDeadLetterName = "RecordDeadLetter"
	DescribePolicyName   = "DescribePolicy"
	ReplicateChunkName   = "ReplicateChunk"
	ReadKeyPageName      = "ReadKeyPage"
	StageChunkName       = "StageChunk"
	CommitChunkName      = "CommitChunk"
	PlanReconcileName    = "PlanReconcile"
	DeleteChunkName      = "DeleteChunk"
	FinishReconcileName  = "FinishReconcile"
	RollbackName         = "Rollback"
	AtomicChunkName      = "AtomicChunk"
	SendEventsName       = "SendEvents"
	ObserveLagName       = "ObserveLag"
	SyncChunkName        = "SyncChunk"
	PlanRestoreName      = "PlanRestore"
	RestoreChunkName     = "RestoreChunk"
)

// Signal and query names.
const (
	// TriggerSignal asks a running ReplicateFile to look at its key again once done.
	TriggerSignal = "trigger"
	// ProgressQuery returns a workflow's progress.
	ProgressQuery = "progress"
)

// DefaultTaskQueue is the task queue of workflows and of destinations without a
// dedicated one (DESIGN section 7a).
const DefaultTaskQueue = "replication"

// Types of the non-retryable application errors activities return.
const (
	// ErrPermission: permission or configuration; an operator must act.
	ErrPermission = "Permission"
	// ErrInvalid: the request can never succeed (a key a backend cannot hold).
	ErrInvalid = "Invalid"
	// ErrSourceChanged: the source's bytes changed during the copy; prepare again.
	ErrSourceChanged = "SourceChanged"
	// ErrSourceMissing: the source file disappeared after it was prepared.
	ErrSourceMissing = "SourceMissing"
	// ErrStageMissing: a commit found its stage gone and the final key without the
	// version: the key must be prepared and staged again.
	ErrStageMissing = "StageMissing"
)

// NonRetryable lists the error types no retry can fix: the retry policy of every
// activity that moves or prepares bytes.
var NonRetryable = []string{ErrPermission, ErrInvalid, ErrSourceChanged, ErrSourceMissing}

// RollForwardNonRetryable lists the error types that stop an activity which otherwise
// rolls forward until done (commits and stage cleanups): only what an operator must
// fix. A changed source cannot happen there: the bytes are already staged.
var RollForwardNonRetryable = []string{ErrPermission, ErrInvalid}
