package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/proxy"
)

func init() {
	register("weights", "get|set ROUTE PERCENT|rollback: read or change native shares via the admin API", weightsCmd)
}

const weightsUsage = `usage: cutover weights [-admin URL] [-token TOKEN] get [ROUTE]
       cutover weights [-admin URL] [-token TOKEN] [-reason WHY] set ROUTE PERCENT   (12.5, 12.5% or 1250bp)
       cutover weights [-admin URL] [-token TOKEN] [-reason WHY] rollback            (every route to 0 %)
With a fleet store the change is the whole fleet's; it fails (409) when the fleet changed
since this instance applied its state: look (get) and decide again.
env: CUTOVER_ADMIN_URL (default http://127.0.0.1:9090), CUTOVER_ADMIN_TOKEN`

// adminFlags adds the admin API flags every admin subcommand shares (-admin,
// -token, -timeout, defaulting from CUTOVER_ADMIN_URL and CUTOVER_ADMIN_TOKEN)
// and returns the client to build once fs is parsed.
func adminFlags(fs *flag.FlagSet) func() *adminClient {
	def := os.Getenv("CUTOVER_ADMIN_URL")
	if def == "" {
		def = "http://127.0.0.1:9090"
	}
	admin := fs.String("admin", def, "admin API base `URL` (env CUTOVER_ADMIN_URL)")
	token := fs.String("token", os.Getenv("CUTOVER_ADMIN_TOKEN"), "admin bearer `token` (env CUTOVER_ADMIN_TOKEN)")
	timeout := fs.Duration("timeout", 10*time.Second, "request timeout")
	actor := fs.String("actor", "", "who makes the call, recorded in the audit log (X-Cutover-Actor; env CUTOVER_ACTOR, default the OS user as user@host)")
	return func() *adminClient {
		who := *actor
		if who == "" {
			who = actorName()
		}
		return &adminClient{base: strings.TrimRight(*admin, "/"), token: *token, actor: who, hc: &http.Client{Timeout: *timeout}}
	}
}

// adminCommand parses the flags of an admin subcommand that changes things
// (the admin flags and -reason) and returns the client, the reason and the
// arguments after the flags, at least min of them (errUsage otherwise, the
// usage printed).
func adminCommand(name, usage string, args []string, min int, stderr io.Writer) (*adminClient, string, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, usage) }
	client := adminFlags(fs)
	reason := fs.String("reason", "", "why, recorded in the audit log")
	if err := fs.Parse(args); err != nil {
		return nil, "", nil, err
	}
	if fs.NArg() < min {
		fs.Usage()
		return nil, "", nil, errUsage
	}
	return client(), *reason, fs.Args(), nil
}

func weightsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, reason, rest, err := adminCommand("weights", weightsUsage, args, 1, stderr)
	if err != nil {
		return err
	}
	usage := func() { fmt.Fprintln(stderr, weightsUsage) }
	switch {
	case rest[0] == "get" && len(rest) <= 2:
		var out struct {
			Routes     []routeRow `json:"routes"`
			Generation *uint64    `json:"generation"` // with a fleet store
		}
		if err := c.do(ctx, http.MethodGet, "/admin/routes", nil, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROUTE\tNATIVE %\tHANDLER\tBREAKER (NATIVE/LEGACY)\tSHADOW %\tPATH\tMETHODS")
		found := false
		var wide *proxy.BreakerStatus
		for _, r := range out.Routes {
			if r.Status.LegacyWide != nil {
				wide = r.Status.LegacyWide
			}
			if len(rest) == 2 && r.Name != rest[1] {
				continue
			}
			found = true
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%s\t%s\t%s\t%s\n", r.Name, fmtPercent(r.NativeBP), yesNo(r.NativeHandler),
				breakerState(r.Status.Native), breakerState(r.Status.Legacy), fmtPercent(r.Shadow.Rate), r.Path, strings.Join(r.Methods, ","))
		}
		if len(rest) == 2 && !found {
			return fmt.Errorf("unknown route %q", rest[1])
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if wide != nil {
			fmt.Fprintf(stdout, "legacy as a whole: breaker %s\n", breakerState(wide))
		}
		if out.Generation != nil {
			fmt.Fprintf(stdout, "shares of fleet generation %d (the whole fleet's)\n", *out.Generation)
		}
		return nil
	case rest[0] == "set" && len(rest) == 3:
		bp, err := parseShare(rest[2])
		if err != nil {
			return err
		}
		var out struct {
			Route  proxy.RouteInfo    `json:"route"`
			Result proxy.ChangeResult `json:"result"`
		}
		body := proxy.ShareRequest{NativeBP: &bp, Reason: reason}
		if err := c.do(ctx, http.MethodPut, "/admin/routes/"+url.PathEscape(rest[1]), body, &out); err != nil {
			return err
		}
		report(stdout, out.Result)
		return nil
	case rest[0] == "rollback" && len(rest) == 1:
		var out struct {
			Result proxy.ChangeResult `json:"result"`
		}
		if err := c.do(ctx, http.MethodPost, "/admin/rollback", proxy.RollbackRequest{Reason: reason}, &out); err != nil {
			return err
		}
		report(stdout, out.Result)
		return nil
	}
	usage()
	return errUsage
}

// routeRow is a route of GET /admin/routes with its live breaker status.
type routeRow struct {
	proxy.RouteInfo
	Status proxy.RouteBreakerStatus `json:"status"`
}

// breakerState is a breaker's state for the table: closed, half-open, open,
// or off when the route's breakers are disabled.
func breakerState(b *proxy.BreakerStatus) string {
	if b == nil {
		return "off"
	}
	return b.State
}

func report(w io.Writer, res proxy.ChangeResult) {
	if len(res.Changes) == 0 {
		fmt.Fprintln(w, "no change")
	}
	for _, c := range res.Changes {
		fmt.Fprintf(w, "%s: %s -> %s native\n", c.Route, fmtPercent(c.Old), fmtPercent(c.New))
	}
	if res.Generation > 0 {
		fmt.Fprintf(w, "fleet generation %d: every instance applies it within a second\n", res.Generation)
	}
	if !res.Persisted {
		fmt.Fprintf(w, "warning: in force but not persisted: %s\n", res.PersistError)
	}
}

// parseShare accepts "12.5", "12.5%" or "1250bp".
func parseShare(s string) (int, error) {
	s = strings.TrimSpace(s)
	if v, ok := strings.CutSuffix(s, "bp"); ok {
		bp, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || bp < 0 || bp > 10000 {
			return 0, fmt.Errorf("share %q: basis points must be an integer in [0, 10000]", s)
		}
		return bp, nil
	}
	p, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
	if err != nil {
		return 0, fmt.Errorf("share %q is not a percentage", s)
	}
	bp, err := config.PercentToBP(p)
	if err != nil {
		return 0, fmt.Errorf("share %q: %w", s, err)
	}
	return bp, nil
}

func fmtPercent(bp int) string { return strconv.FormatFloat(float64(bp)/100, 'f', -1, 64) + "%" }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

type adminClient struct {
	base, token, actor string
	hc                 *http.Client
}

func (c *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set(proxy.ActorHeader, c.actor)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return json.Unmarshal(data, out)
}

// actorName is who the audit log records for this CLI: CUTOVER_ACTOR when
// set, else the OS user as user@host.
func actorName() string {
	if a := strings.TrimSpace(os.Getenv("CUTOVER_ACTOR")); a != "" {
		return a
	}
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	for _, env := range []string{"USER", "LOGNAME"} {
		if name == "" {
			name = os.Getenv(env)
		}
	}
	if name == "" {
		name = "uid" + strconv.Itoa(os.Getuid())
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return name + "@" + host
}
