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
