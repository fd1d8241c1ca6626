// Package bisync holds the pure logic of bidirectional sync (DESIGN section 6): the
// version vectors that replicas carry, the one-pass merge of both sides' listings with
// both sides' last-synced manifests, the classification of each key's change on each
// side, and the conflict rules. It does no I/O: the activities feed it streams and
// carry out what it decides.
package bisync

import (
	"fmt"
	"strconv"
	"strings"
)

// Vector is a version vector over the two sides of a bidirectional policy: how many
// changes of each side a version has seen. A version whose vector is at least the
// other's on both counters has seen everything the other has (it descends from it);
// two versions neither of which has seen the other were changed concurrently.
type Vector struct {
	A, B uint64
}

// String is the form replicas carry in metadata: "a:<n>,b:<m>".
func (v Vector) String() string {
	if v.IsZero() {
		return ""
	}
	return fmt.Sprintf("a:%d,b:%d", v.A, v.B)
}

// IsZero reports a vector that has seen nothing (an object no sync wrote).
func (v Vector) IsZero() bool { return v.A == 0 && v.B == 0 }

// ParseVector reads a vector's String form; "" is the zero vector.
func ParseVector(s string) (Vector, error) {
	var v Vector
	if s == "" {
		return v, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		name, n, ok := strings.Cut(part, ":")
		if !ok {
			return Vector{}, fmt.Errorf("version vector %q: want a:<n>,b:<m>", s)
		}
		c, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			return Vector{}, fmt.Errorf("version vector %q: counter %q is not a number", s, n)
		}
		switch name {
		case "a":
			v.A = c
		case "b":
			v.B = c
		default:
			return Vector{}, fmt.Errorf("version vector %q: unknown side %q (want a or b)", s, name)
		}
	}
	return v, nil
}

// Max is the smallest vector that has seen both.
func (v Vector) Max(o Vector) Vector {
	return Vector{A: max(v.A, o.A), B: max(v.B, o.B)}
}

// Bump counts one more change on side.
func (v Vector) Bump(side Side) Vector {
	if side == SideA {
		v.A++
	} else {
		v.B++
	}
	return v
}

// Order is how two vectors relate.
type Order int

// Orders of two vectors.
const (
	Equal Order = iota
	// Descends: the first has seen everything the second has, and more.
	Descends
	// Precedes: the second has seen everything the first has, and more.
	Precedes
	// Concurrent: each has seen a change the other has not.
	Concurrent
)

// Compare relates v to o.
func (v Vector) Compare(o Vector) Order {
	ge := v.A >= o.A && v.B >= o.B
	le := v.A <= o.A && v.B <= o.B
	switch {
	case ge && le:
		return Equal
	case ge:
		return Descends
	case le:
		return Precedes
	}
	return Concurrent
}

// Side names one side of a bidirectional policy: A is the policy's source, B its one
// destination.
type Side string

// The two sides.
const (
	SideA Side = "a"
	SideB Side = "b"
)

// Other is the opposite side.
func (s Side) Other() Side {
	if s == SideA {
		return SideB
	}
	return SideA
}
