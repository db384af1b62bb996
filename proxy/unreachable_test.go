package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// closedURL is a loopback URL nothing listens on (connections are refused).
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// A request that never reached legacy (connection refused) is served by
// native on a route that has a native handler, whatever its method, and
// counted as legacy_unreachable; the refused trip still counts for the
// legacy breaker, and once it is open, its half-open probe that finds legacy
// still down is served natively too instead of a 502. A route without a
// native handler gets the 502 page.
func TestNeverReachedLegacyGoesNative(t *testing.T) {
	clock := newTestClock()
	yaml := `
listen:
  served_by_header: X-Cutover-Served-By
shutdown: {drain_delay: 1ms, timeout: 5s}
admin: {token: admin-secret}
legacy:
  url: ` + closedURL(t) + `
legacy_breaker: {disabled: true}
routes:
  - name: health
    path: /health
  - name: chat
    path: /chat
    methods: [POST]
    breaker:
      consecutive_failures: 2
      open_timeout: 10s
`
	ts := startServerClock(t, yaml, newFakeNative("chat"), clock.Now)
	c := newClient(t)
	body := `{"message":"hello"}`
	sum := sha256.Sum256([]byte(body))
	post := func(step string) {
		t.Helper()
		resp, out := do(t, c, "POST", ts.URL+"/chat", body, map[string]string{"Content-Type": "application/json"})
		if resp.StatusCode != 200 || resp.Header.Get("X-Cutover-Served-By") != "native" {
			t.Fatalf("%s: %d served by %q: %s", step, resp.StatusCode, resp.Header.Get("X-Cutover-Served-By"), out)
		}
		if s := decodeSeen(t, out); s.BodySHA != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: native got a body of %d bytes, not the client's", step, s.BodyLen)
		}
	}
	post("legacy refused")
	post("legacy refused again: trips the breaker")
	if st := ts.Breakers.Status("chat").Legacy; st == nil || st.State != "open" {
		t.Fatalf("legacy breaker after two refused trips: %+v", st)
	}
	post("breaker open")
	clock.Add(11 * time.Second)
	post("half-open probe, legacy still down")
	if v := metricValue(t, c, ts.AdminURL, `cutover_fallbacks_total{reason="legacy_unreachable",route="chat"}`); v != "3" {
		t.Errorf("legacy_unreachable fallbacks = %q, want 3 (two refused, one probe)", v)
	}
	if v := metricValue(t, c, ts.AdminURL, `cutover_fallbacks_total{reason="legacy_breaker_open",route="chat"}`); v != "1" {
		t.Errorf("legacy_breaker_open fallbacks = %q, want 1", v)
	}
	if st := ts.Breakers.Status("chat").Legacy; st == nil || st.State != "open" {
		t.Errorf("the failed probe did not reopen the breaker: %+v", st)
	}

	resp, out := do(t, c, "GET", ts.URL+"/health", "", nil)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(out), "Bad Gateway") {
		t.Errorf("route without a native handler: %d %s, want the 502 page", resp.StatusCode, out)
	}
}
