// Package workflows holds the replicator's workflow definitions: deterministic, no
// I/O, every decision on data recorded in history by an activity. Each exported
// workflow function delegates to a small run struct with setup and run steps.
// Workflows schedule activities by their registered names (package wire) and import
// no cloud SDK: `go list -deps ./workflows` is checked for that.
package workflows

import (
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/cloudrepl/replicator/internal/wire"
)

// Search attributes (DESIGN section 7a), registered on the dev server by
// deploy/local/start.sh.
var (
	PolicyAttr    = temporal.NewSearchAttributeKeyKeyword("ReplicationPolicy")
	KeyAttr       = temporal.NewSearchAttributeKeyKeyword("ReplicationKey")
	OutcomeAttr   = temporal.NewSearchAttributeKeyKeyword("ReplicationOutcome")
	BytesAttr     = temporal.NewSearchAttributeKeyInt64("ReplicationBytes")
	ConflictsAttr = temporal.NewSearchAttributeKeyInt64("ReplicationConflicts")
)

// outcomeValue is the ReplicationOutcome search attribute set to o.
func outcomeValue(o wire.RunOutcome) temporal.SearchAttributeUpdate {
	return OutcomeAttr.ValueSet(string(o))
}

// ErrorClass names the class of an activity error for dead letters and summaries:
// the application error's type, Timeout, or Transient.
func ErrorClass(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.Type() != "" {
		return ae.Type()
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return "Timeout"
	}
	return "Transient"
}
