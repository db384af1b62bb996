package main

import (
	"math"
	"testing"

	"github.com/cutover/cutover/bench/harness"
	"github.com/cutover/cutover/bench/report"
)

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		give string
		ok   bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://127.3.4.5:1/x", true},
		{"http://localhost:9", true},
		{"http://[::1]:80", true},
		{"http://10.0.0.1:80", false},
		{"http://example.com", false},
		{"not a url", false},
		{"", false},
	}
	for _, tt := range tests {
		if err := checkLoopback(tt.give); (err == nil) != tt.ok {
			t.Errorf("checkLoopback(%q) = %v, want ok=%v", tt.give, err, tt.ok)
		}
	}
}

func TestSummarisePassthroughTakesMediansAndRatios(t *testing.T) {
	run := func(round int, target string, rps float64, p50, p99 int64) report.PTRun {
		return report.PTRun{Round: round, Conns: 64, Target: target,
			Wrk: harness.WrkResult{RPS: rps, P50US: p50, P99US: p99}}
	}
	pt := &report.Passthrough{Targets: []string{"direct", "nginx", "cutover"}, Runs: []report.PTRun{
		run(0, "direct", 100, 1000, 5000), run(1, "direct", 120, 1100, 5200), run(2, "direct", 90, 900, 9000),
		run(0, "nginx", 50, 2000, 6000), run(1, "nginx", 80, 1800, 6100), run(2, "nginx", 60, 1900, 6200),
		run(0, "cutover", 40, 3000, 8000), run(1, "cutover", 48, 3100, 8100), run(2, "cutover", 10, 9000, 90000),
	}}
	got := map[string]report.PTSummary{}
	for _, s := range summarisePassthrough(pt) {
		got[s.Target] = s
	}
	c := got["cutover"]
	if c.RPS != 40 || c.RPSMin != 10 || c.RPSMax != 48 || c.RatioNginx != 40.0/60 || c.RatioDirect != 0.4 {
		t.Errorf("cutover summary = %+v, want median 40 (10-48), 0.67x nginx, 0.4x direct", c)
	}
	if !near(c.AddedP50MS, 2.1) || !near(c.AddedP99MS, 2.9) {
		t.Errorf("added latency p50 %v p99 %v, want 2.1 and 2.9 (medians against direct)", c.AddedP50MS, c.AddedP99MS)
	}
	if got["nginx"].RatioNginx != 1 {
		t.Errorf("nginx against itself = %v", got["nginx"].RatioNginx)
	}
}

func TestSummariseFixedIsRelativeToDirect(t *testing.T) {
	pt := &report.Passthrough{Targets: []string{"direct", "cutover"}, FixedRuns: []report.PTFixed{
		{Target: "direct", Hey: harness.HeyResult{RPS: 3000, P50MS: 1, P99MS: 4}},
		{Target: "direct", Hey: harness.HeyResult{RPS: 3000, P50MS: 1.2, P99MS: 3}},
		{Target: "direct", Hey: harness.HeyResult{RPS: 3000, P50MS: 0.8, P99MS: 40}},
		{Target: "cutover", Hey: harness.HeyResult{RPS: 3000, P50MS: 1.5, P99MS: 5, Non200: 2}},
		{Target: "cutover", Hey: harness.HeyResult{RPS: 3000, P50MS: 1.6, P99MS: 4.5}},
		{Target: "cutover", Hey: harness.HeyResult{RPS: 3000, P50MS: 1.4, P99MS: 60}},
	}}
	out := summariseFixed(pt, 3200)
	if len(out) != 2 || out[1].Target != "cutover" {
		t.Fatalf("summariseFixed = %+v", out)
	}
	if c := out[1]; !near(c.AddedP50MS, 0.5) || !near(c.AddedP99MS, 1) || c.Hey.Non200 != 2 || c.RateRPS != 3200 {
		t.Errorf("cutover fixed = %+v, want +0.5 ms p50, +1 ms p99, 2 non-200", c)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
