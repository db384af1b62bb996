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

	"github.com/cutover/cutover/bench/harness"
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
		Users:   []int{5, 10, 25, 175, 700, 2000, 5000},
		Points: []ChatPoint{
			point("legacy", 5, 6.5, 40, 0), point("legacy", 10, 7, 700, 0), point("legacy", 25, 7, 2500, 0.01),
			point("legacy", 175, 6, 9000, 0.2), point("legacy", 700, 6, 9500, 0.5),
			point("legacy", 2000, 5, 9900, 0.9), point("legacy", 5000, 4, 9990, 0.99),
			point("cutover-100", 175, 250, 3, 0), point("cutover-100", 700, 990, 8, 0),
			point("cutover-100", 2000, 2500, 320, 0), point("cutover-100", 5000, 2600, 2000, 0.01),
		},
	}
}

func TestComputeInstances(t *testing.T) {
	in := ComputeInstances(sampleChat())
	rows := map[string]InstanceRow{}
	for _, r := range in.Rows {
		if _, ok := rows[r.Config]; ok {
			t.Errorf("two rows for %s: only measured levels count, one row per configuration", r.Config)
		}
		rows[r.Config] = r
	}
	leg := rows["legacy"]
	if leg.Capacity != 5 || leg.FailsAt != 10 || leg.RPS != 6.5 || leg.InstancesAtLeast || !strings.HasPrefix(leg.Basis, "measured: passes at 5 users, fails at 10") {
		t.Errorf("legacy row = %+v, want 5 users measured, failing at 10", leg)
	}
	if want := []int{140, 400, 700}; !equal(leg.Instances, want) {
		t.Errorf("legacy instances = %v, want %v", leg.Instances, want)
	}
	// 5,000 users' best rate must not lift native above 700, the highest level that passes:
	// 2,000 fails.
	nat := rows["cutover-100"]
	if nat.Capacity != 700 || nat.FailsAt != 2000 || nat.RPS != 990 {
		t.Errorf("native row = %+v, want 700 users measured, failing at 2000", nat)
	}
	if want := []int{1, 3, 5}; !equal(nat.Instances, want) {
		t.Errorf("native instances = %v, want %v", nat.Instances, want)
	}
	if nat.RatioLegacyUsers != 140 || nat.RatioLegacyRPS != 990/6.5 {
		t.Errorf("native vs legacy capacity = %vx users, %vx rps; want 140x and %vx", nat.RatioLegacyUsers, nat.RatioLegacyRPS, 990/6.5)
	}
	if seed := rows["seed: Flask (as sold)"]; !equal(seed.Instances, []int{4, 12, 20}) {
		t.Errorf("seed Flask instances = %v, want [4 12 20]", seed.Instances)
	}

	c := sampleChat()
	c.Points[9] = point("cutover-100", 2000, 2500, 10, 0)
	c.Points[10] = point("cutover-100", 5000, 2600, 10, 0)
	if r := ComputeInstances(c).Rows[1]; r.Capacity != 5000 || r.FailsAt != 0 || !strings.HasPrefix(r.Basis, "at least") {
		t.Errorf("top level meeting the criterion: %+v, want capacity 5000 marked as a lower bound", r)
	}

	// A level passing above a failing one is not counted.
	c = sampleChat()
	c.Points[10] = point("cutover-100", 5000, 2600, 10, 0)
	if r := ComputeInstances(c).Rows[1]; r.Capacity != 700 || r.FailsAt != 2000 || !strings.Contains(r.Basis, "passes again at 5000") {
		t.Errorf("non-monotone levels: %+v, want 700 (2000 fails) with the later pass named", r)
	}

	// No level passes: capacity below the lowest level, instances as lower bounds, no ratios.
	c = sampleChat()
	c.Points[0] = point("legacy", 5, 6, 400, 0)
	in = ComputeInstances(c)
	leg, nat = in.Rows[0], in.Rows[1]
	if leg.Capacity != 0 || !leg.InstancesAtLeast || !equal(leg.Instances, []int{175, 500, 875}) || !strings.HasPrefix(leg.Basis, "none") {
		t.Errorf("legacy failing everywhere = %+v, want at least [175 500 875] instances (capacity at most 4)", leg)
	}
	if nat.RatioLegacyUsers != 0 {
		t.Errorf("a ratio to a legacy capacity that was not measured: %+v", nat)
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
			{Conns: 64, Target: "cutover", RPS: 22000, RatioNginx: 0.88, P99MS: 2.5},
		}, Fixed: []PTFixed{{Conns: 64, Target: "direct", RateRPS: 3200}, {Conns: 64, Target: "cutover", RateRPS: 3200, AddedP99MS: 0.4, Hey: harness.HeyResult{P99MS: 1.4}}}},
		Chat:   streamed(sampleChat()),
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
		"| native at 2,000 users: p95 within 50 ms of model latency | +320 ms | **missed** |",
		"| native at 5,000 users: p95 within 50 ms of model latency (issue 4) | +2000 ms | **missed** |",
		"| < 64 KiB per in-flight stream (1000 open) | 41.5 KiB | met |",
		"not measured: placeholder: not wired",
		"![chat_rps.svg](chat_rps.svg)",
		"| legacy direct (gunicorn sync) | 5 | 10 | measured: passes at 5 users, fails at 10 | 6 | – | 140 | 400 | 700 |",
		"| cutover 100% native | 700 | 2000 | measured: passes at 700 users, fails at 2000 | 990 | 140.00×, 152.31× | 1 (-99%) | 3 (-99%) | 5 (-99%) |",
		"| 5000 | cutover 100% native | 7 | 300 | 310 | 320 | 1300 | 1310 | 1320 |",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
	sum, err := os.ReadFile(filepath.Join(dir, "SUMMARY.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"![chat_rps.svg](bench/results/chat_rps.svg)", "| 64 | cutover | 22000 | 0.88× | – | – |\n", "## Goals",
		"| cutover | 0 | 0.00 | 0.00 | 1.40 | 0.00 | 0.40 | 0 | – |", "last event p50 ms",
		"cutover 100% native: cutover's breakers off"} {
		if !strings.Contains(string(sum), want) {
			t.Errorf("SUMMARY.md lacks %q", want)
		}
	}
	// wrk saturates every target: no added latency is derived from it, and a negative "added"
	// figure can never appear.
	for name, text := range map[string]string{"RESULTS.md": string(md), "SUMMARY.md": string(sum)} {
		for _, bad := range []string{"saturated (wrk)", "| added p50 | added p99 | proxy CPU", "Little's law"} {
			if strings.Contains(text, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
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

// streamed gives the native 5,000-user point stream timings, and records the breakers as off for
// the native points (to check the note that says so).
func streamed(c *Chat) *Chat {
	off := false
	for i := range c.Points {
		if c.Points[i].Config == "cutover-100" {
			c.Points[i].Fallback = &off
		}
	}
	p := &c.Points[len(c.Points)-1]
	p.Load.StreamFirst = load.Stats{Count: 7, P50MS: 300, P95MS: 310, P99MS: 320}
	p.Load.StreamLast = load.Stats{Count: 7, P50MS: 1300, P95MS: 1310, P99MS: 1320}
	return c
}

func TestReplaceBlock(t *testing.T) {
	readme := "# x\n\n## Benchmarks\nintro\n" + ReadmeBegin + "\nold table\n" + ReadmeEnd + "\n\n### Reading\nprose\n"
	got, err := ReplaceBlock(readme, "new table\n\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "# x\n\n## Benchmarks\nintro\n" + ReadmeBegin + "\nnew table\n" + ReadmeEnd + "\n\n### Reading\nprose\n"; got != want {
		t.Errorf("ReplaceBlock =\n%s\nwant\n%s", got, want)
	}
	if _, err := ReplaceBlock("# no markers\n", "x"); err == nil {
		t.Error("a README without the markers must be refused, not appended to")
	}
	if _, err := ReplaceBlock(readme+readme, "x"); err == nil {
		t.Error("two generated blocks must be refused")
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
