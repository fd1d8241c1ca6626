package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"iter"
	"os"
	"strings"
	"time"

	"github.com/cloudrepl/replicator/internal/wire"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cloudrepl/replicator/internal/store"
	"github.com/cloudrepl/replicator/workflows"
)

// batchPageSize is the number of keys per chunk activity.
const batchPageSize = 64

func batchCmd(g *globals) *cobra.Command {
	var wait bool
	var id string
	var concurrency, pagesPerRun int
	cmd := &cobra.Command{
		Use:   "batch [FILE|-]",
		Short: "Replicate a list of keys (one per line, from FILE or stdin) as one ReplicateBatch workflow",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.loadPolicy()
			if err != nil {
				return err
			}
			in := io.Reader(os.Stdin)
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return usageError{fmt.Errorf("key list: %w", err)}
				}
				defer f.Close()
				in = f
			}
			if id == "" {
				var b [4]byte
				_, _ = rand.Read(b[:])
				id = time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
			}
			ctx := cmd.Context()
			st, closeState, err := e.state(ctx)
			if err != nil {
				return err
			}
			defer closeState()
			var badKey error
			list, err := st.WriteKeyList(ctx, e.policy.Name, id, keyLines(in, &badKey), batchPageSize)
			if badKey != nil {
				return usageError{badKey}
			}
			if err != nil {
				return fmt.Errorf("store the key list: %w", err)
			}
			if list.Count == 0 {
				return usagef("the key list is empty")
			}
			c, err := e.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID:                    wire.BatchWorkflowID(e.policy.Name, id),
				TaskQueue:             wire.DefaultTaskQueue,
				TypedSearchAttributes: temporal.NewSearchAttributes(workflows.PolicyAttr.ValueSet(e.policy.Name)),
				StaticSummary:         fmt.Sprintf("batch of %d keys (policy %s)", list.Count, e.policy.Name),
			}, wire.ReplicateBatchName, wire.ReplicateBatchInput{Policy: e.policy.Name, List: list, Concurrency: concurrency, PagesPerRun: pagesPerRun})
			if err != nil {
				return fmt.Errorf("start batch: %w", err)
			}
			if !wait {
				if e.g.json {
					return e.printJSON(map[string]any{"workflow_id": run.GetID(), "run_id": run.GetRunID(), "keys": list.Count})
				}
				fmt.Fprintf(e.out, "started %s with %d keys\n", run.GetID(), list.Count)
				return nil
			}
			return e.waitBatch(ctx, c, run)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the summary, showing progress; exit 1 if any key failed")
	cmd.Flags().StringVar(&id, "id", "", "batch ID (default: time and random)")
	cmd.Flags().IntVar(&concurrency, "concurrency", 0, "chunk activities in flight (default 4)")
	cmd.Flags().IntVar(&pagesPerRun, "pages-per-run", 0, "pages of 64 keys per workflow run before it continues as new (default 200)")
	return cmd
}

// keyLines yields the non-empty lines of r; an invalid key stops it and is reported
// through bad.
func keyLines(r io.Reader, bad *error) iter.Seq[string] {
	return func(yield func(string) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), store.MaxKeyBytes*4)
		line := 0
		for sc.Scan() {
			line++
			k := strings.TrimRight(sc.Text(), "\r")
			if k == "" {
				continue
			}
			if err := store.ValidateKey(k, 0); err != nil {
				*bad = fmt.Errorf("line %d: %w", line, err)
				return
			}
			if !yield(k) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			*bad = fmt.Errorf("read key list: %w", err)
		}
	}
}

func (e *env) waitBatch(ctx context.Context, c client.Client, run client.WorkflowRun) error {
	done := make(chan error, 1)
	var sum wire.BatchSummary
	go func() { done <- c.GetWorkflow(ctx, run.GetID(), "").Get(ctx, &sum) }()
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		select {
		case err := <-done:
			if !e.g.json && stderrIsTerminal() {
				fmt.Fprint(os.Stderr, "\r\033[K")
			}
			if err != nil {
				return fmt.Errorf("batch %s: %w", run.GetID(), err)
			}
			return e.printBatch(run.GetID(), &sum)
		case <-ticker.C:
			if e.g.json || !stderrIsTerminal() {
				continue
			}
			v, err := c.QueryWorkflow(ctx, run.GetID(), "", wire.ProgressQuery)
			if err != nil {
				continue
			}
			var p wire.BatchProgress
			if v.Get(&p) == nil {
				t := p.Summary.Totals()
				fmt.Fprintf(os.Stderr, "\r\033[Kpages %d/%d  copied %d  skipped %d  failed %d  %s", p.PagesDone, p.Pages, t.Copied, t.Skipped, t.Failed, humanBytes(t.Bytes))
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (e *env) printBatch(id string, s *wire.BatchSummary) error {
	t := s.Totals()
	if e.g.json {
		if err := e.printJSON(map[string]any{"workflow_id": id, "summary": s}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.out, "%s: %d keys (%d excluded, %d large in their own workflows), %d continued runs\n", id, s.Keys, s.Excluded, s.Large, s.Runs)
		tw := e.table()
		fmt.Fprintln(tw, "DESTINATION\tCOPIED\tSKIPPED\tSUPERSEDED\tDELETED\tFAILED\tBYTES")
		for _, d := range s.Destinations {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", d.Destination, d.Copied, d.Skipped, d.Superseded, d.Deleted, d.Failed, humanBytes(d.Bytes))
		}
		tw.Flush()
	}
	if t.Failed > 0 {
		return errFailed
	}
	return nil
}
