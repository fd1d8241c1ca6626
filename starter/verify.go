package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"iter"
	"sync"

	"github.com/spf13/cobra"

	"github.com/cloudrepl/replicator/internal/backends"
	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/store"
)

// verifyRow is one difference found by verify.
type verifyRow struct {
	Key         string `json:"key"`
	Destination string `json:"destination"`
	Status      string `json:"status"` // missing, differs, extra, error
	Detail      string `json:"detail,omitempty"`
}

func verifyCmd(g *globals) *cobra.Command {
	var concurrency int
	cmd := needs(&cobra.Command{
		Use:   "verify",
		Short: "Audit --policy end to end: read every source file and every replica, compare SHA-256, change nothing",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e := g.env
			ctx := cmd.Context()
			p := e.policy
			cache := backends.NewCache()
			defer cache.Close()
			src, err := cache.Get(ctx, backends.Spec{Name: p.Name + "/source", URL: p.Source, Options: store.Options{Credentials: p.SourceCredentials}})
			if err != nil {
				return err
			}
			dests := map[string]store.Store{}
			for _, d := range p.Destinations {
				s, err := cache.Get(ctx, backends.Spec{Name: d.Name, URL: d.URL, Options: store.Options{Credentials: d.Credentials}})
				if err != nil {
					return err
				}
				dests[d.Name] = s
			}
			rows, checked, err := verify(ctx, p, src, dests, concurrency)
			if err != nil {
				return err
			}
			if g.json {
				if rows == nil {
					rows = []verifyRow{}
				}
				if err := e.printJSON(map[string]any{"checked": checked, "differences": rows}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(e.out, "verified %d replicas of policy %s: %d difference(s)\n", checked, p.Name, len(rows))
				if len(rows) > 0 {
					t := e.table()
					fmt.Fprintln(t, "KEY\tDESTINATION\tSTATUS\tDETAIL")
					for _, r := range rows {
						fmt.Fprintf(t, "%s\t%s\t%s\t%s\n", displayKey(r.Key), r.Destination, r.Status, r.Detail)
					}
					t.Flush()
				}
			}
			if len(rows) > 0 {
				return errFailed
			}
			return nil
		},
	}, needsPolicy)
	cmd.Flags().IntVar(&concurrency, "concurrency", 8, "files compared at once")
	return cmd
}

// verify compares every routed (key, destination) by content, then lists each
// destination for objects the source lacks.
func verify(ctx context.Context, p *config.Policy, src store.Store, dests map[string]store.Store, concurrency int) ([]verifyRow, int, error) {
	var (
		mu      sync.Mutex
		rows    []verifyRow
		checked int
		wg      sync.WaitGroup
	)
	add := func(r verifyRow) {
		mu.Lock()
		rows = append(rows, r)
		mu.Unlock()
	}
	sem := make(chan struct{}, max(concurrency, 1))
	for o, err := range src.List(ctx, store.ListOptions{}) {
		if err != nil {
			wg.Wait()
			return nil, 0, err
		}
		route := p.Route(o.Key)
		if len(route) == 0 {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(key string) {
			defer func() { <-sem; wg.Done() }()
			want, err := hashOf(ctx, src, key)
			if err != nil {
				add(verifyRow{Key: key, Destination: "(source)", Status: "error", Detail: err.Error()})
				return
			}
			for _, d := range route {
				got, err := hashOf(ctx, dests[d], key)
				mu.Lock()
				checked++
				mu.Unlock()
				switch {
				case store.IsNotFound(err):
					add(verifyRow{Key: key, Destination: d, Status: "missing"})
				case err != nil:
					add(verifyRow{Key: key, Destination: d, Status: "error", Detail: err.Error()})
				case got != want:
					add(verifyRow{Key: key, Destination: d, Status: "differs", Detail: fmt.Sprintf("SHA-256 %s, source %s", got, want)})
				}
			}
		}(o.Key)
	}
	wg.Wait()
	for _, d := range p.Destinations {
		extras, err := extraKeys(ctx, src.List(ctx, store.ListOptions{}), dests[d.Name].List(ctx, store.ListOptions{}), func(k string) bool {
			for _, r := range p.Route(k) {
				if r == d.Name {
					return true
				}
			}
			return false
		})
		if err != nil {
			return nil, 0, err
		}
		for _, k := range extras {
			rows = append(rows, verifyRow{Key: k, Destination: d.Name, Status: "extra", Detail: "not in the source (or not routed here)"})
		}
	}
	return rows, checked, nil
}

func hashOf(ctx context.Context, s store.Store, key string) (string, error) {
	r, err := s.Open(ctx, key, 0)
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// extraKeys merges two sorted listings and returns the destination keys that are not
// routed source keys.
func extraKeys(ctx context.Context, source, dest iter.Seq2[store.Object, error], routed func(string) bool) ([]string, error) {
	next, stop := iter.Pull2(source)
	defer stop()
	var extras []string
	s, serr, sok := next()
	for d, err := range dest {
		if err != nil {
			return nil, err
		}
		for sok && serr == nil && s.Key < d.Key {
			s, serr, sok = next()
		}
		if serr != nil {
			return nil, serr
		}
		if !sok || s.Key != d.Key || !routed(d.Key) {
			extras = append(extras, d.Key)
		}
	}
	return extras, nil
}
