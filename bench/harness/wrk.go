package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkScript makes wrk print its own summary and HdrHistogram percentiles as one JSON line.
const wrkScript = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,"lat_mean_us":%.1f,"lat_max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
`

// WrkResult is one wrk run, in wrk's own figures.
type WrkResult struct {
	Requests   int64   `json:"requests"`
	DurationUS int64   `json:"duration_us"`
	Bytes      int64   `json:"bytes"`
	ErrConnect int64   `json:"err_connect"`
	ErrRead    int64   `json:"err_read"`
	ErrWrite   int64   `json:"err_write"`
	ErrStatus  int64   `json:"err_status"`
	ErrTimeout int64   `json:"err_timeout"`
	LatMeanUS  float64 `json:"lat_mean_us"`
	LatMaxUS   int64   `json:"lat_max_us"`
	P50US      int64   `json:"p50_us"`
	P90US      int64   `json:"p90_us"`
	P99US      int64   `json:"p99_us"`
	P999US     int64   `json:"p999_us"`
	// RPS is requests per second over wrk's measured duration.
	RPS float64 `json:"rps"`
	// CPUSeconds is wrk's own user and system time over its whole run (warm-up of connections
	// included), from the kernel's account of the exited process (wait4's rusage).
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
}

// Errors is the sum of every error wrk counted (non-2xx/3xx responses included).
func (r WrkResult) Errors() int64 {
	return r.ErrConnect + r.ErrRead + r.ErrWrite + r.ErrStatus + r.ErrTimeout
}

// Wrk runs wrk against url with conns connections on threads threads for d, on pin's rest core.
func Wrk(ctx context.Context, pin Pinning, dir, url string, threads, conns int, d time.Duration) (WrkResult, error) {
	script := filepath.Join(dir, "wrk-report.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return WrkResult{}, err
	}
	threads = max(1, min(threads, conns))
	args := []string{
		"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", max(1, int(d.Seconds()))), "--timeout", "5s", "-s", script, url,
	}
	cctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	out, cpu, err := run(cctx, pin.Wrap(RoleRest, append([]string{"wrk"}, args...)...))
	if err != nil {
		return WrkResult{}, fmt.Errorf("wrk %s: %w: %s", strings.Join(args, " "), err, out)
	}
	r, err := parseWrk(out)
	r.CPUSeconds = cpu
	return r, err
}

// run runs argv to the end and returns its combined output and the CPU time (user + system) the
// kernel accounted to it and its reaped children.
func run(ctx context.Context, argv []string) ([]byte, float64, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	cpu := 0.0
	if cmd.ProcessState != nil {
		cpu = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}
	return out, cpu, err
}

// parseWrk reads the JSON line wrkScript prints.
func parseWrk(out []byte) (WrkResult, error) {
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "WRKJSON "); ok {
			var r WrkResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				return WrkResult{}, fmt.Errorf("wrk report: %w", err)
			}
			if r.DurationUS > 0 {
				r.RPS = float64(r.Requests) / (float64(r.DurationUS) / 1e6)
			}
			return r, nil
		}
	}
	return WrkResult{}, fmt.Errorf("wrk printed no report: %s", out)
}

// HeyResult is one rate-limited hey run, in hey's own figures.
type HeyResult struct {
	Requests int64   `json:"requests"`
	RPS      float64 `json:"rps"`
	P50MS    float64 `json:"p50_ms"`
	P90MS    float64 `json:"p90_ms"`
	P95MS    float64 `json:"p95_ms"`
	P99MS    float64 `json:"p99_ms"`
	Errors   int64   `json:"errors"`
	Non200   int64   `json:"non_200"`
	// CPUSeconds is hey's own user and system time over its run (wait4's rusage).
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
}

var (
	heyPct    = regexp.MustCompile(`(?m)^\s+(\d+)%+ in ([0-9.]+) secs`)
	heyRPS    = regexp.MustCompile(`(?m)Requests/sec:\s+([0-9.]+)`)
	heyStatus = regexp.MustCompile(`(?m)^\s+\[(\d+)\]\s+(\d+) responses`)
	heyErrN   = regexp.MustCompile(`(?m)^\s+\[(\d+)\]`)
)

// Hey runs hey for d with conns workers, each limited to qps requests per second, so the target is
// measured below saturation and its latency is the cost of the hop rather than queueing. hey runs
// on pin's rest core.
func Hey(ctx context.Context, pin Pinning, url string, conns int, qps float64, d time.Duration) (HeyResult, error) {
	args := []string{
		"-z", fmt.Sprintf("%ds", max(1, int(d.Seconds()))), "-c", strconv.Itoa(conns),
		"-q", strconv.FormatFloat(qps, 'f', -1, 64), "-t", "5", url,
	}
	cctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	out, cpu, err := run(cctx, pin.Wrap(RoleRest, append([]string{"hey"}, args...)...))
	if err != nil {
		return HeyResult{}, fmt.Errorf("hey %s: %w: %s", strings.Join(args, " "), err, out)
	}
	r, err := parseHey(out)
	r.CPUSeconds = cpu
	return r, err
}

// parseHey reads hey's text summary.
func parseHey(out []byte) (HeyResult, error) {
	var r HeyResult
	if m := heyRPS.FindSubmatch(out); m != nil {
		r.RPS, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	for _, m := range heyPct.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		switch string(m[1]) {
		case "50":
			r.P50MS = v * 1000
		case "90":
			r.P90MS = v * 1000
		case "95":
			r.P95MS = v * 1000
		case "99":
			r.P99MS = v * 1000
		}
	}
	for _, m := range heyStatus.FindAllSubmatch(out, -1) {
		n, _ := strconv.ParseInt(string(m[2]), 10, 64)
		r.Requests += n
		if string(m[1]) != "200" {
			r.Non200 += n
		}
	}
	if i := bytes.Index(out, []byte("Error distribution:")); i >= 0 {
		for _, m := range heyErrN.FindAllSubmatch(out[i:], -1) {
			n, _ := strconv.ParseInt(string(m[1]), 10, 64)
			r.Errors += n
		}
	}
	if r.P50MS == 0 {
		return r, fmt.Errorf("hey printed no latency distribution: %s", out)
	}
	return r, nil
}
