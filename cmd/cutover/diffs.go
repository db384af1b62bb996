package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/internal/tracing"
	"github.com/cutover/cutover/shadow"
)

func init() {
	register("diffs", "summary|list|show ID|reset: shadow comparison results via the admin API", diffsCmd)
}

// buildIsolatedNative builds the second native app that shadow-safe writes
// are shadowed to: the same settings as the production one, but its Store is
// the isolated Redis (shadow.isolated_redis_url); the proxy runs it in
// dry-run. Without an isolated Redis it returns nil (such writes are then not
// shadowed to native).
func buildIsolatedNative(ctx context.Context, cfg *config.Config, log *slog.Logger, tr *tracing.Tracer) (http.Handler, func(), error) {
	if cfg.Shadow.IsolatedRedisURL == "" {
		return nil, func() {}, nil
	}
	iso := cfg.Clone()
	iso.Native.RedisURL = cfg.Shadow.IsolatedRedisURL
	app, closeFn, err := buildNative(ctx, iso, log.With("shadow", "isolated"), tr)
	if err != nil {
		return nil, nil, fmt.Errorf("isolated native app: %w", err)
	}
	return app, closeFn, nil
}

const diffsUsage = `usage: cutover diffs [-admin URL] [-token TOKEN] [summary]
       cutover diffs [-admin URL] [-token TOKEN] list [-route R] [-class C] [-since DUR] [-limit N]
       cutover diffs [-admin URL] [-token TOKEN] show ID
       cutover diffs [-admin URL] [-token TOKEN] reset    (fleet summary to zero; needs the Redis store)
classes: match, encoding_only, semantic, noise, error
env: CUTOVER_ADMIN_URL (default http://127.0.0.1:9090), CUTOVER_ADMIN_TOKEN`

func diffsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("diffs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, diffsUsage) }
	client := adminFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := client()
	rest := fs.Args()
	if len(rest) == 0 {
		rest = []string{"summary"}
	}
	switch {
	case rest[0] == "summary" && len(rest) == 1:
		return diffsSummary(ctx, c, stdout)
	case rest[0] == "reset" && len(rest) == 1:
		var out struct {
			Key string `json:"key"`
		}
		if err := c.do(ctx, http.MethodDelete, "/admin/shadow/summary", nil, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "fleet summary reset (redis hash %s deleted)\n", out.Key)
		return nil
	case rest[0] == "list":
		return diffsList(ctx, c, rest[1:], stdout, stderr)
	case rest[0] == "show" && len(rest) == 2:
		var rec shadow.Record
		if err := c.do(ctx, http.MethodGet, "/admin/diffs/"+url.PathEscape(rest[1]), nil, &rec); err != nil {
			return err
		}
		writeRecord(stdout, rec)
		return nil
	}
	fs.Usage()
	return errUsage
}

// shadowSummary is GET /admin/shadow/summary.
type shadowSummary struct {
	Scope      string `json:"scope"`
	FleetError string `json:"fleet_error"`
	QueueDepth int    `json:"queue_depth"`
	InFlight   int64  `json:"in_flight"`
	Routes     []struct {
		shadow.RouteSummary
		NoiseFields []shadow.FieldStat `json:"noise_fields"`
	} `json:"routes"`
}

func diffsSummary(ctx context.Context, c *adminClient, w io.Writer) error {
	var s shadowSummary
	if err := c.do(ctx, http.MethodGet, "/admin/shadow/summary", nil, &s); err != nil {
		return err
	}
	switch {
	case s.Scope == shadow.ScopeFleet:
		fmt.Fprintln(w, "scope: fleet (every instance sharing the Redis diff store, since the last reset)")
	case s.FleetError != "":
		fmt.Fprintf(w, "scope: process (this instance only: the fleet summary could not be read: %s)\n", s.FleetError)
	default:
		fmt.Fprintln(w, "scope: process (this instance only, since it started)")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tCOMPARED\tMATCHED\tENCODING-ONLY\tSEMANTIC\tNOISE\tERRORS\tSKIPPED")
	for _, r := range s.Routes {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", r.Route, r.Compared, r.Matched, r.EncodingOnly, r.Semantic,
			r.Noise, r.Errors, skips(r.Skipped))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Routes) == 0 {
		fmt.Fprintln(w, "(no shadowed requests yet)")
	}
	fmt.Fprintf(w, "this instance: queue depth %d, in flight %d\n", s.QueueDepth, s.InFlight)
	for _, r := range s.Routes {
		for _, f := range r.NoiseFields {
			fmt.Fprintf(w, "noise %s %s: shadow differs %.1f%%, primary vs itself %.1f%%%s\n", r.Route, f.Path,
				100*f.RawRate, 100*f.NoiseRate, map[bool]string{true: " (reported as noise)"}[f.Noise])
		}
	}
	return nil
}

// skips renders skip counts as "reason=n, ..." sorted by reason, or "-".
func skips(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.FormatInt(m[k], 10)
	}
	return strings.Join(parts, ", ")
}

func diffsList(ctx context.Context, c *adminClient, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("diffs list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	route := fs.String("route", "", "only this `route`")
	class := fs.String("class", "", "only this `class` (match, encoding_only, semantic, noise, error)")
	since := fs.Duration("since", 0, "only records newer than this `duration` ago (e.g. 1h)")
	limit := fs.Int("limit", 50, "at most `N` records (newest first, up to 500)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, diffsUsage)
		return errUsage
	}
	switch shadow.Class(*class) {
	case "", shadow.ClassMatch, shadow.ClassEncoding, shadow.ClassSemantic, shadow.ClassNoise, shadow.ClassError:
	default:
		return fmt.Errorf("class %q is not one of match, encoding_only, semantic, noise, error", *class)
	}
	if *since < 0 || *limit <= 0 || *limit > 500 {
		return fmt.Errorf("-since must not be negative and -limit must be in [1, 500]")
	}
	q := url.Values{}
	if *route != "" {
		q.Set("route", *route)
	}
	if *class != "" {
		q.Set("class", *class)
	}
	if *since > 0 {
		q.Set("since", time.Now().Add(-*since).UTC().Format(time.RFC3339Nano))
	}
	q.Set("limit", strconv.Itoa(*limit))
	var page struct {
		Records []shadow.DiffSummary `json:"records"`
		Next    string               `json:"next"`
	}
	if err := c.do(ctx, http.MethodGet, "/admin/diffs?"+q.Encode(), nil, &page); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tROUTE\tCLASS\tPRIMARY\tREQUEST\tSTATUS\tWHERE")
	for _, r := range page.Records {
		where := strings.Join(r.Paths, " ")
		if more := r.Mismatches - len(r.Paths); more > 0 {
			where += fmt.Sprintf(" (+%d)", more)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s %s\t%d/%d\t%s\n", r.ID, r.Time.UTC().Format(time.RFC3339), r.Route, r.Class,
			r.PrimarySide, r.Method, r.Path, r.PrimaryStatus, r.ShadowStatus, where)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.Next != "" {
		fmt.Fprintf(stdout, "(more: older than %s)\n", page.Next)
	}
	return nil
}

// writeRecord prints one record for a terminal: the request, the mismatches,
// then a unified diff of the two responses (status, headers, body; JSON
// bodies pretty-printed, event streams one event per block).
func writeRecord(w io.Writer, r shadow.Record) {
	other := shadow.SideNative
	if r.PrimarySide == shadow.SideNative {
		other = shadow.SideLegacy
	}
	fmt.Fprintf(w, "diff %s  %s  route %s  class %s\n", r.ID, r.Time.UTC().Format(time.RFC3339Nano), r.Route, r.Class)
	req := r.Request.Method + " " + r.Request.Path
	if r.Request.Query != "" {
		req += "?" + r.Request.Query
	}
	fmt.Fprintf(w, "request: %s\n", req)
	for _, k := range sortedKeys(r.Request.Header) {
		for _, v := range r.Request.Header[k] {
			fmt.Fprintf(w, "  %s: %s\n", k, v)
		}
	}
	if b := r.Request.Body.Bytes(); len(b) > 0 {
		fmt.Fprintf(w, "  body: %s\n", oneLine(b, 500))
	}
	if len(r.Mismatches) > 0 {
		fmt.Fprintln(w, "mismatches:")
		for _, m := range r.Mismatches {
			note := ""
			if m.Noise {
				note = " (noise)"
			}
			fmt.Fprintf(w, "  %-13s %s%s: %s -> %s", m.Class, m.Path, note, clipText(m.Primary, 120), clipText(m.Shadow, 120))
			if m.Detail != "" {
				fmt.Fprintf(w, "  [%s]", m.Detail)
			}
			fmt.Fprintln(w)
		}
	}
	if r.Dropped > 0 {
		fmt.Fprintf(w, "  ... and %d more\n", r.Dropped)
	}
	a, b := responseLines(r.Primary), responseLines(r.Shadow)
	fmt.Fprintf(w, "--- primary (%s)\n+++ shadow (%s)\n", r.PrimarySide, other)
	for _, l := range unifiedDiff(a, b, 3) {
		fmt.Fprintln(w, l)
	}
}

func sortedKeys(h http.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func oneLine(b []byte, n int) string {
	return clipText(strings.ReplaceAll(string(b), "\n", `\n`), n)
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// responseLines renders a recorded response as lines to diff.
func responseLines(r shadow.RecordResponse) []string {
	if r.Error != "" {
		return []string{"error: " + r.Error}
	}
	lines := []string{"status " + strconv.Itoa(r.Status)}
	for _, k := range sortedKeys(r.Header) {
		for _, v := range r.Header[k] {
			lines = append(lines, k+": "+v)
		}
	}
	lines = append(lines, "")
	if bin := r.Body.Binary; bin != nil {
		return append(lines, fmt.Sprintf("(binary body not stored: %d bytes, sha256 %s)", bin.Size, bin.SHA256))
	}
	body := r.Body.Bytes()
	if shadow.IsEventStream(r.Header) {
		for i, ev := range shadow.ParseEvents(body) {
			lines = append(lines, fmt.Sprintf("[%d] event: %s", i, ev.Name))
			lines = append(lines, prettyJSON([]byte(ev.Data))...)
		}
	} else {
		lines = append(lines, prettyJSON(body)...)
	}
	if r.Body.Clipped || r.Truncated {
		lines = append(lines, "(body clipped)")
	}
	return lines
}

// prettyJSON indents b when it is JSON (keys kept in their order), else
// splits it into lines.
func prettyJSON(b []byte) []string {
	var out bytes.Buffer
	if len(bytes.TrimSpace(b)) > 0 && json.Valid(b) && json.Indent(&out, b, "", "  ") == nil {
		return strings.Split(out.String(), "\n")
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// unifiedDiff returns the hunks of a line diff of a and b (longest common
// subsequence; inputs are bounded by the record body limit).
func unifiedDiff(a, b []string, context int) []string {
	if len(a)*len(b) > 4_000_000 {
		// Too large for the quadratic table: show both sides whole.
		out := make([]string, 0, len(a)+len(b))
		for _, l := range a {
			out = append(out, "-"+l)
		}
		for _, l := range b {
			out = append(out, "+"+l)
		}
		return out
	}
	n, m := len(a), len(b)
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte // ' ', '-', '+'
		text string
		ai   int
		bi   int
	}
	var ops []op
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, op{' ', a[i], i, j})
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] > lcs[i+1][j]):
			ops = append(ops, op{'+', b[j], i, j})
			j++
		default:
			ops = append(ops, op{'-', a[i], i, j})
			i++
		}
	}
	var out []string
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		start := max(k-context, 0)
		end := k
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run-end > 2*context || run == len(ops) {
				end = min(end+context, len(ops))
				break
			}
			end = run
		}
		aStart, bStart, aLen, bLen := ops[start].ai, ops[start].bi, 0, 0
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				aLen++
			}
			if o.kind != '-' {
				bLen++
			}
		}
		out = append(out, fmt.Sprintf("@@ -%d,%d +%d,%d @@", aStart+1, aLen, bStart+1, bLen))
		for _, o := range ops[start:end] {
			out = append(out, string(o.kind)+o.text)
		}
		k = end
	}
	if len(out) == 0 {
		out = append(out, "(responses identical as rendered; the difference is in bytes: see mismatches)")
	}
	return out
}
