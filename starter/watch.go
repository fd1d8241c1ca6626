package main

import (
	"context"
	"fmt"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/cloudrepl/replicator/internal/temporalclient"
	"github.com/cloudrepl/replicator/internal/wire"
)

// board holds the progress lines of what is watched, in the order they appeared.
// Only the goroutine that polls touches it.
type board struct {
	lines []*progressLine
	byID  map[string]*progressLine
	// rejected is the number of refused key-list lines, shown on a batch's total.
	rejected int
}

func newBoard() *board { return &board{byID: map[string]*progressLine{}} }

// line returns the line with id, creating it with init on first use.
func (b *board) line(id string, init func(*progressLine)) *progressLine {
	if l, ok := b.byID[id]; ok {
		return l
	}
	l := &progressLine{id: id}
	init(l)
	b.byID[id] = l
	b.lines = append(b.lines, l)
	return l
}

// withKeys tells whether destination lines name their key: when there are several
// keys, or when a batch's per-destination lines would share their names.
func (b *board) withKeys() bool {
	seen := map[string]bool{}
	for _, l := range b.lines {
		switch l.kind {
		case kindDestination:
			seen[l.workflowID] = true
		case kindBatch, kindBatchDestination:
			return true
		}
	}
	return len(seen) > 1
}

// follower polls Temporal for the progress of workflows and keeps the board up to
// date. A poll that fails (the server busy, a workflow not yet visible) is skipped:
// the next interval tries again, and the result still comes from the workflow.
type follower struct {
	c       client.Client
	b       *board
	now     func() time.Time
	files   map[string]*fileFollow
	batches map[string]*batchFollow
	// roots are the workflows asked for, polled every interval; children are found
	// from them.
	roots []root
}

// root is one workflow to follow, by type.
type root struct {
	id, runID, typ string
}

func newFollower(c client.Client, b *board, roots []root) *follower {
	return &follower{c: c, b: b, now: time.Now, files: map[string]*fileFollow{}, batches: map[string]*batchFollow{}, roots: roots}
}

// poll brings the board up to date once.
func (f *follower) poll(ctx context.Context) {
	for _, r := range f.roots {
		switch r.typ {
		case wire.ReplicateFileName:
			f.file(r.id, r.runID).poll(ctx, f)
		case wire.ReplicateBatchName:
			f.batch(r.id).poll(ctx, f)
		case wire.ReconcileName:
			f.reconcile(ctx, r.id, r.runID)
		case wire.RestoreName:
			f.restore(ctx, r.id)
		}
	}
}

func (f *follower) file(id, runID string) *fileFollow {
	ff := f.files[id]
	if ff == nil {
		ff = &fileFollow{id: id, runID: runID, acts: map[string]*scheduled{}}
		f.files[id] = ff
	}
	return ff
}

func (f *follower) batch(id string) *batchFollow {
	bf := f.batches[id]
	if bf == nil {
		bf = &batchFollow{id: id}
		f.batches[id] = bf
	}
	return bf
}

// restore shows a restore's phase and the pages of its key list done. By ID alone:
// a long restore continues as new.
func (f *follower) restore(ctx context.Context, id string) {
	l := f.b.line(id, func(l *progressLine) { l.kind, l.workflowID, l.phase = kindPhase, id, "plan" })
	if v, err := f.c.QueryWorkflow(ctx, id, "", wire.ProgressQuery); err == nil {
		var p wire.RestoreProgress
		if v.Get(&p) == nil && p.Phase != "" {
			l.phase = p.Phase
			if p.Pages > 0 && p.Result != nil {
				l.phase = fmt.Sprintf("%s: page %d of %d started, %d restored, %d skipped, %d failed", p.Phase, p.Done, p.Pages, p.Result.Restored, p.Result.Skipped, p.Result.Failed)
			}
		}
	}
	if d, err := f.c.DescribeWorkflowExecution(ctx, id, ""); err == nil && d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		l.finished = true
	}
}

// reconcile shows a reconcile's phase, and its sync batch once it runs.
func (f *follower) reconcile(ctx context.Context, id, runID string) {
	l := f.b.line(id, func(l *progressLine) { l.kind, l.workflowID, l.phase = kindPhase, id, "plan" })
	if v, err := f.c.QueryWorkflow(ctx, id, runID, wire.ProgressQuery); err == nil {
		var p wire.ReconcileProgress
		if v.Get(&p) == nil && p.Phase != "" {
			l.phase = p.Phase
		}
	}
	d, err := f.c.DescribeWorkflowExecution(ctx, id, runID)
	if err != nil {
		return
	}
	if d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		l.finished = true
	}
	for _, ch := range d.GetPendingChildren() {
		if ch.GetWorkflowTypeName() == wire.ReplicateBatchName {
			f.batch(ch.GetWorkflowId()).poll(ctx, f)
		}
	}
	// The sync batch ends before the reconcile: its lines are polled once more so
	// that they show how it ended.
	for id, bf := range f.batches {
		if !bf.closed && !isPendingChild(d.GetPendingChildren(), id) {
			bf.poll(ctx, f)
		}
	}
}

func isPendingChild(children []*workflowpb.PendingChildExecutionInfo, id string) bool {
	for _, c := range children {
		if c.GetWorkflowId() == id {
			return true
		}
	}
	return false
}

// scheduled is an activity of a ReplicateFile as its history scheduled it.
type scheduled struct {
	typ, destination, phase string
	size                    int64
	version                 string
}

// fileFollow follows one ReplicateFile: its history says which activity writes to
// which destination, and the pending activities' heartbeats how far each got.
type fileFollow struct {
	id, runID string
	key       string
	// acts by activity ID, read from the history.
	acts map[string]*scheduled
	// historyLength is the length of the history last read: it is read again only
	// when it grew.
	historyLength int64
	closed        bool
}

func (ff *fileFollow) poll(ctx context.Context, f *follower) {
	if ff.closed {
		return
	}
	d, err := f.c.DescribeWorkflowExecution(ctx, ff.id, ff.runID)
	if err != nil {
		return
	}
	info := d.GetWorkflowExecutionInfo()
	if ff.runID == "" {
		// A run found by ID alone (status --follow, a batch's child) is pinned, so
		// a later run of the same key is not mixed in.
		ff.runID = info.GetExecution().GetRunId()
	}
	if n := info.GetHistoryLength(); n != ff.historyLength {
		if err := ff.readHistory(ctx, f); err != nil {
			return
		}
		ff.historyLength = n
	}
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		ff.closed = true
		return
	}
	now := f.now()
	for _, pa := range d.GetPendingActivities() {
		act := ff.acts[pa.GetActivityId()]
		if act == nil || act.destination == "" {
			continue
		}
		l := ff.line(f.b, act.destination)
		l.phase = act.phase
		if act.typ != wire.TransferName || act.version != l.version {
			continue // commits and cleanups move no source bytes: the bar stays full
		}
		var p wire.Progress
		if pa.GetHeartbeatDetails() == nil || payloadConverter().FromPayloads(pa.GetHeartbeatDetails(), &p) != nil {
			// No heartbeat yet: a new attempt still counts as a retry.
			l.bytes.observe(now, l.bytes.last, pa.GetAttempt())
			continue
		}
		if p.Version != "" && p.Version != act.version {
			continue // details an older version's attempt left
		}
		l.bytes.setTotal(p.Total)
		l.bytes.observe(now, p.Bytes, pa.GetAttempt())
	}
}

func (ff *fileFollow) line(b *board, dest string) *progressLine {
	return b.line(ff.id+"\x00"+dest, func(l *progressLine) {
		l.kind, l.workflowID, l.key, l.destination, l.phase = kindDestination, ff.id, ff.key, dest, "prepare"
	})
}

// readHistory replays the history: which activity writes which destination, which
// transfers completed, and how the run ended. Replaying it again is harmless: every
// step only moves a line forward.
func (ff *fileFollow) readHistory(ctx context.Context, f *follower) error {
	dc := payloadConverter()
	byEvent := map[int64]*scheduled{}
	now := f.now()
	it := f.c.GetWorkflowHistory(ctx, ff.id, ff.runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return fmt.Errorf("history of %s: %w", ff.id, err)
		}
		switch a := ev.GetAttributes().(type) {
		case *historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes:
			var in wire.ReplicateFileInput
			if decodeFirst(dc, a.WorkflowExecutionStartedEventAttributes.GetInput(), &in) == nil {
				ff.key = in.Key
			}
		case *historypb.HistoryEvent_ActivityTaskScheduledEventAttributes:
			s := ff.schedule(dc, a.ActivityTaskScheduledEventAttributes)
			if s == nil {
				continue
			}
			ff.acts[a.ActivityTaskScheduledEventAttributes.GetActivityId()] = s
			byEvent[ev.GetEventId()] = s
			l := ff.line(f.b, s.destination)
			if s.typ == wire.TransferName && s.version != l.version {
				if l.version != "" {
					// Another pass over a changed source: a new version, a new count.
					l.pass = max(l.pass, 1) + 1
					l.bytes = meter{}
				}
				l.version = s.version
				l.bytes.setTotal(s.size)
			}
			l.phase = s.phase
		case *historypb.HistoryEvent_ActivityTaskCompletedEventAttributes:
			s := byEvent[a.ActivityTaskCompletedEventAttributes.GetScheduledEventId()]
			if s == nil || s.typ != wire.TransferName {
				continue
			}
			var res wire.TransferResult
			if decodeFirst(dc, a.ActivityTaskCompletedEventAttributes.GetResult(), &res) != nil {
				continue
			}
			l := ff.line(f.b, s.destination)
			switch res.Outcome {
			case wire.OutcomeCopied, wire.OutcomeStaged:
				l.bytes.complete(now)
			}
			l.phase = string(res.Outcome)
		case *historypb.HistoryEvent_ActivityTaskFailedEventAttributes:
			if s := byEvent[a.ActivityTaskFailedEventAttributes.GetScheduledEventId()]; s != nil {
				ff.line(f.b, s.destination).phase = s.phase + " failed"
			}
		case *historypb.HistoryEvent_ActivityTaskTimedOutEventAttributes:
			if s := byEvent[a.ActivityTaskTimedOutEventAttributes.GetScheduledEventId()]; s != nil {
				ff.line(f.b, s.destination).phase = s.phase + " timed out"
			}
		case *historypb.HistoryEvent_WorkflowExecutionCompletedEventAttributes:
			var res wire.ReplicateFileResult
			if decodeFirst(dc, a.WorkflowExecutionCompletedEventAttributes.GetResult(), &res) == nil {
				ff.finish(f.b, now, &res)
			}
		case *historypb.HistoryEvent_WorkflowExecutionFailedEventAttributes,
			*historypb.HistoryEvent_WorkflowExecutionTerminatedEventAttributes,
			*historypb.HistoryEvent_WorkflowExecutionCanceledEventAttributes,
			*historypb.HistoryEvent_WorkflowExecutionTimedOutEventAttributes:
			for _, l := range f.b.lines {
				if l.workflowID == ff.id && !l.finished {
					l.finished, l.phase = true, "failed"
				}
			}
		}
	}
	return nil
}

// schedule reads which destination an activity of the file's run writes to; nil for
// the activities that write none (prepare, dead letters).
func (ff *fileFollow) schedule(dc converter.DataConverter, a *historypb.ActivityTaskScheduledEventAttributes) *scheduled {
	typ := a.GetActivityType().GetName()
	switch typ {
	case wire.TransferName, wire.CommitName:
		var in wire.TransferInput
		if decodeFirst(dc, a.GetInput(), &in) != nil {
			return nil
		}
		phase := "transfer"
		switch {
		case typ == wire.CommitName:
			phase = "commit"
		case in.StagingKey != "":
			phase = "stage"
		}
		return &scheduled{typ: typ, destination: in.Destination, phase: phase, size: in.Source.Size, version: in.Source.Version}
	case wire.CleanupName:
		var in wire.CleanupInput
		if decodeFirst(dc, a.GetInput(), &in) != nil {
			return nil
		}
		return &scheduled{typ: typ, destination: in.Destination, phase: "cleanup"}
	case wire.DeleteReplicaName:
		var in wire.DeleteInput
		if decodeFirst(dc, a.GetInput(), &in) != nil {
			return nil
		}
		return &scheduled{typ: typ, destination: in.Destination, phase: "delete"}
	}
	return nil
}

// finish shows the run's outcome on each destination's line.
func (ff *fileFollow) finish(b *board, now time.Time, res *wire.ReplicateFileResult) {
	for _, d := range res.Destinations {
		l := ff.line(b, d.Destination)
		l.finished, l.phase = true, string(d.Outcome)
		if d.Error != "" {
			l.phase += ": " + d.Error
		}
		switch d.Outcome {
		case wire.OutcomeCopied:
			l.bytes.setTotal(res.Size)
			l.bytes.complete(now)
			l.ok = true
		case wire.OutcomeSkipped, wire.OutcomeSuperseded, wire.OutcomeDeleted, wire.OutcomeLeft:
			l.ok = true
		}
	}
	for _, l := range b.lines {
		if l.workflowID == ff.id && !l.finished {
			l.finished = true // routed, but the run ended without it (a later pass)
		}
	}
}

// decodeFirst decodes the first payload of p into v.
func decodeFirst(dc converter.DataConverter, p *commonpb.Payloads, v any) error {
	if len(p.GetPayloads()) == 0 {
		return fmt.Errorf("no payload")
	}
	return dc.FromPayload(p.GetPayloads()[0], v)
}

// batchFollow follows one ReplicateBatch: its progress query for the counts per
// destination, and its pending children (the large files) as file lines.
type batchFollow struct {
	id        string
	keysTotal int
	closed    bool
}

func (bf *batchFollow) poll(ctx context.Context, f *follower) {
	if bf.closed {
		return
	}
	d, err := f.c.DescribeWorkflowExecution(ctx, bf.id, "")
	if err != nil {
		return
	}
	running := d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	if bf.keysTotal == 0 {
		bf.keysTotal = f.batchKeys(ctx, bf.id)
	}
	total := f.b.line(bf.id+"\x00total", func(l *progressLine) { l.kind, l.workflowID, l.phase = kindBatch, bf.id, "running" })
	total.keysTotal = bf.keysTotal
	total.rejected = f.b.rejected
	if running {
		if v, err := f.c.QueryWorkflow(ctx, bf.id, "", wire.ProgressQuery); err == nil {
			var p wire.BatchProgress
			if v.Get(&p) == nil {
				// The summary counts a large key when its chunk hands it to its own
				// workflow: it is done once that workflow is.
				for _, ch := range d.GetPendingChildren() {
					if ch.GetWorkflowTypeName() == wire.ReplicateFileName {
						p.Summary.Keys--
					}
				}
				bf.apply(f, total, &p.Summary)
				total.phase = fmt.Sprintf("page %d/%d", p.PagesDone, p.Pages)
			}
		}
		for _, ch := range d.GetPendingChildren() {
			if ch.GetWorkflowTypeName() == wire.ReplicateFileName {
				f.file(ch.GetWorkflowId(), ch.GetRunId()).poll(ctx, f)
			}
		}
	} else {
		var sum wire.BatchSummary
		if f.c.GetWorkflow(ctx, bf.id, "").Get(ctx, &sum) == nil {
			bf.apply(f, total, &sum)
		}
		bf.closed = true
		for _, l := range f.b.lines {
			if l.workflowID == bf.id {
				l.finished = true
				l.ok = l.failed == 0
			}
		}
		total.phase = "done"
	}
	// Children that ended since the last poll get their final state.
	for _, ff := range f.files {
		if !ff.closed && !isPendingChild(d.GetPendingChildren(), ff.id) {
			ff.poll(ctx, f)
		}
	}
}

// apply shows a batch summary: one line per destination and the total.
func (bf *batchFollow) apply(f *follower, total *progressLine, s *wire.BatchSummary) {
	now := f.now()
	t := s.Totals()
	for _, d := range s.Destinations {
		l := f.b.line(bf.id+"\x00"+d.Destination, func(l *progressLine) {
			l.kind, l.workflowID, l.destination = kindBatchDestination, bf.id, d.Destination
		})
		l.keysTotal = bf.keysTotal
		l.keys = max(l.keys, d.Copied+d.Skipped+d.Superseded+d.Deleted+d.Failed)
		l.failed = max(l.failed, d.Failed)
		l.bytes.observe(now, d.Bytes, 0)
	}
	total.keys = max(total.keys, s.Keys)
	total.failed = max(total.failed, t.Failed)
	total.bytes.observe(now, t.Bytes, 0)
}

// batchKeys reads the number of keys of a batch from its first run's input.
func (f *follower) batchKeys(ctx context.Context, id string) int {
	it := f.c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return 0
	}
	ev, err := it.Next()
	if err != nil {
		return 0
	}
	var in wire.ReplicateBatchInput
	if a := ev.GetWorkflowExecutionStartedEventAttributes(); a != nil && decodeFirst(payloadConverter(), a.GetInput(), &in) == nil {
		return in.List.Count
	}
	return 0
}

// payloadConverter decodes what workflows carry (heartbeat details, inputs) as the
// client does: through the payload codec when one is configured.
func payloadConverter() converter.DataConverter {
	if dc, err := temporalclient.DataConverter(); err == nil {
		return dc
	}
	return converter.GetDefaultDataConverter() // the client refused the codec settings already
}
