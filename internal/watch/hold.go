package watch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/trigger"
)

// LeaseTTL is how long a watcher's hold on its policy lasts without renewal: another
// watcher takes over within it when this one dies.
const LeaseTTL = 30 * time.Second

// TemporalStarter starts replication through Temporal: Signal-With-Start per key, or a
// stored key list and a ReplicateBatch.
type TemporalStarter struct {
	Client client.Client
	State  *state.State
	Policy string
	// Naming names the ReplicateFile runs as every other trigger does.
	Naming trigger.Naming
}

// Files starts or joins each key's ReplicateFile.
func (s TemporalStarter) Files(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if _, err := s.Naming.File(ctx, s.Client, s.Policy, k, "watch"); err != nil {
			return err
		}
	}
	return nil
}

// Batch stores keys as a key list and starts a ReplicateBatch over it.
func (s TemporalStarter) Batch(ctx context.Context, keys []string) error {
	id := "watch-" + trigger.NewBatchID(time.Now())
	list, err := trigger.StoreKeys(ctx, s.State, s.Policy, id, slices.Values(keys))
	if err != nil {
		return err
	}
	_, err = trigger.Batch(ctx, s.Client, s.Policy, id, list, trigger.BatchOptions{})
	return err
}

// HolderID names this process in leases.
func HolderID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Hold watches o's policy while holder holds the policy's lease in the state location
// (leases/watch-<policy>.json), renewing it every third of LeaseTTL, and stands by while
// another watcher holds it, until ctx ends; then it releases the lease. Every worker
// with --watch and every `starter watch` runs this, so a policy has one watcher.
func Hold(ctx context.Context, log *slog.Logger, st *state.State, holder string, o Options) {
	name := "watch-" + o.Policy.Name
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = st.ReleaseLease(rctx, name, holder)
	}()
	tick := time.NewTicker(LeaseTTL / 3)
	defer tick.Stop()
	var stop context.CancelFunc
	var done chan struct{}
	for {
		held, err := st.HoldLease(ctx, name, holder, time.Now(), LeaseTTL)
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
				if err := Run(wctx, o); err != nil {
					log.Error("watch stopped; the scheduled reconcile still repairs drift", "policy", o.Policy.Name, "err", err)
				}
			}()
		case !held && stop != nil:
			log.Warn("watch: lost the lease to another watcher; standing by", "policy", o.Policy.Name)
			stop()
			<-done
			stop = nil
		case !held && stop == nil && err == nil:
			log.Debug("watch: another watcher holds the policy; standing by", "policy", o.Policy.Name)
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

// ForPolicy is the watcher options of policy p, whose source is a directory: its root,
// its source store from stores, and a TemporalStarter.
func ForPolicy(ctx context.Context, log *slog.Logger, p *config.Policy, c client.Client, st *state.State, stores *backends.Cache, naming trigger.Naming) (Options, error) {
	u, err := url.Parse(p.Source)
	if err != nil || u.Scheme != "file" {
		return Options{}, fmt.Errorf("policy %s: only a directory source (file://) can be watched", p.Name)
	}
	src, err := stores.Get(ctx, backends.Spec{Name: p.Name + "/source", URL: p.Source, Options: store.Options{Credentials: p.SourceCredentials}})
	if err != nil {
		return Options{}, fmt.Errorf("policy %s: %w", p.Name, err)
	}
	return Options{Policy: p, Root: u.Path, Source: src, Starter: TemporalStarter{Client: c, State: st, Policy: p.Name, Naming: naming}, Log: log}, nil
}
