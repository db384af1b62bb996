package proxy

import (
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/config"
)

func TestAdminDefaultsToLoopback(t *testing.T) {
	cfg, err := config.Parse(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	host, _, err := net.SplitHostPort(cfg.Admin.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		t.Fatalf("admin listener defaults to %q, want a loopback address", cfg.Admin.Addr)
	}
	if cfg.Admin.Token != "" {
		t.Fatal("an admin token is set by default")
	}
}

// TestSecretsNeverLeak drives the paths that log or answer (admin API,
// metrics, breaker transitions, fallbacks, panics, auto rollback audit) and
// checks that no configured secret and no client credential shows up.
func TestSecretsNeverLeak(t *testing.T) {
	const (
		adminToken = "admin-secret-5f1e"
		qaToken    = "qa-secret-77ab"
		secretKey  = "flask-secret-9c3d"
		clientAuth = "Bearer client-credential-41d0"
		clientCook = "session=client-cookie-8e2a"
	)
	legacy := &failingLegacy{}
	ls := newBackend(t, legacy)
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	yaml := strings.Replace(breakerConfig(ls.URL, audit), "  token: admin-secret\n", "  token: "+adminToken+"\n", 1) +
		"override:\n  enabled: true\n  token: " + qaToken + "\nnative:\n  secret_key: " + secretKey + "\n"
	native := &modeNative{}
	ts := startServer(t, yaml, native)
	c := newClient(t)
	client := map[string]string{"Authorization": clientAuth, "Cookie": clientCook, "Content-Type": "application/json"}
	with := func(extra map[string]string) map[string]string {
		h := map[string]string{}
		for k, v := range client {
			h[k] = v
		}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	var answers strings.Builder
	collect := func(resp *http.Response, body []byte) {
		for k, vs := range resp.Header {
			answers.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
		}
		answers.Write(body)
	}
	// Native failures, a panic, a trip with auto rollback, the QA override.
	for range 3 {
		collect(do(t, c, "POST", ts.URL+"/chat", `{}`, with(map[string]string{"X-Mode": "500"})))
	}
	collect(do(t, c, "GET", ts.URL+"/models", "", with(map[string]string{"X-Mode": "panic"})))
	resp, body := do(t, c, "GET", ts.URL+"/models", "", with(map[string]string{"X-Cutover-Backend": "legacy", "X-Cutover-Token": qaToken}))
	collect(resp, body)
	if s := decodeSeen(t, body); s.Backend != "legacy" || s.Header["X-Cutover-Token"] != nil || s.Header["X-Cutover-Backend"] != nil {
		t.Errorf("override: served by %s, backend saw %v", s.Backend, s.Header)
	}
	// Legacy failing: its breaker trips, the 503 path.
	legacy.failing.Store(true)
	for range 4 {
		collect(do(t, c, "GET", ts.URL+"/health", "", client))
	}
	// The admin API and metrics, with and without the token.
	for _, h := range []map[string]string{nil, {"Authorization": "Bearer " + adminToken}} {
		collect(do(t, c, "GET", ts.AdminURL+"/admin/routes", "", h))
		collect(do(t, c, "GET", ts.AdminURL+"/metrics", "", h))
		collect(do(t, c, "PUT", ts.AdminURL+"/admin/routes/models", `{"native_bp": 100}`, h))
	}
	if err := ts.Reload(); err != nil {
		t.Fatal(err)
	}
	logs := ts.Logs.String()
	for _, secret := range []string{adminToken, qaToken, secretKey, "client-credential-41d0", "client-cookie-8e2a"} {
		if strings.Contains(logs, secret) {
			t.Errorf("%q appears in the logs", secret)
		}
		if strings.Contains(answers.String(), secret) && secret != "client-credential-41d0" && secret != "client-cookie-8e2a" {
			t.Errorf("%q appears in an answer", secret)
		}
		if strings.Contains(readTestFile(t, audit), secret) {
			t.Errorf("%q appears in the audit log", secret)
		}
	}
	if !strings.Contains(logs, "native handler panic") || !strings.Contains(logs, "breaker state changed") ||
		!strings.Contains(readTestFile(t, audit), "auto_rollback") {
		t.Fatal("the paths under test did not run")
	}
}
