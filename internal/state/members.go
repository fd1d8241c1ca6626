package state

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cloudrepl/replicator/internal/store"
)

// Member is one running worker as the state location knows it: the task queues it
// polls, until when its record holds. Workers share a policy's limits between the
// members that poll a destination's queue (see activities.Activities.ApplyShare).
type Member struct {
	ID      string    `json:"id"`
	Queues  []string  `json:"queues"`
	Expires time.Time `json:"expires"`
}

const membersPrefix = "workers/"

func memberKey(id string) string { return membersPrefix + keyID(id) + ".json" }

// Renew writes the worker's record, valid until expires: a worker that stops renewing
// (killed, cut off) drops out of every count once it expires.
func (st *State) Renew(ctx context.Context, m Member) error {
	return st.putJSON(ctx, memberKey(m.ID), m)
}

// Leave removes the worker's record, so the others take its share at their next
// refresh instead of when it expires.
func (st *State) Leave(ctx context.Context, id string) error {
	return st.s.Delete(ctx, memberKey(id), store.DeleteOptions{})
}

// Members returns the workers whose records have not expired at now.
func (st *State) Members(ctx context.Context, now time.Time) ([]Member, error) {
	var out []Member
	for obj, err := range st.s.List(ctx, store.ListOptions{Prefix: membersPrefix}) {
		if err != nil {
			return nil, err
		}
		if !strings.HasSuffix(obj.Key, ".json") {
			continue
		}
		var m Member
		found, err := st.getJSON(ctx, obj.Key, &m)
		if err != nil {
			return nil, fmt.Errorf("worker record %s: %w", obj.Key, err)
		}
		if found && m.Expires.After(now) {
			out = append(out, m)
		}
	}
	return out, nil
}

// WorkersPerQueue counts the members polling each task queue.
func WorkersPerQueue(members []Member) map[string]int {
	n := map[string]int{}
	for _, m := range members {
		for _, q := range m.Queues {
			n[q]++
		}
	}
	return n
}
