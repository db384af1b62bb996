package report

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cutover/cutover/bench/harness"
	"github.com/cutover/cutover/bench/load"
)

// The instance price behind the cost table: an AWS ECS Fargate task, Linux/x86, on-demand, US East
// (N. Virginia), as listed on the public Fargate pricing page (aws.amazon.com/fargate/pricing) at
// the time of writing. A task of N vCPU gets 2 GiB of memory per vCPU.
const (
	FargateVCPUHourUSD = 0.04048  // per vCPU per hour
	FargateGiBHourUSD  = 0.004445 // per GiB of memory per hour
	FargateGiBPerVCPU  = 2
	HoursPerMonth      = 730 // 365 × 24 / 12
	// ThinkSeconds is the time a user waits between the answer and the next message.
	ThinkSeconds = 10.0
	// generatorLagMS is how late (p99) the open-loop generator may send an arrival before the
	// step measures the generator rather than the target.
	generatorLagMS = 50.0
	// restSaturatedCores is the CPU (in cores) of the processes on the rest core above which that
	// core, not the server, limits a pinned step.
	restSaturatedCores = 0.9
)

// CostUsers are the fleet sizes of the cost table.
var CostUsers = InstanceUsers

// OpenLoop is the open-loop chat workload: arrivals at a fixed rate over a bounded connection
// pool, stepped up per configuration to find the highest rate that meets the SLO.
type OpenLoop struct {
	Pinning harness.Pinning `json:"pinning"`
	// Arrivals is the arrival process ("poisson": exponential gaps at the rate).
	Arrivals string `json:"arrivals"`
	Pool     int    `json:"pool"`
	// ServerCores is the cores the server under test had: the instance the cost table prices.
	ServerCores int        `json:"server_cores"`
	Configs     []string   `json:"configs"`
	Steps       []OpenStep `json:"steps"`
	// Capacity is derived from Steps by ComputeOpenCapacity (one row per configuration).
	Capacity []OpenCapacity `json:"capacity,omitempty"`
}

// OpenStep is one configuration at one arrival rate.
type OpenStep struct {
	Config  string                   `json:"config"`
	RateRPS float64                  `json:"rate_rps"`
	Load    load.Result              `json:"load"`
	Procs   map[string]harness.Usage `json:"procs"`
	// RestCores is the CPU (in cores) the processes on the rest core used over the window: the load
	// generator, the stub, Redis. Zero when the step ran unpinned (then it says nothing).
	RestCores float64 `json:"rest_core_busy,omitempty"`
	Error     string  `json:"error,omitempty"`
}

// RestCores is the CPU (in cores) used over the window by every process of a step but the server
// under test of cfg.
func RestCores(cfg string, procs map[string]harness.Usage) float64 {
	sum := 0.0
	for name, u := range procs {
		if name != serverProc(cfg) {
			sum += u.CPUCores
		}
	}
	return sum
}

// GeneratorBound reports whether the step measured the load side rather than the target: the
// generator sent arrivals later than generatorLagMS after their scheduled time (p99), or the
// processes on the rest core (generator, stub, Redis) used restSaturatedCores or more of it. The
// number of arrivals in a window varies as a Poisson count does, so the offered rate is reported,
// not judged.
func (s OpenStep) GeneratorBound() bool {
	l := s.Load
	return s.Error == "" && l.OK+l.Errors > 0 && (l.LagP99MS > generatorLagMS || s.RestCores >= restSaturatedCores)
}

// MeetsSLO reports whether the step meets the seed's SLO: p95 within 300 ms of the model's own
// latency and under 0.1 % errors, every arrival of the window accounted for (answered, failed or
// timed out), and the generator keeping up.
func (s OpenStep) MeetsSLO() bool {
	l := s.Load
	return s.Error == "" && l.OK > 0 && l.OverModel.P95MS < criterionMS && l.ErrorRate < maxErrRate && !s.GeneratorBound()
}

// OpenCapacity is one configuration's highest passing rate, in users and instances.
type OpenCapacity struct {
	Config string `json:"config"`
	// RateRPS is the highest rate meeting the SLO with every lower step meeting it too (0: none);
	// FailsAtRPS the lowest rate that failed (0: none did, RateRPS is a lower bound).
	RateRPS    float64 `json:"rate_rps"`
	FailsAtRPS float64 `json:"fails_at_rps,omitempty"`
	// GeneratorBoundRPS is the lowest rate at which the generator could not keep up (0: none).
	GeneratorBoundRPS float64 `json:"generator_bound_rps,omitempty"`
	// MeanLatencyMS is the mean response time at RateRPS.
	MeanLatencyMS float64 `json:"mean_latency_ms"`
	// UsersPerInstance = RateRPS × (ThinkSeconds + mean response time): each user sends one
	// message per think time plus answer.
	UsersPerInstance float64 `json:"users_per_instance"`
	// ServerCPUPerReqUS is the server's CPU time per request at RateRPS.
	ServerCPUPerReqUS float64   `json:"server_cpu_us_per_request,omitempty"`
	Instances         []int     `json:"instances"`
	MonthlyUSD        []float64 `json:"monthly_usd"`
}

// TaskHourUSD is the on-demand hourly price of a Fargate task with vcpu vCPUs.
func TaskHourUSD(vcpu int) float64 {
	return float64(vcpu) * (FargateVCPUHourUSD + FargateGiBPerVCPU*FargateGiBHourUSD)
}

// serverProc names the process under test of an open-loop configuration.
func serverProc(cfg string) string {
	if cfg == "legacy" {
		return "legacy"
	}
	return "cutover"
}

// ComputeOpenCapacity derives each configuration's capacity, users per instance, instances and
// monthly cost from the steps, from measured steps only (nothing extrapolated): the capacity is
// the highest rate meeting the SLO with every lower rate meeting it too.
func ComputeOpenCapacity(o *OpenLoop) {
	if o == nil {
		return
	}
	o.Capacity = nil
	for _, cfg := range o.Configs {
		var steps []OpenStep
		for _, s := range o.Steps {
			if s.Config == cfg {
				steps = append(steps, s)
			}
		}
		if len(steps) == 0 {
			continue
		}
		slices.SortStableFunc(steps, func(a, b OpenStep) int { return cmp.Compare(a.RateRPS, b.RateRPS) })
		c := OpenCapacity{Config: cfg}
		for _, s := range steps {
			if s.GeneratorBound() {
				c.GeneratorBoundRPS = s.RateRPS
				break
			}
			if !s.MeetsSLO() {
				c.FailsAtRPS = s.RateRPS
				break
			}
			c.RateRPS, c.MeanLatencyMS = s.RateRPS, s.Load.All.MeanMS
			c.ServerCPUPerReqUS = perRequestAtRate(s.Procs, s.Load.OfferedRPS)[serverProc(cfg)]
		}
		if c.RateRPS > 0 {
			c.UsersPerInstance = c.RateRPS * (ThinkSeconds + c.MeanLatencyMS/1000)
		}
		hour := TaskHourUSD(max(o.ServerCores, 1))
		for _, u := range CostUsers {
			n := -1
			if c.UsersPerInstance > 0 {
				n = int(math.Ceil(float64(u) / c.UsersPerInstance))
			}
			c.Instances = append(c.Instances, n)
			c.MonthlyUSD = append(c.MonthlyUSD, float64(max(n, 0))*hour*HoursPerMonth)
		}
		o.Capacity = append(o.Capacity, c)
	}
}

// openCapacity returns cfg's capacity row.
func openCapacity(o *OpenLoop, cfg string) (OpenCapacity, bool) {
	if o == nil {
		return OpenCapacity{}, false
	}
	for _, c := range o.Capacity {
		if c.Config == cfg {
			return c, true
		}
	}
	return OpenCapacity{}, false
}

// rateCell renders a capacity's rate with its bounds.
func rateCell(c OpenCapacity) string {
	switch {
	case c.RateRPS == 0 && c.FailsAtRPS > 0:
		return fmt.Sprintf("< %s (fails at the lowest step)", rps(c.FailsAtRPS))
	case c.RateRPS == 0:
		return "– (no step passed)"
	case c.FailsAtRPS > 0:
		return fmt.Sprintf("%s (fails at %s)", rps(c.RateRPS), rps(c.FailsAtRPS))
	case c.GeneratorBoundRPS > 0:
		return fmt.Sprintf("≥ %s (the load side tops out at %s)", rps(c.RateRPS), rps(c.GeneratorBoundRPS))
	default:
		return fmt.Sprintf("≥ %s (top step)", rps(c.RateRPS))
	}
}

func rps(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.2g", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// openLoopSection renders the open-loop steps (full) and the users-per-instance and cost tables.
func openLoopSection(b *strings.Builder, r *Results, full bool) {
	o := r.OpenLoop
	if o == nil || len(o.Steps) == 0 {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	vcpu := max(o.ServerCores, 1)
	hour := TaskHourUSD(vcpu)
	if full {
		w("## Open-loop chat workload: users per instance and cost\n\n")
	} else {
		w("**Open-loop chat workload** (users per instance, cost):\n\n")
	}
	w("Arrivals at a fixed rate (%s arrivals: exponential gaps at the rate) over a pool of at most %d connections to the target, as a load balancer sends them, whatever the target's state; mix 70 %% `POST /chat`, 20 %% `POST /chat/stream`, 10 %% `GET /conversations/<id>`, each arrival from one of rate × 11 s users. Latency counts from the scheduled arrival (time waiting for a pooled connection included); every arrival of the window (%.0f s, or longer at low rates so that it holds about 100 arrivals, up to 4 times that) is waited for (up to the %.0f s request timeout) and is answered, failed or timed out. The rate doubles until the SLO fails (p95 within %d ms of the model's own latency, < %.1f %% errors), then is bisected between the last pass and the first failure; a step whose generator sent arrivals later than %.0f ms after their time (p99), or whose load side (generator, stub, Redis) used %.1f cores or more of its core, measured the load side, not the target: it is bisected below like a failure, and when the highest passing rate lies below such a step the capacity is a lower bound (≥). %s\n\n",
		o.Arrivals, o.Pool, r.Settings.OpenLoopWindowS, r.Settings.OpenLoopTimeoutS, criterionMS, maxErrRate*100, generatorLagMS, restSaturatedCores, pinnedOpenNote(o.Pinning))
	if full {
		w("| configuration | rate rps | offered rps | answered rps | generator lag p99 ms | p50 ms | p95 ms | p95 over model ms | error rate | SLO | rest core busy | CPU µs/request (process) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, s := range o.Steps {
			l := s.Load
			slo := tick(s.MeetsSLO())
			if s.GeneratorBound() {
				slo = "load-side-bound"
			}
			if s.Error != "" {
				slo = "run error: " + s.Error
			}
			w("| %s | %s | %.1f | %.1f | %s | %s | %s | %s | %.2f%% | %s | %s | %s |\n", label(s.Config), rps(s.RateRPS), l.OfferedRPS, l.RPS, ms(l.LagP99MS),
				ms(l.All.P50MS), ms(l.All.P95MS), ms(l.OverModel.P95MS), l.ErrorRate*100, slo, restBusy(s), usCell(perRequestAtRate(s.Procs, l.OfferedRPS), nil))
		}
		w("\nCPU µs per request = each process's CPU (in cores, from `/proc` over the window and the drain after it, while arrivals go on at the same rate; the generator's from its own getrusage over the window) over the offered rate. ")
		w("*rest core busy*: the CPU the processes on the other core (load generator, stub, Redis) used over the window, in cores; at %.1f or more that core, not the server, limits the step.\n\n", restSaturatedCores)

	}
	w("Users per instance = highest passing rate × (%.0f s think time + mean response time there): each user sends a message, reads the answer, waits %.0f s. Instance = one ECS Fargate task of %d vCPU / %d GiB (the server under test had %d core%s), on-demand Linux/x86 in US East (N. Virginia) at $%.5f per vCPU-hour and $%.6f per GiB-hour (public Fargate price list; constants in bench/report/openloop.go): $%.4f per task-hour, %d hours a month. No minimum fleet, no headroom and no load balancer cost are added.\n\n",
		ThinkSeconds, ThinkSeconds, vcpu, vcpu*FargateGiBPerVCPU, vcpu, plural(vcpu), FargateVCPUHourUSD, FargateGiBHourUSD, hour, HoursPerMonth)
	w("| configuration | highest passing rate rps | mean response ms there | server CPU µs/request there | users per instance |")
	for _, u := range CostUsers {
		w(" %d users: instances, $/month |", u)
	}
	w("\n|---|---|---|---|---|")
	for range CostUsers {
		w("---|")
	}
	w("\n")
	legacy, haveLegacy := openCapacity(o, "legacy")
	for _, c := range o.Capacity {
		upi := "–"
		if c.UsersPerInstance > 0 {
			upi = fmt.Sprintf("%.0f", c.UsersPerInstance)
			if c.FailsAtRPS == 0 {
				upi = "≥ " + upi
			}
		}
		w("| %s | %s | %s | %s | %s |", label(c.Config), rateCell(c), msOr(c.MeanLatencyMS), usOr(c.ServerCPUPerReqUS), upi)
		for i, n := range c.Instances {
			if n <= 0 {
				w(" – |")
				continue
			}
			cell := fmt.Sprintf("%d, $%.0f", n, c.MonthlyUSD[i])
			if c.FailsAtRPS == 0 {
				cell = "≤ " + cell
			}
			if haveLegacy && c.Config != "legacy" && i < len(legacy.Instances) && legacy.Instances[i] > 0 {
				cell += fmt.Sprintf(" (%+.0f%% vs legacy)", (float64(n)/float64(legacy.Instances[i])-1)*100)
			}
			w(" %s |", cell)
		}
		w("\n")
	}
	w("\n")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func msOr(v float64) string {
	if v <= 0 {
		return "–"
	}
	return ms(v)
}

func usOr(v float64) string {
	if v <= 0 {
		return "–"
	}
	return usFigure(v)
}

// restBusy renders a step's rest-core CPU.
func restBusy(s OpenStep) string {
	if s.RestCores == 0 {
		return "– (unpinned)"
	}
	return fmt.Sprintf("%.2f", s.RestCores)
}

func pinnedOpenNote(p harness.Pinning) string {
	if !p.Enabled {
		return "Unpinned: every process may run on every core."
	}
	return fmt.Sprintf("Pinned: the server under test (the legacy app, or cutover at 100 %% native) on core %d; the load generator, the stub and Redis on core %d.", p.ServerCPU, p.RestCPU)
}
