package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cutover/cutover/internal/rollout"
	"github.com/cutover/cutover/proxy"
)

func init() {
	register("rollout", "start|status|pause|resume|promote|abort ROUTE: progressive rollouts via the admin API", rolloutCmd)
}

const rolloutUsage = `usage: cutover rollout [-admin URL] [-token TOKEN] [-reason WHY] start ROUTE [plan flags]
       cutover rollout [-admin URL] [-token TOKEN] status ROUTE [-json]
       cutover rollout [-admin URL] [-token TOKEN] [-reason WHY] pause|resume|promote|abort ROUTE
plan flags (each overrides the route's rollout: block or the default):
  -steps shadow,1,5,25,50,100   -interval 5m   -min-requests 100   -max-hold 1h   -plan FILE (JSON plan)
env: CUTOVER_ADMIN_URL (default http://127.0.0.1:9090), CUTOVER_ADMIN_TOKEN`

func rolloutCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, reason, rest, err := adminCommand("rollout", rolloutUsage, args, 2, stderr)
	if err != nil {
		return err
	}
	usage := func() { fmt.Fprintln(stderr, rolloutUsage) }
	verb, route := rest[0], rest[1]
	path := "/admin/routes/" + url.PathEscape(route) + "/rollout"
	var out proxy.RolloutStatus
	switch verb {
	case "start":
		body, err := planFlags(rest[2:], stderr)
		if err != nil {
			return err
		}
		if reason != "" {
			body["reason"] = reason
		}
		if err := c.do(ctx, http.MethodPost, path, body, &out); err != nil {
			return err
		}
	case "status":
		sfs := flag.NewFlagSet("rollout status", flag.ContinueOnError)
		sfs.SetOutput(stderr)
		asJSON := sfs.Bool("json", false, "print the whole status as JSON")
		if err := sfs.Parse(rest[2:]); err != nil {
			return err
		}
		if *asJSON {
			var raw json.RawMessage
			if err := c.do(ctx, http.MethodGet, path, nil, &raw); err != nil {
				return err
			}
			_, err := fmt.Fprintf(stdout, "%s\n", raw)
			return err
		}
		if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
			return err
		}
	case "pause", "resume", "promote", "abort":
		if len(rest) != 2 {
			usage()
			return errUsage
		}
		if err := c.do(ctx, http.MethodPost, path+"/"+verb, proxy.RolloutActionRequest{Reason: reason}, &out); err != nil {
			return err
		}
	default:
		usage()
		return errUsage
	}
	return printRollout(stdout, out)
}

// planFlags reads the plan flags of `rollout start` into a JSON body
// holding only the fields given.
func planFlags(args []string, stderr io.Writer) (map[string]any, error) {
	fs := flag.NewFlagSet("rollout start", flag.ContinueOnError)
	fs.SetOutput(stderr)
	steps := fs.String("steps", "", "steps, comma-separated: shadow,1,5,25,50,100")
	interval := fs.Duration("interval", 0, "least time per step")
	minReq := fs.Int64("min-requests", 0, "samples each gate needs per step and backend")
	maxHold := fs.Duration("max-hold", 0, "how long a step may hold before the rollout pauses")
	planFile := fs.String("plan", "", "a JSON plan `file` ({\"steps\": [...], \"gates\": {...}})")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: %w", fs.Args(), errUsage)
	}
	body := map[string]any{}
	if *planFile != "" {
		b, err := os.ReadFile(*planFile)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &body); err != nil {
			return nil, fmt.Errorf("plan %s: %w", *planFile, err)
		}
	}
	if *steps != "" {
		var list []rollout.Step
		for _, s := range strings.Split(*steps, ",") {
			st, err := rollout.ParseStep(s)
			if err != nil {
				return nil, err
			}
			list = append(list, st)
		}
		body["steps"] = list
	}
	if *interval != 0 {
		body["interval"] = interval.String()
	}
	if *minReq != 0 {
		body["min_requests"] = *minReq
	}
	if *maxHold != 0 {
		body["max_hold"] = maxHold.String()
	}
	return body, nil
}

// printRollout prints a rollout's status: where it is, why, the last
// evaluation's gates and the history.
func printRollout(w io.Writer, s proxy.RolloutStatus) error {
	steps := make([]string, len(s.Steps))
	for i, st := range s.Steps {
		steps[i] = st.String()
	}
	fmt.Fprintf(w, "route %s: %s at step %d/%d (%s), native %s", s.Route, s.Status, s.Step+1, len(s.Steps), s.StepName,
		rollout.Step{Share: s.ShareBP})
	if s.AppliedBP != s.ShareBP {
		fmt.Fprintf(w, " (applied here: %s)", rollout.Step{Share: s.AppliedBP})
	}
	fmt.Fprintf(w, "\nsteps %s, interval %s, min_requests %d, max_hold %s\n", strings.Join(steps, " → "),
		time.Duration(s.Plan.Interval), s.Plan.MinRequests, time.Duration(s.Plan.MaxHold))
	if s.Driver != "" {
		fmt.Fprintf(w, "driver: %s\n", s.Driver)
	}
	if s.Why != "" {
		fmt.Fprintf(w, "why: %s\n", s.Why)
	}
	// The gates that decide: the last evaluation's while the rollout is
	// active, else those of its last decision (the rollback, the completion).
	var gates []rollout.GateValue
	title := ""
	if ev := s.LastEvaluation; s.Status.Active() && ev != nil {
		gates, title = ev.Gates, "last evaluation "+ev.Time.UTC().Format(time.TimeOnly)
	} else {
		for _, e := range s.History {
			if len(e.Gates) > 0 {
				gates, title = e.Gates, fmt.Sprintf("gates at the %s %s", e.Event, e.Time.UTC().Format(time.TimeOnly))
			}
		}
	}
	if len(gates) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "\n%s:\nGATE\tRESULT\tVALUE\tTHRESHOLD\tSAMPLES\tDETAIL\n", title)
		for _, g := range gates {
			samples := fmt.Sprint(g.Samples)
			if g.Need > 0 {
				samples += "/" + fmt.Sprint(g.Need)
			}
			fmt.Fprintf(tw, "%s\t%s\t%.4g\t%.4g\t%s\t%s\n", g.Gate, g.Result, g.Value, g.Threshold, samples, g.Detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nTIME\tEVENT\tSTEP\tNATIVE\tWHO\tREASON")
	for _, e := range s.History {
		step := "-"
		if e.Step < len(s.Steps) {
			step = s.Steps[e.Step].String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.TimeOnly), e.Event, step, rollout.Step{Share: e.Share}, e.Who, e.Reason)
	}
	return tw.Flush()
}
