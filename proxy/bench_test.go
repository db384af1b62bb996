package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/internal/tracing"
	"github.com/cutover/cutover/internal/tracing/otlptest"
)

// BenchmarkRouterPassThrough measures the proxy's own cost per request
// (decision, legacy reverse proxy, recorder, metrics) against an in-process
// backend, with allocations. The end-to-end comparison with nginx lives in bench/.
// legacy-0pct is also the cost with tracing off (no Tracer);
// legacy-0pct-traced has tracing on, every request sampled, its server and
// legacy spans batched to a real OTLP/HTTP receiver.
func BenchmarkRouterPassThrough(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer backend.Close()
	rcv := otlptest.Start(b)
	for _, bc := range []struct {
		name, yaml string
		traced     bool
	}{
		{"legacy-0pct", "", false},
		{"split-50pct-header", "    native_percent: 50\n", false},
		{"legacy-0pct-traced", "", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			yaml := strings.Replace(baseConfig(backend.URL), "    path: /models\n", "    path: /models\n"+bc.yaml, 1) + "log:\n  access: false\n"
			cfg, err := config.Parse([]byte(yaml), nil)
			if err != nil {
				b.Fatal(err)
			}
			var tracer *tracing.Tracer
			if bc.traced {
				if tracer, err = tracing.New(context.Background(), config.Tracing{OTLPEndpoint: rcv.URL()}, nil); err != nil {
					b.Fatal(err)
				}
				defer tracer.Shutdown(context.Background())
			}
			tr := NewTransport(cfg.Legacy)
			defer tr.CloseIdleConnections()
			legacy, _ := NewLegacy(cfg.Legacy, LegacyOptions{Transport: tracer.LegacyTransport(tr)})
			rt, err := NewRouter(cfg, RouterOptions{Legacy: legacy, Native: newFakeNative("models"), Tracer: tracer})
			if err != nil {
				b.Fatal(err)
			}
			front := httptest.NewServer(rt)
			defer front.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer client.CloseIdleConnections()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequest("GET", front.URL+"/models", nil)
				req.Header.Set("X-User-Id", "user-1")
				for pb.Next() {
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}

// BenchmarkDecide measures the routing decision alone.
func BenchmarkDecide(b *testing.B) {
	yaml := strings.Replace(baseConfig("http://127.0.0.1:1"), "    path: /conversations/<conversation_id>\n", "    path: /conversations/<conversation_id>\n    native_percent: 50\n", 1)
	cfg, err := config.Parse([]byte(yaml), nil)
	if err != nil {
		b.Fatal(err)
	}
	legacy, err := NewLegacy(cfg.Legacy, LegacyOptions{})
	if err != nil {
		b.Fatal(err)
	}
	rt, err := NewRouter(cfg, RouterOptions{Legacy: legacy, Native: newFakeNative("get_conversation")})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/conversations/abc-123", nil)
	s := rt.snap.Load()
	var d Decision
	b.ReportAllocs()
	for b.Loop() {
		d.reset()
		rt.decide(s, req, &d)
	}
}

// BenchmarkPassThrough measures the whole traffic path of a Server, as
// `cutover serve` runs it (Echo front, framing check, router, breakers,
// reverse proxy, metrics), against an httptest upstream with parallel
// keep-alive clients. The access log is on (the default) and goes to
// io.Discard, so its formatting is measured but not the write. Profile the
// hot path with:
//
//	go test -run '^$' -bench PassThrough -cpuprofile cpu.out -memprofile mem.out ./proxy/
func BenchmarkPassThrough(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "16")
		w.Write([]byte(`{"status":"ok"}` + "\n"))
	}))
	defer upstream.Close()
	for _, bc := range []struct {
		name, log string
	}{
		{"access-log", ""},
		{"no-access-log", "log:\n  access: false\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg, err := config.Parse([]byte(baseConfig(upstream.URL)+bc.log), nil)
			if err != nil {
				b.Fatal(err)
			}
			tln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			aln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv, err := New(cfg, Options{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), TrafficListener: tln, AdminListener: aln})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					b.Error(err)
				}
			}()
			url := "http://" + tln.Addr().String() + "/conversations/bench-passthrough-0001"
			tr := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			for range 50 { // until the listener serves
				resp, err := client.Get(url)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			b.SetParallelism(8)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequest("GET", url, nil)
				for pb.Next() {
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
