package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"go.temporal.io/sdk/client"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/state"
	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/internal/trigger"
)

// env is what a command works with once the config is loaded.
type env struct {
	g      *globals
	cfg    *config.File
	policy *config.Policy
	out    io.Writer
	errOut io.Writer
	// rejected is the number of refused key-list lines of a batch, for its progress.
	rejected int
}

// load reads and validates the config: any problem is a usage error (exit 2).
func (g *globals) load() (*env, error) {
	cfg, _, err := config.Load(g.config)
	if err != nil {
		return nil, usageError{err}
	}
	return &env{g: g, cfg: cfg, out: g.stdout, errOut: g.stderr}, nil
}

// loadPolicy loads the config and resolves --policy.
func (g *globals) loadPolicy() (*env, error) {
	e, err := g.load()
	if err != nil {
		return nil, err
	}
	name := g.policy
	if name == "" {
		if len(e.cfg.Policies) != 1 {
			return nil, usagef("--policy is required: the config has %d policies", len(e.cfg.Policies))
		}
		name = e.cfg.Policies[0].Name
	}
	if e.policy, err = e.cfg.Policy(name); err != nil {
		return nil, usageError{err}
	}
	return e, nil
}

// client returns the Temporal connection, dialling it on first use: commands that
// end before they need it (a usage error, nothing to retry) never connect. execute
// closes it.
func (e *env) client() (client.Client, error) {
	if e.g.client == nil {
		c, err := e.g.dialer()
		if err != nil {
			return nil, err // temporalclient.Dial names the address and how to fix it
		}
		e.g.client = c
	}
	return e.g.client, nil
}

// naming is how workflow IDs name keys (private_keys policies need the ID secret
// and the codec); a usage error when the environment lacks what the config asks.
func (e *env) naming() (trigger.Naming, error) {
	n, err := trigger.NewNaming(e.cfg)
	if err != nil {
		return n, usageError{err}
	}
	return n, nil
}

func (e *env) state(ctx context.Context) (*state.State, func(), error) {
	s, err := backends.Open(ctx, store.Options{Name: "state", Credentials: e.cfg.StateCredentials}, e.cfg.State)
	if err != nil {
		return nil, nil, err
	}
	return state.New(s), func() { s.Close() }, nil
}

// printJSON writes v as indented JSON.
func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table returns a tab writer for aligned columns; call Flush.
func (e *env) table() *tabwriter.Writer { return tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0) }

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
