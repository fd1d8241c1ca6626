package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/store"
)

func policyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Inspect policies"}
	groupCommand(cmd)
	var check bool
	validate := needs(&cobra.Command{
		Use:   "validate",
		Short: "Validate the config, reporting every problem; --check also connects to every location",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e := g.env
			type result struct {
				Policy   string `json:"policy"`
				Location string `json:"location"`
				URL      string `json:"url"`
				OK       bool   `json:"ok"`
				Error    string `json:"error,omitempty"`
			}
			var results []result
			failed := false
			if check {
				ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
				defer cancel()
				checkOne := func(policy, name, url string, opts store.Options) {
					opts.Name = name
					r := result{Policy: policy, Location: name, URL: url, OK: true}
					s, err := backends.Open(ctx, opts, url)
					if err == nil {
						err = s.Check(ctx)
						s.Close()
					}
					if err != nil {
						r.OK, r.Error, failed = false, err.Error(), true
					}
					results = append(results, r)
				}
				checkOne("", "state", e.cfg.State, store.Options{Credentials: e.cfg.StateCredentials})
				for _, p := range e.cfg.Policies {
					if g.policy != "" && p.Name != g.policy {
						continue
					}
					checkOne(p.Name, "source", p.Source, store.Options{Credentials: p.SourceCredentials})
					for _, d := range p.Destinations {
						checkOne(p.Name, d.Name, d.URL, store.Options{Credentials: d.Credentials})
					}
				}
			}
			if g.json {
				if err := e.printJSON(map[string]any{"valid": true, "policies": len(e.cfg.Policies), "checks": results}); err != nil {
					return err
				}
			} else {
				for _, p := range e.cfg.Policies {
					fmt.Fprintf(e.out, "policy %s: %s, %s, %d destination(s), %d rule(s)\n", p.Name, p.Mode, p.Consistency, len(p.Destinations), len(p.Rules))
				}
				for _, r := range results {
					status := "ok"
					if !r.OK {
						status = "FAILED: " + r.Error
					}
					fmt.Fprintf(e.out, "  %s %s (%s): %s\n", r.Policy, r.Location, r.URL, status)
				}
				fmt.Fprintln(e.out, "config is valid")
			}
			if failed {
				return errFailed
			}
			return nil
		},
	}, needsConfig)
	validate.Flags().BoolVar(&check, "check", false, "connect to the state, source and destinations and check they exist and are reachable")
	cmd.AddCommand(validate)
	return cmd
}
