package proxy

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the proxy's Prometheus collectors, registered once on their
// own registry. Label values come from route names, never raw paths.
type Metrics struct {
	// Registry holds every collector; other packages (shadow, breakers) may
	// register theirs on it.
	Registry *prometheus.Registry

	requests  *prometheus.CounterVec   // route, backend, code (class: 2xx.., or 499)
	errors    *prometheus.CounterVec   // route, backend, reason
	latency   *prometheus.HistogramVec // route, backend
	decisions *prometheus.CounterVec   // route, backend, reason
	inFlight  prometheus.Gauge
	shares    *prometheus.GaugeVec   // route
	reloads   *prometheus.CounterVec // result
	changes   *prometheus.CounterVec // route, action

	mu     sync.Mutex
	routes map[string]*routeMetrics
}

// routeMetrics are one route's bound collectors, looked up once per config
// change instead of once per request.
type routeMetrics struct {
	requests  [2][7]prometheus.Counter                // backend, codeClass
	latency   [2][7]prometheus.Observer               // backend, codeClass
	decisions [2][len(reasonNames)]prometheus.Counter // backend, reason
}

var classLabels = [7]string{"1xx", "2xx", "3xx", "4xx", "5xx", "499", "other"}

func codeClass(status int) int {
	switch {
	case status == StatusClientClosed:
		return 5
	case status >= 100 && status < 600:
		return status/100 - 1
	}
	return 6
}

// NewMetrics creates and registers the collectors, plus Go and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_requests_total", Help: "Requests served, by route, backend that served and status class (499: client went away).",
		}, []string{"route", "backend", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_backend_errors_total", Help: "Failed round trips by route, backend and reason (unreachable, timeout, client_gone, bad_gateway, aborted).",
		}, []string{"route", "backend", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cutover_request_duration_seconds", Help: "Time from request to end of response, by route, backend that served and status class.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "backend", "code"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_decisions_total", Help: "Routing decisions by route, backend chosen and reason (share, override, override_no_handler, unmatched, no_handler, no_identity).",
		}, []string{"route", "backend", "reason"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cutover_in_flight_requests", Help: "Requests being served.",
		}),
		shares: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cutover_route_native_share_ratio", Help: "Current native share of each route (0 to 1).",
		}, []string{"route"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_config_reloads_total", Help: "Config reload attempts by result (success, failure).",
		}, []string{"result"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_share_changes_total", Help: "Share changes by route and action: set and rollback through the admin API, auto_rollback by the breakers, reload from the config file.",
		}, []string{"route", "action"}),
		routes: map[string]*routeMetrics{},
	}
	m.Registry.MustRegister(m.requests, m.errors, m.latency, m.decisions, m.inFlight, m.shares, m.reloads, m.changes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Reload counts a config reload attempt.
func (m *Metrics) Reload(err error) {
	if err != nil {
		m.reloads.WithLabelValues("failure").Inc()
		return
	}
	m.reloads.WithLabelValues("success").Inc()
}

func (m *Metrics) route(name string) *routeMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rm, ok := m.routes[name]; ok {
		return rm
	}
	rm := &routeMetrics{}
	for b, bl := range [2]string{"legacy", "native"} {
		for c, cl := range classLabels {
			rm.requests[b][c] = m.requests.WithLabelValues(name, bl, cl)
		}
		for c, cl := range classLabels {
			rm.latency[b][c] = m.latency.WithLabelValues(name, bl, cl)
		}
		for r, rl := range reasonNames {
			rm.decisions[b][r] = m.decisions.WithLabelValues(name, bl, rl)
		}
	}
	m.routes[name] = rm
	return rm
}
