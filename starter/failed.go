package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/cloudrepl/replicator/internal/state"
)

func failedCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "failed", Short: "List and retry dead letters (replications that failed permanently)"}
	groupCommand(cmd)
	var destination, key string
	var wait bool
	collect := func(cmd *cobra.Command) (*env, []state.DeadLetter, error) {
		e := g.env
		st, closeState, err := e.state(cmd.Context())
		if err != nil {
			return nil, nil, err
		}
		defer closeState()
		var out []state.DeadLetter
		for d, err := range st.DeadLetters(cmd.Context(), e.policy.Name) {
			if err != nil {
				return nil, nil, fmt.Errorf("list dead letters: %w", err)
			}
			if (destination == "" || d.Destination == destination) && (key == "" || d.Key == key) {
				out = append(out, d)
			}
		}
		return e, out, nil
	}
	list := needs(&cobra.Command{
		Use:   "list",
		Short: "List dead letters of --policy",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, dls, err := collect(cmd)
			if err != nil {
				return err
			}
			if g.json {
				if dls == nil {
					dls = []state.DeadLetter{}
				}
				return e.printJSON(dls)
			}
			t := e.table()
			fmt.Fprintln(t, "KEY\tDESTINATION\tCLASS\tATTEMPTS\tFIRST\tLAST\tMESSAGE")
			for _, d := range dls {
				fmt.Fprintf(t, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", displayKey(d.Key), d.Destination, d.Class, d.Attempts,
					d.First.Local().Format(time.DateTime), d.Last.Local().Format(time.DateTime), d.Message)
			}
			return t.Flush()
		},
	}, needsPolicy)
	retry := needs(&cobra.Command{
		Use:   "retry",
		Short: "Re-run the replications of dead letters of --policy (a success clears them)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, dls, err := collect(cmd)
			if err != nil {
				return err
			}
			var keys []string
			for _, d := range dls {
				if !slices.Contains(keys, d.Key) {
					keys = append(keys, d.Key)
				}
			}
			if len(keys) == 0 {
				fmt.Fprintln(e.out, "no dead letters to retry")
				return nil
			}
			naming, err := e.naming()
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			runs := make([]client.WorkflowRun, len(keys))
			for i, k := range keys {
				if runs[i], err = naming.File(cmd.Context(), c, e.policy.Name, k, "starter"); err != nil {
					return err
				}
			}
			if wait {
				return e.waitFiles(cmd.Context(), c, runs)
			}
			fmt.Fprintf(e.out, "retrying %d keys\n", len(keys))
			return nil
		},
	}, needsPolicy)
	for _, c := range []*cobra.Command{list, retry} {
		c.Flags().StringVar(&destination, "destination", "", "only this destination")
		c.Flags().StringVar(&key, "key", "", "only this key")
	}
	retry.Flags().BoolVar(&wait, "wait", false, "wait for the retries; exit 1 unless all succeed")
	cmd.AddCommand(list, retry)
	return cmd
}

// displayKey prints a key as it is when it is printable UTF-8, else quoted, so that a
// rejected name with control characters or invalid bytes neither garbles the terminal
// nor hides what is wrong with it.
func displayKey(k string) string {
	if !utf8.ValidString(k) || strings.ContainsFunc(k, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(k)
	}
	return k
}
