package main

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/cloudrepl/replicator/internal/wire"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/cloudrepl/replicator/internal/store"
)

func replicateCmd(g *globals) *cobra.Command {
	var wait bool
	cmd := needs(&cobra.Command{
		Use:   "replicate KEY...",
		Short: "Replicate keys now: one ReplicateFile workflow per key (triggers for a running key join it)",
		Args:  keyArgs,
		RunE: func(cmd *cobra.Command, keys []string) error {
			e := g.env
			if err := e.policy.OneWayRefusal(); err != nil {
				return usageError{err}
			}
			naming, err := e.naming()
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			runs := make([]client.WorkflowRun, len(keys))
			for i, key := range keys {
				if runs[i], err = naming.File(ctx, c, e.policy.Name, key, "starter"); err != nil {
					return err
				}
				if !e.g.json && !wait {
					fmt.Fprintf(e.out, "started %s (run %s)\n", runs[i].GetID(), runs[i].GetRunID())
				}
			}
			if !wait {
				if e.g.json {
					var ids []map[string]string
					for _, r := range runs {
						ids = append(ids, map[string]string{"workflow_id": r.GetID(), "run_id": r.GetRunID()})
					}
					return e.printJSON(ids)
				}
				return nil
			}
			return e.waitFiles(ctx, c, runs)
		},
	}, needsPolicy)
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the result, showing progress; exit 1 unless every destination succeeded")
	return cmd
}

// keyArgs requires one key or more, each valid on every backend, before anything is
// loaded or started.
func keyArgs(cmd *cobra.Command, keys []string) error {
	if err := usageArgs(cobra.MinimumNArgs(1))(cmd, keys); err != nil {
		return err
	}
	for _, k := range keys {
		if err := store.ValidateKey(k, 0); err != nil {
			return usageError{err}
		}
	}
	return nil
}

// waitFiles waits for runs, showing per-destination progress, and prints results.
func (e *env) waitFiles(ctx context.Context, c client.Client, runs []client.WorkflowRun) error {
	results := make([]*wire.ReplicateFileResult, len(runs))
	errs := make([]error, len(runs))
	roots := make([]root, len(runs))
	for i, r := range runs {
		roots[i] = root{id: r.GetID(), runID: r.GetRunID(), typ: wire.ReplicateFileName}
	}
	err := e.watch(ctx, c, roots, func() error {
		var wg sync.WaitGroup
		for i, r := range runs {
			wg.Go(func() {
				var res wire.ReplicateFileResult
				errs[i] = r.Get(ctx, &res)
				results[i] = &res
			})
		}
		wg.Wait()
		return ctx.Err()
	})
	if err != nil {
		return err
	}
	failed := false
	if e.g.json {
		var out []any
		for i, r := range runs {
			if errs[i] != nil {
				failed = true
				out = append(out, map[string]string{"workflow_id": r.GetID(), "error": errs[i].Error()})
				continue
			}
			failed = failed || !goodOutcome(results[i].Outcome)
			out = append(out, results[i])
		}
		if err := e.printJSON(out); err != nil {
			return err
		}
	} else {
		t := e.table()
		fmt.Fprintln(t, "KEY\tOUTCOME\tDESTINATION\tRESULT\tBYTES\tERROR")
		for i, r := range runs {
			if errs[i] != nil {
				failed = true
				fmt.Fprintf(t, "%s\tfailed\t\t\t\t%v\n", strings.TrimPrefix(r.GetID(), "replicate/"), errs[i])
				continue
			}
			res := results[i]
			failed = failed || !goodOutcome(res.Outcome)
			if len(res.Destinations) == 0 {
				fmt.Fprintf(t, "%s\t%s\t\t\t\t\n", res.Key, res.Outcome)
			}
			for j, d := range res.Destinations {
				key, outcome := res.Key, res.Outcome
				if j > 0 {
					key, outcome = "", ""
				}
				fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\n", key, outcome, d.Destination, d.Outcome, humanBytes(d.Bytes), d.Error)
			}
		}
		t.Flush()
	}
	if failed {
		return errFailed
	}
	return nil
}

func goodOutcome(o wire.RunOutcome) bool { return o == wire.RunOK || o == wire.RunSkipped }
