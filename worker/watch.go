package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/trigger"
	"github.com/cloudrepl/replicator/internal/watch"
)

// leaseTTL is how long a watcher's hold on its policy lasts without renewal: another
// worker's watcher takes over within it when this one dies.
const leaseTTL = 30 * time.Second

// watchStarter starts replication through Temporal for a watcher.
type watchStarter struct {
	c      client.Client
	st     *state.State
	policy string
}

// Files starts or joins each key's ReplicateFile.
func (s watchStarter) Files(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if _, err := trigger.File(ctx, s.c, s.policy, k, "watch"); err != nil {
			return err
		}
	}
	return nil
}

// Batch stores keys as a key list and starts a ReplicateBatch over it.
func (s watchStarter) Batch(ctx context.Context, keys []string) error {
	id := "watch-" + trigger.NewBatchID(time.Now())
	list, err := trigger.StoreKeys(ctx, s.st, s.policy, id, slices.Values(keys))
	if err != nil {
		return err
	}
	_, err = trigger.Batch(ctx, s.c, s.policy, id, list, trigger.BatchOptions{})
	return err
}

// watchPolicies runs a watcher for every policy with watch settings until ctx ends.
// Each policy has one watcher among all workers: the holder of its lease in the state
// location; the others stand by and take over when the holder stops renewing it.
func watchPolicies(ctx context.Context, log *slog.Logger, cfg *config.File, c client.Client, st *state.State, stores *backends.Cache) (func(), error) {
	var watched []*config.Policy
	for i := range cfg.Policies {
		if cfg.Policies[i].Watch != nil {
			watched = append(watched, &cfg.Policies[i])
		}
	}
	if len(watched) == 0 {
		return nil, fmt.Errorf("--watch: no policy of the config has watch settings; add watch: {mode: auto} to a policy whose source is a directory")
	}
	holder := holderID()
	var wg sync.WaitGroup
	for _, p := range watched {
		u, err := url.Parse(p.Source)
		if err != nil {
			return nil, fmt.Errorf("--watch: policy %s: source: %w", p.Name, err)
		}
		src, err := stores.Get(ctx, backends.Spec{Name: p.Name + "/source", URL: p.Source, Options: store.Options{Credentials: p.SourceCredentials}})
		if err != nil {
			return nil, fmt.Errorf("--watch: policy %s: %w", p.Name, err)
		}
		o := watch.Options{Policy: p, Root: u.Path, Source: src, Starter: watchStarter{c: c, st: st, policy: p.Name}, Log: log}
		wg.Go(func() { holdAndWatch(ctx, log, st, holder, o) })
	}
	return wg.Wait, nil
}

// holdAndWatch watches o's policy while this worker holds its lease, renewing it, and
// stands by while another worker does.
func holdAndWatch(ctx context.Context, log *slog.Logger, st *state.State, holder string, o watch.Options) {
	name := "watch-" + o.Policy.Name
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = st.ReleaseLease(rctx, name, holder)
	}()
	tick := time.NewTicker(leaseTTL / 3)
	defer tick.Stop()
	var stop context.CancelFunc
	var done chan struct{}
	for {
		held, err := st.HoldLease(ctx, name, holder, time.Now(), leaseTTL)
		if err != nil && ctx.Err() == nil {
			log.Warn("watch: cannot renew the lease; watching stops until it can", "policy", o.Policy.Name, "err", err)
		}
		switch {
		case held && stop == nil:
			log.Info("watching", "policy", o.Policy.Name, "root", o.Root, "mode", o.Policy.Watch.Mode)
			wctx, cancel := context.WithCancel(ctx)
			stop, done = cancel, make(chan struct{})
			go func() {
				defer close(done)
				if err := watch.Run(wctx, o); err != nil {
					log.Error("watch stopped; the scheduled reconcile still repairs drift", "policy", o.Policy.Name, "err", err)
				}
			}()
		case !held && stop != nil:
			log.Warn("watch: lost the lease to another worker; standing by", "policy", o.Policy.Name)
			stop()
			<-done
			stop = nil
		case !held && stop == nil && err == nil:
			log.Debug("watch: another worker watches; standing by", "policy", o.Policy.Name)
		}
		select {
		case <-ctx.Done():
			if stop != nil {
				stop()
				<-done
			}
			return
		case <-tick.C:
		}
	}
}

// holderID names this worker process in leases.
func holderID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
