package wire

import "time"

// PrepareInput names the key to prepare.
type PrepareInput struct {
	Policy string
	Key    string
}

// SourceVersion describes one state of a source file: what every later step checks
// against. Version is "<modification time in ns>:<store ETag>", ordered by the time.
type SourceVersion struct {
	Exists  bool
	Version string
	SHA256  string
	// Fingerprint (store.Fingerprint) of the bytes SHA256 was computed from, taken in
	// the same pass, so that a stream of them is checked without hashing it again;
	// "" when the hash came from elsewhere (a bucket source's metadata).
	Fingerprint string `json:",omitempty"`
	Size        int64
	ModTime     time.Time
	ContentType string
	Metadata    map[string]string `json:",omitempty"`
	// CacheControl and Tags of a bucket source, carried to destinations.
	CacheControl string            `json:",omitempty"`
	Tags         map[string]string `json:",omitempty"`
}

// Route is one destination a key goes to, with the task queue of its activities.
type Route struct {
	Destination string
	TaskQueue   string
}

// RetrySettings are the policy's retry bounds, carried in history so workflow code
// never reads the config.
type RetrySettings struct {
	MaxAttempts      int32
	MaxInterval      time.Duration
	Expiration       time.Duration
	HeartbeatTimeout time.Duration
}

// PrepareResult is what a ReplicateFile run decides on.
type PrepareResult struct {
	Source      SourceVersion
	Routes      []Route
	Excluded    bool
	Mode        string
	Consistency string
	// StagingKey is where atomic mode stages this version on every destination.
	StagingKey string
	Retry      RetrySettings
	// Bandwidth is the lowest limits.bandwidth (bytes per second) of the routed
	// destinations, 0 when none is limited: transfers get the time it implies.
	Bandwidth int64 `json:",omitempty"`
	// EventSinks is the number of the policy's events_out sinks: a run with any
	// sends its events.
	EventSinks int `json:",omitempty"`
}

// TransferInput asks to write one source version to one destination, directly or
// (StagingKey set) to the staging key for a later commit.
type TransferInput struct {
	Policy      string
	Destination string
	Key         string
	Source      SourceVersion
	StagingKey  string
	// RecordSkips writes a manifest entry also when the destination already holds
	// the version (a reconcile adopting existing replicas).
	RecordSkips bool `json:",omitempty"`
	// VerifyContent reads and hashes a destination object whose metadata claims the
	// source's SHA-256 before skipping it (a reconcile with the checksum option).
	VerifyContent bool `json:",omitempty"`
	// Final, for a commit, is what the stage found under the final key.
	Final *FinalState `json:",omitempty"`
	// Undo, for a commit, is where the final key's previous version is kept until
	// every destination committed (UndoKey); "" keeps none (runs before undo existed).
	Undo string `json:",omitempty"`
}

// TransferResult says what a transfer, commit or delete did.
type TransferResult struct {
	Outcome Outcome
	Bytes   int64
	ETag    string
	// Final is, for a stage, the state of the final key the stage found: what its
	// commit expects to replace.
	Final *FinalState `json:",omitempty"`
	// Undo is, for a commit, how to undo it (see UndoState).
	Undo *UndoState `json:",omitempty"`
}

// UndoState is what undoing one commit needs: the previous version's copy, or none
// when the commit created the key, and the ETag the commit wrote, so that a rollback
// never clobbers a write that came after it.
type UndoState struct {
	// Key of the previous version's copy under UndoPrefix; "" when the key was new.
	Key string `json:",omitempty"`
	// ETag of the object the commit wrote.
	ETag string
}

// FinalState is what a stage saw under the final key: nothing, or an object with
// this ETag.
type FinalState struct {
	Exists bool   `json:",omitempty"`
	ETag   string `json:",omitempty"`
}

// CleanupInput lists staging keys to remove from a destination.
type CleanupInput struct {
	Policy      string
	Destination string
	Keys        []string
}

// DeleteInput asks to remove a key from a destination (mirror mode).
type DeleteInput struct {
	Policy      string
	Destination string
	Key         string
}

// DeadLetterInput records a permanent failure.
type DeadLetterInput struct {
	Policy      string
	Key         string
	Destination string
	Class       string
	Message     string
	Attempts    int
	WorkflowID  string
}

// DescribePolicyInput names a policy.
type DescribePolicyInput struct {
	Policy string
}

// QueueGroup is a set of destinations served by one task queue.
type QueueGroup struct {
	TaskQueue    string
	Destinations []string
}

// PolicyDescription is what a batch needs of a policy.
type PolicyDescription struct {
	Mode        string
	Consistency string
	Groups      []QueueGroup
	Concurrency int
	Retry       RetrySettings
	// EventSinks is the number of the policy's events_out sinks.
	EventSinks int `json:",omitempty"`
}

// AtomicChunkResult sums up an AtomicChunk: one page of an atomic batch written to
// every destination at once, key by key all or nothing, without stages.
type AtomicChunkResult struct {
	Keys         int
	Excluded     int
	Rejected     int `json:",omitempty"`
	Destinations []DestinationCounts
	// Large keys are above what a worker holds in memory: each gets a ReplicateFile
	// run of its own, staged.
	Large []string `json:",omitempty"`
	// Changed keys changed while they were read: each gets a ReplicateFile run too.
	Changed []string `json:",omitempty"`
	// Events are the page's outbound events, when the policy has EventSinks.
	Events     []ObjectEvent `json:",omitempty"`
	EventSinks int           `json:",omitempty"`
}

// RollbackInput asks to undo the commits of some keys on one destination: an atomic
// replication whose commit failed for good elsewhere is rolled back everywhere.
type RollbackInput struct {
	Policy      string
	Destination string
	Keys        []RollbackKey
}

// RollbackKey is one commit to undo.
type RollbackKey struct {
	Key  string
	Undo UndoState
}

// RollbackResult says, key for key, what the rollback did: rolled back, or
// superseded when a later write had replaced the commit (it is left in place).
type RollbackResult struct {
	Outcomes []Outcome
}

// ChunkInput asks to replicate one page of a batch's key list to some destinations.
type ChunkInput struct {
	Policy       string
	List         KeyList
	Page         int
	Destinations []string
	// LargeThreshold: files larger than this are returned in ChunkResult.Large for
	// their own ReplicateFile workflow (resumable, heartbeated transfers).
	LargeThreshold int64
	// RecordSkips and VerifyContent: see TransferInput.
	RecordSkips   bool `json:",omitempty"`
	VerifyContent bool `json:",omitempty"`
	// Run, for an atomic batch, names the run whose stages these are
	// (RunStagingKey); "" for runs before stages were per run.
	Run string `json:",omitempty"`
}

// ChunkResult sums up one chunk.
type ChunkResult struct {
	Keys         int
	Destinations []DestinationCounts
	// Rejected counts the page's source entries that cannot be replicated (each is a
	// dead letter of class Rejected, by name and reason).
	Rejected int `json:",omitempty"`
	// Large keys were not copied here: the batch gives each its own workflow.
	Large []string `json:",omitempty"`
	// Excluded keys matched no rule or a filter.
	Excluded int
	// Events are the page's outbound events, when the policy has EventSinks.
	Events     []ObjectEvent `json:",omitempty"`
	EventSinks int           `json:",omitempty"`
}

// ReadKeyPageInput names a page of a key list.
type ReadKeyPageInput struct {
	List KeyList
	Page int
}

// KeyDestination is what happened to one key on one destination in a chunk of an
// atomic batch.
type KeyDestination struct {
	Destination string
	Outcome     Outcome
	Bytes       int64  `json:",omitempty"`
	ErrorClass  string `json:",omitempty"`
	Error       string `json:",omitempty"`
	// Final is what a stage found under the final key (see TransferResult).
	Final *FinalState `json:",omitempty"`
	// Undo is how to undo a commit (see TransferResult).
	Undo *UndoState `json:",omitempty"`
}

// StagedKey is one key of a StageChunk: the source version it read and what each of
// the chunk's destinations did with it (staged, or skipped, superseded, left, deleted
// or failed).
type StagedKey struct {
	Key          string
	Source       SourceVersion
	Destinations []KeyDestination
	// Changed: the source changed or vanished while the key was staged, so its
	// stages may hold different versions.
	Changed bool `json:",omitempty"`
}

// StageChunkResult sums up one StageChunk: its keys in page order.
type StageChunkResult struct {
	Keys     int
	Excluded int
	// Rejected: see ChunkResult.
	Rejected int      `json:",omitempty"`
	Large    []string `json:",omitempty"`
	Staged   []StagedKey
}

// CommitKey asks to commit one staged source version on some destinations.
type CommitKey struct {
	Key          string
	Source       SourceVersion
	Destinations []string
	// Finals are, destination for destination, what the stages found under the
	// final key: the commit writes with that as its precondition before it looks
	// again (nil entries, or none, look first).
	Finals []*FinalState `json:",omitempty"`
}

// CommitChunkInput lists the keys of one page to commit, on the destinations of one
// queue group.
type CommitChunkInput struct {
	Policy string
	Keys   []CommitKey
	// Run names the batch run whose stages are committed (RunStagingKey) and whose
	// undo copies keep the previous versions (UndoKey); "" for runs before them.
	Run string `json:",omitempty"`
}

// CommittedKey is what the commit did on each destination of a CommitKey, in the
// same order.
type CommittedKey struct {
	Key          string
	Destinations []KeyDestination
}

// CommitChunkResult answers a CommitChunkInput, key for key.
type CommitChunkResult struct {
	Keys []CommittedKey
}

// Progress is the heartbeat detail of transfers: what `starter replicate --wait`
// shows while a transfer runs, and what a retry needs to resume the upload.
type Progress struct {
	// Bytes stored durably so far (parts, chunks or blocks the server holds).
	Bytes int64
	Total int64
	// Sent is the bytes handed to the server so far, ahead of Bytes by the parts in
	// flight.
	Sent int64 `json:",omitempty"`
	// Target and Version identify the write the resume state belongs to.
	Target  string      `json:",omitempty"`
	Version string      `json:",omitempty"`
	Resume  ResumeState `json:",omitzero"`
}

// ResumeState identifies an unfinished upload and the object it writes, kept in
// heartbeats so that the next attempt continues it. It is store.ResumeState field
// for field (activities convert one into the other).
type ResumeState struct {
	// UploadID is the backend's handle of the upload: the S3 multipart upload ID,
	// the GCS resumable session URI, or the random prefix of the Azure block IDs.
	UploadID string `json:",omitempty"`
	// PartSize the upload was cut in; a resume with another part size starts over.
	PartSize int64 `json:",omitempty"`
	// Key and SHA256 name the object the upload writes: a put of another key or
	// other bytes never continues it.
	Key    string `json:",omitempty"`
	SHA256 string `json:",omitempty"`
	// Offset is the number of bytes the server had confirmed when the state was
	// recorded (GCS). It is a lower bound: the server may hold more, and is asked.
	Offset int64 `json:",omitempty"`
}

// LagInput reports a key written to every destination it is routed to: Changed is its
// source version's modification time, Done when the last destination held it.
type LagInput struct {
	Policy  string
	Changed time.Time
	Done    time.Time
}
