package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"go.temporal.io/sdk/client"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/trigger"
	"github.com/cloudrepl/replicator/internal/watch"
)

// watchPolicies runs a watcher for every policy with watch settings until ctx ends,
// and returns a function that waits for them to stop. Each policy has one watcher
// among all workers and `starter watch` processes: the holder of its lease.
func watchPolicies(ctx context.Context, log *slog.Logger, cfg *config.File, naming trigger.Naming, c client.Client, st *state.State, stores *backends.Cache) (func(), error) {
	var watched []*config.Policy
	for i := range cfg.Policies {
		if cfg.Policies[i].Watch != nil {
			watched = append(watched, &cfg.Policies[i])
		}
	}
	if len(watched) == 0 {
		return nil, fmt.Errorf("--watch: no policy of the config has watch settings; add watch: {mode: auto} to a policy whose source is a directory")
	}
	holder := watch.HolderID()
	var wg sync.WaitGroup
	for _, p := range watched {
		o, err := watch.ForPolicy(ctx, log, p, c, st, stores, naming)
		if err != nil {
			return nil, fmt.Errorf("--watch: %w", err)
		}
		wg.Go(func() { watch.Hold(ctx, log, st, holder, o) })
	}
	return wg.Wait, nil
}
