package replica

import (
	"context"
	"fmt"
	"strings"

	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/wire"
)

// RejectKind sorts a store's reason for rejecting an entry into one of wire's reject
// reasons, the bounded set the summaries and the metric use.
func RejectKind(reason string) string {
	r := strings.ToLower(reason)
	switch {
	case strings.Contains(r, "symlink"), strings.Contains(r, "symbolic link"):
		return wire.RejectLink
	case strings.Contains(r, "fifo"), strings.Contains(r, "socket"), strings.Contains(r, "device"), strings.Contains(r, "not a regular file"):
		return wire.RejectSpecial
	case strings.Contains(r, "cannot be read"), strings.Contains(r, "may not read"), strings.Contains(r, "unreadable"),
		strings.Contains(r, "permission"), strings.Contains(r, "denied"):
		return wire.RejectUnreadable
	}
	return wire.RejectName
}

// Reject records that key cannot be replicated to destination, with the reason, as
// a dead letter of class Rejected: `starter failed list` shows it by name. The key
// is quoted in the message, so a name with control characters or invalid UTF-8
// prints readably.
func (e *Engine) Reject(ctx context.Context, policy, key, destination, reason, workflowID string) error {
	return e.State.RecordDeadLetter(ctx, state.DeadLetter{Policy: policy, Key: key, Destination: destination, Class: wire.ErrRejected,
		Message:  fmt.Sprintf("%q cannot be replicated: %s (rename or remove it at the source, or exclude it in the policy)", key, reason),
		Attempts: 1, WorkflowID: workflowID})
}

// Rejections counts rejected entries by reason, in a fixed order for results.
type Rejections struct {
	counts map[string]int
}

// Add counts one rejection of a reason (one of wire's reject reasons).
func (r *Rejections) Add(reason string) {
	if r.counts == nil {
		r.counts = map[string]int{}
	}
	r.counts[reason]++
}

// Of is the count of one reason.
func (r *Rejections) Of(reason string) int { return r.counts[reason] }

// Total is the count of every reason.
func (r *Rejections) Total() int {
	n := 0
	for _, c := range r.counts {
		n += c
	}
	return n
}

// Counts lists the counts in the order of wire's reasons, none for a reason never seen.
func (r *Rejections) Counts() []wire.RejectedCount {
	var out []wire.RejectedCount
	for _, reason := range []string{wire.RejectName, wire.RejectSpecial, wire.RejectLink, wire.RejectUnreadable, wire.RejectDestinationName} {
		if n := r.counts[reason]; n > 0 {
			out = append(out, wire.RejectedCount{Reason: reason, Count: n})
		}
	}
	return out
}
