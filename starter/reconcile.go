package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudrepl/replicator/internal/wire"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cloudrepl/replicator/workflows"
)

func reconcileCmd(g *globals) *cobra.Command {
	var in wire.ReconcileInput
	var wait bool
	var limit int
	cmd := needs(&cobra.Command{
		Use:   "reconcile",
		Short: "Reconcile --policy now: diff the source with every destination and repair drift",
		Long: "Reconcile --policy now. --dry-run prints the plan (copy, update, delete, adopt per destination; for a bidirectional policy, both directions with their conflicts) and changes nothing.\n" +
			"Deletes obey the policy's safety limits; a plan over them, or an empty or unreadable source, stops with outcome\n" +
			"'stopped' and deletes nothing unless --override-safety is given.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e := g.env
			in.Policy = e.policy.Name
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID:                    wire.ReconcileWorkflowID(e.policy.Name, time.Now()),
				TaskQueue:             wire.DefaultTaskQueue,
				TypedSearchAttributes: temporal.NewSearchAttributes(workflows.PolicyAttr.ValueSet(e.policy.Name)),
				StaticSummary:         reconcileSummary(in),
			}, wire.ReconcileName, in)
			if err != nil {
				return fmt.Errorf("start reconcile: %w", err)
			}
			if !wait && !in.DryRun {
				if e.g.json {
					return e.printJSON(map[string]string{"workflow_id": run.GetID(), "run_id": run.GetRunID()})
				}
				fmt.Fprintf(e.out, "started %s\n", run.GetID())
				return nil
			}
			var res wire.ReconcileResult
			if err := e.watch(ctx, c, []root{{id: run.GetID(), runID: run.GetRunID(), typ: wire.ReconcileName}}, func() error {
				return run.Get(ctx, &res)
			}); err != nil {
				return fmt.Errorf("reconcile %s: %w", run.GetID(), err)
			}
			return e.printReconcile(ctx, run.GetID(), &res, limit)
		},
	}, needsPolicy)
	cmd.Flags().BoolVar(&in.DryRun, "dry-run", false, "plan only: print what would change, change nothing")
	cmd.Flags().BoolVar(&in.OverrideSafety, "override-safety", false, "run a plan the delete limits or the empty-source guard stopped")
	cmd.Flags().BoolVar(&in.Checksum, "checksum", false, "compare the SHA-256 of every object instead of trusting versions and ETags")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the result, showing progress; exit 1 unless it succeeded")
	cmd.Flags().IntVar(&limit, "limit", 1000, "plan lines to print with --dry-run (0: all)")
	return cmd
}

func reconcileSummary(in wire.ReconcileInput) string {
	s := "reconcile " + in.Policy
	if in.DryRun {
		s += " (dry run)"
	}
	if in.OverrideSafety {
		s += " (safety overridden)"
	}
	return s
}

func (e *env) printReconcile(ctx context.Context, id string, res *wire.ReconcileResult, limit int) error {
	var lines []wire.PlanLine
	if res.DryRun && res.Plan != "" {
		st, closeState, err := e.state(ctx)
		if err != nil {
			return err
		}
		defer closeState()
		r, err := st.Store().Open(ctx, res.Plan, 0)
		if err != nil {
			return fmt.Errorf("read plan %s: %w", res.Plan, err)
		}
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() && (limit == 0 || len(lines) < limit) {
			var l wire.PlanLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				return fmt.Errorf("plan %s: %w", res.Plan, err)
			}
			lines = append(lines, l)
		}
		// A dry run's plan has been shown: it is not kept in the state location.
		if err := st.RemovePlan(ctx, res.Policy, res.PlanID); err != nil {
			return fmt.Errorf("remove plan %s: %w", res.Plan, err)
		}
	}
	if e.g.json {
		if err := e.printJSON(map[string]any{"workflow_id": id, "result": res, "plan": lines}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.out, "%s: outcome %s, %d source keys\n", id, res.Outcome, res.SourceKeys)
		if res.Reason != "" {
			fmt.Fprintf(e.out, "reason: %s\n", res.Reason)
		}
		if b := res.Bidirectional; b != nil {
			e.printBidirectional(b, res.Synced)
		} else {
			t := e.table()
			fmt.Fprintln(t, "DESTINATION\tOBJECTS\tUNCHANGED\tCOPY\tUPDATE\tDELETE\tADOPT\tEXTRA\tVERIFY")
			for _, d := range res.Destinations {
				fmt.Fprintf(t, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", d.Destination, d.Objects, d.Unchanged, d.Copy, d.Update, d.Delete, d.Adopt, d.Extra, d.Verify)
			}
			t.Flush()
		}
		if len(res.Rejected) > 0 {
			parts := make([]string, len(res.Rejected))
			for i, r := range res.Rejected {
				parts[i] = fmt.Sprintf("%d %s", r.Count, r.Reason)
			}
			fmt.Fprintf(e.out, "rejected: %s (not replicated; each is listed by name in `starter failed list --policy %s`)\n", strings.Join(parts, ", "), res.Policy)
		}
		if len(res.Unknown) > 0 {
			fmt.Fprintf(e.out, "not readable, so nothing under them was copied or deleted: %s\n", strings.Join(res.Unknown, ", "))
		}
		if res.Sync != nil {
			tot := res.Sync.Totals()
			fmt.Fprintf(e.out, "sync: %d keys, %d copied, %d skipped, %d failed, %s\n", res.Sync.Keys, tot.Copied, tot.Skipped, tot.Failed, humanBytes(tot.Bytes))
		}
		if res.Deleted != (wire.Counts{}) {
			fmt.Fprintf(e.out, "deleted: %d (%d kept: back at the source or already gone)\n", res.Deleted.Deleted, res.Deleted.Skipped)
		}
		if len(lines) > 0 {
			fmt.Fprintln(e.out, "\nplan:")
			t := e.table()
			fmt.Fprintln(t, "KEY\tDESTINATION\tACTION\tCONFLICT")
			for _, l := range lines {
				dests := make([]string, 0, len(l.Actions))
				for d := range l.Actions {
					dests = append(dests, d)
				}
				slices.Sort(dests)
				for _, d := range dests {
					fmt.Fprintf(t, "%s\t%s\t%s\t%s\n", l.Key, sideName(res, d), l.Actions[d], l.Conflict)
				}
			}
			t.Flush()
		}
	}
	if res.Outcome != wire.RunOK && res.Outcome != wire.RunSkipped {
		return errFailed
	}
	return nil
}

// sideName names a plan line's side of a bidirectional plan ("a", "b") as the
// operator knows it; destinations' names stay as they are.
func sideName(res *wire.ReconcileResult, d string) string {
	if res.Bidirectional == nil {
		return d
	}
	switch d {
	case "a":
		return "A (source)"
	case "b":
		return "B (" + res.Bidirectional.Destination + ")"
	}
	return d
}

// printBidirectional shows both directions of a bidirectional plan, and what the
// sync did.
func (e *env) printBidirectional(b *wire.BidirectionalPlan, done *wire.SyncCounts) {
	t := e.table()
	fmt.Fprintln(t, "SIDE\tOBJECTS\tCOPY TO\tDELETE ON")
	fmt.Fprintf(t, "A (source)\t%d\t%d\t%d\n", b.A.Objects, b.A.Copy, b.A.Delete)
	fmt.Fprintf(t, "B (%s)\t%d\t%d\t%d\n", b.Destination, b.B.Objects, b.B.Copy, b.B.Delete)
	t.Flush()
	fmt.Fprintf(e.out, "changed on both sides: %d, gone from both: %d, modify/delete conflicts: %d\n", b.BothChanged, b.Forget, b.Conflicts)
	if done != nil {
		fmt.Fprintf(e.out, "synced: %d copied to A, %d copied to B, %d deleted on A, %d deleted on B, %d already in sync, %d changed again (next run), %d conflicts, %d failed, %s\n",
			done.CopiedToA, done.CopiedToB, done.DeletedOnA, done.DeletedOnB, done.InSync, done.Changed, done.Conflicts, done.Failed, humanBytes(done.Bytes))
		if len(done.Kept) > 0 {
			fmt.Fprintf(e.out, "kept both versions of concurrent edits; the losing ones are now: %s\n", strings.Join(done.Kept, ", "))
		}
	}
}
