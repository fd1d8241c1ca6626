package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/replica"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/wire"
)

func cleanupCmd(g *globals) *cobra.Command {
	var olderThan time.Duration
	cmd := needs(&cobra.Command{
		Use:   "cleanup",
		Short: "Remove stages and undo copies that failed or terminated runs left on --policy's destinations (every reconcile does this too)",
		Long: `cleanup sweeps every destination of --policy: stages (.replicator/staging/) and
undo copies (.replicator/undo/) last written more than --older-than ago are removed,
with the unfinished multipart uploads of those stages. Newer ones may belong to a
run that is still committing or rolling back, and are kept.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e := g.env
			ctx := cmd.Context()
			if olderThan < time.Hour {
				return usageError{fmt.Errorf("--older-than %s is shorter than an hour: a running commit may still need what it would remove", olderThan)}
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
			fmt.Fprintln(t, "DESTINATION\tSTAGES\tUNDO COPIES")
			for _, r := range reports {
				fmt.Fprintf(t, "%s\t%d\t%d\n", r.Destination, r.Stages, r.Undo)
			}
			return t.Flush()
		},
	}, needsPolicy)
	cmd.Flags().DurationVar(&olderThan, "older-than", replica.SweepGrace, "remove only what was last written longer ago than this (at least 1h)")
	return cmd
}
