package main

import (
	"errors"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/bench/harness"
	"github.com/cutover/cutover/bench/report"
	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/internal/testenv"
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
	if c.P50MS != 3.1 || c.P99MS != 8.1 {
		t.Errorf("cutover latency p50 %v p99 %v, want the medians 3.1 and 8.1 ms", c.P50MS, c.P99MS)
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

func TestCutoverConfigParses(t *testing.T) {
	routes := map[string]routeShare{"chat": {NativePct: 50}, "get_conversation": {NativePct: 100, ShadowPct: 100}}
	tests := []struct {
		name       string
		noFallback bool
		redisURL   string // empty: the pass-through configuration, with no native backend wired
	}{{"breakers on", false, "redis://127.0.0.1:2/0"}, {"no fallback", true, "redis://127.0.0.1:2/0"}, {"pass-through", false, ""}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := cutoverConfig(cutoverOpts{Name: "t", LegacyURL: "http://127.0.0.1:1", RedisURL: tt.redisURL,
				StubURL: "http://127.0.0.1:3", Routes: routes, NoFallback: tt.noFallback}, 4, 5, "/tmp/bench")
			c, err := config.Parse([]byte(y), nil)
			if err != nil {
				t.Fatalf("config rejected: %v\n%s", err, y)
			}
			// cutover serve refuses to start without a session secret, whatever the shares.
			if c.Native.SecretKey != benchSecret {
				t.Errorf("native.secret_key = %q, want the bench secret: serve would refuse the config", c.Native.SecretKey)
			}
			if c.Native.RedisURL != tt.redisURL && tt.redisURL != "" {
				t.Errorf("native.redis_url = %q, want %q", c.Native.RedisURL, tt.redisURL)
			}
			if !c.Admin.Pprof {
				t.Error("admin.pprof is off: the harness could not profile cutover")
			}
			if len(c.Routes) != len(testenv.LegacyRoutes) {
				t.Fatalf("%d routes, want the legacy app's %d", len(c.Routes), len(testenv.LegacyRoutes))
			}
			if chat, conv := c.Route("chat"), c.Route("get_conversation"); chat.Share != 5000 || conv.Share != 10000 || conv.Shadow.Rate != 10000 || c.Route("models").Share != 0 {
				t.Errorf("shares not as given: chat %d bp, get_conversation %d bp shadow %d bp", chat.Share, conv.Share, conv.Shadow.Rate)
			}
			for _, r := range c.Routes {
				if r.Breaker.Disabled != tt.noFallback {
					t.Errorf("route %s: breaker.disabled = %v, want %v", r.Name, r.Breaker.Disabled, tt.noFallback)
				}
			}
			if c.LegacyBreaker.Disabled != tt.noFallback {
				t.Errorf("legacy_breaker.disabled = %v, want %v", c.LegacyBreaker.Disabled, tt.noFallback)
			}
			if want := "/tmp/bench/t-diffs.jsonl"; c.Shadow.Store.JSONLPath != want {
				t.Errorf("shadow.store.jsonl_path = %q, want %q (not the working directory)", c.Shadow.Store.JSONLPath, want)
			}
		})
	}
}

func TestChatLevels(t *testing.T) {
	levels, all := chatLevels([]string{"legacy", "cutover-0", "cutover-100"}, []int{175, 700}, []int{50, 5, 175})
	if want := []int{5, 50, 175, 700}; !slices.Equal(levels["legacy"], want) || !slices.Equal(levels["cutover-0"], want) {
		t.Errorf("legacy levels = %v, cutover-0 %v; want %v (low levels added, sorted, no duplicates)", levels["legacy"], levels["cutover-0"], want)
	}
	if want := []int{175, 700}; !slices.Equal(levels["cutover-100"], want) {
		t.Errorf("native levels = %v, want only the seed's %v", levels["cutover-100"], want)
	}
	if want := []int{5, 50, 175, 700}; !slices.Equal(all, want) {
		t.Errorf("all levels = %v, want %v", all, want)
	}
}

func TestStallServerAcceptsAndNeverAnswers(t *testing.T) {
	s, err := startStall()
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 300 * time.Millisecond}
	_, err = client.Get(s.URL() + "/conversations/x")
	var nerr net.Error
	if !errors.As(err, &nerr) || !nerr.Timeout() {
		t.Errorf("GET to the stalled server = %v, want a client timeout (accepted, never answered)", err)
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL(), "http://"))
	if err != nil {
		t.Fatalf("the stalled server refuses connections: %v", err)
	}
	defer c.Close()
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return with a connection held open")
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.As(err, &nerr) && nerr.Timeout() {
		t.Errorf("read after Close = %v, want the connection closed by the server", err)
	}
}

func TestRemoveStaleProfiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"cpu-x.pprof", "cpu-x.top.txt", "profile-chat-native-u2000.txt", "results.json", "RESULTS.md"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removeStaleProfiles(dir)
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 2 {
		t.Errorf("left %v, want results.json and RESULTS.md only", left)
	}
}

func TestSearchRates(t *testing.T) {
	tests := []struct {
		name    string
		plan    stepPlan
		capRate float64 // the target passes below or at this rate
		genAt   float64 // the generator tops out at this rate (0: never)
		want    []float64
	}{
		{"doubles then bisects", stepPlan{start: 100, max: 6400, refine: 3}, 1000, 0, []float64{100, 200, 400, 800, 1600, 1200, 1000, 1100}},
		{"every step passes up to max", stepPlan{start: 100, max: 400, refine: 3}, 1e9, 0, []float64{100, 200, 400}},
		{"the first step fails: bisect below it", stepPlan{start: 1, max: 64, refine: 2}, 0.3, 0, []float64{1, 0.5, 0.3}},
		{"a generator-bound step bounds the search: bisect below it", stepPlan{start: 100, max: 6400, refine: 3}, 1e9, 1000, []float64{100, 200, 400, 800, 1600, 1200, 1000, 900}},
		{"the target fails below where the generator tops out", stepPlan{start: 100, max: 6400, refine: 3}, 1000, 1500, []float64{100, 200, 400, 800, 1600, 1200, 1000, 1100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := searchRates(tt.plan, func(rate float64) (stepOutcome, error) {
				switch {
				case tt.genAt > 0 && rate >= tt.genAt:
					return stepGeneratorBound, nil
				case rate <= tt.capRate:
					return stepPass, nil
				}
				return stepFail, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("rates = %v, want %v", got, tt.want)
			}
		})
	}
	stop := errors.New("interrupted")
	got, err := searchRates(stepPlan{start: 1, max: 8, refine: 1}, func(float64) (stepOutcome, error) { return stepPass, stop })
	if !errors.Is(err, stop) || !slices.Equal(got, []float64{1}) {
		t.Errorf("searchRates on an error = %v, %v; want it to stop at once", got, err)
	}
}

func TestRoundRate(t *testing.T) {
	for give, want := range map[float64]float64{0.75: 0.8, 1.5: 1.5, 1200: 1200, 1234: 1200, 150: 150, 3.14159: 3.1, 6000: 6000, 2450: 2500} {
		if got := roundRate(give); got != want {
			t.Errorf("roundRate(%v) = %v, want %v", give, got, want)
		}
	}
}

func TestStepWindow(t *testing.T) {
	tests := []struct {
		rate float64
		want time.Duration
	}{
		{1000, 15 * time.Second}, // plenty of arrivals in the base window
		{4, 25 * time.Second},    // 100 arrivals at 4 rps
		{1, 60 * time.Second},    // capped at 4 × base
		{0.5, 60 * time.Second},
	}
	for _, tt := range tests {
		if got := stepWindow(tt.rate, 15*time.Second, 100); got != tt.want {
			t.Errorf("stepWindow(%v) = %v, want %v", tt.rate, got, tt.want)
		}
	}
}
