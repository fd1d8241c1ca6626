package workflows

import (
	"time"
	"unicode/utf8"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cloudrepl/replicator/internal/wire"
)

// The activity option sets of every workflow, named by what they schedule. Two
// non-retryable lists exist (package wire): wire.NonRetryable for work that reads the
// source or writes new bytes, where a changed or missing source is decided again by
// the workflow rather than retried; wire.RollForwardNonRetryable for commits and
// cleanups, which are retried until done unless an operator must act, because
// stopping half-way would break the all-or-nothing promise. Retries are always
// bounded in time or attempts except for those roll-forward steps (DESIGN section 7).

// prepareOptions: Prepare reads and hashes a source once, heartbeating as it reads,
// so a stalled read is caught by the heartbeat timeout and the start-to-close only
// has to be longer than any real file's read (the size is not known before it).
func prepareOptions(ctx workflow.Context, key string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 24 * time.Hour,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, MaximumInterval: time.Minute, NonRetryableErrorTypes: wire.NonRetryable},
		Summary:             "prepare " + summaryKey(key),
	})
}

// transferOptions are the options of one destination's activities in ReplicateFile:
// bounded by the policy's retry settings, or (rollForward: commit and cleanup)
// retried until done except what no retry can fix.
func transferOptions(ctx workflow.Context, prep *wire.PrepareResult, route wire.Route, summary string, rollForward bool) workflow.Context {
	rs := prep.Retry
	rp := &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        rs.MaxInterval,
		MaximumAttempts:        rs.MaxAttempts,
		NonRetryableErrorTypes: wire.NonRetryable,
	}
	opts := workflow.ActivityOptions{
		TaskQueue:           route.TaskQueue,
		StartToCloseTimeout: transferTime(prep.Source.Size, prep.Bandwidth),
		HeartbeatTimeout:    rs.HeartbeatTimeout,
		RetryPolicy:         rp,
		Summary:             summary,
	}
	if rollForward {
		rp.MaximumAttempts = 0
		rp.NonRetryableErrorTypes = wire.RollForwardNonRetryable
	} else if rs.Expiration > 0 {
		// The retry window comes on top of one whole transfer: a schedule-to-close of
		// the expiration alone would cut off a transfer that needs longer.
		opts.ScheduleToCloseTimeout = rs.Expiration + opts.StartToCloseTimeout
	}
	return workflow.WithActivityOptions(ctx, opts)
}

// deadLetterOptions: a dead letter is retried until written (its activity has no
// permanent failure), each attempt within a minute.
func deadLetterOptions(ctx workflow.Context, key string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: time.Minute},
		Summary:             "record dead letters of " + summaryKey(key),
	})
}

// sendEventsOptions: events are sent to a sink until it takes them (a sink that is
// down delays its events, and only them); each POST is bounded, and a retry resumes
// after the events already delivered (the activity heartbeats each).
func sendEventsOptions(ctx workflow.Context, events int) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Duration(events)*15*time.Second + 30*time.Second,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: time.Minute, NonRetryableErrorTypes: wire.NonRetryable},
	})
}

// describeOptions: DescribePolicy only reads the worker's config.
func describeOptions(ctx workflow.Context, policy string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5, NonRetryableErrorTypes: wire.NonRetryable},
		Summary:             "describe policy " + policy,
	})
}

// readKeysOptions: ReadKeyPage reads one page of a key list from the state location.
func readKeysOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, NonRetryableErrorTypes: wire.NonRetryable},
		Summary:             "read keys",
	})
}

// chunkOptions: ReplicateChunk and StageChunk move a page of keys on one queue group,
// within the policy's retry settings; one bad key is a dead letter inside the chunk,
// so a failed chunk is a failure of the whole page.
func chunkOptions(ctx workflow.Context, desc *wire.PolicyDescription, queue, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           queue,
		StartToCloseTimeout: 2 * time.Hour,
		HeartbeatTimeout:    desc.Retry.HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: desc.Retry.MaxAttempts, MaximumInterval: desc.Retry.MaxInterval,
			NonRetryableErrorTypes: wire.NonRetryable},
		Summary: summary,
	})
}

// commitChunkOptions: CommitChunk rolls forward until done.
func commitChunkOptions(ctx workflow.Context, desc *wire.PolicyDescription, queue, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           queue,
		StartToCloseTimeout: 2 * time.Hour,
		HeartbeatTimeout:    desc.Retry.HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{MaximumInterval: desc.Retry.MaxInterval,
			NonRetryableErrorTypes: wire.RollForwardNonRetryable},
		Summary: summary,
	})
}

// stageCleanupOptions: a batch's Cleanup of stages rolls forward until done.
func stageCleanupOptions(ctx workflow.Context, desc *wire.PolicyDescription, queue, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           queue,
		StartToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{MaximumInterval: desc.Retry.MaxInterval,
			NonRetryableErrorTypes: wire.RollForwardNonRetryable},
		Summary: summary,
	})
}

// planOptions: PlanReconcile lists every location of a policy, hours for millions of
// keys, heartbeating as it goes.
func planOptions(ctx workflow.Context, policy string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 6 * time.Hour,
		HeartbeatTimeout:    2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5, MaximumInterval: time.Minute, NonRetryableErrorTypes: wire.NonRetryable},
		Summary:             "plan reconcile of " + policy,
	})
}

// deleteChunkOptions: DeleteChunk deletes one page of a reconcile's delete list.
func deleteChunkOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, MaximumInterval: time.Minute, NonRetryableErrorTypes: wire.NonRetryable},
		Summary:             summary,
	})
}

// syncChunkOptions: SyncChunk syncs one page of a bidirectional plan; its heartbeat
// carries the keys done, so a retry goes on from there.
func syncChunkOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 6 * time.Hour,
		HeartbeatTimeout:    2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, MaximumInterval: time.Minute, NonRetryableErrorTypes: wire.NonRetryable},
		Summary:             summary,
	})
}

// finishOptions: FinishReconcile records the outcome, removes the plan and purges
// expired trash.
func finishOptions(ctx workflow.Context, outcome wire.RunOutcome) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5, NonRetryableErrorTypes: wire.NonRetryable},
		Summary:             "finish reconcile: " + string(outcome),
	})
}

// transferTime is how long one attempt at moving size bytes may take: an hour plus a
// second per MiB (a slow link), or twice what the policy's bandwidth limit implies
// plus ten minutes, whichever is longer.
func transferTime(size, bandwidth int64) time.Duration {
	t := time.Hour + time.Duration(size>>20)*time.Second
	if bandwidth > 0 {
		if limited := 2*time.Duration(size/bandwidth)*time.Second + 10*time.Minute; limited > t {
			t = limited
		}
	}
	return t
}

// maxSummaryKey bounds the part of a summary that names a key: the server refuses a
// workflow task whose activity summaries are too large, and a 1,000-byte key would be.
const maxSummaryKey = 160

// summaryKey is key as summaries show it: whole when short, else its start and end
// around an ellipsis (cut at rune boundaries), which is what an operator recognizes.
func summaryKey(key string) string {
	if len(key) <= maxSummaryKey {
		return key
	}
	head, tail := maxSummaryKey/2, maxSummaryKey/2
	for head > 0 && !utf8.RuneStart(key[head]) {
		head--
	}
	start := len(key) - tail
	for start < len(key) && !utf8.RuneStart(key[start]) {
		start++
	}
	return key[:head] + "…" + key[start:]
}
