package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/spf13/cobra"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/replica"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
	"github.com/cloudrepl/replicator/workflows"
)

func cleanupCmd(g *globals) *cobra.Command {
	var olderThan time.Duration
	cmd := needs(&cobra.Command{
		Use:   "cleanup",
		Short: "Remove stages and undo copies that failed or terminated runs left on --policy's destinations (every reconcile does this too)",
		Long: `cleanup sweeps every destination of --policy: stages (.replicator/staging/) and
undo copies (.replicator/undo/) last written more than --older-than ago are removed,
with the unfinished multipart uploads (S3) started before then. Newer ones may belong to a
run that is still committing or rolling back, and are kept.

An --older-than below an hour (down to 0s: everything) is taken only while no
workflow of the policy is running, as Temporal reports it: after terminating runs,
an operator can clean up at once instead of waiting for the grace period.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e := g.env
			ctx := cmd.Context()
			if olderThan < 0 {
				return usageError{fmt.Errorf("--older-than %s is negative: give an age such as 1h or 0s", olderThan)}
			}
			if olderThan < time.Hour {
				if err := e.noRunningWorkflows(ctx, olderThan); err != nil {
					return err
				}
			}
			st, closeState, err := e.state(ctx)
			if err != nil {
				return err
			}
			defer closeState()
			cache := backends.NewCache()
			defer cache.Close()
			engine := replica.New(st)
			var reports []wire.SweepReport
			for i := range e.policy.Destinations {
				d := &e.policy.Destinations[i]
				s, err := cache.Get(ctx, backends.Spec{Name: d.Name, URL: d.URL, Options: store.Options{Credentials: d.Credentials}})
				if err != nil {
					return err
				}
				rep, err := engine.Sweep(ctx, replica.Target{Policy: e.policy, Name: d.Name, Store: s}, time.Now().Add(-olderThan))
				if err != nil {
					return err
				}
				reports = append(reports, rep)
			}
			if g.json {
				return e.printJSON(map[string]any{"swept": reports})
			}
			t := e.table()
			fmt.Fprintln(t, "DESTINATION\tSTAGES\tUNDO COPIES\tUNFINISHED UPLOADS")
			for _, r := range reports {
				fmt.Fprintf(t, "%s\t%d\t%d\t%d\n", r.Destination, r.Stages, r.Undo, r.Uploads)
			}
			return t.Flush()
		},
	}, needsPolicy)
	cmd.Flags().DurationVar(&olderThan, "older-than", replica.SweepGrace, "remove only what was last written longer ago than this (below 1h only while no workflow of the policy runs)")
	return cmd
}

// noRunningWorkflows refuses a short grace period while a workflow of the policy runs:
// its commit or rollback may still need a stage or an undo copy younger than an hour.
func (e *env) noRunningWorkflows(ctx context.Context, olderThan time.Duration) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	query := fmt.Sprintf("%s = %q AND ExecutionStatus = 'Running'", workflows.PolicyAttr.GetName(), e.policy.Name)
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: 5})
	if err != nil {
		return fmt.Errorf("list the running workflows of policy %s (needed for --older-than %s): %w", e.policy.Name, olderThan, err)
	}
	if n := len(resp.Executions); n > 0 {
		var ids []string
		for _, ex := range resp.Executions {
			ids = append(ids, ex.Execution.WorkflowId)
		}
		more := ""
		if len(resp.NextPageToken) > 0 {
			more = " and more"
		}
		return usageError{fmt.Errorf("--older-than %s is shorter than an hour while workflows of policy %s run (%s%s): their commits may still need what it would remove; wait for them, terminate them, or keep --older-than at 1h or more",
			olderThan, e.policy.Name, strings.Join(ids, ", "), more)}
	}
	return nil
}
