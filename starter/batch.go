package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strings"
	"time"

	"github.com/cloudrepl/replicator/internal/trigger"
	"github.com/cloudrepl/replicator/internal/wire"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/cloudrepl/replicator/internal/store"
)

func batchCmd(g *globals) *cobra.Command {
	var wait bool
	var id string
	var concurrency, pagesPerRun int
	cmd := needs(&cobra.Command{
		Use:   "batch [FILE|-]",
		Short: "Replicate a list of keys (one per line, from FILE or stdin) as one ReplicateBatch workflow",
		Long: "Replicate a list of keys, one per line, from FILE or stdin (-), as one ReplicateBatch workflow.\n" +
			"A line that is not a valid key is reported on stderr with its number and reason (and under\n" +
			"\"rejected\" with --json) and skipped; the other keys run, and the command then exits 1.",
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			e := g.env
			if err := e.policy.OneWayRefusal(); err != nil {
				return usageError{err}
			}
			in := g.stdin
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return usageError{fmt.Errorf("key list: %w", err)}
				}
				defer f.Close()
				in = f
			}
			if id == "" {
				id = trigger.NewBatchID(time.Now())
			}
			ctx := cmd.Context()
			st, closeState, err := e.state(ctx)
			if err != nil {
				return err
			}
			defer closeState()
			var rejected []rejectedLine
			var readErr error
			list, err := trigger.StoreKeys(ctx, st, e.policy.Name, id, keyLines(in, &rejected, &readErr))
			if readErr != nil {
				return fmt.Errorf("read the key list: %w (nothing was started)", readErr)
			}
			if err != nil {
				return err
			}
			// Each refused line is reported as it is, and the others still run: one
			// bad name in a list of thousands must not hold the rest back.
			for _, r := range rejected {
				fmt.Fprintf(e.errOut, "starter: key list line %d refused: %s\n", r.Line, r.Reason)
			}
			if rejected == nil {
				rejected = []rejectedLine{}
			}
			if list.Count == 0 {
				if len(rejected) > 0 {
					if e.g.json {
						if err := e.printJSON(map[string]any{"keys": 0, "rejected": rejected}); err != nil {
							return err
						}
					}
					fmt.Fprintf(e.errOut, "starter: every line of the key list was refused (%d); nothing was started\n", len(rejected))
					return errFailed
				}
				return usagef("the key list is empty: give one key per line, from a file or - for stdin")
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			run, err := trigger.Batch(ctx, c, e.policy.Name, id, list, trigger.BatchOptions{Concurrency: concurrency, PagesPerRun: pagesPerRun})
			if err != nil {
				return err
			}
			if !wait {
				if e.g.json {
					if err := e.printJSON(map[string]any{"workflow_id": run.GetID(), "run_id": run.GetRunID(), "keys": list.Count, "rejected": rejected}); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(e.out, "started %s with %d keys\n", run.GetID(), list.Count)
				}
			} else if err := e.waitBatch(ctx, c, run, rejected); err != nil {
				return err
			}
			if len(rejected) > 0 {
				fmt.Fprintf(e.errOut, "starter: %d line(s) of the key list were refused (listed above); the other %d keys were started\n", len(rejected), list.Count)
				return errFailed
			}
			return nil
		},
	}, needsPolicy)
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the summary, showing progress; exit 1 if any key failed")
	cmd.Flags().StringVar(&id, "id", "", "batch ID (default: time and random)")
	cmd.Flags().IntVar(&concurrency, "concurrency", 0, "chunk activities in flight (default 4)")
	cmd.Flags().IntVar(&pagesPerRun, "pages-per-run", 0, "pages of 64 keys per workflow run before it continues as new (default 200)")
	return cmd
}

// rejectedLine is a line of a batch's key list that is not a valid key.
type rejectedLine struct {
	// Line number, from 1.
	Line int `json:"line"`
	// Key as read (cut short when the line is too long to be a key).
	Key string `json:"key"`
	// Reason it was refused.
	Reason string `json:"reason"`
}

// keyLines yields the keys of r, one per line ("\r\n" endings accepted, empty lines
// skipped). A line that is not a valid key is appended to rejected and skipped; a
// read failure stops the sequence and is stored in readErr.
func keyLines(r io.Reader, rejected *[]rejectedLine, readErr *error) iter.Seq[string] {
	return func(yield func(string) bool) {
		// The buffer holds the longest valid key and its line ending; ReadSlice
		// reports a longer line as ErrBufferFull, so it is refused without ever
		// being held whole.
		br := bufio.NewReaderSize(r, store.MaxKeyBytes+2)
		for line := 1; ; line++ {
			b, err := br.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				head := string(b[:64])
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = br.ReadSlice('\n')
				}
				*rejected = append(*rejected, rejectedLine{Line: line, Key: head + "…",
					Reason: fmt.Sprintf("the line is longer than %d bytes, the longest key S3, GCS and Azure accept", store.MaxKeyBytes)})
				if err != nil && !errors.Is(err, io.EOF) {
					*readErr = err
					return
				}
				if err != nil {
					return
				}
				continue
			}
			if err != nil && !errors.Is(err, io.EOF) {
				*readErr = err
				return
			}
			k := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
			if k != "" {
				if verr := store.ValidateKey(k, 0); verr != nil {
					*rejected = append(*rejected, rejectedLine{Line: line, Key: k, Reason: verr.Error()})
				} else if !yield(k) {
					return
				}
			}
			if err != nil { // io.EOF after the last line
				return
			}
		}
	}
}

// waitBatch waits for a batch, showing its progress per destination (and that of
// its large files), and prints its summary.
func (e *env) waitBatch(ctx context.Context, c client.Client, run client.WorkflowRun, rejected []rejectedLine) error {
	var sum wire.BatchSummary
	e.rejected = len(rejected)
	err := e.watch(ctx, c, []root{{id: run.GetID(), typ: wire.ReplicateBatchName}}, func() error {
		// By ID alone: the batch continues as new, and the last run has the summary.
		return c.GetWorkflow(ctx, run.GetID(), "").Get(ctx, &sum)
	})
	if err != nil {
		return fmt.Errorf("batch %s: %w", run.GetID(), err)
	}
	return e.printBatch(run.GetID(), &sum, rejected)
}

func (e *env) printBatch(id string, s *wire.BatchSummary, rejected []rejectedLine) error {
	t := s.Totals()
	if e.g.json {
		if err := e.printJSON(map[string]any{"workflow_id": id, "summary": s, "rejected": rejected}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.out, "%s: %d keys (%d excluded, %d rejected, %d large in their own workflows), %d continued runs\n", id, s.Keys, s.Excluded, s.Rejected, s.Large, s.Runs)
		if s.Rejected > 0 {
			fmt.Fprintf(e.out, "rejected keys cannot be replicated as they are: `starter failed list --policy %s` names each with its reason\n", e.policy.Name)
		}
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
