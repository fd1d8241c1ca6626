package replica

import (
	"context"
	"fmt"
	"maps"

	"github.com/cloudrepl/replicator/internal/bisync"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
)

// SideManifest is the name, among a policy's manifests, of a bidirectional side's
// last-synced records. A destination name cannot start with '.', so it never
// collides with a destination's manifest.
func SideManifest(side bisync.Side) string { return ".side-" + string(side) }

// Planned is one key of a bidirectional plan: what both sides listed and remembered
// when it was planned, and the decision.
type Planned struct {
	bisync.Item
	bisync.Decision
}

// SyncOutcome is what SyncKey did.
type SyncOutcome struct {
	// Did is the action carried out: bisync's action, or "in-sync" (both sides held
	// the same bytes), or "changed" (a side changed again since the plan: nothing
	// was done, the next run decides again).
	Did string
	// Conflict names the conflict met ("" for none): bisync.ConflictModifyDelete, or
	// "concurrent" for changes on both sides that the rule settled.
	Conflict string
	// Kept is the conflict name a keep-both resolution kept the losing version under.
	Kept  string
	Bytes int64
}

// Outcomes of SyncKey besides bisync's actions.
const (
	SyncInSync     = "in-sync"
	SyncChanged    = "changed"
	ConflictBoth   = "concurrent"
	syncWrittenFmt = "sync %s to side %s: %w"
)

// syncSide is one side of a key being synced: its target and what it holds now.
type syncSide struct {
	side bisync.Side
	t    Target
	cur  *store.Attributes
}

// SyncKey carries out one key of a bidirectional plan between side A and side B. Every
// write and delete is conditional on the state the plan saw (the ETag it listed, or
// the key's absence), so that a change made since is never overwritten: such a key
// is left as "changed" for the next run. What is overwritten or deleted goes through
// the trash like any replica. The key's records on both sides are written only once
// both sides hold the same version, so a crash between the two sides' writes leaves
// the old records, and the next run finds the same bytes on both sides and records
// them.
func (e *Engine) SyncKey(ctx context.Context, a, b Target, pl Planned, rule bisync.Rule) (*SyncOutcome, error) {
	sa, sb := &syncSide{side: bisync.SideA, t: a}, &syncSide{side: bisync.SideB, t: b}
	for _, s := range []struct {
		side   *syncSide
		listed *bisync.Listed
	}{{sa, pl.A}, {sb, pl.B}} {
		cur, err := look(ctx, s.side.t.Store, pl.Key)
		if err != nil {
			return nil, err
		}
		if (cur == nil) != (s.listed == nil) || cur != nil && cur.ETag != s.listed.ETag {
			return &SyncOutcome{Did: SyncChanged}, nil
		}
		s.side.cur = cur
	}
	base := pl.Base()
	out := &SyncOutcome{Did: string(pl.Action), Conflict: pl.Conflict}
	switch pl.Action {
	case bisync.Nothing:
		return out, nil
	case bisync.Forget:
		return out, e.recordSync(ctx, a.Policy.Name, pl.Key, nil, nil)
	case bisync.DeleteOnA, bisync.DeleteOnB:
		gone := sa
		if pl.Action == bisync.DeleteOnB {
			gone = sb
		}
		if err := e.Trash(ctx, gone.t, pl.Key, gone.cur.ETag); err != nil {
			return nil, err
		}
		if err := deleteIfMatch(ctx, gone.t.Store, pl.Key, gone.cur.ETag); store.IsPrecondition(err) {
			return &SyncOutcome{Did: SyncChanged}, nil
		} else if err != nil {
			return nil, err
		}
		return out, e.recordSync(ctx, a.Policy.Name, pl.Key, nil, nil)
	case bisync.CopyToA, bisync.CopyToB:
		from, to := sa, sb
		if pl.Action == bisync.CopyToA {
			from, to = sb, sa
		}
		sv, err := e.Prepare(ctx, a.Policy.Name, from.t.Store, pl.Key, nil)
		if err != nil {
			return nil, err
		}
		if !sv.Exists || sv.Version != VersionOf(from.cur.Object) {
			return &SyncOutcome{Did: SyncChanged}, nil
		}
		var other *bisync.Version
		if to.cur != nil {
			v := versionOf(to.cur, to.cur.SHA256)
			other = &v
		}
		vec := bisync.VectorOf(from.side, versionOf(from.cur, sv.SHA256), other, base)
		if to.cur != nil && to.cur.SHA256 == sv.SHA256 && to.cur.SourceSize == to.cur.Size {
			// The other side holds these bytes already (a run that stopped between
			// its writes and its records): only the records are missing.
			out.Did = SyncInSync
			fromEntry := &state.ManifestEntry{SHA256: sv.SHA256, ETag: from.cur.ETag, Size: from.cur.Size, Vector: vec.String()}
			toEntry := &state.ManifestEntry{SHA256: sv.SHA256, ETag: to.cur.ETag, Size: to.cur.Size, Vector: vec.String()}
			if from.side == bisync.SideB {
				fromEntry, toEntry = toEntry, fromEntry
			}
			return out, e.recordSync(ctx, a.Policy.Name, pl.Key, fromEntry, toEntry)
		}
		return e.syncCopy(ctx, out, from, to, pl.Key, sv, vec)
	case bisync.BothChanged:
		svA, err := e.Prepare(ctx, a.Policy.Name, a.Store, pl.Key, nil)
		if err != nil {
			return nil, err
		}
		svB, err := e.Prepare(ctx, a.Policy.Name, b.Store, pl.Key, nil)
		if err != nil {
			return nil, err
		}
		if !svA.Exists || !svB.Exists || svA.Version != VersionOf(sa.cur.Object) || svB.Version != VersionOf(sb.cur.Object) {
			return &SyncOutcome{Did: SyncChanged}, nil
		}
		res := bisync.Resolve(rule, versionOf(sa.cur, svA.SHA256), versionOf(sb.cur, svB.SHA256), base)
		if res.InSync {
			out.Did = SyncInSync
			return out, e.recordSync(ctx, a.Policy.Name, pl.Key,
				&state.ManifestEntry{SHA256: svA.SHA256, ETag: sa.cur.ETag, Size: sa.cur.Size, Vector: res.Vector.String()},
				&state.ManifestEntry{SHA256: svB.SHA256, ETag: sb.cur.ETag, Size: sb.cur.Size, Vector: res.Vector.String()})
		}
		if res.Conflict {
			out.Conflict = ConflictBoth
		}
		win, lose, sv := sa, sb, svA
		if res.Winner == bisync.SideB {
			win, lose, sv = sb, sa, svB
		}
		out.Did = string(bisync.CopyToB)
		if win == sb {
			out.Did = string(bisync.CopyToA)
		}
		if res.KeepLoser {
			loserSV := svB
			if lose == sa {
				loserSV = svA
			}
			kept, n, err := e.keepLoser(ctx, win, lose, pl.Key, loserSV, res.Vector)
			if err != nil {
				return nil, err
			}
			out.Kept, out.Bytes = kept, n
		}
		return e.syncCopy(ctx, out, win, lose, pl.Key, sv, res.Vector)
	}
	return nil, fmt.Errorf("sync %s: unknown planned action %q", pl.Key, pl.Action)
}

// versionOf describes a side's object for the conflict rules. A replica is an object
// whose recorded SHA-256 and size are its own (a driver drops the record of a file
// edited in place) and that carries a vector.
func versionOf(cur *store.Attributes, sha string) bisync.Version {
	v := bisync.Version{SHA256: sha, ModTime: cur.ModTime}
	if carried, err := bisync.ParseVector(cur.Metadata[store.MetaVector]); err == nil && !carried.IsZero() &&
		cur.SHA256 == sha && cur.SourceSize == cur.Size {
		v.Carried, v.Replica = carried, true
	}
	return v
}

// syncCopy writes from's version over to's key, conditional on what to held, and
// records the key on both sides.
func (e *Engine) syncCopy(ctx context.Context, out *SyncOutcome, from, to *syncSide, key string, sv wire.SourceVersion, vec bisync.Vector) (*SyncOutcome, error) {
	sv.Metadata = maps.Clone(sv.Metadata)
	if sv.Metadata == nil {
		sv.Metadata = map[string]string{}
	}
	sv.Metadata[store.MetaVector] = vec.String()
	pre := precondition(to.cur)
	if to.cur != nil {
		if err := e.Trash(ctx, to.t, key, to.cur.ETag); err != nil {
			return nil, err
		}
	}
	obj, err := e.put(ctx, to.t, Body{Source: from.t.Store}, key, key, sv, pre)
	switch {
	case store.IsPrecondition(err):
		return &SyncOutcome{Did: SyncChanged}, nil
	case store.IsNotFound(err):
		return &SyncOutcome{Did: SyncChanged}, nil // gone from its side since the plan
	case store.CodeOf(err) == store.CodeMismatch:
		return &SyncOutcome{Did: SyncChanged}, nil // rewritten while it was copied
	case err != nil:
		return nil, fmt.Errorf(syncWrittenFmt, key, to.side, err)
	}
	out.Bytes += obj.Size
	fromEntry := &state.ManifestEntry{SHA256: sv.SHA256, ETag: from.cur.ETag, Size: from.cur.Size, Vector: vec.String()}
	toEntry := &state.ManifestEntry{SHA256: sv.SHA256, ETag: obj.ETag, Size: obj.Size, Vector: vec.String()}
	if from.side == bisync.SideA {
		return out, e.recordSync(ctx, to.t.Policy.Name, key, fromEntry, toEntry)
	}
	return out, e.recordSync(ctx, to.t.Policy.Name, key, toEntry, fromEntry)
}

// keepLoser keeps the losing version of a keep-both conflict under its conflict name
// on both sides: a server-side copy on its own side, then a copy to the winner's,
// both create-only (a retried resolution finds them in place), and records it.
func (e *Engine) keepLoser(ctx context.Context, win, lose *syncSide, key string, sv wire.SourceVersion, vec bisync.Vector) (string, int64, error) {
	kept := bisync.ConflictName(key, lose.side, lose.cur.ModTime)
	sv.Metadata = maps.Clone(sv.Metadata)
	if sv.Metadata == nil {
		sv.Metadata = map[string]string{}
	}
	sv.Metadata[store.MetaVector] = vec.String()
	attrs := &store.Attributes{ContentType: sv.ContentType, SHA256: sv.SHA256, SourceVersion: sv.Version, SourceSize: sv.Size, Metadata: sv.Metadata,
		CacheControl: sv.CacheControl, Tags: sv.Tags}
	local, err := lose.t.Store.Copy(ctx, kept, key, store.CopyOptions{Attributes: attrs, Precondition: store.Precondition{IfNoneMatch: true}})
	if store.IsPrecondition(err) {
		local, err = e.heldAlready(ctx, lose.t.Store, kept, sv.SHA256)
	}
	if err != nil {
		return "", 0, fmt.Errorf("keep the losing version of %s as %s on side %s: %w", key, kept, lose.side, err)
	}
	ksv := sv
	ksv.Exists = true
	remote, err := e.put(ctx, win.t, Body{Source: lose.t.Store}, kept, kept, ksv, store.Precondition{IfNoneMatch: true})
	if store.IsPrecondition(err) {
		remote, err = e.heldAlready(ctx, win.t.Store, kept, sv.SHA256)
	}
	if err != nil {
		return "", 0, fmt.Errorf("copy the losing version of %s as %s to side %s: %w", key, kept, win.side, err)
	}
	entries := map[bisync.Side]*state.ManifestEntry{
		lose.side: {SHA256: sv.SHA256, ETag: local.ETag, Size: local.Size, Vector: vec.String()},
		win.side:  {SHA256: sv.SHA256, ETag: remote.ETag, Size: remote.Size, Vector: vec.String()},
	}
	return kept, remote.Size, e.recordSync(ctx, lose.t.Policy.Name, kept, entries[bisync.SideA], entries[bisync.SideB])
}

// heldAlready is the object under key when it holds sha (a retried resolution), or
// an error saying that another object is in the way.
func (e *Engine) heldAlready(ctx context.Context, s store.Store, key, sha string) (*store.Object, error) {
	cur, err := look(ctx, s, key)
	if err != nil {
		return nil, err
	}
	if cur == nil || cur.SHA256 != sha {
		return nil, &Failure{Type: wire.ErrInvalid, Msg: fmt.Sprintf("%s exists on %s with other content: rename or remove it, then sync again", key, s.Name())}
	}
	return &cur.Object, nil
}

// recordSync writes a key's last-synced records on both sides (nil: the key is gone
// from that side). They are written only once both sides hold the version.
func (e *Engine) recordSync(ctx context.Context, policy, key string, a, b *state.ManifestEntry) error {
	for side, entry := range map[bisync.Side]*state.ManifestEntry{bisync.SideA: a, bisync.SideB: b} {
		if entry == nil {
			entry = &state.ManifestEntry{Deleted: true}
		}
		entry.Key = key
		if err := e.State.AppendManifest(context.WithoutCancel(ctx), policy, SideManifest(side), *entry); err != nil {
			return fmt.Errorf("record %s as synced on side %s: %w", key, side, err)
		}
	}
	return nil
}
