package proxy

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/config"
)

func TestAdminAPI(t *testing.T) {
	legacy := newBackend(t, echoHandler("legacy"))
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	yaml := strings.Replace(baseConfig(legacy.URL), "admin:\n  token: admin-secret\n", "admin:\n  token: admin-secret\n  audit_log: "+audit+"\n", 1)
	// A comment that must survive persistence.
	yaml = strings.Replace(yaml, "  - name: chat\n", "  # chat is the busiest route\n  - name: chat\n", 1)
	ts := startServer(t, yaml, newFakeNative("chat", "models"))
	c := newClient(t)
	auth := map[string]string{"Authorization": "Bearer admin-secret", "Content-Type": "application/json", ActorHeader: "alice@laptop"}

	var list struct {
		Routes []RouteInfo `json:"routes"`
	}
	_, body := do(t, c, "GET", ts.AdminURL+"/admin/routes", "", adminAuth)
	if err := json.Unmarshal(body, &list); err != nil || len(list.Routes) != 6 {
		t.Fatalf("GET /admin/routes: %v %s", err, body)
	}
	byName := map[string]RouteInfo{}
	for _, r := range list.Routes {
		byName[r.Name] = r
	}
	if !byName["chat"].NativeHandler || byName["health"].NativeHandler || byName["chat"].Breaker.ConsecutiveFailures != 5 {
		t.Errorf("route info wrong: %+v", byName["chat"])
	}

	tests := []struct {
		name     string
		method   string
		path     string
		body     string
		header   map[string]string
		wantCode int
	}{
		{"no token", "PUT", "/admin/routes/chat", `{"native_percent": 50}`, map[string]string{"Content-Type": "application/json"}, 401},
		{"wrong token", "PUT", "/admin/routes/chat", `{"native_percent": 50}`, map[string]string{"Authorization": "Bearer admin-secreT"}, 401},
		{"rollback wrong token", "POST", "/admin/rollback", ``, map[string]string{"Authorization": "Basic admin-secret"}, 401},
		{"unknown route", "PUT", "/admin/routes/nope", `{"native_percent": 5}`, auth, 404},
		{"no handler", "PUT", "/admin/routes/health", `{"native_percent": 5}`, auth, 409},
		{"out of range", "PUT", "/admin/routes/chat", `{"native_percent": 100.5}`, auth, 400},
		{"three decimals", "PUT", "/admin/routes/chat", `{"native_percent": 1.234}`, auth, 400},
		{"both forms", "PUT", "/admin/routes/chat", `{"native_percent": 1, "native_bp": 100}`, auth, 400},
		{"unknown field", "PUT", "/admin/routes/chat", `{"native": 1}`, auth, 400},
		{"not json", "PUT", "/admin/routes/chat", `50`, auth, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, c, tt.method, ts.AdminURL+tt.path, tt.body, tt.header)
			if resp.StatusCode != tt.wantCode {
				t.Errorf("%s %s: %d %s, want %d", tt.method, tt.path, resp.StatusCode, body, tt.wantCode)
			}
			if ts.Router.Config().Route("chat").Share != 0 {
				t.Fatalf("a refused call changed the share")
			}
		})
	}

	resp, body := do(t, c, "PUT", ts.AdminURL+"/admin/routes/chat", `{"native_percent": 12.5}`, auth)
	if resp.StatusCode != 200 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	var put struct {
		Route  RouteInfo    `json:"route"`
		Result ChangeResult `json:"result"`
	}
	if err := json.Unmarshal(body, &put); err != nil {
		t.Fatal(err)
	}
	if put.Route.NativeBP != 1250 || !put.Result.Persisted || len(put.Result.Changes) != 1 || put.Result.Changes[0] != (Change{"chat", 0, 1250}) {
		t.Errorf("PUT result %s", body)
	}
	if got := ts.Router.Config().Route("chat").Share; got != 1250 {
		t.Errorf("share in force %d, want 1250", got)
	}
	// Persisted atomically into the file, comments kept; a restart keeps it.
	data, _ := os.ReadFile(ts.File)
	if !strings.Contains(string(data), "# chat is the busiest route") {
		t.Errorf("persisting lost a comment:\n%s", data)
	}
	reloaded, err := config.Load(ts.File)
	if err != nil {
		t.Fatal(err)
	}
	if reloaded.Route("chat").Share != 1250 || reloaded.Route("models").Share != 0 {
		t.Errorf("file after PUT: chat %d models %d", reloaded.Route("chat").Share, reloaded.Route("models").Share)
	}
	resp, body = do(t, c, "PUT", ts.AdminURL+"/admin/routes/models", `{"native_bp": 10000}`, auth)
	if resp.StatusCode != 200 {
		t.Fatalf("PUT models: %d %s", resp.StatusCode, body)
	}
	if v := metricValue(t, c, ts.AdminURL, `cutover_route_native_share_ratio{route="chat"}`); v != "0.125" {
		t.Errorf("share gauge %q, want 0.125", v)
	}

	// Rollback: every route to 0 in one call.
	resp, body = do(t, c, "POST", ts.AdminURL+"/admin/rollback", "", auth)
	if resp.StatusCode != 200 {
		t.Fatalf("rollback: %d %s", resp.StatusCode, body)
	}
	for _, r := range ts.Router.Config().Routes {
		if r.Share != 0 {
			t.Errorf("after rollback %s is at %d bp", r.Name, r.Share)
		}
	}
	reloaded, _ = config.Load(ts.File)
	if reloaded.Route("chat").Share != 0 || reloaded.Route("models").Share != 0 {
		t.Error("rollback not persisted")
	}

	// Audit: who, when, old, new, for every change (the refused calls above
	// are audited too, as auth_failed).
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(readTestFile(t, audit)), "\n") {
		if !strings.Contains(l, `"action":"auth_failed"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 4 {
		t.Fatalf("audit log has %d lines, want 4:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	var rec struct {
		Time   string `json:"time"`
		Who    string `json:"who"`
		Action string `json:"action"`
		Route  string `json:"route"`
		Old    int    `json:"old_bp"`
		New    int    `json:"new_bp"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec.Who != "alice@laptop" || rec.Route != "chat" || rec.Old != 0 || rec.New != 1250 || rec.Time == "" || rec.Action != "set" {
		t.Errorf("audit record %s (%v)", lines[0], err)
	}
	if !strings.Contains(lines[2], `"action":"rollback"`) {
		t.Errorf("rollback audit %s", lines[2])
	}
	if strings.Contains(ts.Logs.String(), "admin-secret") || strings.Contains(readTestFile(t, audit), "admin-secret") {
		t.Error("the admin token leaked into logs")
	}
	// Metrics: labels are route names, never raw paths.
	do(t, c, "GET", ts.URL+"/conversations/some-id-123", "", nil)
	_, metrics := do(t, c, "GET", ts.AdminURL+"/metrics", "", nil)
	for _, want := range []string{`cutover_requests_total{backend="legacy",code="2xx",route="get_conversation"}`, "cutover_in_flight_requests", `cutover_config_reloads_total{result="failure"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(metrics), "some-id-123") {
		t.Error("a raw path reached a metric label")
	}
}

func TestAdminWithoutTokenRefusesChanges(t *testing.T) {
	legacy := newBackend(t, echoHandler("legacy"))
	yaml := strings.Replace(baseConfig(legacy.URL), "  token: admin-secret\n", "", 1)
	ts := startServer(t, yaml, newFakeNative("chat"))
	c := newClient(t)
	for _, h := range []map[string]string{nil, {"Authorization": "Bearer "}, {"Authorization": "Bearer anything"}} {
		resp, body := do(t, c, "PUT", ts.AdminURL+"/admin/routes/chat", `{"native_percent": 50}`, h)
		if resp.StatusCode != 403 {
			t.Errorf("with %v: %d %s, want 403", h, resp.StatusCode, body)
		}
		resp, _ = do(t, c, "POST", ts.AdminURL+"/admin/rollback", ``, h)
		if resp.StatusCode != 403 {
			t.Errorf("rollback with %v: %d, want 403", h, resp.StatusCode)
		}
	}
	if ts.Router.Config().Route("chat").Share != 0 {
		t.Error("share changed without a token configured")
	}
	resp, _ := do(t, c, "GET", ts.AdminURL+"/admin/routes", "", adminAuth)
	if resp.StatusCode != 403 {
		t.Errorf("reading routes without a token configured: %d, want 403", resp.StatusCode)
	}
}

func readTestFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A reload that read the file before a share change was persisted must not
// undo that change (e.g. a rollback) when it is applied after it.
func TestStaleReloadDoesNotUndoShareChange(t *testing.T) {
	legacy := newBackend(t, echoHandler("legacy"))
	yaml := strings.Replace(baseConfig(legacy.URL), "    path: /models\n", "    path: /models\n    native_percent: 40\n", 1)
	ts := startServer(t, yaml, newFakeNative("models"))
	stale, err := config.Load(ts.File) // what a watcher read just before the change
	if err != nil {
		t.Fatal(err)
	}
	res, err := ts.Router.Rollback(Actor{Who: "test", Action: "rollback"})
	if err != nil || !res.Persisted {
		t.Fatalf("rollback: %+v %v", res, err)
	}
	if err := ts.Router.ApplyFile(stale); !errors.Is(err, config.ErrSuperseded) {
		t.Errorf("stale apply: %v, want ErrSuperseded", err)
	}
	if got := ts.Router.Config().Route("models").Share; got != 0 {
		t.Errorf("a stale reload undid the rollback: models at %d bp", got)
	}
	fresh, err := config.Load(ts.File)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Router.ApplyFile(fresh); err != nil {
		t.Errorf("fresh apply: %v", err)
	}
}

// The audit records who X-Cutover-Actor names, "unknown" when a call does
// not say; with no admin.audit_log it goes to the process log only.
func TestAuditActor(t *testing.T) {
	legacy := newBackend(t, echoHandler("legacy"))
	ts := startServer(t, baseConfig(legacy.URL), newFakeNative("chat", "models"))
	c := newClient(t)
	auth := map[string]string{"Authorization": "Bearer admin-secret", "Content-Type": "application/json"}
	tests := []struct {
		route string
		actor string // "" sends no header
		want  string
	}{
		{"chat", "bob@ops-box", "bob@ops-box"},
		{"models", "", "unknown"},
	}
	for _, tt := range tests {
		h := map[string]string{}
		for k, v := range auth {
			h[k] = v
		}
		if tt.actor != "" {
			h[ActorHeader] = tt.actor
		}
		if resp, body := do(t, c, "PUT", ts.AdminURL+"/admin/routes/"+tt.route, `{"native_percent": 1}`, h); resp.StatusCode != 200 {
			t.Fatalf("PUT %s: %d %s", tt.route, resp.StatusCode, body)
		}
		found := false
		for _, line := range strings.Split(ts.Logs.String(), "\n") {
			found = found || strings.Contains(line, `"msg":"audit: share changed","who":"`+tt.want+`","remote":"127.0.0.1:`) &&
				strings.Contains(line, `"route":"`+tt.route+`","old_bp":0,"new_bp":100`)
		}
		if !found {
			t.Errorf("process log lacks the audit of %s by %s:\n%s", tt.route, tt.want, ts.Logs.String())
		}
	}
}
