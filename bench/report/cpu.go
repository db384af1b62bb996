package report

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cutover/cutover/bench/harness"
)

// perRequest is each process's CPU time per request in microseconds, from a window's usage and
// the requests completed in it.
func perRequest(procs map[string]harness.Usage, requests int64) map[string]float64 {
	if len(procs) == 0 || requests <= 0 {
		return nil
	}
	out := make(map[string]float64, len(procs))
	for name, u := range procs {
		out[name] = u.MicrosPer(requests)
	}
	return out
}

// perRequestAtRate is each process's CPU time per request in microseconds when requests arrive
// at rate per second and the process used CPUCores on average meanwhile (an open loop's sampling
// outlasts its window at the same rate).
func perRequestAtRate(procs map[string]harness.Usage, rate float64) map[string]float64 {
	if len(procs) == 0 || rate <= 0 {
		return nil
	}
	out := make(map[string]float64, len(procs))
	for name, u := range procs {
		out[name] = u.CPUCores * 1e6 / rate
	}
	return out
}

// usCell renders per-request CPU figures as "cutover 46, stub 12" in name order, renaming keys
// found in rename (e.g. "proxy" → "nginx"); "–" for none.
func usCell(us map[string]float64, rename map[string]string) string {
	if len(us) == 0 {
		return "–"
	}
	names := make([]string, 0, len(us))
	for n := range us {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		label := n
		if r, ok := rename[n]; ok {
			label = r
		}
		parts = append(parts, fmt.Sprintf("%s %s", label, usFigure(us[n])))
	}
	return strings.Join(parts, ", ")
}

// usFigure renders microseconds with sensible precision.
func usFigure(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// usOne renders one process's figure, "–" when absent.
func usOne(us map[string]float64, name string) string {
	v, ok := us[name]
	if !ok {
		return "–"
	}
	return usFigure(v)
}

// pinningLine says where processes ran, for the head of the report.
func pinningLine(s Settings) string {
	p := s.Pinning
	if !p.Enabled {
		return "**Core pinning**: none (every process may run on every core; `BENCH_PIN=0`, or the machine could not pin)."
	}
	scen := "no scenario"
	if len(s.PinnedScenarios) > 0 {
		scen = strings.Join(s.PinnedScenarios, ", ")
	}
	return fmt.Sprintf("**Core pinning** (`taskset`) in %s: the process under test (cutover; nginx, haproxy or Caddy in the pass-through comparison, one loaded at a time; the legacy app when it is measured directly) on core %d with GOMAXPROCS, workers or threads sized to 1 core; everything else (wrk, hey, the load generator, the upstream, the stub, Redis, the legacy app behind cutover, the harness) on core %d. The other scenarios ran unpinned. `BENCH_PIN=0` turns pinning off.",
		scen, p.ServerCPU, p.RestCPU)
}

// pinnedNote says where a pinned scenario's processes ran.
func pinnedNote(p harness.Pinning) string {
	if !p.Enabled {
		return "Unpinned: every process may run on every core."
	}
	return fmt.Sprintf("Pinned: the proxy under test on core %d (one at a time), wrk, hey and the upstream on core %d.", p.ServerCPU, p.RestCPU)
}
