package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cutover/cutover/internal/fleet"
	"github.com/cutover/cutover/proxy"
)

func init() {
	register("fleet", "show every live instance of the fleet and flag those behind (GET /admin/fleet)", fleetCmd)
	register("audit", "show the fleet-wide audit log of share changes (GET /admin/audit)", auditCmd)
}

const fleetUsage = `usage: cutover fleet [-admin URL] [-token TOKEN]
env: CUTOVER_ADMIN_URL (default http://127.0.0.1:9090), CUTOVER_ADMIN_TOKEN`

func fleetCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, fleetUsage) }
	client := adminFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	var out proxy.FleetResponse
	if err := client().do(ctx, http.MethodGet, "/admin/fleet", nil, &out); err != nil {
		return err
	}
	writeFleet(stdout, out)
	if out.Fleet == nil {
		return errors.New("the fleet store cannot be read: " + out.Error)
	}
	return nil
}

// writeFleet prints the instance's link to the store, then one line per live
// instance.
func writeFleet(w io.Writer, out proxy.FleetResponse) {
	st := out.Status
	health := "store up"
	if !st.Healthy {
		health = "STORE DOWN: " + st.Error
	}
	fmt.Fprintf(w, "store %s (%s), asked %s: applies generation %d from %s\n", st.Store, health, st.Instance, st.Generation, orDash(string(st.Source)))
	if out.Fleet == nil {
		return
	}
	fmt.Fprintf(w, "fleet generation %d, %d live instances\n", out.Fleet.Generation, len(out.Fleet.Instances))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tVERSION\tGENERATION\tSOURCE\tUPTIME\tIN FLIGHT\tSHADOW QUEUE\tBREAKERS NOT CLOSED\tSTATE")
	for _, in := range out.Fleet.Instances {
		state := "ok"
		if in.Behind {
			state = "BEHIND"
		}
		if in.FileFallback != nil {
			state += " (started on the file's shares " + in.FileFallback.Format(time.RFC3339) + ")"
		}
		var open []string
		for _, name := range slices.Sorted(maps.Keys(in.Breakers)) {
			if s := in.Breakers[name]; s != "closed" {
				open = append(open, name+"="+s)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t%s\t%s\n", in.Instance, orDash(in.Version), in.Generation, in.Source,
			time.Duration(in.UptimeSeconds*float64(time.Second)).Round(time.Second), in.InFlight, in.ShadowQueue,
			orDash(strings.Join(open, " ")), state)
	}
	_ = tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

const auditUsage = `usage: cutover audit [-admin URL] [-token TOKEN] [-n COUNT]
env: CUTOVER_ADMIN_URL (default http://127.0.0.1:9090), CUTOVER_ADMIN_TOKEN`

func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, auditUsage) }
	client := adminFlags(fs)
	n := fs.Int("n", 20, "how many records, newest first (1-10000)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *n < 1 || *n > 10000 {
		fs.Usage()
		return errUsage
	}
	var out struct {
		Records []fleet.AuditRecord `json:"records"`
	}
	if err := client().do(ctx, http.MethodGet, "/admin/audit?limit="+strconv.Itoa(*n), nil, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tGENERATION\tINSTANCE\tWHO\tACTION\tCHANGES\tREASON")
	for _, r := range out.Records {
		var changes []string
		for _, c := range r.Changes {
			old := "new"
			if c.Old != nil {
				old = fmtPercent(c.Old.Share)
			}
			s := c.Route + " " + old + " -> " + fmtPercent(c.New.Share)
			if c.New.Rollout != nil || (c.Old != nil && c.Old.Rollout != nil) {
				s += " (rollout)"
			}
			changes = append(changes, s)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Time.Format(time.RFC3339), r.Generation, r.Instance, orDash(r.Who),
			r.Action, orDash(strings.Join(changes, ", ")), orDash(r.Reason))
	}
	return tw.Flush()
}
