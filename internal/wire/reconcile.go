package wire

// PlanInput asks for a reconcile plan of one policy.
type PlanInput struct {
	Policy string
	// PlanID names the plan's files in the state location.
	PlanID string
	// DryRun plans without committing manifests (nothing changes anywhere).
	DryRun bool
	// OverrideSafety lets a plan over the delete limits, or with an empty source, run.
	OverrideSafety bool
	// Checksum compares content of every object present on both sides.
	Checksum bool
}

// DestinationPlan counts one destination's plan.
type DestinationPlan struct {
	Destination string
	// Objects the destination listed (the replicator's own subtree excluded).
	Objects   int
	Unchanged int
	Copy      int
	Update    int
	Delete    int
	Adopt     int
	Extra     int
	Verify    int
	// Deletes is the list of keys to delete there.
	Deletes KeyList
}

// Pending is the number of objects the destination needs to change.
func (d DestinationPlan) Pending() int { return d.Copy + d.Update + d.Delete + d.Adopt + d.Verify }

// PlanResult is a reconcile plan: counts, and references to its key lists.
type PlanResult struct {
	PlanID       string
	SourceKeys   int
	Destinations []DestinationPlan
	// Rejected counts the source entries that cannot be replicated, by reason; each
	// is a dead letter of class Rejected naming the entry.
	Rejected []RejectedCount `json:",omitempty"`
	// Unknown lists (the first few) directories that could not be read: subtrees of
	// unknown state, under which nothing was deleted or copied.
	Unknown []string `json:",omitempty"`
	// Sync lists keys that need a copy, an update, an adoption or a content check
	// on at least one destination.
	Sync KeyList
	// Plan is the key, in the state location, of the plan's lines (one JSON object
	// per key with its action per destination), for display.
	Plan string
	// Stopped and Reason: the plan must not run (safety).
	Stopped bool
	Reason  string
	// Checksum: the plan compares content, so the sync must read replicas.
	Checksum bool `json:",omitempty"`
	// Bidirectional is the plan of a bidirectional policy (Sync and the
	// destinations' deletes are then empty).
	Bidirectional *BidirectionalPlan `json:",omitempty"`
}

// PlanLine is one line of a plan file.
type PlanLine struct {
	Key     string            `json:"key"`
	Actions map[string]string `json:"actions"`
	// Conflict names a conflict known when planning (bidirectional policies).
	Conflict string `json:"conflict,omitempty"`
}

// DeleteChunkInput asks to delete one page of a destination's delete list.
type DeleteChunkInput struct {
	Policy      string
	Destination string
	List        KeyList
	Page        int
}

// FinishReconcileInput closes a reconcile.
type FinishReconcileInput struct {
	Policy  string
	Outcome RunOutcome
	// PlanID names the plan files to remove; "" keeps them (a dry run's plan is read
	// by the starter).
	PlanID string `json:",omitempty"`
}

// RejectedCount is how many source entries were rejected for one reason.
type RejectedCount struct {
	Reason string
	Count  int
}

// Reasons a source entry is rejected: the summaries' columns and the
// replicator_rejected_objects metric's reason label.
const (
	// RejectName: a name no destination can hold byte for byte (a control character,
	// invalid UTF-8, too long).
	RejectName = "name"
	// RejectSpecial: not a regular file (a FIFO, socket or device).
	RejectSpecial = "special-file"
	// RejectLink: a symbolic link that leads out of the root or to nothing.
	RejectLink = "link"
	// RejectUnreadable: a file or directory that cannot be read.
	RejectUnreadable = "unreadable"
	// RejectDestinationName: a name one routed destination would store under another
	// name (Azure and a backslash, say).
	RejectDestinationName = "destination-name"
)

// ErrRejected is the dead-letter class of a rejected entry.
const ErrRejected = "Rejected"

// SweepReport says what a sweep removed from one destination: stages and undo copies
// that runs which ended badly left behind, and unfinished uploads.
type SweepReport struct {
	Destination string
	Stages      int
	Undo        int
	// Uploads counts unfinished multipart uploads aborted (S3).
	Uploads int `json:",omitempty"`
}

// FinishReconcileResult says what FinishReconcile cleaned up.
type FinishReconcileResult struct {
	Swept []SweepReport `json:",omitempty"`
}

// SidePlan counts one side's part of a bidirectional plan.
type SidePlan struct {
	// Objects the side listed (the replicator's own subtree excluded).
	Objects int
	// Copy is the keys to copy to this side from the other, Delete the deletes made
	// on the other side to propagate here.
	Copy   int
	Delete int
}

// BidirectionalPlan is the plan of a bidirectional policy: both directions, with the
// conflicts known when planning.
type BidirectionalPlan struct {
	// A is the policy's source, B its destination (named).
	A, B        SidePlan
	Destination string
	// BothChanged counts keys changed on both sides: the sync compares their content
	// and vectors, and settles concurrent changes by the policy's rule.
	BothChanged int
	// Forget counts keys gone from both sides whose records are dropped.
	Forget int
	// Conflicts known at planning time (modified on one side, deleted on the other).
	Conflicts int
	// Items lists the keys to sync, one JSON object per key (replica.Planned).
	Items KeyList
}

// Pending is the number of keys the sync changes.
func (p BidirectionalPlan) Pending() int {
	return p.A.Copy + p.A.Delete + p.B.Copy + p.B.Delete + p.BothChanged + p.Forget
}

// SyncChunkInput asks to sync one page of a bidirectional plan.
type SyncChunkInput struct {
	Policy string
	List   KeyList
	Page   int
}

// SyncCounts is what a bidirectional sync did.
type SyncCounts struct {
	CopiedToA, CopiedToB   int
	DeletedOnA, DeletedOnB int
	// InSync counts keys both sides had changed to the same bytes.
	InSync int
	// Changed counts keys a side changed again after the plan: left for the next run.
	Changed   int
	Conflicts int
	// Kept lists (the first few) conflict names a keep-both resolution kept.
	Kept   []string `json:",omitempty"`
	Failed int
	Bytes  int64
}

// maxKept bounds SyncCounts.Kept.
const maxKept = 20

// Add adds o to c.
func (c *SyncCounts) Add(o SyncCounts) {
	c.CopiedToA += o.CopiedToA
	c.CopiedToB += o.CopiedToB
	c.DeletedOnA += o.DeletedOnA
	c.DeletedOnB += o.DeletedOnB
	c.InSync += o.InSync
	c.Changed += o.Changed
	c.Conflicts += o.Conflicts
	c.Failed += o.Failed
	c.Bytes += o.Bytes
	for _, k := range o.Kept {
		if len(c.Kept) < maxKept {
			c.Kept = append(c.Kept, k)
		}
	}
}
