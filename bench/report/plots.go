package report

import (
	"fmt"
	"math"
)

// PlotNames are every plot file the report may write.
var PlotNames = []string{"passthrough_rps.svg", "passthrough_latency.svg", "chat_rps.svg", "chat_p95.svg", "chat_p50_p99.svg", "chat_stream_first_event.svg"}

// addPlots renders every plot the results allow into plots (file name → SVG).
func addPlots(plots map[string]string, r *Results) {
	if pt := r.Passthrough; pt != nil && len(pt.Summary) > 0 {
		cats := []string{"64 connections", "512 connections"}
		var rps, lat []Series
		for _, t := range pt.Targets {
			s := Series{Name: t, Y: []float64{math.NaN(), math.NaN()}}
			for _, x := range pt.Summary {
				if x.Target == t {
					s.Y[map[int]int{64: 0, 512: 1}[x.Conns]] = x.RPS
				}
			}
			rps = append(rps, s)
		}
		plots["passthrough_rps.svg"] = BarChart{Title: "Pass-through throughput (wrk, trivial upstream)", YLabel: "requests per second", Categories: cats, Series: rps}.SVG()
		if len(pt.Fixed) > 0 {
			p50 := Series{Name: "p50", Y: nil}
			p99 := Series{Name: "p99", Y: nil}
			var tc []string
			for _, f := range pt.Fixed {
				tc = append(tc, f.Target)
				p50.Y = append(p50.Y, f.Hey.P50MS)
				p99.Y = append(p99.Y, f.Hey.P99MS)
			}
			lat = []Series{p50, p99}
			plots["passthrough_latency.svg"] = BarChart{
				Title:  fmt.Sprintf("Pass-through latency at %.0f rps, 64 connections (hey)", pt.Fixed[0].RateRPS),
				YLabel: "milliseconds", Categories: tc, Series: lat,
			}.SVG()
		}
	}
	if c := r.Chat; c != nil && len(c.Points) > 0 {
		x := make([]float64, len(c.Users))
		for i, u := range c.Users {
			x[i] = float64(u)
		}
		series := func(get func(ChatPoint) float64, dashed bool, suffix string, colorIdx bool) []Series {
			var out []Series
			for ci, cfg := range c.Configs {
				s := Series{Name: shortLabel(cfg) + suffix, Y: make([]float64, len(c.Users)), Dashed: dashed}
				if colorIdx {
					s.Color = palette[ci%len(palette)]
				}
				for i, u := range c.Users {
					s.Y[i] = math.NaN()
					if p, ok := findChat(r, cfg, u); ok && p.Load.OK > 0 {
						s.Y[i] = get(p)
					}
				}
				out = append(out, s)
			}
			return out
		}
		theo := Series{Name: "theoretical rate", Dashed: true, Color: "#999", Y: make([]float64, len(c.Users))}
		for i, u := range c.Users {
			best := 0.0
			for _, p := range c.Points {
				if p.Users == u {
					best = math.Max(best, p.Load.TheoreticalRPS)
				}
			}
			theo.Y[i] = math.NaN()
			if best > 0 {
				theo.Y[i] = best
			}
		}
		plots["chat_rps.svg"] = LineChart{
			Title: "Chatbot workload: throughput", XLabel: "concurrent users", YLabel: "successful requests per second",
			X: x, XLog: true, YLog: true,
			Series: append(series(func(p ChatPoint) float64 { return p.Load.RPS }, false, "", true), theo),
		}.SVG()
		model := r.Settings.StubTTFTMS
		plots["chat_p95.svg"] = LineChart{
			Title: "Chatbot workload: p95 latency (all requests)", XLabel: "concurrent users", YLabel: "milliseconds",
			X: x, XLog: true, YLog: true,
			Series: series(func(p ChatPoint) float64 { return p.Load.All.P95MS }, false, "", true),
			HLines: []RefLine{{Y: model, Label: "stub time to first token"}},
		}.SVG()
		both := append(series(func(p ChatPoint) float64 { return p.Load.All.P50MS }, false, " p50", true),
			series(func(p ChatPoint) float64 { return p.Load.All.P99MS }, true, " p99", true)...)
		plots["chat_p50_p99.svg"] = LineChart{
			Title: "Chatbot workload: p50 (solid) and p99 (dashed) latency", XLabel: "concurrent users", YLabel: "milliseconds",
			X: x, XLog: true, YLog: true, Series: both,
		}.SVG()
		plots["chat_stream_first_event.svg"] = LineChart{
			Title: "POST /chat/stream: p95 time to first event", XLabel: "concurrent users", YLabel: "milliseconds",
			X: x, XLog: true, YLog: true,
			Series: series(func(p ChatPoint) float64 {
				if p.Load.StreamFirst.Count == 0 {
					return math.NaN()
				}
				return p.Load.StreamFirst.P95MS
			}, false, "", true),
			HLines: []RefLine{{Y: model, Label: "stub time to first token"}},
		}.SVG()
	}
}

// shortLabel names a chat configuration in a plot legend.
func shortLabel(cfg string) string {
	switch cfg {
	case "legacy":
		return "legacy (gunicorn)"
	case "cutover-0":
		return "cutover 0% native"
	case "cutover-50":
		return "cutover 50% native"
	case "cutover-100":
		return "cutover 100% native"
	}
	return cfg
}
