package proxy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/testenv"
)

// A single instance has no fleet endpoints, refuses a change made from a
// fleet generation, and audits a rollback's reason.
func TestSingleInstanceFleetSurface(t *testing.T) {
	legacy := newBackend(t, echoHandler("legacy"))
	ts := startServer(t, baseConfig(legacy.URL), newFakeNative("chat"))
	c := newClient(t)
	auth := map[string]string{"Authorization": "Bearer admin-secret", "Content-Type": "application/json", ActorHeader: "alice@laptop"}
	tests := []struct {
		name, method, path, body string
		wantCode                 int
		wantBody                 string
	}{
		{"fleet view", "GET", "/admin/fleet", "", 404, "no fleet store"},
		{"audit", "GET", "/admin/audit", "", 404, "no fleet store"},
		{"change from a generation", "PUT", "/admin/routes/chat", `{"native_bp": 100, "generation": 3}`, 400, "no fleet store"},
		{"rollback from a generation", "POST", "/admin/rollback", `{"generation": 3}`, 400, "no fleet store"},
		{"rollback body not JSON", "POST", "/admin/rollback", `now`, 400, "reason"},
		{"rollback with a reason", "POST", "/admin/rollback", `{"reason": "incident 42"}`, 200, `"changes"`},
		{"change with a reason", "PUT", "/admin/routes/chat", `{"native_bp": 100, "reason": "ramp"}`, 200, `"new_bp":100`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, c, tt.method, ts.AdminURL+tt.path, tt.body, auth)
			if resp.StatusCode != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Fatalf("%s %s: %d %s, want %d with %q", tt.method, tt.path, resp.StatusCode, body, tt.wantCode, tt.wantBody)
			}
		})
	}
	if !strings.Contains(ts.Logs.String(), `"reason":"ramp"`) {
		t.Errorf("the change's reason is not in the audit log line:\n%s", ts.Logs.String())
	}
	var list map[string]json.RawMessage
	_, body := do(t, c, "GET", ts.AdminURL+"/admin/routes", "", adminAuth)
	if err := json.Unmarshal(body, &list); err != nil || list["generation"] != nil {
		t.Errorf("a single instance's route list carries a generation: %s", body)
	}
}

func fleetYAML(legacyURL, redisURL, instance string) string {
	return baseConfig(legacyURL) + "fleet:\n  redis_url: " + redisURL + "\n  instance: " + instance + "\n  heartbeat_ttl: 2s\n"
}

// Two in-process instances on one fleet store: a change on one is in force
// on the other; an instance without the native handler keeps the route on
// legacy; the admin API maps the store's answers to status codes.
func TestFleetInProcess(t *testing.T) {
	r := testenv.StartRedis(t)
	legacy := newBackend(t, echoHandler("legacy"))
	a := startServer(t, fleetYAML(legacy.URL, r.URL(), "a"), newFakeNative("chat", "models"))
	b := startServer(t, fleetYAML(legacy.URL, r.URL(), "b"), newFakeNative("models")) // an older build: no native chat
	c := newClient(t)
	auth := map[string]string{"Authorization": "Bearer admin-secret", "Content-Type": "application/json", ActorHeader: "alice@laptop"}

	if resp, body := do(t, c, "PUT", a.AdminURL+"/admin/routes/models", `{"native_percent": 100, "reason": "ramp"}`, auth); resp.StatusCode != 200 {
		t.Fatalf("PUT models on a: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, c, "PUT", a.AdminURL+"/admin/routes/chat", `{"native_percent": 100}`, auth); resp.StatusCode != 200 {
		t.Fatalf("PUT chat on a: %d %s", resp.StatusCode, body)
	}
	waitFor(t, func() bool { return b.Router.Config().Route("models").Share == 10000 })
	if resp, _ := do(t, c, "GET", b.URL+"/models", "", nil); resp.Header.Get("X-Cutover-Served-By") != "native" {
		t.Errorf("b serves models from %q after a's change", resp.Header.Get("X-Cutover-Served-By"))
	}
	waitFor(t, func() bool { _, gen := b.Router.ConfigAt(); return gen == 3 })
	if got := b.Router.Config().Route("chat").Share; got != 0 {
		t.Errorf("b, without a native chat, applies chat at %d bp", got)
	}
	if !strings.Contains(b.Logs.String(), "no native handler") {
		t.Error("b did not log why it keeps chat on legacy")
	}
	// b cannot raise a route it has no native handler for.
	if resp, body := do(t, c, "PUT", b.AdminURL+"/admin/routes/chat", `{"native_percent": 5}`, auth); resp.StatusCode != 409 {
		t.Errorf("PUT chat on b: %d %s, want 409", resp.StatusCode, body)
	}
	// A change from a generation the fleet has left.
	if resp, body := do(t, c, "PUT", b.AdminURL+"/admin/routes/models", `{"native_percent": 50, "generation": 1}`, auth); resp.StatusCode != 409 ||
		!strings.Contains(string(body), "generation 3") {
		t.Errorf("stale change: %d %s, want 409 naming generation 3", resp.StatusCode, body)
	}

	var f FleetResponse
	waitFor(t, func() bool {
		_, body := do(t, c, "GET", b.AdminURL+"/admin/fleet", "", adminAuth)
		return json.Unmarshal(body, &f) == nil && f.Fleet != nil && len(f.Fleet.Instances) == 2 &&
			!f.Fleet.Instances[0].Behind && !f.Fleet.Instances[1].Behind
	})
	if !f.Status.Healthy || f.Status.Instance != "b" || f.Status.Generation != 3 || f.Fleet.Instances[0].Breakers["models/native"] == "" {
		t.Errorf("fleet view from b: %+v %+v", f.Status, f.Fleet.Instances)
	}
	var audit struct {
		Records []struct {
			Instance, Who, Action, Reason string
		} `json:"records"`
	}
	_, body := do(t, c, "GET", b.AdminURL+"/admin/audit?limit=2", "", adminAuth)
	if err := json.Unmarshal(body, &audit); err != nil || len(audit.Records) != 2 || audit.Records[1].Reason != "ramp" ||
		audit.Records[1].Who != "alice@laptop" || audit.Records[1].Instance != "a" || audit.Records[1].Action != "set" {
		t.Errorf("audit from b: %s", body)
	}
	for _, q := range []string{"0", "x", "10001"} {
		if resp, _ := do(t, c, "GET", b.AdminURL+"/admin/audit?limit="+q, "", adminAuth); resp.StatusCode != 400 {
			t.Errorf("limit %s: %d, want 400", q, resp.StatusCode)
		}
	}
	for _, series := range []string{"cutover_fleet_store_up", "cutover_fleet_synced"} {
		if v := metricValue(t, c, b.AdminURL, series); v != "1" {
			t.Errorf("%s = %q, want 1", series, v)
		}
	}
	if v := metricValue(t, c, b.AdminURL, "cutover_fleet_generation"); v != "3" {
		t.Errorf("cutover_fleet_generation = %q, want 3", v)
	}

	// The store goes away: changes are 503 naming it, traffic goes on.
	r.Stop()
	if resp, body := do(t, c, "POST", a.AdminURL+"/admin/rollback", "", auth); resp.StatusCode != 503 || !strings.Contains(string(body), r.Addr()) {
		t.Errorf("rollback with the store down: %d %s, want 503 naming %s", resp.StatusCode, body, r.Addr())
	}
	if resp, _ := do(t, c, "GET", a.URL+"/models", "", nil); resp.Header.Get("X-Cutover-Served-By") != "native" {
		t.Errorf("a serves models from %q with the store down, want its last share (native)", resp.Header.Get("X-Cutover-Served-By"))
	}
	waitFor(t, func() bool { return metricValue(t, c, a.AdminURL, "cutover_fleet_store_up") == "0" })
}
