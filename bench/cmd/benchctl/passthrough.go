package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/cutover/cutover/bench/harness"
	"github.com/cutover/cutover/bench/report"
)

// ptTarget is one way of reaching the trivial upstream.
type ptTarget struct {
	name string
	url  string
	proc *harness.Proc // the proxy's process (nil for direct)
}

// passthroughPath is matched by the cutover route table (get_conversation at 0 % native), so
// cutover does its real per-request work: route match, identity, bucket, reverse proxy.
const passthroughPath = "/conversations/bench-passthrough-0001"

// proxyStarter writes a proxy's configuration under dir (listening on listen, proxying to upstream)
// and returns the environment and arguments that run it in the foreground with workers worker
// processes or threads (for a Go proxy, GOMAXPROCS goes into the environment instead).
type proxyStarter func(dir, listen, upstream string, workers int) (env, argv []string, err error)

// peers are the reverse proxies cutover is compared with, in the order they are reported.
var peers = []struct {
	name  string
	start proxyStarter
}{
	{"nginx", func(dir, listen, upstream string, workers int) ([]string, []string, error) {
		argv, err := harness.NginxConfig(dir, listen, upstream, workers)
		return nil, argv, err
	}},
	{"haproxy", func(dir, listen, upstream string, workers int) ([]string, []string, error) {
		argv, err := harness.HAProxyConfig(dir, listen, upstream, workers)
		return nil, argv, err
	}},
	{"caddy", func(dir, listen, upstream string, workers int) ([]string, []string, error) {
		env, argv, err := harness.CaddyConfig(dir, listen, upstream)
		return append(env, "GOMAXPROCS="+strconv.Itoa(workers)), argv, err
	}},
	// The floor under cutover's legacy path: net/http's server and httputil.ReverseProxy alone,
	// with cutover's default collector setting (runtime.gc_percent 400), so the difference is
	// what cutover adds per request.
	{"go-reverseproxy", func(dir, listen, upstream string, workers int) ([]string, []string, error) {
		self, err := os.Executable()
		if err != nil {
			return nil, nil, err
		}
		return []string{"GOMAXPROCS=" + strconv.Itoa(workers), "GOGC=400"},
			[]string{self, "reverseproxy", "-addr", listen, "-upstream", "http://" + upstream}, nil
	}},
}

// passthrough compares direct, nginx, haproxy, Caddy and cutover (0 % native) in front of a
// trivial upstream. In a pinned run the proxy under test has core 0 to itself (each proxy in turn:
// only one is loaded at a time) and wrk, hey and the upstream share core 1.
func (e *env) passthrough() error {
	upPort, err := harness.FreePort()
	if err != nil {
		return err
	}
	up, err := e.spawn("upstream", harness.RoleRest, []string{e.gomaxprocs(harness.RoleRest)}, e.self, "upstream", "-addr", harness.Addr(upPort))
	if err != nil {
		return err
	}
	upURL := "http://" + harness.Addr(upPort)
	if err := harness.WaitHTTP(e.ctx, up, upURL+"/", 10*time.Second); err != nil {
		return err
	}
	targets := []ptTarget{{name: "direct", url: upURL + passthroughPath}}

	for _, p := range peers {
		port, err := harness.FreePort()
		if err != nil {
			return err
		}
		env, argv, err := p.start(e.tmp, harness.Addr(port), harness.Addr(upPort), e.pinned.Cores(harness.RoleServer))
		if err != nil {
			return err
		}
		proc, err := e.spawn(p.name, harness.RoleServer, env, argv...)
		if err != nil {
			e.note("%s could not start: %v", p.name, err)
			continue
		}
		u := "http://" + harness.Addr(port)
		if err := harness.WaitHTTP(e.ctx, proc, u+passthroughPath, 15*time.Second); err != nil {
			e.note("%s not ready: %v", p.name, err)
			e.g.Stop(proc, time.Second)
			continue
		}
		targets = append(targets, ptTarget{name: p.name, url: u + passthroughPath, proc: proc})
	}

	var cut *cutoverProc
	if e.haveCutover() {
		cut, err = e.startCutover(cutoverOpts{Name: "cutover-passthrough", LegacyURL: upURL})
		if err != nil {
			e.note("cutover did not start for pass-through: %v", err)
		} else {
			targets = append(targets, ptTarget{name: "cutover", url: cut.URL + passthroughPath, proc: cut.Proc})
		}
	} else {
		e.note("bin/cutover with a serve command is missing: pass-through measured without cutover")
	}

	pt := &report.Passthrough{Path: passthroughPath, Pinning: e.pinned}
	for _, t := range targets {
		pt.Targets = append(pt.Targets, t.name)
	}
	e.res.Passthrough = pt
	rounds := pick(e, 3, 1)
	dur := pick(e, 8*time.Second, 2*time.Second)
	e.res.Settings.WrkRounds, e.res.Settings.WrkSeconds = rounds, dur.Seconds()

	for _, conns := range []int{64, 512} {
		// Warm every path (keep-alive pools, caches) before measuring.
		for _, t := range targets {
			if _, err := harness.Wrk(e.ctx, e.pinned, e.tmp, t.url, 2, conns, pick(e, 2*time.Second, time.Second)); err != nil {
				return fmt.Errorf("warm-up %s: %w", t.name, err)
			}
		}
		for round := range rounds {
			// Rotate the order each round so no target always runs first or last.
			for i := range targets {
				t := targets[(i+round)%len(targets)]
				roots := map[string]int{"upstream": up.Pid()}
				if t.proc != nil {
					roots["proxy"] = t.proc.Pid()
				}
				s := harness.StartSampler(roots, 200*time.Millisecond)
				w, err := harness.Wrk(e.ctx, e.pinned, e.tmp, t.url, 2, conns, dur)
				usage := s.Stop()
				usage["wrk"] = harness.Usage{CPUSeconds: w.CPUSeconds, Procs: 1}
				if err != nil {
					return fmt.Errorf("%s at %d conns: %w", t.name, conns, err)
				}
				e.logf("passthrough %-8s c=%-3d round %d: %8.0f rps p50 %.3f ms p99 %.3f ms errors %d",
					t.name, conns, round, w.RPS, float64(w.P50US)/1000, float64(w.P99US)/1000, w.Errors())
				pt.Runs = append(pt.Runs, report.PTRun{Round: round, Conns: conns, Target: t.name, Wrk: w, CPU: usage})
			}
		}
		if cut != nil {
			e.profilePassthrough(cut, conns)
		}
	}
	pt.Summary = summarisePassthrough(pt)

	// Below saturation: a fixed total rate on 64 connections, so latency shows the hop, not queueing.
	rate := pick(e, 3200.0, 1600.0)
	e.res.Settings.FixedRateRPS = rate
	fixedDur := pick(e, 8*time.Second, 2*time.Second)
	for round := range rounds {
		for i := range targets {
			t := targets[(i+round)%len(targets)]
			roots := map[string]int{"upstream": up.Pid()}
			if t.proc != nil {
				roots["proxy"] = t.proc.Pid()
			}
			s := harness.StartSampler(roots, 200*time.Millisecond)
			h, err := harness.Hey(e.ctx, e.pinned, t.url, 64, rate/64, fixedDur)
			usage := s.Stop()
			if err != nil {
				return fmt.Errorf("fixed rate %s: %w", t.name, err)
			}
			usage["hey"] = harness.Usage{CPUSeconds: h.CPUSeconds, Procs: 1}
			e.logf("fixed rate %-8s round %d %5.0f rps: p50 %.2f ms p99 %.2f ms", t.name, round, h.RPS, h.P50MS, h.P99MS)
			pt.FixedRuns = append(pt.FixedRuns, report.PTFixed{Round: round, Conns: 64, Target: t.name, RateRPS: rate, Hey: h, CPU: usage})
		}
	}
	pt.Fixed = summariseFixed(pt, rate)
	return nil
}

// profilePassthrough runs one more wrk at conns (not part of the measured rounds) while taking a
// CPU and then a heap profile of cutover.
func (e *env) profilePassthrough(c *cutoverProc, conns int) {
	secs := pick(e, 5, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = harness.Wrk(e.ctx, e.pinned, e.tmp, c.URL+passthroughPath, 2, conns, time.Duration(secs+3)*time.Second)
	}()
	_ = e.sleep(time.Second)
	scenario := fmt.Sprintf("passthrough-c%d", conns)
	e.profile(c, scenario, "cpu", secs)
	e.profile(c, scenario, "heap", 0)
	<-done
}

func summarisePassthrough(pt *report.Passthrough) []report.PTSummary {
	var out []report.PTSummary
	for _, conns := range []int{64, 512} {
		byTarget := map[string]report.PTSummary{}
		for _, t := range pt.Targets {
			var rps, p50, p99, cpu []float64
			var errs, rss int64
			perReq := map[string][]float64{}
			for _, r := range pt.Runs {
				if r.Conns != conns || r.Target != t {
					continue
				}
				rps = append(rps, r.Wrk.RPS)
				p50 = append(p50, float64(r.Wrk.P50US)/1000)
				p99 = append(p99, float64(r.Wrk.P99US)/1000)
				errs += r.Wrk.Errors()
				if u, ok := r.CPU["proxy"]; ok {
					cpu = append(cpu, u.CPUCores)
					rss = max(rss, u.PeakRSSKiB)
				}
				for name, u := range r.CPU {
					perReq[name] = append(perReq[name], u.MicrosPer(r.Wrk.Requests))
				}
			}
			if len(rps) == 0 {
				continue
			}
			byTarget[t] = report.PTSummary{Conns: conns, Target: t, RPS: median(rps), RPSMin: slices.Min(rps), RPSMax: slices.Max(rps),
				P50MS: median(p50), P99MS: median(p99),
				Errors: errs, ProxyCPU: median(cpu), ProxyPeakRSS: rss, CPUPerReqUS: medians(perReq)}
		}
		d, n, c := byTarget["direct"], byTarget["nginx"], byTarget["caddy"]
		// No added latency from wrk: every target is saturated, so its latency is queueing.
		for _, t := range pt.Targets {
			s, ok := byTarget[t]
			if !ok {
				continue
			}
			if d.RPS > 0 {
				s.RatioDirect = s.RPS / d.RPS
			}
			if n.RPS > 0 {
				s.RatioNginx = s.RPS / n.RPS
			}
			if c.RPS > 0 {
				s.RatioCaddy = s.RPS / c.RPS
			}
			out = append(out, s)
		}
	}
	return out
}

// summariseFixed takes the median of each fixed-rate figure over rounds, and the added latency
// against direct.
func summariseFixed(pt *report.Passthrough, rate float64) []report.PTFixed {
	var out []report.PTFixed
	for _, t := range pt.Targets {
		var rps, p50, p90, p99 []float64
		perReq := map[string][]float64{}
		f := report.PTFixed{Conns: 64, Target: t, RateRPS: rate}
		for _, r := range pt.FixedRuns {
			if r.Target != t {
				continue
			}
			rps, p50, p90, p99 = append(rps, r.Hey.RPS), append(p50, r.Hey.P50MS), append(p90, r.Hey.P90MS), append(p99, r.Hey.P99MS)
			f.Hey.Requests += r.Hey.Requests
			f.Hey.Errors += r.Hey.Errors
			f.Hey.Non200 += r.Hey.Non200
			for name, u := range r.CPU {
				perReq[name] = append(perReq[name], u.MicrosPer(r.Hey.Requests))
			}
		}
		f.CPUPerReqUS = medians(perReq)
		if len(rps) == 0 {
			continue
		}
		f.Hey.RPS, f.Hey.P50MS, f.Hey.P90MS, f.Hey.P99MS = median(rps), median(p50), median(p90), median(p99)
		out = append(out, f)
	}
	for i := range out {
		out[i].AddedP50MS = out[i].Hey.P50MS - out[0].Hey.P50MS // out[0] is direct, the first target
		out[i].AddedP99MS = out[i].Hey.P99MS - out[0].Hey.P99MS
	}
	return out
}

// medians is the median of each named series (nil for none).
func medians(series map[string][]float64) map[string]float64 {
	if len(series) == 0 {
		return nil
	}
	out := make(map[string]float64, len(series))
	for name, xs := range series {
		out[name] = median(xs)
	}
	return out
}
