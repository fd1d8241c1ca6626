package wire

// ReplicateFileInput names one key of one policy.
type ReplicateFileInput struct {
	Policy string
	Key    string
	// RecordSkips records destinations already in place in their manifests (set by
	// reconciles, which adopt existing replicas).
	RecordSkips bool `json:",omitempty"`
	// VerifyContent hashes replicas whose metadata claims the version before skipping
	// them (reconciles with the checksum option).
	VerifyContent bool `json:",omitempty"`
}

// DestinationOutcome is what happened on one destination.
type DestinationOutcome struct {
	Destination string
	Outcome     Outcome
	Bytes       int64
	ErrorClass  string `json:",omitempty"`
	Error       string `json:",omitempty"`
}

// ReplicateFileResult is the result of a ReplicateFile run.
type ReplicateFileResult struct {
	Policy       string
	Key          string
	Version      string `json:",omitempty"`
	SHA256       string `json:",omitempty"`
	Size         int64
	Outcome      RunOutcome
	Destinations []DestinationOutcome `json:",omitempty"`
	// Passes counts how often the key was looked at: more than one when the source
	// changed during a copy or triggers arrived during a run.
	Passes int
}

// FileProgress is the answer to the progress query of ReplicateFile.
type FileProgress struct {
	Phase        string
	Pass         int
	Destinations []DestinationOutcome
}

// ReplicateBatchInput describes a batch: a key list in the state location, and where
// a continued run resumes.
type ReplicateBatchInput struct {
	Policy string
	List   KeyList
	// LargeThreshold: files above it get their own ReplicateFile workflow; 0 means
	// 64 MiB.
	LargeThreshold int64
	// Concurrency is the number of chunk activities in flight; 0 means 4.
	Concurrency int
	// PagesPerRun bounds the pages one run handles before it continues as new; 0
	// means 200.
	PagesPerRun int
	// RecordSkips and VerifyContent: see ReplicateFileInput (set by reconciles).
	RecordSkips   bool `json:",omitempty"`
	VerifyContent bool `json:",omitempty"`

	// NextPage and Summary carry the state across continue-as-new.
	NextPage int
	Summary  BatchSummary
	// Policy description, fetched once.
	Description *PolicyDescription `json:",omitempty"`
}

// BatchSummary adds up a batch.
type BatchSummary struct {
	Keys     int
	Excluded int
	// Rejected counts the keys that cannot be replicated (dead letters of class
	// Rejected).
	Rejected     int `json:",omitempty"`
	Large        int
	Destinations []DestinationCounts
	// Runs counts the continued runs.
	Runs int
}

// Add counts c for one destination.
func (s *BatchSummary) Add(dest string, c Counts) {
	for i := range s.Destinations {
		if s.Destinations[i].Destination == dest {
			s.Destinations[i].Add(c)
			return
		}
	}
	s.Destinations = append(s.Destinations, DestinationCounts{Destination: dest, Counts: c})
}

// Totals sums the destinations.
func (s *BatchSummary) Totals() Counts {
	var t Counts
	for _, d := range s.Destinations {
		t.Add(d.Counts)
	}
	return t
}

// BatchProgress answers the progress query of ReplicateBatch.
type BatchProgress struct {
	PagesDone int
	Pages     int
	Summary   BatchSummary
}

// ReconcileInput starts a reconcile of one policy.
type ReconcileInput struct {
	Policy string
	// DryRun plans and reports without changing anything.
	DryRun bool `json:",omitempty"`
	// OverrideSafety runs a plan the safety limits stopped.
	OverrideSafety bool `json:",omitempty"`
	// Checksum compares the content of every object on both sides.
	Checksum bool `json:",omitempty"`

	// Plan and NextDelete carry the execution across continue-as-new.
	Plan       *PlanResult      `json:",omitempty"`
	NextDelete []int            `json:",omitempty"`
	Result     *ReconcileResult `json:",omitempty"`
}

// ReconcileResult sums up a reconcile.
type ReconcileResult struct {
	Policy  string
	Outcome RunOutcome
	// Reason explains a stopped run.
	Reason     string `json:",omitempty"`
	DryRun     bool   `json:",omitempty"`
	PlanID     string
	Plan       string
	SourceKeys int
	// Rejected and Unknown: see PlanResult.
	Rejected     []RejectedCount `json:",omitempty"`
	Unknown      []string        `json:",omitempty"`
	Destinations []DestinationPlan
	// Sync and Deletes are what the execution did.
	Sync    *BatchSummary `json:",omitempty"`
	Deleted Counts        `json:",omitzero"`
	// Bidirectional is a bidirectional policy's plan, and Synced what its sync did.
	Bidirectional *BidirectionalPlan `json:",omitempty"`
	Synced        *SyncCounts        `json:",omitempty"`
	// NextSyncPage is the next page of the bidirectional plan to sync (carried over
	// continue-as-new).
	NextSyncPage int `json:",omitempty"`
}

// ReconcileProgress answers the progress query of Reconcile.
type ReconcileProgress struct {
	Phase  string
	Result *ReconcileResult
}
