package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Render writes RESULTS.md and the SVG plots for r into dir.
func Render(dir string, r *Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	plots := map[string]string{}
	addPlots(plots, r)
	// Plots of scenarios this run did not measure would describe another run: remove them.
	for _, name := range PlotNames {
		if _, ok := plots[name]; !ok {
			_ = os.Remove(filepath.Join(dir, name))
		}
	}
	for name, svg := range plots {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(svg), 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "RESULTS.md"), []byte(Markdown(r, plots)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "SUMMARY.md"), []byte(Summary(r, plots, "bench/results/")), 0o644)
}

// Summary renders the short form for the project README: goals, the key tables and the plots,
// with plot paths prefixed by prefix (relative to where the summary is pasted).
func Summary(r *Results, plots map[string]string, prefix string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := r.Machine
	mode := ""
	if r.Quick {
		mode = " (QUICK smoke run: indicative only)"
	}
	w("Measured by `make bench` on %s%s: %d cores, %.0f GiB RAM, everything (load generators, proxies, backends, stub, Redis) on the same machine. Full tables: [%sRESULTS.md](%sRESULTS.md); raw data: [results.json](%sresults.json).\n\n",
		r.Started.Format("2006-01-02"), mode, m.Cores, float64(m.MemTotalKiB)/1024/1024, prefix, prefix, prefix)
	w("%s\n\n", pinningLine(r.Settings))
	goals(&b, r)
	targets(&b, r)
	if pt := r.Passthrough; pt != nil && len(pt.Summary) > 0 {
		w("**Pass-through throughput** (trivial upstream, wrk saturating each target, medians of %s; latency under saturation is queueing, so it is not compared here; CPU µs per request of the proxy from `/proc`):\n\n| conns | target | rps | × nginx | × Caddy | proxy CPU µs/request |\n|---|---|---|---|---|---|\n", rounds(r.Settings.WrkRounds))
		for _, s := range pt.Summary {
			w("| %d | %s | %.0f | %s | %s | %s |\n", s.Conns, s.Target, s.RPS, ratio(s.RatioNginx), ratio(s.RatioCaddy), usOne(s.CPUPerReqUS, "proxy"))
		}
		w("\n")
		fixedTable(&b, r, "**Pass-through latency**")
	}
	if c := r.Chat; c != nil && len(c.Points) > 0 {
		w("**Chatbot workload** (70 %% /chat, 20 %% /chat/stream, 10 %% GET conversation; stub %.0f ms to first token, %.0f tokens/s; ✓ = meets the capacity criterion, p95 over model < %d ms and < 0.1 %% errors):\n\n", r.Settings.StubTTFTMS, r.Settings.StubTPS, criterionMS)
		w("| users | configuration | rps | × legacy (same users) | p50 ms | p95 ms | p95 over model ms | error rate | criterion |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, p := range c.Points {
			l := p.Load
			w("| %d | %s | %.0f | %s | %s | %s | %s | %.2f%% | %s |\n", p.Users, label(p.Config), l.RPS, ratio(p.RatioLegacy), ms(l.All.P50MS), ms(l.All.P95MS), ms(l.OverModel.P95MS), l.ErrorRate*100, tick(Meets(p)))
		}
		breakerNote(&b, c)
		w("\n\n")
		streamTable(&b, r)
	}
	instancesSection(&b, r)
	openLoopSection(&b, r, false)
	shadowTable(&b, r)
	for _, name := range PlotNames {
		if _, ok := plots[name]; ok {
			w("![%s](%s%s)\n", name, prefix, name)
		}
	}
	// The summary is pasted under a "## Benchmarks" heading: its sections go one level down.
	return strings.ReplaceAll(b.String(), "\n## ", "\n### ")
}

// rounds says "1 round" or "3 rounds".
func rounds(n int) string {
	if n == 1 {
		return "1 round"
	}
	return fmt.Sprintf("%d rounds", n)
}

// tick marks a point that meets the capacity criterion.
func tick(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

// fixedTable renders the below-saturation pass-through runs (the goal's measurement).
func fixedTable(b *strings.Builder, r *Results, title string) {
	pt := r.Passthrough
	if pt == nil || len(pt.Fixed) == 0 {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("%s below saturation (`hey`, 64 connections, %.0f rps in total, medians of %s), where latency is the hop's own cost rather than queueing; *added* is over direct:\n\n", title, pt.Fixed[0].RateRPS, rounds(r.Settings.WrkRounds))
	w("| target | achieved rps | p50 ms | p90 ms | p99 ms | added p50 ms | added p99 ms | errors | CPU µs/request (proxy, upstream, hey) |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, f := range pt.Fixed {
		a50, a99 := ms(f.AddedP50MS), ms(f.AddedP99MS)
		if f.Target == "direct" {
			a50, a99 = "–", "–"
		}
		w("| %s | %.0f | %s | %s | %s | %s | %s | %d | %s |\n", f.Target, f.Hey.RPS, ms(f.Hey.P50MS), ms(f.Hey.P90MS), ms(f.Hey.P99MS), a50, a99, f.Hey.Errors+f.Hey.Non200,
			usCell(f.CPUPerReqUS, map[string]string{"proxy": f.Target}))
	}
	w("\n")
}

// breakerNote says, per cutover configuration, whether its breakers (and so breaker fallback
// between backends) were on in the chat runs.
func breakerNote(b *strings.Builder, c *Chat) {
	var off, on, unknown []string
	for _, cfg := range c.Configs {
		if cfg == "legacy" {
			continue
		}
		for _, p := range c.Points {
			if p.Config != cfg {
				continue
			}
			switch {
			case p.Fallback == nil:
				unknown = append(unknown, label(cfg))
			case *p.Fallback:
				on = append(on, label(cfg))
			default:
				off = append(off, label(cfg))
			}
			break
		}
	}
	if len(off) > 0 {
		fmt.Fprintf(b, "%s: cutover's breakers off (`breaker.disabled` on every route and `legacy_breaker.disabled`), so the legacy app's failures reach the client as they would without cutover, never answered by the native side instead. ", strings.Join(off, ", "))
	}
	if len(on) > 0 {
		fmt.Fprintf(b, "%s: breakers on (the defaults). ", strings.Join(on, ", "))
	}
	if len(unknown) > 0 {
		fmt.Fprintf(b, "%s: this run predates the breaker setting being recorded; such runs had the default breakers on, so once the legacy app failed, its requests could be answered natively (0 %% was not a pure pass-through). ", strings.Join(unknown, ", "))
	}
}

// streamTable renders POST /chat/stream's time to the first and to the last (terminal) event.
func streamTable(b *strings.Builder, r *Results) {
	c := r.Chat
	if c == nil {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("**POST /chat/stream**: time to the first SSE event and to the last (the terminal `done` event), successful streams only:\n\n")
	w("| users | configuration | streams | first event p50 ms | first p95 | first p99 | last event p50 ms | last p95 | last p99 |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range c.Points {
		f, l := p.Load.StreamFirst, p.Load.StreamLast
		if f.Count == 0 && l.Count == 0 {
			w("| %d | %s | 0 | – | – | – | – | – | – |\n", p.Users, label(p.Config))
			continue
		}
		w("| %d | %s | %d | %s | %s | %s | %s | %s | %s |\n", p.Users, label(p.Config), l.Count,
			ms(f.P50MS), ms(f.P95MS), ms(f.P99MS), ms(l.P50MS), ms(l.P95MS), ms(l.P99MS))
	}
	w("\n")
}

func ms(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func ratio(v float64) string {
	if v == 0 || math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v)
}

func mib(kib int64) string { return fmt.Sprintf("%.0f", float64(kib)/1024) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// chatConfigLabel names chat configurations for people.
var chatConfigLabel = map[string]string{
	"legacy":      "legacy direct (gunicorn sync)",
	"cutover-0":   "cutover 0% native",
	"cutover-50":  "cutover 50% native",
	"cutover-100": "cutover 100% native",
}

func label(cfg string) string {
	if l, ok := chatConfigLabel[cfg]; ok {
		return l
	}
	return cfg
}

// Markdown renders the report; plots names the SVG files written beside it.
func Markdown(r *Results, plots map[string]string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# cutover benchmark results\n\n")
	mode := "full run"
	if r.Quick {
		mode = "QUICK smoke run (BENCH_QUICK=1): figures are indicative only"
	}
	w("Generated by `make bench` (bench/run.sh → benchctl run), %s, started %s, took %.0f s. Raw data: `results.json`.\n\n",
		mode, r.Started.Format("2006-01-02 15:04 UTC"), r.Finished.Sub(r.Started).Seconds())
	m := r.Machine
	w("**Machine**: %d cores (%s), %.1f GiB RAM, Linux %s, open-files limit %d. Load generators, proxies, backends and the stub share these cores. Load average (1, 5, 15 min) at start: %s; at end: %s.\n\n",
		m.Cores, m.CPUModel, float64(m.MemTotalKiB)/1024/1024, m.Kernel, m.OpenFiles, m.LoadStart, m.LoadEnd)
	keys := make([]string, 0, len(r.Tools))
	for k := range r.Tools {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var tools []string
	for _, k := range keys {
		tools = append(tools, fmt.Sprintf("%s %s", k, r.Tools[k]))
	}
	w("**Tools**: %s.\n\n", strings.Join(tools, "; "))
	w("%s\n\n", pinningLine(r.Settings))

	goals(&b, r)
	targets(&b, r)
	passthroughSection(&b, r, plots)
	chatSection(&b, r, plots)
	memorySection(&b, r)
	shadowSection(&b, r)
	instancesSection(&b, r)
	openLoopSection(&b, r, true)
	if len(r.Profiles) > 0 {
		w("## Profiles\n\n")
		w("pprof profiles of cutover (its admin listener serves `/debug/pprof/` with `admin.pprof: true`), saved in this folder with `go tool pprof -top` of each beside it (`*.top.txt`). They are symbolized, so from this folder `go tool pprof -top FILE` (or `go tool pprof -http=127.0.0.1:0 FILE`) reads them without the binary. The head of each:\n\n")
		for _, p := range r.Profiles {
			top := ""
			if p.TopFile != "" {
				top = fmt.Sprintf(", top: `%s`", p.TopFile)
			}
			if !strings.HasSuffix(p.File, ".pprof") {
				top = " (text from an earlier harness, not a pprof profile)"
			}
			w("`%s` (%s profile of cutover during %s%s):\n\n```\n%s\n```\n\n", p.File, p.Kind, p.Scenario, top, headLines(p.Top, 22))
		}
	}
	if len(r.Notes) > 0 {
		w("## Notes from the run\n\n")
		for _, n := range r.Notes {
			w("- %s\n", n)
		}
		w("\n")
	}
	return b.String()
}

// headLines keeps the first n lines of s.
func headLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return strings.Join(lines, "\n")
}

func findPT(r *Results, conns int, target string) (PTSummary, bool) {
	if r.Passthrough == nil {
		return PTSummary{}, false
	}
	for _, s := range r.Passthrough.Summary {
		if s.Conns == conns && s.Target == target {
			return s, true
		}
	}
	return PTSummary{}, false
}

func findChat(r *Results, cfg string, users int) (ChatPoint, bool) {
	if r.Chat == nil {
		return ChatPoint{}, false
	}
	for _, p := range r.Chat.Points {
		if p.Config == cfg && p.Users == users {
			return p, true
		}
	}
	return ChatPoint{}, false
}

func goals(b *strings.Builder, r *Results) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("## Goals\n\n| goal | measured | verdict |\n|---|---|---|\n")
	if s, ok := findPT(r, 64, "cutover"); ok {
		w("| pass-through ≥ 0.8× nginx throughput (64 conns) | %s | %s |\n", ratio(s.RatioNginx), verdict(s.RatioNginx >= 0.8))
		if s512, ok := findPT(r, 512, "cutover"); ok {
			w("| pass-through ≥ 0.8× nginx throughput (512 conns) | %s | %s |\n", ratio(s512.RatioNginx), verdict(s512.RatioNginx >= 0.8))
		}
		if r.Passthrough != nil {
			for _, f := range r.Passthrough.Fixed {
				if f.Target == "cutover" {
					w("| pass-through p99 added < 1 ms at 64 conns (fixed %.0f rps, below saturation) | %s ms | %s |\n", f.RateRPS, ms(f.AddedP99MS), verdict(f.AddedP99MS < 1))
				}
			}
		}
	} else {
		w("| pass-through vs nginx | not measured (cutover missing) | – |\n")
	}
	if p, ok := findChat(r, "cutover-100", 2000); ok {
		w("| native at 2,000 users: ≥ 85%% of theoretical rate | %.0f%% (%.0f of %.0f rps) | %s |\n", p.Efficiency*100, p.Load.RPS, p.Load.TheoreticalRPS, verdict(p.Efficiency >= 0.85))
		w("| native at 2,000 users: p95 within 50 ms of model latency | +%s ms | %s |\n", ms(p.Load.OverModel.P95MS), verdict(p.Load.OverModel.P95MS <= 50))
		w("| native at 2,000 users: zero errors | %d errors | %s |\n", p.Load.Errors, verdict(p.Load.Errors == 0))
	} else {
		w("| native at 2,000 users | not measured | – |\n")
	}
	if p, ok := findChat(r, "cutover-100", 5000); ok {
		w("| native at 5,000 users: zero errors | %d errors | %s |\n", p.Load.Errors, verdict(p.Load.Errors == 0 && p.Error == ""))
		w("| native at 5,000 users: p95 within 50 ms of model latency (issue 4) | +%s ms | %s |\n", ms(p.Load.OverModel.P95MS), verdict(p.Load.OverModel.P95MS <= 50 && p.Error == ""))
	} else {
		w("| native at 5,000 users | not measured | – |\n")
	}
	if r.Memory != nil {
		for _, mp := range r.Memory.Points {
			if mp.Error == "" {
				w("| < 64 KiB per in-flight %s (%d open) | %.1f KiB | %s |\n", mp.Kind, mp.Open, mp.PerRequestKiB, verdict(mp.PerRequestKiB < 64))
			} else {
				w("| < 64 KiB per in-flight %s (%d open) | not measured: %s | – |\n", mp.Kind, mp.Open, mp.Error)
			}
		}
	}
	if r.Shadow != nil {
		if r.Shadow.Status == "measured" {
			w("| shadowing 100%% adds < 1 ms at p99 | %s ms | %s |\n", ms(r.Shadow.AddedP99MS), verdict(r.Shadow.AddedP99MS < 1))
		} else {
			w("| shadowing 100%% adds < 1 ms at p99 | not measured: %s | – |\n", r.Shadow.Status)
		}
	}
	w("\n")
}

func passthroughSection(b *strings.Builder, r *Results, plots map[string]string) {
	pt := r.Passthrough
	if pt == nil {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("## Pass-through overhead (trivial upstream)\n\n")
	w("`wrk -t2` against `GET %s` for %.0f s per run, %s in rotating order, medians shown. The upstream is a tiny Go server with a fixed 16-byte JSON body; nginx, haproxy and Caddy (Debian's, from a generated JSON config: `reverse_proxy` with a keep-alive pool, admin endpoint off, no access log) keep upstream connections alive and add X-Forwarded-For like cutover; go-reverseproxy is the floor under cutover's legacy path, net/http's server and one `httputil.ReverseProxy` with the same keep-alive pool and cutover's default GC setting (GOGC 400) and nothing else, so cutover's distance to it is what cutover adds per request; cutover runs with the chatbot route table at 0 %% native (the path matches `get_conversation`), access log off like the others. wrk saturates every target, so its latencies are mostly queueing in front of a busy CPU: they are listed as measured, and the latency each proxy adds is taken from the fixed-rate runs below instead.\n\n",
		pt.Path, r.Settings.WrkSeconds, rounds(r.Settings.WrkRounds))
	w("%s CPU µs per request are each process's user + system time from `/proc` (the proxy's and the upstream's process trees, sampled before and after each run; wrk's from the kernel's account of the exited process) over the requests of the run, medians over rounds.\n\n", pinnedNote(pt.Pinning))
	w("| conns | target | rps (median) | rps range over rounds | × direct | × nginx | × Caddy | p50 ms (saturated) | p99 ms (saturated) | proxy CPU (cores) | proxy peak RSS MiB | CPU µs/request (proxy, upstream, wrk) | errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range pt.Summary {
		cpu, rss := "–", "–"
		if s.Target != "direct" {
			cpu, rss = fmt.Sprintf("%.2f", s.ProxyCPU), mib(s.ProxyPeakRSS)
		}
		w("| %d | %s | %.0f | %.0f–%.0f | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", s.Conns, s.Target, s.RPS, s.RPSMin, s.RPSMax, ratio(s.RatioDirect), ratio(s.RatioNginx), ratio(s.RatioCaddy),
			ms(s.P50MS), ms(s.P99MS), cpu, rss, usCell(s.CPUPerReqUS, map[string]string{"proxy": s.Target}), s.Errors)
	}
	w("\n")
	fixedTable(b, r, "Latency")
	for _, name := range []string{"passthrough_rps.svg", "passthrough_latency.svg"} {
		if _, ok := plots[name]; ok {
			w("![%s](%s)\n", name, name)
		}
	}
	w("\n")
}

func chatSection(b *strings.Builder, r *Results, plots map[string]string) {
	c := r.Chat
	if c == nil {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	s := r.Settings
	w("## Chatbot workload\n\n")
	w("Closed loop: each user sends its next request as soon as the last one finished (no think time), with its own conversation id and `X-User-Id`; mix 70 %% `POST /chat`, 20 %% `POST /chat/stream`, 10 %% `GET /conversations/<id>`. Stub: time to first token %.0f ms, %.0f tokens/s (replies of 14–46 tokens), so the model latency of each answer is known exactly from its token count; *over model* is latency minus that. Users start over %.0f s, then a %.0f s window is measured; request timeout %.0f s (a timeout is an error; requests still in flight when the window closes are *unfinished*, not errors). Legacy runs under gunicorn with %d sync workers (2 × cores + 1, as deployed). Redis is flushed between points. Theoretical rate = users / mean model latency (GETs count 0). Latency columns cover every successful request (a stream until its last event).\n\n",
		s.StubTTFTMS, s.StubTPS, s.ChatRampS, s.ChatWindowS, s.ChatTimeoutS, s.GunicornWorkers)
	w("CPU µs per request: each process tree's user + system time from `/proc` over the window (the load generator's from its own getrusage at the window's edges), divided by the requests completed in it.\n\n")
	w("| users | configuration | rps | theoretical | efficiency | × legacy | p50 ms | p95 ms | p99 ms | p95 over model | criterion | stream first event p95 | errors | error rate | unfinished | CPU cores (process) | CPU µs/request (process) | peak RSS MiB (process) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range c.Points {
		l := p.Load
		var cpu, rss []string
		names := make([]string, 0, len(p.Procs))
		for n := range p.Procs {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			u := p.Procs[n]
			cpu = append(cpu, fmt.Sprintf("%s %.2f", n, u.CPUCores))
			rss = append(rss, fmt.Sprintf("%s %s", n, mib(u.PeakRSSKiB)))
		}
		errs := fmt.Sprintf("%d", l.Errors)
		if len(l.Kinds) > 0 {
			var ks []string
			for k, v := range l.Kinds {
				ks = append(ks, fmt.Sprintf("%s %d", k, v))
			}
			slices.Sort(ks)
			errs += " (" + strings.Join(ks, ", ") + ")"
		}
		if p.Error != "" {
			errs += " run error: " + p.Error
		}
		w("| %d | %s | %.0f | %.0f | %.0f%% | %s | %s | %s | %s | %s | %s | %s | %s | %.2f%% | %d | %s | %s | %s |\n",
			p.Users, label(p.Config), l.RPS, l.TheoreticalRPS, p.Efficiency*100, ratio(p.RatioLegacy),
			ms(l.All.P50MS), ms(l.All.P95MS), ms(l.All.P99MS), ms(l.OverModel.P95MS), tick(Meets(p)), ms(l.StreamFirst.P95MS),
			errs, l.ErrorRate*100, l.Unfinished, strings.Join(cpu, ", "), usCell(perRequest(p.Procs, l.OK), nil), strings.Join(rss, ", "))
	}
	w("\n*× legacy* compares throughput with the legacy app at the same number of users; above the legacy app's capacity that is a collapsed app (most requests time out), so compare capacities in the instance arithmetic below. ")
	breakerNote(b, c)
	w("\n\n")
	streamTable(b, r)
	for _, name := range []string{"chat_rps.svg", "chat_p95.svg", "chat_p50_p99.svg", "chat_stream_first_event.svg"} {
		if _, ok := plots[name]; ok {
			w("![%s](%s)\n", name, name)
		}
	}
	w("\n")
}

func memorySection(b *strings.Builder, r *Results) {
	mem := r.Memory
	if mem == nil {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("## Memory per in-flight request (%s)\n\n", mem.Target)
	w("Each user keeps one request open (stub at %.0f tokens/s, so answers take 14–46 s); cutover's RSS is sampled once every request is in flight and compared with its RSS just before the load. Established connections are counted on cutover's traffic port. No CPU per request is given here: the requests are held open, not completed, so there is nothing to divide by.\n\n", r.Settings.MemoryStubTPS)
	w("The last three columns are cutover's own account of the growth (its Go runtime's metrics at the two samples, per request in flight): heap in use (live objects and garbage not yet collected), goroutine stacks, and goroutines.\n\n")
	w("| kind | in flight (target) | established conns | client saw open | idle RSS MiB | loaded RSS MiB | per request KiB | heap KiB/request | stacks KiB/request | goroutines/request |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range mem.Points {
		if p.Error != "" {
			w("| %s | %d | – | – | – | – | failed: %s | – | – | – |\n", p.Kind, p.Open, p.Error)
			continue
		}
		heap, stacks, gs := "–", "–", "–"
		if p.Loaded.Goroutines > 0 && p.Open > 0 {
			n := float64(p.Open)
			heap = fmt.Sprintf("%.1f", float64(p.Loaded.HeapInuseBytes-p.Idle.HeapInuseBytes)/1024/n)
			stacks = fmt.Sprintf("%.1f", float64(p.Loaded.StackInuseBytes-p.Idle.StackInuseBytes)/1024/n)
			gs = fmt.Sprintf("%.1f", float64(p.Loaded.Goroutines-p.Idle.Goroutines)/n)
		}
		w("| %s | %d | %d | %d | %s | %s | %.1f | %s | %s | %s |\n", p.Kind, p.Open, p.Established, p.ClientOpen, mib(p.IdleRSSKiB), mib(p.LoadedRSSKiB), p.PerRequestKiB, heap, stacks, gs)
	}
	w("\n")
}

func shadowSection(b *strings.Builder, r *Results) {
	sh := r.Shadow
	if sh == nil {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("## Shadow overhead\n\n")
	if sh.Status != "measured" {
		w("Not measured: %s. No figure is reported until the harness can measure it.\n\n", sh.Status)
	}
	if len(sh.Points) == 0 {
		return
	}
	w("Route `%s`, served natively at a fixed rate (`hey`, 16 connections, %s); its shadow goes to a recorded copy of the primary's answer (a small Go server on the rest core: every shadow is sent, read and compared, and matches, so the figure is cutover's own cost), the live legacy app (gunicorn, slower than the primary, sharing the rest core with the load generator in a pinned run, so it slows the generator too: shown, not judged), a dead port (connection refused), or a stalled server that accepts connections and never answers, so every shadow worker waits for the shadow timeout and the bounded queue fills and drops. Primary latency as the client sees it, medians over rounds in rotating order; peak RSS is the highest of the rounds, end RSS cutover's RSS when the load stopped (last round); shadows compared, shadow errors and dropped/skipped (by reason) are from cutover's `/admin/shadow/summary` after the last round:\n\n", sh.Route, rate(r.Settings.ShadowRateRPS))
	shadowRows(b, sh, true)
	if sh.Status == "measured" {
		w("\nShadowing 100 %% (to the recorded copy) vs 0 %%: p50 %+.2f ms, p99 %+.2f ms.\n", sh.AddedP50MS, sh.AddedP99MS)
	}
	for _, p := range sh.Points {
		if len(p.Summary) > 0 {
			w("\ncutover's `/admin/shadow/summary` after \"%s\" (last round): `%s`\n", p.Name, compactJSON(p.Summary))
		}
	}
	w("\n")
}

// rate names a fixed request rate, if the run recorded it.
func rate(rps float64) string {
	if rps <= 0 {
		return "rate as in the runs below"
	}
	return fmt.Sprintf("%.0f rps", rps)
}

// shadowTable is the short shadow table for the summary.
func shadowTable(b *strings.Builder, r *Results) {
	sh := r.Shadow
	if sh == nil || len(sh.Points) == 0 || sh.Status != "measured" {
		return
	}
	fmt.Fprintf(b, "**Shadowing** (`%s` served natively at a fixed rate, 16 connections; medians over rounds; shadows compared and dropped/skipped are from the last round, by reason: `queue_full` is the bounded queue refusing work while every worker waits on a stalled side):\n\n", sh.Route)
	shadowRows(b, sh, false)
	b.WriteString("\n")
}

// shadowRows renders one row per shadow setting.
func shadowRows(b *strings.Builder, sh *Shadow, full bool) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	if full {
		w("| setting | rps | p50 ms | p95 ms | p99 ms | p99 added ms | errors | shadows compared | shadow errors | dropped / skipped (reason) | cutover CPU cores | CPU µs/request (process) | cutover peak RSS MiB | cutover end RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	} else {
		w("| setting | p50 ms | p99 ms | p99 added ms | errors | shadows compared | shadow errors | dropped / skipped | cutover peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|\n")
	}
	base := sh.Points[0].Load.Get.P99MS
	for i, p := range sh.Points {
		u := p.Procs["cutover"]
		extra := ""
		if p.Error != "" {
			extra = " (" + p.Error + ")"
		}
		added := "–"
		if i > 0 {
			added = fmt.Sprintf("%+.2f", p.Load.Get.P99MS-base)
		}
		sum := shadowCounts(p.Summary)
		if full {
			w("| %s%s | %.0f | %s | %s | %s | %s | %d | %d | %d | %s | %.2f | %s | %s | %s |\n", p.Name, extra, p.Load.RPS, ms(p.Load.Get.P50MS), ms(p.Load.Get.P95MS), ms(p.Load.Get.P99MS), added,
				p.Load.Errors, sum.Compared, sum.Errors, skips(sum.Skipped), u.CPUCores, usCell(p.CPUPerReqUS, nil), mib(u.PeakRSSKiB), mibOr(p.EndRSSKiB))
		} else {
			w("| %s%s | %s | %s | %s | %d | %d | %d | %s | %s |\n", p.Name, extra, ms(p.Load.Get.P50MS), ms(p.Load.Get.P99MS), added, p.Load.Errors, sum.Compared, sum.Errors, skips(sum.Skipped), mib(u.PeakRSSKiB))
		}
	}
}

// shadowSummary is the part of cutover's /admin/shadow/summary the report reads.
type shadowSummary struct {
	Compared int64            `json:"compared"`
	Errors   int64            `json:"errors"`
	Skipped  map[string]int64 `json:"skipped"`
}

// shadowCounts adds up the routes of a raw /admin/shadow/summary (the last round of a setting).
func shadowCounts(raw json.RawMessage) shadowSummary {
	var doc struct {
		Routes []shadowSummary `json:"routes"`
	}
	var out shadowSummary
	if json.Unmarshal(raw, &doc) != nil {
		return out
	}
	for _, r := range doc.Routes {
		out.Compared += r.Compared
		out.Errors += r.Errors
		for k, v := range r.Skipped {
			if out.Skipped == nil {
				out.Skipped = map[string]int64{}
			}
			out.Skipped[k] += v
		}
	}
	return out
}

// skips renders skip counts by reason, leaving out "not_sampled" (the 0 % setting's every request).
func skips(m map[string]int64) string {
	var parts []string
	for k, v := range m {
		if k != "not_sampled" && v > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", v, k))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func mibOr(kib int64) string {
	if kib <= 0 {
		return "–"
	}
	return mib(kib)
}

// chatInstance names the instance the chat matrix measured: the one pinned core of the process
// under test when the chat scenario ran pinned, else the whole machine.
func chatInstance(r *Results) string {
	if r.Settings.Pinning.Enabled && slices.Contains(r.Settings.PinnedScenarios, "chat") {
		return "1-core (pinned)"
	}
	return fmt.Sprintf("%d-core", r.Machine.Cores)
}

func instancesSection(b *strings.Builder, r *Results) {
	in := r.Instances
	if in == nil {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("## Instance arithmetic\n\n")
	w("Capacity per %s instance = the highest measured number of concurrent users (closed loop, no think time) at which p95 over model latency stays under %.0f ms with under %.1f %% errors, every lower level passing too; the first level that fails bounds it from above, so the true capacity lies between the two. Nothing is extrapolated beyond the levels measured. Instances = ⌈users / capacity⌉ (≥ when even the lowest level failed). The seed's figures are listed for comparison; its \"175 users\" for Flask was not measured the same way (real users think between messages), so compare rows of this run with each other.\n\n",
		chatInstance(r), in.CriterionMS, in.MaxErrRate*100)
	w("| configuration | users per instance | first failing level | basis | rps there | × legacy (users, rps) |")
	for _, u := range in.For {
		w(" instances for %d |", u)
	}
	w("\n|---|---|---|---|---|---|")
	for range in.For {
		w("---|")
	}
	w("\n")
	var legacy *InstanceRow
	for i, row := range in.Rows {
		if row.Config == "legacy" && !row.InstancesAtLeast {
			legacy = &in.Rows[i]
		}
	}
	for _, row := range in.Rows {
		rps, fails, capStr := "–", "–", fmt.Sprintf("%.0f", row.Capacity)
		if row.RPS > 0 {
			rps = fmt.Sprintf("%.0f", row.RPS)
		}
		if row.FailsAt > 0 {
			fails = fmt.Sprintf("%d", row.FailsAt)
		}
		switch {
		case row.Seed:
			fails = "–"
		case row.Capacity == 0:
			capStr = fmt.Sprintf("< %d", row.Lowest)
		case row.FailsAt == 0:
			capStr = "≥ " + capStr
		}
		vs := "–"
		if row.RatioLegacyUsers > 0 {
			vs = fmt.Sprintf("%s, %s", ratio(row.RatioLegacyUsers), ratio(row.RatioLegacyRPS))
		}
		w("| %s | %s | %s | %s | %s | %s |", label(row.Config), capStr, fails, row.Basis, rps, vs)
		for i, n := range row.Instances {
			cell := "–"
			if n > 0 {
				cell = fmt.Sprintf("%d", n)
				if row.InstancesAtLeast {
					cell = "≥ " + cell
				}
				if legacy != nil && legacy.Instances[i] > 0 && !row.Seed && row.Config != "legacy" && !row.InstancesAtLeast {
					cell += fmt.Sprintf(" (%+.0f%%)", (float64(n)/float64(legacy.Instances[i])-1)*100)
				}
			}
			w(" %s |", cell)
		}
		w("\n")
	}
	if legacy != nil {
		w("\nPercentages compare with the legacy app measured in the same run (the seed's goal is −60 to −75 %%).\n\n")
	} else {
		w("\nNo legacy level met the criterion, so no reduction in instances is computed.\n\n")
	}
}

// compactJSON renders raw JSON on one line, cut to a readable length.
func compactJSON(raw []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return "(invalid JSON)"
	}
	s := buf.String()
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}
