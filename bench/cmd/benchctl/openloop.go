package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cutover/cutover/bench/harness"
	"github.com/cutover/cutover/bench/load"
	"github.com/cutover/cutover/bench/report"
)

// openConfigs are the open loop's configurations, in the order they run: cutover first, while
// the legacy app is still the backend on the rest core; then the legacy app measured directly.
var openConfigs = []struct {
	name  string
	start float64 // first rate, arrivals per second
}{{"cutover-100", 100}, {"legacy", 1}}

// stepPlan is how the rate is stepped: doubled from a start until a step fails or the load side
// tops out (or max is passed), then bisected refine times between the last pass and that step.
type stepPlan struct {
	start, max float64
	refine     int
}

// stepOutcome is what one step tells the search.
type stepOutcome int

const (
	stepPass stepOutcome = iota
	stepFail
	// stepGeneratorBound: the load side (generator, stub, Redis), not the target, set the pace, so
	// the step says nothing about the target; the search goes on below it, where the load side
	// can still measure.
	stepGeneratorBound
)

// searchRates runs steps of p, calling run for each rate, and returns the rates it ran in order.
// A failing or generator-bound step is an upper bound: the search bisects below it. It stops when
// run returns an error.
func searchRates(p stepPlan, run func(rate float64) (stepOutcome, error)) ([]float64, error) {
	var ran []float64
	var pass, bound float64
	for rate := p.start; rate <= p.max; rate *= 2 {
		ran = append(ran, rate)
		out, err := run(rate)
		if err != nil {
			return ran, err
		}
		if out != stepPass {
			bound = rate
			break
		}
		pass = rate
	}
	for i := 0; i < p.refine && bound > 0; i++ {
		mid := roundRate((pass + bound) / 2)
		if mid <= pass || mid >= bound {
			break
		}
		ran = append(ran, mid)
		out, err := run(mid)
		if err != nil {
			return ran, err
		}
		if out == stepPass {
			pass = mid
		} else {
			bound = mid
		}
	}
	return ran, nil
}

// roundRate keeps two significant digits above 10 rps and one decimal below, so rates read well.
func roundRate(r float64) float64 {
	if r < 10 {
		return float64(int(r*10+0.5)) / 10
	}
	scale := 1.0
	for r/scale >= 100 {
		scale *= 10
	}
	return float64(int(r/scale+0.5)) * scale
}

// stepWindow is the window of a step at rate: base, lengthened so that it holds about minArrivals
// arrivals (a p95 needs a sample), but never beyond 4 × base.
func stepWindow(rate float64, base time.Duration, minArrivals int) time.Duration {
	need := time.Duration(float64(minArrivals) / rate * float64(time.Second))
	return min(max(base, need.Round(time.Second)), 4*base)
}

// openloop finds, for the legacy app and for cutover at 100 % native, the highest open-loop
// arrival rate meeting the SLO; the report turns it into users per instance and a cost table.
func (e *env) openloop() error {
	st, err := e.startModelStack()
	if err != nil {
		return err
	}
	ttft, tps := st.ttft, st.tps
	window := envDuration("BENCH_OPEN_WINDOW", pick(e, 15*time.Second, 4*time.Second))
	ramp := pick(e, 3*time.Second, time.Second)
	timeout := pick(e, 10*time.Second, 3*time.Second)
	pool := 4096
	set := &e.res.Settings
	set.StubTTFTMS, set.StubTPS, set.GunicornWorkers = float64(ttft.Milliseconds()), tps, st.workers
	set.OpenLoopWindowS, set.OpenLoopPool, set.OpenLoopTimeoutS = window.Seconds(), pool, timeout.Seconds()

	o := &report.OpenLoop{Pinning: e.pinned, Arrivals: load.ArrivalsPoisson, Pool: pool, ServerCores: e.pinned.Cores(harness.RoleServer)}
	e.res.OpenLoop = o
	only := os.Getenv("BENCH_CONFIGS")
	for _, cfg := range openConfigs {
		if only != "" && !slices.Contains(strings.Split(only, ","), cfg.name) {
			continue
		}
		if cfg.name != "legacy" && !e.haveCutover() {
			e.note("bin/cutover with a serve command is missing: open loop measured on legacy only")
			continue
		}
		o.Configs = append(o.Configs, cfg.name)
		plan := stepPlan{start: cfg.start, max: pick(e, 6400.0, 800.0), refine: pick(e, 3, 1)}
		_, err := searchRates(plan, func(rate float64) (stepOutcome, error) {
			s, err := e.openStep(st, cfg.name, rate, ramp, stepWindow(rate, window, pick(e, 100, 20)), timeout, pool)
			o.Steps = append(o.Steps, s)
			l := s.Load
			e.logf("open %-11s %7.1f rps: offered %7.1f answered %7.1f, lag p99 %.1f ms, p95 %.0f ms (over model %.0f), errors %.2f%% %v; SLO %v generator-bound %v",
				cfg.name, rate, l.OfferedRPS, l.RPS, l.LagP99MS, l.All.P95MS, l.OverModel.P95MS, l.ErrorRate*100, l.Kinds, s.MeetsSLO(), s.GeneratorBound())
			switch {
			case err != nil:
				return stepFail, err
			case s.GeneratorBound():
				return stepGeneratorBound, nil
			case s.MeetsSLO():
				return stepPass, nil
			}
			return stepFail, nil
		})
		if err != nil {
			return err
		}
	}
	report.ComputeOpenCapacity(o)
	return nil
}

// openStep runs one open-loop step of cfg at rate against fresh processes. A failure of the step
// itself (cutover not starting, the generator failing) is recorded on the step; only an
// interrupted run is returned as an error.
func (e *env) openStep(st *stack, cfg string, rate float64, ramp, window, timeout time.Duration, pool int) (report.OpenStep, error) {
	s := report.OpenStep{Config: cfg, RateRPS: rate}
	if err := flushRedis(e.ctx, st.redisURL); err != nil {
		return s, fmt.Errorf("flush redis: %w", err)
	}
	roots := map[string]int{"stub": st.stub.Pid(), "redis": st.redis.Pid()}
	target := st.legacyURL
	var cut *cutoverProc
	if cfg == "legacy" {
		// A fresh legacy app each step, on the server's core: sync workers go on serving what an
		// overloaded step's clients abandoned.
		if err := e.restartLegacy(st, harness.RoleServer); err != nil {
			return s, fmt.Errorf("restart legacy: %w", err)
		}
		roots["legacy"] = st.legacy.Pid()
		target = st.legacyURL
	} else {
		all := routeShare{NativePct: 100}
		var err error
		cut, err = e.startCutover(cutoverOpts{
			Name: fmt.Sprintf("cutover-open-%g", rate), LegacyURL: st.legacyURL, RedisURL: st.redisURL, StubURL: st.stubURL,
			Routes: map[string]routeShare{"chat": all, "chat_stream": all, "get_conversation": all, "delete_conversation": all, "health": all, "models": all},
		})
		if err != nil {
			s.Error = "cutover did not start: " + firstLine(err.Error())
			return s, nil
		}
		defer e.g.Stop(cut.Proc, 10*time.Second)
		roots["cutover"] = cut.Pid()
		target = cut.URL
	}
	lc := load.Config{BaseURL: target, Mode: load.ModeOpen, Rate: rate, Pool: pool, Arrivals: load.ArrivalsPoisson,
		Users: 0, Ramp: ramp, Duration: window, Timeout: timeout, TTFT: st.ttft, TPS: st.tps,
		Salt: fmt.Sprintf("open-%s-%g", cfg, rate)}
	run, err := e.runLoad(fmt.Sprintf("open-%s-%g", cfg, rate), lc, roots, nil)
	s.Load, s.Procs = run.res, run.procs
	if e.pinned.Enabled {
		s.RestCores = report.RestCores(cfg, s.Procs)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return s, err
		}
		s.Error = firstLine(err.Error())
	}
	_ = e.sleep(pick(e, time.Second, 300*time.Millisecond)) // let closed sockets settle
	return s, nil
}
