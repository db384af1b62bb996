package proxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cutover/cutover/config"
)

// BenchmarkShadowOverhead reports the primary's latency percentiles with
// shadowing at 0 % and at 100 % side by side (legacy primary over loopback,
// the shadow to an in-process native app on the worker pool):
//
//	go test -run '^$' -bench BenchmarkShadowOverhead -benchtime 5000x ./proxy
//
// The goal is under 1 ms added at p99. Requests are sent one at a time, so
// the figures are the primary's own latency, not queueing.
func BenchmarkShadowOverhead(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"default":"m","models":[{"id":"m","max_tokens":4096}]}` + "\n"))
	}))
	defer backend.Close()
	native := &fakeNative{endpoints: []string{"models"}, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"default":"m","models":[{"id":"m","max_tokens":4096}]}` + "\n"))
	})}
	for _, rate := range []string{"0", "10000"} {
		name := map[string]string{"0": "shadow-0pct", "10000": "shadow-100pct"}[rate]
		b.Run(name, func(b *testing.B) {
			yaml := strings.Replace(baseConfig(backend.URL), "    path: /models\n", "    path: /models\n    shadow: {rate_bp: "+rate+", compare: json}\n", 1) +
				"log:\n  access: false\nshadow:\n  store: {jsonl_path: \"-\"}\n"
			cfg, err := config.Parse([]byte(yaml), nil)
			if err != nil {
				b.Fatal(err)
			}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			tr := NewTransport(cfg.Legacy)
			defer tr.CloseIdleConnections()
			legacy, _ := NewLegacy(cfg.Legacy, LegacyOptions{Transport: tr})
			sh, err := newShadowing(cfg, native, ShadowOptions{}, log)
			if err != nil {
				b.Fatal(err)
			}
			rt, err := NewRouter(cfg, RouterOptions{Legacy: legacy, Native: native, Logger: log, Prepare: sh.prepare})
			if err != nil {
				b.Fatal(err)
			}
			sh.next = rt.base // shadowing straight in front of the backends, no breakers
			rt.dispatch = sh
			if err := sh.start(prometheus.NewRegistry()); err != nil {
				b.Fatal(err)
			}
			front := httptest.NewServer(rt)
			defer front.Close()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				sh.close(ctx)
			}()
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				resp, err := client.Get(front.URL + "/models")
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			pct := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) }
			b.ReportMetric(pct(0.50), "p50-µs")
			b.ReportMetric(pct(0.99), "p99-µs")
			if m := sh.mirror.Load(); rate != "0" && m != nil {
				s := routeSummary(m, "models")
				b.ReportMetric(float64(s.Compared), "compared")
				b.ReportMetric(float64(s.Skipped["queue_full"]), "dropped")
			}
		})
	}
}
