package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/watch"
)

func watchCmd(g *globals) *cobra.Command {
	return needs(&cobra.Command{
		Use:   "watch",
		Short: "Watch --policy's source directory and replicate changes as they happen, until interrupted (the same watcher as worker --watch, outside a worker)",
		Long: `watch runs the watcher of --policy (its watch settings: inotify, poll or auto) in this
process, next to the source, while the workers run elsewhere. One watcher per policy
runs at a time among every worker --watch and starter watch: the others stand by and take
over within 30 s when it stops. Stop it with Ctrl-C or SIGTERM.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e := g.env
			if e.policy.Watch == nil {
				return usagef("policy %s has no watch settings: add watch: {mode: auto} to it (its source must be a directory)", e.policy.Name)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			naming, err := e.naming()
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			st, closeState, err := e.state(ctx)
			if err != nil {
				return err
			}
			defer closeState()
			stores := backends.NewCache()
			defer stores.Close()
			log := slog.New(slog.NewTextHandler(e.errOut, nil))
			o, err := watch.ForPolicy(ctx, log, e.policy, c, st, stores, naming)
			if err != nil {
				return usageError{err}
			}
			fmt.Fprintf(e.errOut, "watching %s for policy %s (Ctrl-C stops)\n", o.Root, e.policy.Name)
			watch.Hold(ctx, log, st, watch.HolderID(), o)
			return nil
		},
	}, needsPolicy)
}
