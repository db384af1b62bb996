package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Every admin endpoint but /metrics needs the token, reads included (diff
// records hold chat text and conversation ids); refusals and diff reads are
// audited, without the token.
func TestAdminNeedsTokenExceptMetrics(t *testing.T) {
	legacy := newBackend(t, echoHandler("legacy"))
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	yaml := strings.Replace(baseConfig(legacy.URL), "admin:\n  token: admin-secret\n",
		"admin:\n  token: admin-secret\n  pprof: true\n  allowed_hosts: [cutover-1.internal]\n  audit_log: "+audit+"\n", 1)
	ts := startServer(t, yaml, newFakeNative("chat"))
	c := newClient(t)
	auth := map[string]string{"Authorization": "Bearer admin-secret"}
	for _, path := range []string{"/admin/routes", "/admin/routes/chat", "/admin/diffs?limit=500", "/admin/diffs/1-1",
		"/admin/shadow/summary", "/debug/pprof/cmdline", "/admin/nothing-here"} {
		for _, h := range []map[string]string{nil, {"Authorization": "Bearer wr0ng-t0ken"}, {"Authorization": "Basic admin-secret"}} {
			if resp, body := do(t, c, "GET", ts.AdminURL+path, "", h); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET %s with %v: %d %s, want 401", path, h, resp.StatusCode, body)
			}
		}
		if resp, body := do(t, c, "GET", ts.AdminURL+path, "", auth); resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			t.Errorf("GET %s with the token: %d %s", path, resp.StatusCode, body)
		}
	}
	if resp, body := do(t, c, "GET", ts.AdminURL+"/metrics", "", nil); resp.StatusCode != 200 || !strings.Contains(string(body), "cutover_requests_total") {
		t.Errorf("GET /metrics without a token: %d", resp.StatusCode)
	}

	// DNS rebinding: only IP literals, localhost and allowed_hosts.
	tests := []struct {
		host string
		want int
	}{
		{"evil.example", http.StatusForbidden},
		{"evil.example:9090", http.StatusForbidden},
		{"127.0.0.1.nip.io", http.StatusForbidden},
		{"localhost:9090", http.StatusOK},
		{"127.0.0.1", http.StatusOK},
		{"[::1]:9090", http.StatusOK},
		{"Cutover-1.Internal:9090", http.StatusOK},
	}
	for _, tt := range tests {
		h := map[string]string{"Authorization": "Bearer admin-secret", "Host": tt.host}
		if resp, body := do(t, c, "GET", ts.AdminURL+"/admin/routes", "", h); resp.StatusCode != tt.want {
			t.Errorf("Host %s: %d %s, want %d", tt.host, resp.StatusCode, body, tt.want)
		}
		if resp, _ := do(t, c, "GET", ts.AdminURL+"/metrics", "", map[string]string{"Host": tt.host}); resp.StatusCode != tt.want {
			t.Errorf("Host %s, /metrics: %d, want %d", tt.host, resp.StatusCode, tt.want)
		}
	}

	log := readTestFile(t, audit)
	for _, want := range []string{`"action":"auth_failed"`, `"path":"/admin/diffs"`, `"status":401`, `"action":"read_diffs"`,
		`"query":"limit=500"`, `"reason":"host not allowed"`} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	if strings.Contains(log, "admin-secret") || strings.Contains(log, "wr0ng-t0ken") || strings.Contains(ts.Logs.String(), "admin-secret") {
		t.Error("a presented token reached the audit log or the process log")
	}
}

// Without a token configured, the admin API answers /metrics and nothing else.
func TestAdminWithoutTokenServesOnlyMetrics(t *testing.T) {
	legacy := newBackend(t, echoHandler("legacy"))
	yaml := strings.Replace(baseConfig(legacy.URL), "  token: admin-secret\n", "", 1)
	ts := startServer(t, yaml, newFakeNative("chat"))
	c := newClient(t)
	for _, path := range []string{"/admin/routes", "/admin/diffs", "/admin/shadow/summary"} {
		if resp, _ := do(t, c, "GET", ts.AdminURL+path, "", map[string]string{"Authorization": "Bearer anything"}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s: %d, want 403", path, resp.StatusCode)
		}
	}
	if resp, _ := do(t, c, "GET", ts.AdminURL+"/metrics", "", nil); resp.StatusCode != 200 {
		t.Errorf("GET /metrics: %d", resp.StatusCode)
	}
}

// admin.metrics_addr: /metrics alone on a listener of its own, for a
// Prometheus that cannot reach the loopback admin listener.
func TestMetricsListener(t *testing.T) {
	legacy := newBackend(t, echoHandler("legacy"))
	cfg := loadConfig(t, baseConfig(legacy.URL)+"")
	mln := listen(t)
	srv, err := New(cfg, Options{Native: newFakeNative("chat"), Logger: slog.New(slog.DiscardHandler),
		TrafficListener: listen(t), AdminListener: listen(t), MetricsListener: mln})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("server did not stop")
		}
	}()
	c := newClient(t)
	base := "http://" + srv.MetricsAddr()
	waitHealthy(t, base+"/metrics")
	if resp, body := do(t, c, "GET", base+"/metrics", "", map[string]string{"Host": "prometheus-target.internal"}); resp.StatusCode != 200 ||
		!strings.Contains(string(body), "cutover_requests_total") {
		t.Errorf("GET /metrics: %d", resp.StatusCode)
	}
	for _, path := range []string{"/admin/routes", "/admin/diffs", "/debug/pprof/"} {
		if resp, _ := do(t, c, "GET", base+path, "", map[string]string{"Authorization": "Bearer admin-secret"}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the metrics listener: %d, want 404", path, resp.StatusCode)
		}
	}
}
