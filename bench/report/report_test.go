package report

import (
	"encoding/xml"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/bench/load"
)

func point(cfg string, users int, rps, overP95, errRate float64) ChatPoint {
	return ChatPoint{Config: cfg, Users: users, Load: load.Result{
		Users: users, OK: 1000, RPS: rps, ErrorRate: errRate, ModelMeanMS: 700, TheoreticalRPS: float64(users) / 0.7,
		OverModel: load.Stats{P95MS: overP95}, All: load.Stats{P50MS: 700, P95MS: 700 + overP95, P99MS: 800 + overP95},
	}}
}

func sampleChat() *Chat {
	return &Chat{
		Configs: []string{"legacy", "cutover-100"},
		Users:   []int{175, 700, 2000, 5000},
		Points: []ChatPoint{
			point("legacy", 175, 6, 9000, 0.2), point("legacy", 700, 6, 9500, 0.5),
			point("legacy", 2000, 5, 9900, 0.9), point("legacy", 5000, 4, 9990, 0.99),
			point("cutover-100", 175, 250, 3, 0), point("cutover-100", 700, 990, 8, 0),
			point("cutover-100", 2000, 2500, 120, 0), point("cutover-100", 5000, 2600, 2000, 0.01),
		},
	}
}

func TestComputeInstances(t *testing.T) {
	in := ComputeInstances(sampleChat())
	rows := map[string]InstanceRow{}
	var estimates []InstanceRow
	for _, r := range in.Rows {
		if _, ok := rows[r.Config]; ok {
			estimates = append(estimates, r)
			continue
		}
		rows[r.Config] = r
	}
	// The measured native row (2000 users) comes with a Little's-law figure from its best rate:
	// 2600 rps x (0.7 + 0.3) s = 2600 users.
	if len(estimates) != 1 || estimates[0].Config != "cutover-100" || estimates[0].Capacity != 2600 || !equal(estimates[0].Instances, []int{1, 1, 2}) {
		t.Errorf("extra rows = %+v, want one Little's-law row for cutover-100 at 2600 users", estimates)
	}
	nat := rows["cutover-100"]
	if nat.Capacity != 2000 || nat.Basis != "measured" || nat.RPS != 2500 {
		t.Errorf("native row = %+v, want 2000 users measured at 2500 rps", nat)
	}
	if want := []int{1, 1, 2}; !equal(nat.Instances, want) {
		t.Errorf("native instances = %v, want %v", nat.Instances, want)
	}
	leg := rows["legacy"]
	// No legacy level met the criterion: Little's law on the best rate, 6 rps x (0.7 + 0.3) s.
	if leg.Capacity != 6 || !strings.HasPrefix(leg.Basis, "estimated") {
		t.Errorf("legacy row = %+v, want an estimate of 6 users", leg)
	}
	if want := []int{117, 334, 584}; !equal(leg.Instances, want) {
		t.Errorf("legacy instances = %v, want %v", leg.Instances, want)
	}
	if seed := rows["seed: Flask (as sold)"]; !equal(seed.Instances, []int{4, 12, 20}) {
		t.Errorf("seed Flask instances = %v, want [4 12 20]", seed.Instances)
	}
	c := sampleChat()
	c.Points[7] = point("cutover-100", 5000, 2600, 10, 0)
	if r := ComputeInstances(c).Rows[1]; r.Capacity != 5000 || !strings.HasPrefix(r.Basis, "at least") {
		t.Errorf("top level meeting the criterion: %+v, want capacity 5000 marked as a lower bound", r)
	}
	if ComputeInstances(nil) != nil {
		t.Error("no chat results must give no arithmetic")
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRenderWritesReportAndValidSVG(t *testing.T) {
	dir := t.TempDir()
	r := &Results{
		Started: time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC), Finished: time.Date(2026, 11, 26, 21, 20, 0, 0, time.UTC),
		Machine: Machine{Cores: 2, MemTotalKiB: 24 << 20}, Tools: map[string]string{"wrk": "4.1.0"},
		Settings: Settings{StubTTFTMS: 300, StubTPS: 60, GunicornWorkers: 5},
		Passthrough: &Passthrough{Path: "/x", Targets: []string{"direct", "nginx", "cutover"}, Summary: []PTSummary{
			{Conns: 64, Target: "direct", RPS: 40000}, {Conns: 64, Target: "nginx", RPS: 25000, RatioNginx: 1},
			{Conns: 64, Target: "cutover", RPS: 22000, RatioNginx: 0.88, AddedP99MS: 2.5},
		}, Fixed: []PTFixed{{Conns: 64, Target: "direct", RateRPS: 3200}, {Conns: 64, Target: "cutover", RateRPS: 3200, AddedP99MS: 0.4}}},
		Chat:   sampleChat(),
		Memory: &Memory{Target: "cutover", Points: []MemPoint{{Kind: "stream", Open: 1000, PerRequestKiB: 41.5}}},
		Shadow: &Shadow{Status: "placeholder: not wired"},
		Notes:  []string{"a note <with> markup & stuff"},
	}
	r.Instances = ComputeInstances(r.Chat)
	if err := Render(dir, r); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "RESULTS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| pass-through ≥ 0.8× nginx throughput (64 conns) | 0.88× | met |",
		"| pass-through p99 added < 1 ms at 64 conns (fixed 3200 rps, below saturation) | 0.40 ms | met |",
		"| native at 2,000 users: p95 within 50 ms of model latency | +120 ms | **missed** |",
		"| < 64 KiB per in-flight stream (1000 open) | 41.5 KiB | met |",
		"not measured: placeholder: not wired",
		"![chat_rps.svg](chat_rps.svg)",
		"| cutover 100% native | 2000 | measured | 2500 | 1 (-99%) | 1 (-100%) | 2 (-100%) |",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
	sum, err := os.ReadFile(filepath.Join(dir, "SUMMARY.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"![chat_rps.svg](bench/results/chat_rps.svg)", "| 64 | cutover | 22000 | 0.88× |", "## Goals"} {
		if !strings.Contains(string(sum), want) {
			t.Errorf("SUMMARY.md lacks %q", want)
		}
	}
	svgs, _ := filepath.Glob(filepath.Join(dir, "*.svg"))
	if len(svgs) < 5 {
		t.Fatalf("plots written: %v, want the pass-through and chat plots", svgs)
	}
	for _, f := range svgs {
		b, _ := os.ReadFile(f)
		dec := xml.NewDecoder(strings.NewReader(string(b)))
		for {
			_, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("%s is not well-formed XML: %v", filepath.Base(f), err)
				break
			}
		}
		if strings.Contains(string(b), "NaN") {
			t.Errorf("%s contains NaN coordinates", filepath.Base(f))
		}
	}
}

func TestScales(t *testing.T) {
	s := newScale([]float64{3, 170, math.NaN()}, true, false)
	if s.lo != 1 || s.hi != 1000 {
		t.Errorf("log scale = [%v, %v], want [1, 1000]", s.lo, s.hi)
	}
	l := newScale([]float64{12, 87}, false, true)
	if l.lo != 0 || l.hi < 87 || l.frac(l.lo) != 0 || l.frac(l.hi) != 1 {
		t.Errorf("linear scale = %+v", l)
	}
}
