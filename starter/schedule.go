package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/cloudrepl/replicator/internal/wire"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/workflows"
)

// scheduleParts builds a policy's reconcile schedule from its config: the interval or
// calendar, overlap skip (a reconcile never runs twice at once), the catch-up window
// and pause on failure.
func scheduleParts(p *config.Policy) (client.ScheduleSpec, client.ScheduleWorkflowAction, client.SchedulePolicies, error) {
	spec := client.ScheduleSpec{}
	switch {
	case p.Schedule.Every > 0:
		spec.Intervals = []client.ScheduleIntervalSpec{{Every: time.Duration(p.Schedule.Every)}}
	case len(p.Schedule.Calendar) > 0:
		spec.CronExpressions = p.Schedule.Calendar
	default:
		return spec, client.ScheduleWorkflowAction{}, client.SchedulePolicies{}, usagef("policy %s has no schedule: set schedule.every (like 5m) or schedule.calendar (cron expressions)", p.Name)
	}
	action := client.ScheduleWorkflowAction{
		// Temporal appends the scheduled time to this ID for each run.
		ID:                    wire.ScheduleID(p.Name),
		Workflow:              wire.ReconcileName,
		Args:                  []any{wire.ReconcileInput{Policy: p.Name}},
		TaskQueue:             wire.DefaultTaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.PolicyAttr.ValueSet(p.Name)),
		StaticSummary:         "scheduled reconcile of " + p.Name,
	}
	catchup := time.Duration(p.Schedule.CatchupWindow)
	if catchup == 0 {
		catchup = time.Hour
	}
	pol := client.SchedulePolicies{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: catchup, PauseOnFailure: p.Schedule.PauseOnFailure}
	return spec, action, pol, nil
}

func scheduleCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "schedule", Short: "Manage the Temporal Schedules that run each policy's reconcile (ID reconcile/<policy>)"}
	groupCommand(cmd)
	cmd.AddCommand(scheduleCreateCmd(g), scheduleUpdateCmd(g), scheduleListCmd(g), scheduleDescribeCmd(g),
		schedulePauseCmd(g), scheduleUnpauseCmd(g), scheduleTriggerCmd(g), scheduleBackfillCmd(g), scheduleDeleteCmd(g))
	return cmd
}

// scheduleHandleCmd is a subcommand acting on --policy's schedule: its arguments are
// refused, and run gets the policy and a handle on the schedule.
func scheduleHandleCmd(g *globals, use, short string, run func(cmd *cobra.Command, e *env, h client.ScheduleHandle) error) *cobra.Command {
	return needs(&cobra.Command{Use: use, Short: short, Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.env.client()
			if err != nil {
				return err
			}
			return run(cmd, g.env, c.ScheduleClient().GetHandle(cmd.Context(), wire.ScheduleID(g.env.policy.Name)))
		}}, needsPolicy)
}

// scheduleDone reports that what was done to --policy's schedule.
func scheduleDone(e *env, what string) error {
	if e.g.json {
		return e.printJSON(map[string]string{"schedule_id": wire.ScheduleID(e.policy.Name), "done": what})
	}
	fmt.Fprintf(e.out, "%s: %s\n", wire.ScheduleID(e.policy.Name), what)
	return nil
}

func scheduleCreateCmd(g *globals) *cobra.Command {
	var note string
	var paused bool
	cmd := needs(&cobra.Command{Use: "create", Short: "Create --policy's reconcile schedule from its config", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e := g.env
			spec, action, pol, err := scheduleParts(e.policy)
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			_, err = c.ScheduleClient().Create(cmd.Context(), client.ScheduleOptions{
				ID: wire.ScheduleID(e.policy.Name), Spec: spec, Action: &action,
				Overlap: pol.Overlap, CatchupWindow: pol.CatchupWindow, PauseOnFailure: pol.PauseOnFailure,
				Paused: paused, Note: note,
				TypedSearchAttributes: temporal.NewSearchAttributes(workflows.PolicyAttr.ValueSet(e.policy.Name)),
			})
			if err != nil {
				return fmt.Errorf("create schedule %s: %w", wire.ScheduleID(e.policy.Name), err)
			}
			return scheduleDone(e, "created")
		}}, needsPolicy)
	cmd.Flags().BoolVar(&paused, "paused", false, "create it paused")
	cmd.Flags().StringVar(&note, "note", "", "why (shown in the Web UI)")
	return cmd
}

func scheduleUpdateCmd(g *globals) *cobra.Command {
	return scheduleHandleCmd(g, "update", "Update --policy's schedule from the config (spec, policies); keeps its paused state",
		func(cmd *cobra.Command, e *env, h client.ScheduleHandle) error {
			spec, action, pol, err := scheduleParts(e.policy)
			if err != nil {
				return err
			}
			err = h.Update(cmd.Context(), client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				s := in.Description.Schedule
				s.Spec, s.Action, s.Policy = &spec, &action, &pol
				return &client.ScheduleUpdate{Schedule: &s}, nil
			}})
			if err != nil {
				return fmt.Errorf("update schedule: %w", err)
			}
			return scheduleDone(e, "updated")
		})
}

func scheduleListCmd(g *globals) *cobra.Command {
	return needs(&cobra.Command{Use: "list", Short: "List the reconcile schedules", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e := g.env
			c, err := e.client()
			if err != nil {
				return err
			}
			it, err := c.ScheduleClient().List(cmd.Context(), client.ScheduleListOptions{PageSize: 100})
			if err != nil {
				return fmt.Errorf("list schedules: %w", err)
			}
			type row struct {
				ID     string    `json:"schedule_id"`
				Paused bool      `json:"paused"`
				Note   string    `json:"note,omitempty"`
				Next   time.Time `json:"next,omitzero"`
			}
			var rows []row
			for it.HasNext() {
				s, err := it.Next()
				if err != nil {
					return fmt.Errorf("list schedules: %w", err)
				}
				if !strings.HasPrefix(s.ID, "reconcile/") {
					continue
				}
				r := row{ID: s.ID, Paused: s.Paused, Note: s.Note}
				if len(s.NextActionTimes) > 0 {
					r.Next = s.NextActionTimes[0]
				}
				rows = append(rows, r)
			}
			if g.json {
				if rows == nil {
					rows = []row{}
				}
				return e.printJSON(rows)
			}
			t := e.table()
			fmt.Fprintln(t, "SCHEDULE\tPAUSED\tNEXT RUN\tNOTE")
			for _, r := range rows {
				fmt.Fprintf(t, "%s\t%v\t%s\t%s\n", r.ID, r.Paused, r.Next.Local().Format(time.DateTime), r.Note)
			}
			return t.Flush()
		}}, needsConfig)
}

func scheduleDescribeCmd(g *globals) *cobra.Command {
	return scheduleHandleCmd(g, "describe", "Show --policy's schedule: spec, state, recent and next runs",
		func(cmd *cobra.Command, e *env, h client.ScheduleHandle) error {
			d, err := h.Describe(cmd.Context())
			if err != nil {
				return fmt.Errorf("describe schedule: %w", err)
			}
			type run struct {
				Scheduled  time.Time `json:"scheduled"`
				WorkflowID string    `json:"workflow_id"`
			}
			out := struct {
				ID        string        `json:"schedule_id"`
				Paused    bool          `json:"paused"`
				Note      string        `json:"note,omitempty"`
				Every     []string      `json:"every,omitempty"`
				Calendar  []string      `json:"calendar,omitempty"`
				Actions   int           `json:"actions"`
				Skipped   int           `json:"skipped_overlap"`
				Recent    []run         `json:"recent"`
				Next      []time.Time   `json:"next"`
				Catchup   time.Duration `json:"catchup_window"`
				PauseFail bool          `json:"pause_on_failure"`
			}{ID: wire.ScheduleID(e.policy.Name), Actions: d.Info.NumActions, Skipped: d.Info.NumActionsSkippedOverlap, Next: d.Info.NextActionTimes}
			if st := d.Schedule.State; st != nil {
				out.Paused, out.Note = st.Paused, st.Note
			}
			if sp := d.Schedule.Spec; sp != nil {
				for _, i := range sp.Intervals {
					out.Every = append(out.Every, i.Every.String())
				}
				out.Calendar = sp.CronExpressions
			}
			if p := d.Schedule.Policy; p != nil {
				out.Catchup, out.PauseFail = p.CatchupWindow, p.PauseOnFailure
			}
			for _, a := range d.Info.RecentActions {
				r := run{Scheduled: a.ScheduleTime}
				if a.StartWorkflowResult != nil {
					r.WorkflowID = a.StartWorkflowResult.WorkflowID
				}
				out.Recent = append(out.Recent, r)
			}
			if e.g.json {
				return e.printJSON(out)
			}
			fmt.Fprintf(e.out, "%s  paused=%v  every=%v calendar=%v  runs=%d (skipped for overlap %d)  catch-up %s  pause on failure %v\n",
				out.ID, out.Paused, out.Every, out.Calendar, out.Actions, out.Skipped, out.Catchup, out.PauseFail)
			if out.Note != "" {
				fmt.Fprintf(e.out, "note: %s\n", out.Note)
			}
			for _, r := range out.Recent {
				fmt.Fprintf(e.out, "  ran    %s  %s\n", r.Scheduled.Local().Format(time.DateTime), r.WorkflowID)
			}
			for _, n := range out.Next {
				fmt.Fprintf(e.out, "  next   %s\n", n.Local().Format(time.DateTime))
			}
			return nil
		})
}

func schedulePauseCmd(g *globals) *cobra.Command {
	var note string
	cmd := scheduleHandleCmd(g, "pause", "Pause --policy's schedule",
		func(cmd *cobra.Command, e *env, h client.ScheduleHandle) error {
			if err := h.Pause(cmd.Context(), client.SchedulePauseOptions{Note: note}); err != nil {
				return fmt.Errorf("pause: %w", err)
			}
			return scheduleDone(e, "paused")
		})
	cmd.Flags().StringVar(&note, "note", "", "why (shown in the Web UI)")
	return cmd
}

func scheduleUnpauseCmd(g *globals) *cobra.Command {
	var note string
	cmd := scheduleHandleCmd(g, "unpause", "Unpause --policy's schedule",
		func(cmd *cobra.Command, e *env, h client.ScheduleHandle) error {
			if err := h.Unpause(cmd.Context(), client.ScheduleUnpauseOptions{Note: note}); err != nil {
				return fmt.Errorf("unpause: %w", err)
			}
			return scheduleDone(e, "unpaused")
		})
	cmd.Flags().StringVar(&note, "note", "", "why (shown in the Web UI)")
	return cmd
}

func scheduleTriggerCmd(g *globals) *cobra.Command {
	return scheduleHandleCmd(g, "trigger", "Run --policy's scheduled reconcile now (skipped if one is running)",
		func(cmd *cobra.Command, e *env, h client.ScheduleHandle) error {
			if err := h.Trigger(cmd.Context(), client.ScheduleTriggerOptions{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP}); err != nil {
				return fmt.Errorf("trigger: %w", err)
			}
			return scheduleDone(e, "triggered")
		})
}

func scheduleBackfillCmd(g *globals) *cobra.Command {
	var start, end string
	cmd := scheduleHandleCmd(g, "backfill", "Run the reconciles --policy's schedule would have run between --start and --end",
		func(cmd *cobra.Command, e *env, h client.ScheduleHandle) error {
			from, to, err := backfillRange(start, end)
			if err != nil {
				return err
			}
			err = h.Backfill(cmd.Context(), client.ScheduleBackfillOptions{Backfill: []client.ScheduleBackfill{{Start: from, End: to, Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP}}})
			if err != nil {
				return fmt.Errorf("backfill: %w", err)
			}
			return scheduleDone(e, "backfilled")
		})
	cmd.Flags().StringVar(&start, "start", "", "start time (RFC 3339)")
	cmd.Flags().StringVar(&end, "end", "", "end time (RFC 3339)")
	// The range is checked before the command dials Temporal, so a wrong one is a
	// usage error without a connection attempt.
	cmd.PreRunE = func(*cobra.Command, []string) error {
		_, _, err := backfillRange(start, end)
		return err
	}
	return cmd
}

// backfillRange parses backfill's --start and --end.
func backfillRange(start, end string) (time.Time, time.Time, error) {
	from, err := time.Parse(time.RFC3339, start)
	if err != nil {
		return from, from, usagef("--start %q: want RFC 3339, like 2026-11-22T00:00:00Z", start)
	}
	to, err := time.Parse(time.RFC3339, end)
	if err != nil || !to.After(from) {
		return from, to, usagef("--end %q: want RFC 3339 after --start", end)
	}
	return from, to, nil
}

func scheduleDeleteCmd(g *globals) *cobra.Command {
	return scheduleHandleCmd(g, "delete", "Delete --policy's schedule (running reconciles finish)",
		func(cmd *cobra.Command, e *env, h client.ScheduleHandle) error {
			if err := h.Delete(cmd.Context()); err != nil {
				return fmt.Errorf("delete: %w", err)
			}
			return scheduleDone(e, "deleted")
		})
}
