// Package replica is the replication engine: every decision about what a write, a
// commit or a delete does to a destination lives here, once, as plain Go over
// store.Store. Activities resolve the policy and stores, heartbeat and map errors;
// the engine decides: skip a destination that holds the SHA-256 already, keep a
// replica whose recorded source version is later in the order the source guarantees
// (the version guard), leave unmanaged objects alone when the policy says so, keep
// what is overwritten or deleted in the trash, write under a precondition on what it
// saw and look again when another writer came in between, record every commit in the
// manifest, and delete only through one guarded path.
package replica

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
)

// Engine makes the replication decisions. It is safe for concurrent use.
type Engine struct {
	// State is the state location: manifests, dead letters, the delete window.
	State *state.State
	// Now is the clock (trash dates, the delete window); time.Now when nil.
	Now func() time.Time

	// guesses holds a *createGuess per policy and destination.
	guesses sync.Map
}

// New returns an engine over a state location.
func New(st *state.State) *Engine { return &Engine{State: st} }

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Target is one destination of one policy, opened.
type Target struct {
	Policy *config.Policy
	// Name is the destination's name in the policy.
	Name  string
	Store store.Store
}

// maxLooks bounds how often a write looks again after a precondition conflict:
// another writer that keeps winning is a problem to report, not to loop on.
const maxLooks = 6

// Failure is an outcome the engine reports as an error: the source changed or
// vanished under a write. Type is one of wire's error types.
type Failure struct {
	Type string
	Msg  string
	Err  error
}

func (f *Failure) Error() string { return f.Msg }

// Unwrap returns the cause.
func (f *Failure) Unwrap() error { return f.Err }

// sourceMissing is the failure of a write whose source disappeared after it was
// prepared.
func sourceMissing(key string, err error) error {
	return &Failure{Type: wire.ErrSourceMissing, Msg: fmt.Sprintf("source %s disappeared during the copy", key), Err: err}
}

// FailureType returns the wire error type of err if the engine or a store classified it
// as one that no retry can fix, "" otherwise.
func FailureType(err error) string {
	var f *Failure
	if errors.As(err, &f) {
		return f.Type
	}
	switch store.CodeOf(err) {
	case store.CodePermission:
		return wire.ErrPermission
	case store.CodeInvalid:
		// A key a store refuses (its name, or not a regular file at the source) is a
		// rejected entry, reported by name; other invalid requests are bugs to fix.
		var se *store.Error
		if errors.As(err, &se) && se.Key != "" && se.Op != "list" {
			return wire.ErrRejected
		}
		return wire.ErrInvalid
	case store.CodeMismatch:
		return wire.ErrSourceChanged
	}
	return ""
}

// VersionOf is the version string of a source object: "<order>:<ETag>". The order
// (store.Object.Order, else the server's modification time) ranks versions for the
// version guard; the ETag tells two states of the same order apart.
func VersionOf(o store.Object) string {
	order := o.Order
	if order == 0 {
		order = o.ModTime.UnixNano()
	}
	return strconv.FormatInt(order, 10) + ":" + o.ETag
}

// Later reports whether version a is later than b in the order the source guarantees.
// Versions that do not parse are never later, so that a foreign or damaged record
// cannot block replication. A version that merely differs is not later: that is a
// different state, and it is replicated.
func Later(a, b string) bool {
	ta, okA := versionOrder(a)
	tb, okB := versionOrder(b)
	return okA && okB && ta > tb
}

func versionOrder(v string) (int64, bool) {
	i := strings.IndexByte(v, ':')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:i], 10, 64)
	return n, err == nil
}

// verdict is what the engine decided for one destination state.
type verdict int

const (
	// write: replace (or create) the destination object.
	write verdict = iota
	// skip: the destination holds the SHA-256 already.
	skip
	// superseded: the destination holds a later version; it stays.
	superseded
	// leave: an object the replicator did not write, and the policy says leave.
	leave
)

// decide is the one decision every write and commit makes on what it found under the
// final key. current is nil when the key does not exist.
func decide(p *config.Policy, current *store.Attributes, sv wire.SourceVersion) verdict {
	switch {
	case current == nil:
		return write
	case current.SHA256 == sv.SHA256:
		return skip
	case Later(current.SourceVersion, sv.Version):
		return superseded
	case current.SHA256 == "" && p.Unmanaged == "leave":
		return leave
	}
	return write
}

// outcomeOf turns a verdict that writes nothing into the result reported.
func outcomeOf(v verdict, current *store.Attributes) *wire.TransferResult {
	res := &wire.TransferResult{ETag: current.ETag}
	switch v {
	case skip:
		res.Outcome = wire.OutcomeSkipped
	case superseded:
		res.Outcome = wire.OutcomeSuperseded
	case leave:
		res.Outcome = wire.OutcomeLeft
	}
	return res
}

// look stats key on the destination: nil attributes when it does not exist.
func look(ctx context.Context, s store.Store, key string) (*store.Attributes, error) {
	a, err := s.Stat(ctx, key)
	if store.IsNotFound(err) {
		return nil, nil
	}
	return a, err
}

// precondition is what a write states about the object it replaces.
func precondition(current *store.Attributes) store.Precondition {
	if current == nil {
		return store.Precondition{IfNoneMatch: true}
	}
	return store.Precondition{IfMatch: current.ETag}
}
