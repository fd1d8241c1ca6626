// Command starter is the operator's CLI: it starts and watches replications, lists
// and retries dead letters, and validates policies. Exit codes: 0 success, 1 the
// operation failed, 2 usage or configuration error (DESIGN section 7a).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cloudrepl/replicator/internal/temporalclient"
	"github.com/cloudrepl/replicator/internal/version"
)

// usageError marks errors that exit with code 2: a wrong command line or config. Every
// place that detects one returns this type (flag parsing, argument validators, config
// loading), so execute never has to recognise cobra's messages.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// errFailed marks an operation that ran and failed (exit 1) after its outcome was
// printed.
var errFailed = errors.New("operation failed")

// Exit codes (DESIGN section 7a).
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// globals are the flags every command shares and what the persistent pre-run
// prepares from them.
type globals struct {
	config string
	policy string
	json   bool
	// progress, with json, writes progress objects on stderr while a command waits.
	progress bool

	stdin          io.Reader
	stdout, stderr io.Writer
	// dialer connects to Temporal; tests replace it.
	dialer func() (client.Client, error)
	// env is the loaded config (and policy), set by the persistent pre-run for the
	// commands annotated as needing it.
	env *env
	// client is the Temporal connection, dialled on first use by env.client.
	client client.Client
}

func main() {
	os.Exit(execute(os.Args[1:]))
}

// execute runs the command line on the process's streams and the Temporal
// connection configured by the environment.
func execute(args []string) int {
	return run(args, os.Stdin, os.Stdout, os.Stderr, func() (client.Client, error) { return temporalclient.Dial(nil) })
}

// run executes args and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, dialer func() (client.Client, error)) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr, dialer: dialer}
	defer func() {
		if g.client != nil {
			g.client.Close()
		}
	}()
	root := &cobra.Command{
		Use:           "starter",
		Short:         "Operate the multi-cloud replicator: replicate, batch, status, failed, policy",
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		// The config is loaded once here, for the commands that declare they need
		// it (needs), after cobra has checked their arguments.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return g.prepare(cmd) },
	}
	groupCommand(root)
	root.PersistentFlags().StringVar(&g.config, "config", "", "config file (default $REPLICATOR_CONFIG, else ./replicator.yaml)")
	root.PersistentFlags().StringVar(&g.policy, "policy", "", "policy name (may be omitted when the config has one policy)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print JSON for scripts instead of tables")
	root.PersistentFlags().BoolVar(&g.progress, "progress", false, "with --json: while --wait or --follow waits, write one JSON progress object per second on stderr")
	// "starter --version" prints what "worker --version" prints, so the two are
	// easy to compare when a deployment mixes builds.
	root.SetVersionTemplate("starter {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(replicateCmd(g), batchCmd(g), statusCmd(g), failedCmd(g), policyCmd(g), reconcileCmd(g), scheduleCmd(g), verifyCmd(g), cleanupCmd(g), watchCmd(g), restoreCmd(g))
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errFailed):
		return exitFailed
	}
	fmt.Fprintln(stderr, "starter:", readable(err))
	if ue := (usageError{}); errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailed
}

// Values of the needsAnnotation of a command, read by the persistent pre-run.
const (
	needsAnnotation = "starter/needs"
	// needsConfig loads and validates the config.
	needsConfig = "config"
	// needsPolicy also resolves --policy (which may be omitted with one policy).
	needsPolicy = "policy"
)

// needs marks what cmd needs prepared before it runs and returns it.
func needs(cmd *cobra.Command, what string) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[needsAnnotation] = what
	return cmd
}

// prepare loads what cmd declares it needs, once per process.
func (g *globals) prepare(cmd *cobra.Command) error {
	if g.progress && !g.json {
		// Without --json the bars show on a terminal anyway; off one, a script that
		// wants progress should get it in a form it can parse.
		return usagef("--progress only applies with --json (on a terminal, --wait draws progress bars without it)")
	}
	var err error
	switch cmd.Annotations[needsAnnotation] {
	case needsConfig:
		g.env, err = g.load()
	case needsPolicy:
		g.env, err = g.loadPolicy()
	}
	return err
}

// usageArgs makes an argument validator's complaint a usage error (exit 2).
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			name := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
			return usageError{fmt.Errorf("%s: %w (see %s --help)", name, err, cmd.CommandPath())}
		}
		return nil
	}
}

// groupCommand makes cmd, which only holds subcommands, print its help when run
// alone and refuse an unknown subcommand as a usage error: cobra would otherwise print
// the help and succeed.
func groupCommand(cmd *cobra.Command) {
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		var names []string
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				names = append(names, sub.Name())
			}
		}
		slices.Sort(names)
		return usagef("unknown command %q for %q (commands: %s)", args[0], c.CommandPath(), strings.Join(names, ", "))
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
}

// readable is err as an operator reads it: a failed workflow's cause said once, in
// place of Temporal's chain of wrapping errors that repeats it two to four times.
func readable(err error) string {
	msg := err.Error()
	var we *temporal.WorkflowExecutionError
	if !errors.As(err, &we) {
		return msg
	}
	cause := ""
	var ae *temporal.ApplicationError
	var te *temporal.TimeoutError
	switch {
	case errors.As(err, &ae):
		cause = "the workflow failed: " + ae.Message()
	case errors.As(err, &te):
		cause = "the workflow timed out (" + te.TimeoutType().String() + ")"
	default:
		return msg
	}
	return strings.Replace(msg, we.Error(), cause, 1)
}
