package bisync

import (
	"path"
	"strings"
	"time"
)

// Action is what a key needs so that both sides hold the same version again.
type Action string

// Actions of a bidirectional plan.
const (
	// Nothing: both sides hold the last-synced version (or the key is held).
	Nothing Action = ""
	// CopyToB copies side A's version to side B.
	CopyToB Action = "copy-to-b"
	// CopyToA copies side B's version to side A.
	CopyToA Action = "copy-to-a"
	// DeleteOnB propagates a delete made on side A.
	DeleteOnB Action = "delete-on-b"
	// DeleteOnA propagates a delete made on side B.
	DeleteOnA Action = "delete-on-a"
	// Forget drops the records of a key gone from both sides.
	Forget Action = "forget"
	// BothChanged: both sides changed the key. The sync compares their content (the same
	// bytes are simply recorded as in sync), then their version vectors, then, for
	// concurrent changes, the policy's conflict rule.
	BothChanged Action = "both-changed"
)

// ConflictModifyDelete is the conflict of a key modified on one side and deleted on
// the other: the modified version is kept and copied back.
const ConflictModifyDelete = "modify-delete"

// Decision is the plan for one key.
type Decision struct {
	Action Action
	// Conflict names a conflict already known at planning time ("" for none).
	Conflict string
}

// Decide plans a key from how each side changed. Deletes are only ever planned for
// a key that one side deleted and the other left as last synced; a key modified on
// one side and deleted on the other is kept.
func Decide(it Item) Decision {
	if it.Held {
		return Decision{}
	}
	a, b := it.Changes()
	changed := func(c Change) bool { return c == Created || c == Modified }
	switch {
	case a == Unchanged && b == Unchanged:
		return Decision{}
	case changed(a) && changed(b):
		return Decision{Action: BothChanged}
	case changed(a) && b == Deleted:
		return Decision{Action: CopyToB, Conflict: ConflictModifyDelete}
	case changed(b) && a == Deleted:
		return Decision{Action: CopyToA, Conflict: ConflictModifyDelete}
	case changed(a) || a == Unchanged && b == Absent:
		return Decision{Action: CopyToB}
	case changed(b) || b == Unchanged && a == Absent:
		return Decision{Action: CopyToA}
	case a == Deleted && b == Unchanged:
		return Decision{Action: DeleteOnB}
	case b == Deleted && a == Unchanged:
		return Decision{Action: DeleteOnA}
	}
	return Decision{Action: Forget} // deleted on both, or deleted on one and unknown to the other
}

// Rule is a policy's conflict rule.
type Rule string

// Conflict rules (the policy's conflict: field).
const (
	NewerWins Rule = "newer-wins"
	PreferA   Rule = "prefer-a"
	PreferB   Rule = "prefer-b"
	KeepBoth  Rule = "keep-both"
)

// Version is what a side holds under a key when both changed.
type Version struct {
	SHA256 string
	// Carried is the vector in the object's metadata. Replica says whether the object
	// is as the sync wrote it (its recorded SHA-256 and size are its own): only then
	// does the carried vector describe it; a user's edit is a change of its side.
	Carried Vector
	Replica bool
	ModTime time.Time
}

// vector is the version's place in the key's history: a replica's own, or, for an
// edit by a user, one more change of its side after everything either side had seen.
func (v Version) vector(side Side, known Vector) Vector {
	if v.Replica {
		return v.Carried
	}
	return known.Bump(side)
}

// VectorOf is the vector a side's version stands for, given the last-synced base and
// the other side's version (nil when it has none).
func VectorOf(side Side, v Version, other *Version, base Vector) Vector {
	known := base
	if v.Replica {
		known = known.Max(v.Carried)
	}
	if other != nil && other.Replica {
		known = known.Max(other.Carried)
	}
	return v.vector(side, known)
}

// Resolution is how a key that both sides changed is settled.
type Resolution struct {
	// InSync: both hold the same bytes; only the records are written.
	InSync bool
	// Winner's version goes to both sides under the key.
	Winner Side
	// Conflict: the changes were concurrent and the rule chose the winner.
	Conflict bool
	// KeepLoser (keep-both): the loser's version is kept on both sides under
	// ConflictName.
	KeepLoser bool
	// Vector is what the synced version carries: it has seen both sides' changes.
	Vector Vector
}

// Resolve settles a key both sides changed: the same bytes are in sync; a version
// that has seen the other's change wins without a conflict; concurrent changes are a
// conflict that the rule settles (newer-wins compares modification times, and side A
// wins a tie).
func Resolve(rule Rule, a, b Version, base Vector) Resolution {
	va := VectorOf(SideA, a, &b, base)
	vb := VectorOf(SideB, b, &a, base)
	res := Resolution{Vector: va.Max(vb)}
	if a.SHA256 == b.SHA256 {
		res.InSync = true
		return res
	}
	switch va.Compare(vb) {
	case Descends:
		res.Winner = SideA
		return res
	case Precedes:
		res.Winner = SideB
		return res
	}
	res.Conflict = true
	newer := SideA
	if b.ModTime.After(a.ModTime) {
		newer = SideB
	}
	switch rule {
	case PreferA:
		res.Winner = SideA
	case PreferB:
		res.Winner = SideB
	case KeepBoth:
		res.Winner, res.KeepLoser = newer, true
	default:
		res.Winner = newer
	}
	return res
}

// ConflictName is where keep-both keeps the losing version of key: beside it, named
// after the side it came from and its modification time, so that a retried
// resolution finds the same name. "docs/report.pdf" becomes
// "docs/report.conflict-b-20261203T101500Z.pdf".
func ConflictName(key string, loser Side, modTime time.Time) string {
	dir, base := path.Split(key)
	ext := path.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	if stem == "" { // ".profile": the dot starts the name, not an extension
		stem, ext = base, ""
	}
	return dir + stem + ".conflict-" + string(loser) + "-" + modTime.UTC().Format("20060102T150405Z") + ext
}
