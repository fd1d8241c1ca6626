package replica

import (
	"fmt"

	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/wire"
)

// PlanSafety applies a policy's per-run delete limits and the empty-source guard to
// a reconcile plan: whether it must stop, and why. A plan that stops deletes nothing.
func PlanSafety(p *config.Policy, res *wire.PlanResult) (stop bool, reason string) {
	for _, d := range res.Destinations {
		if res.SourceKeys == 0 && d.Objects > 0 && p.Mode == config.ModeMirror {
			return true, fmt.Sprintf("the source is empty but %s holds %d objects: an unmounted or emptied source must not wipe the destinations (re-run with the safety override if this is intended)", d.Destination, d.Objects)
		}
		if p.Safety.MaxDelete > 0 && d.Delete > p.Safety.MaxDelete {
			return true, fmt.Sprintf("%d deletes planned on %s, over safety.max_delete %d: nothing was deleted (check the source, or re-run with the safety override)", d.Delete, d.Destination, p.Safety.MaxDelete)
		}
		if p.Safety.MaxDeletePercent > 0 && d.Objects > 0 && float64(d.Delete)*100/float64(d.Objects) > p.Safety.MaxDeletePercent {
			return true, fmt.Sprintf("%d deletes planned on %s, %.1f%% of its %d objects, over safety.max_delete_percent %g: nothing was deleted (check the source, or re-run with the safety override)",
				d.Delete, d.Destination, float64(d.Delete)*100/float64(d.Objects), d.Objects, p.Safety.MaxDeletePercent)
		}
	}
	return false, ""
}

// BidirectionalSafety applies the delete limits and the empty-side guard to both
// sides of a bidirectional plan: a side that lists nothing while it held records
// when last synced (an unmounted share, an emptied bucket) stops the run, and so do
// deletes over the limits on either side. recordsA and recordsB are the number of
// keys each side held when last synced.
func BidirectionalSafety(p *config.Policy, bp *wire.BidirectionalPlan, recordsA, recordsB int) (stop bool, reason string) {
	for _, s := range []struct {
		name    string
		plan    wire.SidePlan
		records int
	}{{"A (the source)", bp.A, recordsA}, {"B (" + bp.Destination + ")", bp.B, recordsB}} {
		if s.plan.Objects == 0 && s.records > 0 {
			return true, fmt.Sprintf("side %s lists no objects but held %d when last synced: an unmounted or emptied side must not wipe the other, so nothing was synced (re-run with the safety override if this is intended)", s.name, s.records)
		}
		if p.Safety.MaxDelete > 0 && s.plan.Delete > p.Safety.MaxDelete {
			return true, fmt.Sprintf("%d deletes planned on side %s, over safety.max_delete %d: nothing was synced (check the other side, or re-run with the safety override)", s.plan.Delete, s.name, p.Safety.MaxDelete)
		}
		if held := max(s.plan.Objects, s.records); p.Safety.MaxDeletePercent > 0 && held > 0 && float64(s.plan.Delete)*100/float64(held) > p.Safety.MaxDeletePercent {
			return true, fmt.Sprintf("%d deletes planned on side %s, %.1f%% of its %d objects, over safety.max_delete_percent %g: nothing was synced (check the other side, or re-run with the safety override)",
				s.plan.Delete, s.name, float64(s.plan.Delete)*100/float64(held), held, p.Safety.MaxDeletePercent)
		}
	}
	return false, ""
}
