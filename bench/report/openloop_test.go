package report

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/bench/harness"
	"github.com/cutover/cutover/bench/load"
)

// openStep is a step at rate whose generator kept up, with the given p95 over model and error rate.
func openStep(cfg string, rate, overP95, errRate, meanMS float64) OpenStep {
	return OpenStep{Config: cfg, RateRPS: rate, Load: load.Result{
		OK: int64(rate * 10), Errors: int64(rate * 10 * errRate), ErrorRate: errRate, RPS: rate,
		OfferedRPS: rate, LagP99MS: 1, OverModel: load.Stats{P95MS: overP95}, All: load.Stats{MeanMS: meanMS, P95MS: 800 + overP95},
	}, Procs: map[string]harness.Usage{"cutover": {CPUCores: rate * 50e-6}, "legacy": {CPUCores: rate * 20000e-6}, "stub": {CPUCores: 0.1}}}
}

func TestOpenStepVerdicts(t *testing.T) {
	late := openStep("cutover-100", 1000, 10, 0, 800)
	late.Load.LagP99MS = 200
	short := openStep("cutover-100", 1000, 10, 0, 800)
	short.Load.OfferedRPS = 900 // a Poisson count below the rate is the schedule, not the generator
	busy := openStep("cutover-100", 1000, 900, 0.01, 800)
	busy.RestCores = RestCores("cutover-100", map[string]harness.Usage{"cutover": {CPUCores: 1}, "loadgen": {CPUCores: 0.6}, "stub": {CPUCores: 0.3}, "redis": {CPUCores: 0.1}})
	idle := openStep("cutover-100", 1000, 900, 0.01, 800)
	idle.RestCores = 0.89
	broken := openStep("cutover-100", 1000, 10, 0, 800)
	broken.Error = "cutover did not start"
	tests := []struct {
		name             string
		give             OpenStep
		wantSLO, wantGen bool
	}{
		{"fast and clean", openStep("cutover-100", 1000, 10, 0, 800), true, false},
		{"p95 over model at the bound fails", openStep("cutover-100", 1000, 300, 0, 800), false, false},
		{"0.1 % errors fails", openStep("cutover-100", 1000, 10, 0.001, 800), false, false},
		{"generator late", late, false, true},
		{"fewer arrivals than the rate", short, true, false},
		{"run error", broken, false, false},
		{"the rest core saturated: a failure there is the load side's", busy, false, true},
		{"the rest core below saturation: the failure is the target's", idle, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.give.MeetsSLO(); got != tt.wantSLO {
				t.Errorf("MeetsSLO = %v, want %v", got, tt.wantSLO)
			}
			if got := tt.give.GeneratorBound(); got != tt.wantGen {
				t.Errorf("GeneratorBound = %v, want %v", got, tt.wantGen)
			}
		})
	}
}

func sampleOpenLoop() *OpenLoop {
	return &OpenLoop{
		Pinning: harness.Pinning{Enabled: true, ServerCPU: 0, RestCPU: 1}, Arrivals: "poisson", Pool: 4096, ServerCores: 1,
		Configs: []string{"legacy", "cutover-100"},
		Steps: []OpenStep{
			openStep("legacy", 1, 20, 0, 900), openStep("legacy", 2, 40, 0, 1000), openStep("legacy", 4, 5000, 0.02, 6000),
			openStep("legacy", 3, 150, 0, 1100),
			openStep("cutover-100", 100, 5, 0, 800), openStep("cutover-100", 200, 6, 0, 800), openStep("cutover-100", 400, 8, 0, 800),
			openStep("cutover-100", 800, 12, 0, 820), openStep("cutover-100", 1600, 900, 0, 2000), openStep("cutover-100", 1200, 40, 0, 850),
		},
	}
}

func TestComputeOpenCapacity(t *testing.T) {
	o := sampleOpenLoop()
	ComputeOpenCapacity(o)
	if len(o.Capacity) != 2 {
		t.Fatalf("capacity rows = %+v, want one per configuration", o.Capacity)
	}
	leg, _ := openCapacity(o, "legacy")
	nat, _ := openCapacity(o, "cutover-100")
	// Steps run out of order (bisection): capacity is the highest passing rate below the first failure.
	if leg.RateRPS != 3 || leg.FailsAtRPS != 4 || leg.MeanLatencyMS != 1100 {
		t.Errorf("legacy = %+v, want 3 rps passing, 4 failing", leg)
	}
	if want := 3 * (ThinkSeconds + 1.1); math.Abs(leg.UsersPerInstance-want) > 1e-9 {
		t.Errorf("legacy users per instance = %v, want %v", leg.UsersPerInstance, want)
	}
	if nat.RateRPS != 1200 || nat.FailsAtRPS != 1600 || math.Abs(nat.ServerCPUPerReqUS-50) > 1e-6 {
		t.Errorf("native = %+v, want 1200 rps passing, 1600 failing, 50 µs per request", nat)
	}
	hour := TaskHourUSD(1)
	if math.Abs(hour-(FargateVCPUHourUSD+2*FargateGiBHourUSD)) > 1e-12 {
		t.Errorf("TaskHourUSD(1) = %v", hour)
	}
	for i, u := range CostUsers {
		want := int(math.Ceil(float64(u) / (3 * 11.1)))
		if leg.Instances[i] != want || math.Abs(leg.MonthlyUSD[i]-float64(want)*hour*HoursPerMonth) > 1e-6 {
			t.Errorf("legacy for %d users: %d instances $%.2f, want %d", u, leg.Instances[i], leg.MonthlyUSD[i], want)
		}
		if want := int(math.Ceil(float64(u) / (1200 * 10.85))); nat.Instances[i] != want {
			t.Errorf("native for %d users: %d instances, want %d", u, nat.Instances[i], want)
		}
	}
	ComputeOpenCapacity(nil) // no open loop: nothing to do, no panic
}

func TestOpenCapacityBounds(t *testing.T) {
	gen := openStep("cutover-100", 3200, 10, 0, 800)
	gen.Load.LagP99MS = 80
	o := &OpenLoop{ServerCores: 2, Configs: []string{"cutover-100", "legacy"}, Steps: []OpenStep{
		openStep("cutover-100", 1600, 10, 0, 800), gen,
		openStep("legacy", 1, 900, 0, 1500),
	}}
	ComputeOpenCapacity(o)
	nat, _ := openCapacity(o, "cutover-100")
	if nat.RateRPS != 1600 || nat.GeneratorBoundRPS != 3200 || nat.FailsAtRPS != 0 {
		t.Errorf("native = %+v, want ≥ 1600 with the generator topping out at 3200", nat)
	}
	if got := rateCell(nat); got != "≥ 1600 (the load side tops out at 3200)" {
		t.Errorf("rateCell = %q", got)
	}
	leg, _ := openCapacity(o, "legacy")
	if leg.RateRPS != 0 || leg.FailsAtRPS != 1 || leg.UsersPerInstance != 0 || leg.Instances[0] != -1 || leg.MonthlyUSD[0] != 0 {
		t.Errorf("legacy = %+v, want no capacity and no instance count", leg)
	}
	if nat.MonthlyUSD[0] != float64(nat.Instances[0])*TaskHourUSD(2)*HoursPerMonth {
		t.Errorf("a 2-core server is priced as a 2 vCPU task: %+v", nat)
	}
}

func TestTargetVerdicts(t *testing.T) {
	o := sampleOpenLoop()
	ComputeOpenCapacity(o)
	r := &Results{
		Passthrough: &Passthrough{Pinning: harness.Pinning{Enabled: true, RestCPU: 1}, Summary: []PTSummary{
			{Conns: 64, Target: "cutover", RatioNginx: 0.65, RatioCaddy: 1.2, CPUPerReqUS: map[string]float64{"proxy": 46.2, "wrk": 9}},
			{Conns: 64, Target: "nginx", RatioNginx: 1, CPUPerReqUS: map[string]float64{"proxy": 14, "wrk": 9}},
			{Conns: 512, Target: "caddy", CPUPerReqUS: map[string]float64{"proxy": 99}},
		}, Fixed: []PTFixed{{Target: "cutover", RateRPS: 3200, AddedP99MS: 1.5}}},
		Memory:   &Memory{Points: []MemPoint{{Kind: "stream", Open: 1000, PerRequestKiB: 63.9}, {Kind: "stream", Open: 5000, PerRequestKiB: 64}}},
		Shadow:   &Shadow{Status: "measured", AddedP99MS: 1.2},
		OpenLoop: o,
	}
	got := map[string]string{}
	for _, row := range targetRows(r) {
		got[row.name] = row.v.measured + " → " + row.v.String()
	}
	want := map[string]string{
		"pass-through ≥ 0.6× nginx at 64 connections":                  "0.65× → met",
		"pass-through ≥ 1.6× Caddy at 64 connections":                  "1.20× → **missed**",
		"pass-through p99 added ≤ 1.5 ms at 3200 rps":                  "1.50 ms → met",
		"native on one pinned core: SLO met at ≥ 2000 rps (open loop)": "1200 (fails at 1600) rps → **missed**",
		"< 64 KiB per open stream at 1000 streams":                     "63.9 KiB → met",
		"< 64 KiB per open stream at 5000 streams":                     "64.0 KiB → **missed**",
		"100 % shadowing adds ≤ 1 ms at p99":                           "+1.20 ms → **missed**",
		"CPU µs per proxied request (pass-through, 64 connections)":    "cutover 46.2, nginx 14.0 → (figure, no target)",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: got %q, want %q", name, got[name], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("targets = %v, want exactly %d", got, len(want))
	}

	// Where a figure cannot decide a target, the report says so rather than guessing.
	gen := openStep("cutover-100", 3200, 10, 0, 800)
	gen.Load.LagP99MS = 500
	r = &Results{
		Passthrough: &Passthrough{Summary: []PTSummary{{Conns: 64, Target: "cutover", RatioNginx: 0.7}},
			Fixed: []PTFixed{{Target: "cutover", RateRPS: 1600, AddedP99MS: 0.2}}},
		OpenLoop: &OpenLoop{Pinning: harness.Pinning{Enabled: true}, Configs: []string{"cutover-100"}, Steps: []OpenStep{openStep("cutover-100", 1600, 10, 0, 800), gen}},
	}
	ComputeOpenCapacity(r.OpenLoop)
	got = map[string]string{}
	for _, row := range targetRows(r) {
		got[row.name] = row.v.measured + " → " + row.v.String()
	}
	for name, w := range map[string]string{
		"pass-through ≥ 0.6× nginx at 64 connections (run unpinned)":   "0.70× → met",
		"pass-through ≥ 1.6× Caddy at 64 connections (run unpinned)":   "not measured (cutover or Caddy missing) → not decided",
		"pass-through p99 added ≤ 1.5 ms at 3200 rps":                  "0.20 ms, but at 1600 rps (a quick run) → not decided",
		"native on one pinned core: SLO met at ≥ 2000 rps (open loop)": "≥ 1600 (the load side tops out at 3200) rps: the load side's core tops out first → not decided",
		"100 % shadowing adds ≤ 1 ms at p99":                           "not measured → not decided",
	} {
		if got[name] != w {
			t.Errorf("%s: got %q, want %q", name, got[name], w)
		}
	}
}

func TestRenderOpenLoopCPUAndPinning(t *testing.T) {
	dir := t.TempDir()
	o := sampleOpenLoop()
	r := &Results{
		Machine: Machine{Cores: 2},
		Settings: Settings{Pinning: harness.Pinning{Enabled: true, ServerCPU: 0, RestCPU: 1}, PinnedScenarios: []string{"passthrough", "openloop"},
			OpenLoopWindowS: 15, OpenLoopTimeoutS: 10, OpenLoopPool: 4096},
		Passthrough: &Passthrough{Pinning: harness.Pinning{Enabled: true, RestCPU: 1}, Path: "/x", Targets: []string{"direct", "nginx", "caddy", "cutover"}, Summary: []PTSummary{
			{Conns: 64, Target: "direct", RPS: 40000, CPUPerReqUS: map[string]float64{"upstream": 12, "wrk": 9.5}},
			{Conns: 64, Target: "nginx", RPS: 25000, RatioNginx: 1, CPUPerReqUS: map[string]float64{"proxy": 14, "upstream": 12, "wrk": 9.5}},
			{Conns: 64, Target: "cutover", RPS: 15000, RPSMin: 14000, RPSMax: 16000, RatioNginx: 0.6, RatioCaddy: 1.25, CPUPerReqUS: map[string]float64{"proxy": 46.2, "upstream": 12, "wrk": 9.5}},
		}},
		OpenLoop: o,
	}
	ComputeOpenCapacity(o)
	if err := Render(dir, r); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "RESULTS.md"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(dir, "SUMMARY.md"))
	if err != nil {
		t.Fatal(err)
	}
	nat, _ := openCapacity(o, "cutover-100")
	leg, _ := openCapacity(o, "legacy")
	costCell := func(c OpenCapacity, i int) string {
		return fmt.Sprintf("%d, $%.0f", c.Instances[i], c.MonthlyUSD[i])
	}
	for _, want := range []string{
		"**Core pinning** (`taskset`) in passthrough, openloop: the process under test",
		"| 64 | cutover | 15000 | 14000–16000 | – | 0.60× | 1.25× |",
		"| cutover 46.2, upstream 12.0, wrk 9.50 | 0 |",
		"| 64 | nginx | 25000 |",
		"nginx 14.0, upstream 12.0, wrk 9.50",
		"## Open-loop chat workload: users per instance and cost",
		"| cutover 100% native | 1200 | 1200.0 | 1200.0 | 1.00 | ",
		"| cutover 100% native | 1200 (fails at 1600) | 850 | 50.0 | 13020 | " + costCell(nat, 0) + " (-95% vs legacy) |",
		"| legacy direct (gunicorn sync) | 3 (fails at 4) | 1100 | 20000 | 33 | " + costCell(leg, 0) + " |",
		fmt.Sprintf("$%.4f per task-hour", TaskHourUSD(1)),
		"| native on one pinned core: SLO met at ≥ 2000 rps (open loop) | 1200 (fails at 1600) rps | **missed** |",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
	for _, want := range []string{"| 64 | cutover | 15000 | 0.60× | 1.25× | 46.2 |", "**Open-loop chat workload** (users per instance, cost)", "## Performance targets (issue 17)"} {
		if !strings.Contains(string(sum), want) {
			t.Errorf("SUMMARY.md lacks %q", want)
		}
	}
}
