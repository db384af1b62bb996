// Package report holds the benchmark results model and renders it as JSON, a Markdown report and
// SVG plots. Every figure in the rendered report comes from a Results value written by a run.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cutover/cutover/bench/harness"
	"github.com/cutover/cutover/bench/load"
)

// Results is one run of the whole harness.
type Results struct {
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Quick    bool              `json:"quick"`
	Machine  Machine           `json:"machine"`
	Tools    map[string]string `json:"tools"`
	Settings Settings          `json:"settings"`

	Passthrough *Passthrough `json:"passthrough,omitempty"`
	Chat        *Chat        `json:"chat,omitempty"`
	Memory      *Memory      `json:"memory,omitempty"`
	Shadow      *Shadow      `json:"shadow,omitempty"`
	Instances   *Instances   `json:"instances,omitempty"`
	OpenLoop    *OpenLoop    `json:"open_loop,omitempty"`
	// Profiles are pprof files (relative to the results folder) taken during the run.
	Profiles []Profile `json:"profiles,omitempty"`
	// Notes are what the run could not do, or did differently, and why.
	Notes []string `json:"notes,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	Cores       int    `json:"cores"`
	CPUModel    string `json:"cpu_model"`
	MemTotalKiB int64  `json:"mem_total_kib"`
	Kernel      string `json:"kernel"`
	OpenFiles   uint64 `json:"open_files_limit"`
	// LoadStart and LoadEnd are /proc/loadavg at the start and the end of the run: a load well above
	// the core count means other work shared the machine and the figures are noisier.
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
}

// Settings are the knobs the run used.
type Settings struct {
	StubTTFTMS      float64 `json:"stub_ttft_ms"`
	StubTPS         float64 `json:"stub_tokens_per_second"`
	GunicornWorkers int     `json:"gunicorn_workers"`
	ChatUsers       []int   `json:"chat_users"`
	// ChatLowUsers are the extra levels below the legacy app's saturation, run for the
	// configurations that send traffic to legacy (legacy, cutover 0 % and 50 %).
	ChatLowUsers  []int   `json:"chat_low_users,omitempty"`
	ChatRampS     float64 `json:"chat_ramp_s"`
	ChatWindowS   float64 `json:"chat_window_s"`
	ChatTimeoutS  float64 `json:"chat_request_timeout_s"`
	WrkSeconds    float64 `json:"wrk_seconds"`
	WrkRounds     int     `json:"wrk_rounds"`
	FixedRateRPS  float64 `json:"fixed_rate_rps"`
	ShadowRateRPS float64 `json:"shadow_rate_rps,omitempty"`
	MemoryOpen    []int   `json:"memory_open"`
	MemoryStubTPS float64 `json:"memory_stub_tokens_per_second"`
	// Pinning is the run's core pinning (zero: nothing pinned) and PinnedScenarios the scenarios
	// that ran pinned (the others ran unpinned).
	Pinning         harness.Pinning `json:"pinning"`
	PinnedScenarios []string        `json:"pinned_scenarios,omitempty"`
	// OpenLoop* are the open-loop workload's settings.
	OpenLoopWindowS  float64 `json:"open_loop_window_s,omitempty"`
	OpenLoopPool     int     `json:"open_loop_pool,omitempty"`
	OpenLoopTimeoutS float64 `json:"open_loop_request_timeout_s,omitempty"`
}

// Profile is one pprof profile of cutover, saved in the results folder.
type Profile struct {
	Scenario string `json:"scenario"`
	Kind     string `json:"kind"` // cpu, heap, goroutine
	// File is the pprof file (gzipped protobuf, symbolized: `go tool pprof` reads it without the
	// binary); TopFile is `go tool pprof -top` of it as text, beside it.
	File    string `json:"file"`
	TopFile string `json:"top_file,omitempty"`
	// Top is the head of TopFile, so the report can quote the hot paths.
	Top string `json:"top,omitempty"`
}

// Passthrough is the reverse-proxy overhead comparison on a trivial upstream.
type Passthrough struct {
	// Pinning is where the processes ran: the proxy under test on ServerCPU, wrk, hey and the
	// upstream on RestCPU (zero: unpinned).
	Pinning harness.Pinning `json:"pinning"`
	Path    string          `json:"path"`
	Targets []string        `json:"targets"`
	Runs    []PTRun         `json:"runs"`
	Summary []PTSummary     `json:"summary"`
	// Fixed holds the medians over rounds of the fixed-rate runs; FixedRuns every run.
	Fixed     []PTFixed `json:"fixed_rate"`
	FixedRuns []PTFixed `json:"fixed_rate_runs"`
}

// PTRun is one wrk run of one target.
type PTRun struct {
	Round  int                      `json:"round"`
	Conns  int                      `json:"conns"`
	Target string                   `json:"target"`
	Wrk    harness.WrkResult        `json:"wrk"`
	CPU    map[string]harness.Usage `json:"procs"`
}

// PTSummary is the median over rounds of one target at one connection count, with ratios. wrk
// saturates every target, so its latencies are mostly queueing: no "added latency" is derived
// from them (the fixed-rate runs measure that).
type PTSummary struct {
	Conns        int     `json:"conns"`
	Target       string  `json:"target"`
	RPS          float64 `json:"rps"`
	RPSMin       float64 `json:"rps_min"`
	RPSMax       float64 `json:"rps_max"`
	P50MS        float64 `json:"p50_ms"`
	P99MS        float64 `json:"p99_ms"`
	Errors       int64   `json:"errors"`
	RatioDirect  float64 `json:"ratio_to_direct"`
	RatioNginx   float64 `json:"ratio_to_nginx"`
	RatioCaddy   float64 `json:"ratio_to_caddy,omitempty"`
	ProxyCPU     float64 `json:"proxy_cpu_cores"`
	ProxyPeakRSS int64   `json:"proxy_peak_rss_kib"`
	// CPUPerReqUS is each process's CPU time per request in microseconds (median over rounds):
	// "proxy" (the target's proxy), "upstream" and "wrk".
	CPUPerReqUS map[string]float64 `json:"cpu_us_per_request,omitempty"`
}

// PTFixed is a below-saturation run (fixed request rate), where latency is the hop's own cost.
type PTFixed struct {
	Round      int               `json:"round"`
	Conns      int               `json:"conns"`
	Target     string            `json:"target"`
	RateRPS    float64           `json:"rate_rps"`
	Hey        harness.HeyResult `json:"hey"`
	AddedP50MS float64           `json:"added_p50_ms"`
	AddedP99MS float64           `json:"added_p99_ms"`
	// CPU is each process's usage during one run ("proxy", "upstream", "hey"); CPUPerReqUS the
	// CPU time per request in microseconds (in the medians: median over rounds).
	CPU         map[string]harness.Usage `json:"procs,omitempty"`
	CPUPerReqUS map[string]float64       `json:"cpu_us_per_request,omitempty"`
}

// Chat is the chatbot workload matrix.
type Chat struct {
	Configs []string `json:"configs"`
	// Users is every level measured; Levels the levels of each configuration (not every
	// configuration runs every level).
	Users  []int            `json:"users"`
	Levels map[string][]int `json:"levels,omitempty"`
	Points []ChatPoint      `json:"points"`
}

// ChatPoint is one configuration at one user count.
type ChatPoint struct {
	// Fallback says whether cutover's breakers (and so breaker fallback between backends) were on.
	Fallback *bool                    `json:"fallback,omitempty"`
	Config   string                   `json:"config"`
	Users    int                      `json:"users"`
	Load     load.Result              `json:"load"`
	Procs    map[string]harness.Usage `json:"procs"`
	// RatioLegacy is this point's throughput over the legacy app's at the same user count (above
	// the legacy app's capacity this compares with a collapsed app: see Instances for capacity).
	RatioLegacy float64 `json:"ratio_to_legacy_rps"`
	// Efficiency is throughput over the theoretical rate (users / mean model latency).
	Efficiency float64 `json:"efficiency"`
	Error      string  `json:"error,omitempty"`
}

// Memory is resident memory per in-flight request.
type Memory struct {
	Target string     `json:"target"`
	Points []MemPoint `json:"points"`
}

// MemPoint is one hold run: Open requests kept in flight, the proxy's RSS before and during.
type MemPoint struct {
	Kind          string  `json:"kind"` // stream or chat
	Open          int     `json:"open"`
	Established   int     `json:"established_conns"`
	ClientOpen    int64   `json:"client_max_open"`
	IdleRSSKiB    int64   `json:"idle_rss_kib"`
	LoadedRSSKiB  int64   `json:"loaded_rss_kib"`
	PerRequestKiB float64 `json:"per_request_kib"`
	// Idle and Loaded are cutover's own account of its memory (its Go runtime metrics) at the two
	// RSS samples: what the RSS growth per request is made of.
	Idle   RuntimeMem  `json:"idle_runtime"`
	Loaded RuntimeMem  `json:"loaded_runtime"`
	Load   load.Result `json:"load"`
	Error  string      `json:"error,omitempty"`
}

// RuntimeMem is a Go process's memory as its runtime accounts for it (from its /metrics:
// go_memstats_heap_inuse_bytes, go_memstats_stack_inuse_bytes, go_goroutines). Zero when it could
// not be read.
type RuntimeMem struct {
	HeapInuseBytes  int64 `json:"heap_inuse_bytes"`
	StackInuseBytes int64 `json:"stack_inuse_bytes"`
	Goroutines      int64 `json:"goroutines"`
}

// Shadow is the shadowing overhead on the primary.
type Shadow struct {
	// Status is "measured", or says why nothing was measured (never a made-up figure).
	Status string `json:"status"`
	Route  string `json:"route,omitempty"`
	// Points are medians over rounds per setting; Runs every run.
	Points []ShadowPoint `json:"points,omitempty"`
	Runs   []ShadowPoint `json:"runs,omitempty"`
	// AddedP50MS and AddedP99MS compare 100 % shadowing with 0 % on the same route.
	AddedP50MS float64 `json:"added_p50_ms"`
	AddedP99MS float64 `json:"added_p99_ms"`
}

// ShadowPoint is one shadow setting.
type ShadowPoint struct {
	// Summary is cutover's GET /admin/shadow/summary at the end of the point (compared, matched,
	// skipped by reason, queue), kept raw.
	Summary json.RawMessage          `json:"shadow_summary,omitempty"`
	Name    string                   `json:"name"`
	Round   int                      `json:"round"`
	RatePct float64                  `json:"rate_pct"`
	Load    load.Result              `json:"load"`
	Procs   map[string]harness.Usage `json:"procs"`
	// Target says what the shadow side was: a recorded copy of the answer, live legacy, a dead port, or a stalled server that
	// accepts and never answers (so the shadow queue fills and drops).
	Target string `json:"target,omitempty"`
	// EndRSSKiB is cutover's RSS when the load ended (shadows may still be queued or stalled).
	EndRSSKiB int64  `json:"end_rss_kib,omitempty"`
	Error     string `json:"error,omitempty"`
	// CPUPerReqUS is each process's CPU time per primary request in microseconds ("cutover",
	// "legacy", "hey"), median over rounds (set on Points only).
	CPUPerReqUS map[string]float64 `json:"cpu_us_per_request,omitempty"`
}

// Instances is the capacity arithmetic.
type Instances struct {
	CriterionMS float64       `json:"criterion_p95_over_model_ms"`
	MaxErrRate  float64       `json:"max_error_rate"`
	For         []int         `json:"for_users"`
	Rows        []InstanceRow `json:"rows"`
}

// InstanceRow is one configuration's capacity and the instances it needs.
type InstanceRow struct {
	Config string `json:"config"`
	// Capacity is the highest measured level meeting the criterion (every lower level meeting it
	// too); 0 when even the lowest level fails.
	Capacity float64 `json:"capacity_users"`
	// FailsAt is the first measured level that fails (0: none failed, Capacity is a lower bound);
	// the true capacity lies in [Capacity, FailsAt). Lowest is the lowest level measured.
	FailsAt int `json:"fails_at_users,omitempty"`
	Lowest  int `json:"lowest_level,omitempty"`
	// Basis says how Capacity was found, in words.
	Basis string  `json:"basis"`
	RPS   float64 `json:"rps_at_capacity"`
	// RatioLegacyUsers and RatioLegacyRPS compare capacity and the rate there with the legacy
	// app's, both at their own highest passing level (0 when either has none).
	RatioLegacyUsers float64 `json:"ratio_to_legacy_capacity,omitempty"`
	RatioLegacyRPS   float64 `json:"ratio_to_legacy_rps_at_capacity,omitempty"`
	// Instances = ceil(users / Capacity); with InstancesAtLeast (no level passed) they are lower
	// bounds, from a capacity below the lowest level measured.
	Instances        []int `json:"instances"`
	InstancesAtLeast bool  `json:"instances_at_least,omitempty"`
	Seed             bool  `json:"seed,omitempty"`
}

// Write stores r as results.json in dir.
func Write(dir string, r *Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644)
}

// Read loads results.json from dir.
func Read(dir string) (*Results, error) {
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode results: %w", err)
	}
	return &r, nil
}
