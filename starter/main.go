// Command starter is the operator's CLI: it starts and watches replications, lists
// and retries dead letters, and validates policies. Exit codes: 0 success, 1 the
// operation failed, 2 usage or configuration error (DESIGN section 7a).
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// usageError marks errors that exit with code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// errFailed marks an operation that ran and failed (exit 1) after its outcome was
// printed.
var errFailed = errors.New("operation failed")

// globals are the flags every command shares.
type globals struct {
	config string
	policy string
	json   bool
}

func main() {
	os.Exit(execute(os.Args[1:]))
}

func execute(args []string) int {
	g := &globals{}
	root := &cobra.Command{
		Use:           "starter",
		Short:         "Operate the multi-cloud replicator: replicate, batch, status, failed, policy",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.config, "config", "", "config file (default $REPLICATOR_CONFIG, else ./replicator.yaml)")
	root.PersistentFlags().StringVar(&g.policy, "policy", "", "policy name (may be omitted when the config has one policy)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print JSON for scripts instead of tables")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(replicateCmd(g), batchCmd(g), statusCmd(g), failedCmd(g), policyCmd(g), reconcileCmd(g), scheduleCmd(g), verifyCmd(g))
	root.SetArgs(args)
	err := root.Execute()
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errFailed):
		return 1
	}
	fmt.Fprintln(os.Stderr, "starter:", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return 2
	}
	return 1
}

// isCobraUsage recognises cobra's own argument errors (unknown command, arg counts).
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "accepts ", "requires at least", "invalid argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
