package main

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cloudrepl/replicator/internal/trigger"
	"github.com/cloudrepl/replicator/internal/wire"
	"github.com/cloudrepl/replicator/workflows"
)

func restoreCmd(g *globals) *cobra.Command {
	var spec wire.RestoreSpec
	var asOf string
	var wait bool
	cmd := needs(&cobra.Command{
		Use:   "restore --from DESTINATION",
		Short: "Copy a destination's replicas back to --policy's source, or to --to URL (disaster recovery, failback)",
		Long: `restore copies every replica that the destination --from holds (under --prefix) back
to the policy's source, or to the location --to names, as one Restore workflow with
progress. Each file is checked against its SHA-256 while it streams, so a damaged
replica is refused, not restored. A file the target already holds with the same
bytes is skipped; one it holds with other bytes is left as it is and listed, unless
--overwrite is given. --as-of TIME (RFC 3339, e.g. 2026-12-01T08:00:00Z) restores
the versions that were current then, from an S3 destination whose bucket keeps
versions.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e := g.env
			spec.Policy = e.policy.Name
			if spec.From == "" {
				return usagef("--from is required: name the destination to restore from (%s)", strings.Join(e.destinationNames(), ", "))
			}
			d, err := e.policy.Destination(spec.From)
			if err != nil {
				return usagef("--from %s: %v (the policy's destinations are %s)", spec.From, err, strings.Join(e.destinationNames(), ", "))
			}
			if spec.To != "" {
				u, err := url.Parse(spec.To)
				if err != nil || u.Scheme == "" {
					return usagef("--to %q is not a location URL: give file:///path, s3://bucket/prefix, gs://bucket/prefix or azblob://account/container/prefix", spec.To)
				}
				if spec.To == d.URL {
					return usagef("--to is destination %s itself: restore to the source (omit --to) or to another location", spec.From)
				}
			}
			if asOf != "" {
				t, err := time.Parse(time.RFC3339, asOf)
				if err != nil {
					return usagef("--as-of %q: give a time in RFC 3339, such as 2026-12-01T08:00:00Z", asOf)
				}
				if t.After(time.Now()) {
					return usagef("--as-of %s is in the future", asOf)
				}
				spec.AsOf = t.UTC()
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			in := wire.RestoreInput{RestoreSpec: spec, ID: trigger.NewBatchID(time.Now())}
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID:                    wire.RestoreWorkflowID(e.policy.Name, in.ID),
				TaskQueue:             wire.DefaultTaskQueue,
				TypedSearchAttributes: temporal.NewSearchAttributes(workflows.PolicyAttr.ValueSet(e.policy.Name)),
				StaticSummary:         restoreSummary(spec),
			}, wire.RestoreName, in)
			if err != nil {
				return fmt.Errorf("start restore: %w", err)
			}
			if !wait {
				if e.g.json {
					return e.printJSON(map[string]string{"workflow_id": run.GetID(), "run_id": run.GetRunID()})
				}
				fmt.Fprintf(e.out, "started %s\n", run.GetID())
				return nil
			}
			var res wire.RestoreResult
			if err := e.watch(ctx, c, []root{{id: run.GetID(), typ: wire.RestoreName}}, func() error {
				// By ID alone: a long restore continues as new, and the last run has the result.
				return c.GetWorkflow(ctx, run.GetID(), "").Get(ctx, &res)
			}); err != nil {
				return fmt.Errorf("restore %s: %w", run.GetID(), err)
			}
			return e.printRestore(run.GetID(), &res)
		},
	}, needsPolicy)
	cmd.Flags().StringVar(&spec.From, "from", "", "destination to restore from (required)")
	cmd.Flags().StringVar(&spec.To, "to", "", "location URL to restore to (default: the policy's source)")
	cmd.Flags().StringVar(&spec.Prefix, "prefix", "", "restore only keys starting with this")
	cmd.Flags().StringVar(&asOf, "as-of", "", "restore the versions current at this time (RFC 3339; S3 destinations with versioning)")
	cmd.Flags().BoolVar(&spec.Overwrite, "overwrite", false, "replace files of the target whose content differs (kept in the policy's trash if it has one)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the result, showing progress; exit 1 unless every replica was restored or already there")
	return cmd
}

// destinationNames lists the policy's destinations, for messages.
func (e *env) destinationNames() []string {
	names := make([]string, len(e.policy.Destinations))
	for i, d := range e.policy.Destinations {
		names[i] = d.Name
	}
	return names
}

func restoreSummary(s wire.RestoreSpec) string {
	to := "the source"
	if s.To != "" {
		to = s.To
	}
	sum := fmt.Sprintf("restore %s from %s to %s", s.Policy, s.From, to)
	if s.Prefix != "" {
		sum += " (prefix " + s.Prefix + ")"
	}
	if !s.AsOf.IsZero() {
		sum += " as of " + s.AsOf.Format(time.RFC3339)
	}
	return sum
}

func (e *env) printRestore(id string, r *wire.RestoreResult) error {
	if e.g.json {
		if err := e.printJSON(map[string]any{"workflow_id": id, "result": r}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.out, "%s: outcome %s, %d keys on %s: %d restored, %d already there, %d left (other content), %d failed, %s\n",
			id, r.Outcome, r.Keys, r.From, r.Restored, r.Skipped, r.Left, r.Failed, humanBytes(r.Bytes))
		if len(r.LeftKeys) > 0 {
			fmt.Fprintf(e.out, "left as they are (use --overwrite to replace them): %s\n", strings.Join(quoteAll(r.LeftKeys), ", "))
		}
		for _, f := range r.Failures {
			fmt.Fprintf(e.out, "failed: %s\n", f)
		}
	}
	if r.Outcome != wire.RunOK || r.Left > 0 {
		return errFailed
	}
	return nil
}

func quoteAll(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("%q", k)
	}
	return out
}
