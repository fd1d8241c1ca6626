package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/cobra"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
)

func statusCmd(g *globals) *cobra.Command {
	var limit int
	var follow bool
	cmd := needs(&cobra.Command{
		Use:   "status [WORKFLOW_ID]",
		Short: "Show one workflow, or the recent workflows of --policy; --follow watches them until they end",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			e := g.env
			if g.policy != "" {
				if _, err := e.cfg.Policy(g.policy); err != nil {
					return usageError{err}
				}
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if follow {
				if err := e.follow(ctx, c, args, g.policy); err != nil {
					return err
				}
			}
			var infos []*workflowpb.WorkflowExecutionInfo
			if len(args) == 1 {
				d, err := c.DescribeWorkflowExecution(ctx, args[0], "")
				if err != nil {
					return fmt.Errorf("describe %s: %w", args[0], err)
				}
				infos = append(infos, d.GetWorkflowExecutionInfo())
			} else {
				query := ""
				if g.policy != "" {
					query = fmt.Sprintf("ReplicationPolicy = %q", g.policy)
				}
				resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: int32(limit)})
				if err != nil {
					return fmt.Errorf("list workflows: %w", err)
				}
				infos = resp.GetExecutions()
			}
			type row struct {
				WorkflowID string    `json:"workflow_id"`
				Type       string    `json:"type"`
				Status     string    `json:"status"`
				Outcome    string    `json:"outcome,omitempty"`
				Bytes      int64     `json:"bytes"`
				Started    time.Time `json:"started"`
				Closed     time.Time `json:"closed,omitzero"`
			}
			var rows []row
			for _, in := range infos {
				r := row{WorkflowID: in.GetExecution().GetWorkflowId(), Type: in.GetType().GetName(), Status: in.GetStatus().String(),
					Started: in.GetStartTime().AsTime()}
				if in.GetCloseTime() != nil {
					r.Closed = in.GetCloseTime().AsTime()
				}
				fields := in.GetSearchAttributes().GetIndexedFields()
				_ = converter.GetDefaultDataConverter().FromPayload(fields["ReplicationOutcome"], &r.Outcome)
				_ = converter.GetDefaultDataConverter().FromPayload(fields["ReplicationBytes"], &r.Bytes)
				rows = append(rows, r)
				if len(rows) == limit {
					break
				}
			}
			if g.json {
				return e.printJSON(rows)
			}
			t := e.table()
			fmt.Fprintln(t, "WORKFLOW ID\tTYPE\tSTATUS\tOUTCOME\tBYTES\tSTARTED")
			for _, r := range rows {
				fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\n", r.WorkflowID, r.Type, r.Status, r.Outcome, humanBytes(r.Bytes), r.Started.Local().Format(time.DateTime))
			}
			return t.Flush()
		},
	}, needsConfig)
	cmd.Flags().IntVar(&limit, "limit", 20, "how many recent workflows to show")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "watch the workflow, or the running workflows of --policy, with progress per destination until they end; then show them")
	return cmd
}

// follow watches one workflow, or the running workflows of policy, until they end.
func (e *env) follow(ctx context.Context, c client.Client, args []string, policy string) error {
	var roots []root
	if len(args) == 1 {
		d, err := c.DescribeWorkflowExecution(ctx, args[0], "")
		if err != nil {
			return fmt.Errorf("describe %s: %w (is the workflow ID right? `starter status --policy NAME` lists them)", args[0], err)
		}
		in := d.GetWorkflowExecutionInfo()
		roots = append(roots, root{id: args[0], runID: in.GetExecution().GetRunId(), typ: in.GetType().GetName()})
	} else {
		if policy == "" {
			return usagef("status --follow needs a workflow ID or --policy: it watches one workflow or a policy's running ones")
		}
		query := fmt.Sprintf("ReplicationPolicy = %q AND ExecutionStatus = 'Running'", policy)
		var token []byte
		for {
			resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token})
			if err != nil {
				return fmt.Errorf("list running workflows: %w", err)
			}
			for _, in := range resp.GetExecutions() {
				roots = append(roots, root{id: in.GetExecution().GetWorkflowId(), runID: in.GetExecution().GetRunId(), typ: in.GetType().GetName()})
			}
			if token = resp.GetNextPageToken(); len(token) == 0 {
				break
			}
		}
		if len(roots) == 0 {
			fmt.Fprintf(e.errOut, "starter: no running workflows of policy %s to follow\n", policy)
			return nil
		}
	}
	return e.watch(ctx, c, roots, func() error {
		var wg sync.WaitGroup
		for _, r := range roots {
			wg.Go(func() {
				// By ID alone: a batch continues as new. How it ended is shown by the
				// table that follows, so its error is not this command's.
				_ = c.GetWorkflow(ctx, r.id, "").Get(ctx, nil)
			})
		}
		wg.Wait()
		return ctx.Err()
	})
}
