package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/config"
)

// Bodies as the app and the proxy send them.
const (
	chatOK        = `{"conversation_id":"u1","reply":"hi"}` + "\n"
	streamOK      = "event: delta\ndata: {}\n\nevent: done\ndata: {}\n\n"
	page502       = "<!doctype html>\n<html lang=en>\n<title>502 Bad Gateway</title>\n"
	page504       = "<!doctype html>\n<html lang=en>\n<title>504 Gateway Timeout</title>\n"
	page503       = "<!doctype html>\n<html lang=en>\n<title>503 Service Unavailable</title>\n"
	storeDown     = `{"code":"store_unavailable","error":"the conversation store is unavailable"}` + "\n"
	streamStore   = "event: error\ndata: {\"error\": \"the conversation store is unavailable\", \"code\": \"store_unavailable\"}\n\n"
	throttled     = `{"code":"throttled","error":"slow down"}` + "\n"
	streamFailure = "event: delta\ndata: {}\n\nevent: error\ndata: {\"error\": \"the model stream failed\", \"code\": \"bedrock_error\"}\n\n"
)

// fakeClock is a settable clock for the window.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// at is t0 plus seconds.
func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// soakWindows has a legacy kill from 10 s (the SIGKILL returned at 10.01 s) to 20 s and a Redis
// stop from 40 s to 50 s; the clock stands at 100 s, grace is 4 s, 16 clients.
func soakWindows() *window {
	c := &fakeClock{t: at(10)}
	w := newWindow(4*time.Second, 16)
	w.now = c.now
	l := w.begin(faultLegacy, "legacy SIGKILL")
	c.t = at(10.01)
	w.injected(l)
	c.t = at(20)
	w.end(l)
	c.t = at(40)
	r := w.begin(faultRedis, "redis stop")
	w.injected(r)
	c.t = at(50)
	w.end(r)
	c.t = at(100)
	return w
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name      string
		give      answer
		wantClass string
	}{
		{"healthy chat", answer{kind: 2, status: 200, body: chatOK, start: at(1), end: at(2)}, classOK},
		{"healthy chat inside a legacy fault (served natively)", answer{kind: 2, status: 200, body: chatOK, start: at(12), end: at(13)}, classOK},
		{"throttle marker", answer{kind: 2, marker: "throttle", status: 429, body: throttled, start: at(1), end: at(2)}, classIntended},
		{"stream-error marker on a stream", answer{kind: 3, marker: "stream-error", status: 200, body: streamFailure, start: at(1), end: at(2)}, classIntended},
		{"a marker answered as if healthy", answer{kind: 2, marker: "throttle", status: 200, body: chatOK, start: at(1), end: at(2)}, classUnintended},

		// Legacy killed: what was in flight may break; later legacy failures are budgeted.
		{"cut, in flight at the kill", answer{kind: 3, status: 200, cut: true, body: "event: delta\n", start: at(9.5), end: at(10.02)}, classDegraded},
		{"cut, started after the kill", answer{kind: 3, status: 200, cut: true, body: "event: delta\n", start: at(10.5), end: at(11)}, classUnintended},
		{"connection error outside any fault", answer{kind: 0, start: at(30), end: at(30.1)}, classUnintended},
		{"502 page, in flight at the kill", answer{kind: 4, status: 502, body: page502, start: at(9.9), end: at(10.05)}, classDegraded},
		{"502 page during the legacy fault, within budget", answer{kind: 2, status: 502, body: page502, start: at(10.2), end: at(10.3)}, classDegraded},
		{"504 page during the legacy fault, within budget", answer{kind: 2, status: 504, body: page504, start: at(15), end: at(15.2)}, classDegraded},
		{"502 page in the grace after the legacy fault", answer{kind: 1, status: 502, body: page502, start: at(23), end: at(23.1)}, classDegraded},
		{"502 page after the grace", answer{kind: 1, status: 502, body: page502, start: at(25), end: at(25.1)}, classUnintended},
		{"502 page during a Redis fault", answer{kind: 2, status: 502, body: page502, start: at(45), end: at(45.1)}, classUnintended},
		{"503 page during the legacy fault: native was up", answer{kind: 2, status: 503, retryAfter: true, body: page503, start: at(12), end: at(12.1)}, classUnintended},
		{"503 page on /health during the legacy fault", answer{kind: 0, status: 503, retryAfter: true, body: page503, start: at(12), end: at(12.1)}, classUnintended},

		// Redis stopped: the conversation routes fail on both backends; /health and /models must not.
		{"store_unavailable during the Redis fault", answer{kind: 2, status: 503, body: storeDown, start: at(41), end: at(41.1)}, classDegraded},
		{"stream store_unavailable during the Redis fault", answer{kind: 3, status: 200, body: streamStore, start: at(41), end: at(41.1)}, classDegraded},
		{"store_unavailable during the legacy fault", answer{kind: 2, status: 503, body: storeDown, start: at(12), end: at(12.1)}, classUnintended},
		{"503 page on a Redis route during the Redis fault", answer{kind: 4, status: 503, retryAfter: true, body: page503, start: at(45), end: at(45.1)}, classDegraded},
		{"503 page in the grace after the Redis fault", answer{kind: 5, status: 503, retryAfter: true, body: page503, start: at(53), end: at(53.1)}, classDegraded},
		{"503 page after the grace", answer{kind: 2, status: 503, retryAfter: true, body: page503, start: at(55), end: at(55.1)}, classUnintended},
		{"503 page without Retry-After during the Redis fault", answer{kind: 2, status: 503, body: page503, start: at(45), end: at(45.1)}, classUnintended},
		{"503 page on /models during the Redis fault", answer{kind: 1, status: 503, retryAfter: true, body: page503, start: at(45), end: at(45.1)}, classUnintended},
		{"500 page anywhere", answer{kind: 2, status: 500, body: "<title>500 Internal Server Error</title>", start: at(12), end: at(12.1)}, classUnintended},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := soakWindows()
			if got, rule := w.classify(tt.give); got != tt.wantClass {
				t.Errorf("classify = %s (%s), want %s", got, rule, tt.wantClass)
			}
		})
	}
}

func TestLegacyBudget(t *testing.T) {
	w := soakWindows()
	// 5 to trip + 16 admitted alongside + 6 breakers x 1 probe x ceil((10 s + 4 s grace) / 2 s).
	budget := w.legacyBudget(10 * time.Second)
	if want := consecutiveFailures + 16 + (nativeRoutes+1)*halfOpenRequests*7; budget != want || budget != 63 {
		t.Fatalf("legacyBudget(10s) = %d, want %d (63)", budget, want)
	}
	counts := map[string]int{}
	for i := range budget + 3 {
		a := answer{kind: int64(i % 6), status: 502, body: page502, start: at(11 + float64(i)*0.01), end: at(11.1 + float64(i)*0.01)}
		c, _ := w.classify(a)
		counts[c]++
	}
	if counts[classDegraded] != budget || counts[classUnintended] != 3 {
		t.Errorf("502 pages in one legacy window: %v, want %d degraded and 3 unintended", counts, budget)
	}
	// Requests in flight at the kill are judged apart and spend nothing.
	if c, _ := w.classify(answer{kind: 2, status: 502, body: page502, start: at(9.9), end: at(10.5)}); c != classDegraded {
		t.Errorf("502 in flight at the kill after the budget was spent = %s, want degraded", c)
	}
	// A second legacy window has a budget of its own.
	c := &fakeClock{t: at(200)}
	w.now = c.now
	i := w.begin(faultLegacy, "legacy SIGKILL")
	w.injected(i)
	c.t = at(210)
	w.end(i)
	c.t = at(300)
	if got, rule := w.classify(answer{kind: 2, status: 502, body: page502, start: at(201), end: at(201.1)}); got != classDegraded {
		t.Errorf("first 502 of a new window = %s (%s), want degraded", got, rule)
	}
}

func TestConfigUsesTheClassifiersBreakerSettings(t *testing.T) {
	s := &stack{}
	cfg := s.config()
	for _, want := range []string{
		fmt.Sprintf("legacy_breaker: {consecutive_failures: %d, open_timeout: %s, half_open_requests: %d}", consecutiveFailures, openTimeout, halfOpenRequests),
		fmt.Sprintf("breaker: {consecutive_failures: %d, open_timeout: %s, half_open_requests: %d, interval: 10s}", consecutiveFailures, openTimeout, halfOpenRequests),
	} {
		if !contains(cfg, want) {
			t.Errorf("soak config lacks %q:\n%s", want, cfg)
		}
	}
	c, err := config.Parse([]byte(cfg), nil)
	if err != nil {
		t.Fatalf("soak config rejected: %v\n%s", err, cfg)
	}
	if r := c.Route("chat_stream"); r == nil || r.Share != 5000 || !r.Replayable {
		t.Errorf("chat_stream: %+v, want 50 %% native and replayable", r)
	}
	if r := c.Route("delete_conversation"); r == nil || r.Share != 0 {
		t.Errorf("delete_conversation: %+v, want 0 %% native", r)
	}
	routes := map[string]bool{}
	for _, r := range kindRoute {
		routes[r.name] = true
		if !contains(cfg, "name: "+r.name+"\n") {
			t.Errorf("route %s is driven by the soak but not in its config", r.name)
		}
	}
	if len(routes) != nativeRoutes {
		t.Errorf("nativeRoutes = %d, but the soak drives %d routes", nativeRoutes, len(routes))
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
