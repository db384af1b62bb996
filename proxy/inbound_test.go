package proxy

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// A client's X-Cutover-* headers (shadow marker included) and protocol
// upgrades never reach either backend; other headers do.
func TestInboundInternalHeadersAndUpgradeStripped(t *testing.T) {
	var upgrades atomic.Int32
	legacy := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			// What gunicorn or an app would do with h2c or a WebSocket:
			// switch protocols, and the connection becomes a tunnel.
			upgrades.Add(1)
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close() // the tunnel ends at once: the client is not left waiting
			buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + r.Header.Get("Upgrade") + "\r\n\r\n")
			buf.Flush()
			return
		}
		echoHandler("legacy")(w, r)
	}))
	yaml := strings.Replace(baseConfig(legacy.URL), "    path: /models\n", "    path: /models\n    native_percent: 100\n", 1)
	ts := startServer(t, yaml, newFakeNative("models"))
	c := newClient(t)
	header := map[string]string{
		"X-Cutover-Shadow":    "1",
		"X-Cutover-Served-By": "native",
		"X-Cutover-Anything":  "x",
		"Upgrade":             "h2c",
		"Connection":          "Upgrade, HTTP2-Settings",
		"Http2-Settings":      "AAMAAABkAARAAAAAAAIAAAAA",
		"X-Other":             "kept",
	}
	for _, path := range []string{"/health", "/models"} { // legacy, native
		resp, body := do(t, c, "GET", ts.URL+path, "", header)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %q, want 200 (no protocol switch)", path, resp.StatusCode, body)
		}
		s := decodeSeen(t, body)
		for name := range s.Header {
			if strings.HasPrefix(name, "X-Cutover-") || name == "Upgrade" || name == "Http2-Settings" ||
				strings.Contains(strings.ToLower(strings.Join(s.Header["Connection"], ",")), "upgrade") {
				t.Errorf("%s backend received %s: %q", s.Backend, name, s.Header[name])
			}
		}
		if got := s.Header["X-Other"]; len(got) != 1 || got[0] != "kept" {
			t.Errorf("%s backend X-Other = %q", s.Backend, got)
		}
	}
	if n := upgrades.Load(); n != 0 {
		t.Errorf("legacy was asked to upgrade %d times", n)
	}
}

func TestStripInbound(t *testing.T) {
	tests := []struct {
		give, want http.Header
	}{
		{http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"websocket"}}, http.Header{"Connection": {"keep-alive"}}},
		{http.Header{"Connection": {"Upgrade"}, "Upgrade": {"h2c"}}, http.Header{}},
		{http.Header{"Connection": {"keep-alive"}, "X-Qa": {"native"}}, http.Header{"Connection": {"keep-alive"}}},
		{http.Header{"X-Cutover-Shadow": {"1"}, "X-Cutoverish": {"kept"}}, http.Header{"X-Cutoverish": {"kept"}}},
	}
	for _, tt := range tests {
		h := tt.give.Clone()
		stripInbound(h, "X-Qa")
		if len(h) != len(tt.want) || h.Get("Connection") != tt.want.Get("Connection") || h.Get("X-Cutoverish") != tt.want.Get("X-Cutoverish") {
			t.Errorf("stripInbound(%v) = %v, want %v", tt.give, h, tt.want)
		}
	}
}
