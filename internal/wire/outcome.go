package wire

// Outcome is what happened to one key on one destination.
type Outcome string

// Per-destination outcomes of one key.
const (
	OutcomeCopied     Outcome = "copied"
	OutcomeStaged     Outcome = "staged"
	OutcomeSkipped    Outcome = "skipped"
	OutcomeSuperseded Outcome = "superseded"
	OutcomeDeleted    Outcome = "deleted"
	OutcomeFailed     Outcome = "failed"
	// OutcomeLeft: an object the replicator did not write, left alone as the policy's
	// unmanaged: leave says.
	OutcomeLeft Outcome = "left"
	// OutcomeRolledBack: an atomic replication was compensated and this destination,
	// which did not fail itself, was left as it was.
	OutcomeRolledBack Outcome = "rolled back"
)

// RunOutcome is the outcome of a whole workflow run, as in the ReplicationOutcome
// search attribute (DESIGN section 7a).
type RunOutcome string

// Workflow outcomes.
const (
	RunOK          RunOutcome = "ok"
	RunPartial     RunOutcome = "partial"
	RunFailed      RunOutcome = "failed"
	RunCompensated RunOutcome = "compensated"
	RunSkipped     RunOutcome = "skipped"
	RunStopped     RunOutcome = "stopped"
)

// Counts add up per-destination results.
type Counts struct {
	Copied     int
	Skipped    int
	Superseded int
	Deleted    int
	Failed     int
	Bytes      int64
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Copied += o.Copied
	c.Skipped += o.Skipped
	c.Superseded += o.Superseded
	c.Deleted += o.Deleted
	c.Failed += o.Failed
	c.Bytes += o.Bytes
}

// Record counts one outcome of n bytes. A destination rolled back counts as failed:
// the key did not reach it.
func (c *Counts) Record(outcome Outcome, n int64) {
	switch outcome {
	case OutcomeCopied:
		c.Copied++
		c.Bytes += n
	case OutcomeSkipped, OutcomeLeft:
		c.Skipped++
	case OutcomeSuperseded:
		c.Superseded++
	case OutcomeDeleted:
		c.Deleted++
	case OutcomeFailed, OutcomeRolledBack:
		c.Failed++
	}
}

// DestinationCounts are the counts of one destination.
type DestinationCounts struct {
	Destination string
	Counts
}
