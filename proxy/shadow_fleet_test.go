package proxy

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/testenv"
	"github.com/cutover/cutover/shadow"
)

// fleetSummary is GET /admin/shadow/summary as a client reads it.
type fleetSummary struct {
	Scope      string                `json:"scope"`
	FleetError string                `json:"fleet_error"`
	Routes     []shadow.RouteSummary `json:"routes"`
	Process    []shadow.RouteSummary `json:"process"`
}

// Two proxies sharing one Redis diff store: the summary from either is the
// fleet's (the sum of both), and DELETE /admin/shadow/summary resets it,
// with the admin token, audited.
func TestShadowFleetSummary(t *testing.T) {
	rs := testenv.StartRedis(t)
	legacy := newBackend(t, echoHandler("legacy"))
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	yaml := strings.Replace(baseConfig(legacy.URL), "admin:\n  token: admin-secret\n",
		"admin:\n  token: admin-secret\n  audit_log: "+audit+"\n", 1)
	// models: legacy serves, every request is shadowed to native (which
	// answers differently: semantic).
	yaml = strings.Replace(yaml, "  - name: models\n    path: /models\n",
		"  - name: models\n    path: /models\n    shadow:\n      rate_percent: 100\n", 1)
	yaml += "shadow:\n  store:\n    jsonl_path: \"-\"\n    redis_url: " + rs.URL() + "\n    redis_stream: fleet:diffs\n"
	a := startServer(t, yaml, newFakeNative("chat", "models"))
	b := startServer(t, yaml, newFakeNative("chat", "models"))
	c := newClient(t)

	for ts, n := range map[*testServer]int{a: 3, b: 2} {
		for range n {
			if resp, body := do(t, c, "GET", ts.URL+"/models", "", nil); resp.StatusCode != 200 || !strings.Contains(string(body), `"backend":"legacy"`) {
				t.Fatalf("GET /models: %d %s", resp.StatusCode, body)
			}
		}
	}
	waitFor(t, func() bool {
		return routeSummary(a.Mirror(), "models").Semantic == 3 && routeSummary(b.Mirror(), "models").Semantic == 2
	})

	want := []shadow.RouteSummary{{Route: "models", Compared: 5, Semantic: 5, Skipped: map[string]int64{}}}
	for _, ts := range []*testServer{a, b} {
		// The other proxy's counts arrive with its next flush (every second).
		var s fleetSummary
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, body := do(t, c, "GET", ts.AdminURL+"/admin/shadow/summary", "", adminAuth)
			s = fleetSummary{}
			if err := json.Unmarshal(body, &s); err != nil {
				t.Fatalf("summary: %v: %s", err, body)
			}
			if reflect.DeepEqual(s.Routes, want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		own := ts.Mirror().Summary()
		if s.Scope != shadow.ScopeFleet || !reflect.DeepEqual(s.Routes, want) || !reflect.DeepEqual(s.Process, own) {
			t.Errorf("summary from %s: %+v\nwant fleet %+v and process %+v", ts.AdminURL, s, want, own)
		}
	}
	// The fleet's counters live in one hash beside the stream.
	if h, err := redisClient(t, rs.URL()).HGetAll(t.Context(), "fleet:diffs:summary").Result(); err != nil ||
		!reflect.DeepEqual(h, map[string]string{"models|compared": "5", "models|semantic": "5"}) {
		t.Errorf("fleet hash: %v %v", h, err)
	}

	// Reset: a mutation like a share change, so token required and audited.
	if resp, _ := do(t, c, "DELETE", a.AdminURL+"/admin/shadow/summary", "", nil); resp.StatusCode != 401 {
		t.Errorf("reset without token: %d, want 401", resp.StatusCode)
	}
	if s := getSummary(t, c, b.AdminURL); len(s.Routes) != 1 {
		t.Fatalf("a refused reset reset the summary: %+v", s)
	}
	auth := map[string]string{"Authorization": "Bearer admin-secret", ActorHeader: "qa@desk"}
	resp, body := do(t, c, "DELETE", a.AdminURL+"/admin/shadow/summary", "", auth)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"fleet:diffs:summary"`) {
		t.Fatalf("reset: %d %s", resp.StatusCode, body)
	}
	if s := getSummary(t, c, b.AdminURL); s.Scope != shadow.ScopeFleet || len(s.Routes) != 0 || len(s.Process) != 1 {
		t.Errorf("summary from B after the reset: %+v, want an empty fleet and B's own figures", s)
	}
	data, err := os.ReadFile(audit)
	all := strings.Split(strings.TrimSpace(string(data)), "\n")
	if !strings.Contains(all[0], `"action":"auth_failed"`) || !strings.Contains(all[0], `"path":"/admin/shadow/summary"`) {
		t.Errorf("the refused reset is not audited: %s", all[0])
	}
	line := all[len(all)-1]
	var rec map[string]any
	if err != nil || json.Unmarshal([]byte(line), &rec) != nil || rec["action"] != "reset_shadow_summary" || rec["who"] != "qa@desk" ||
		rec["key"] != "fleet:diffs:summary" {
		t.Errorf("audit log (%v): %s", err, line)
	}
	if !strings.Contains(a.Logs.String(), `"msg":"audit: shadow summary reset"`) {
		t.Errorf("no audit line in the process log")
	}
}

// Without a Redis store the summary is the process's and there is no fleet
// summary to reset.
func TestShadowSummaryProcessScope(t *testing.T) {
	legacy := newBackend(t, echoHandler("legacy"))
	yaml := strings.Replace(baseConfig(legacy.URL), "  - name: models\n    path: /models\n",
		"  - name: models\n    path: /models\n    shadow:\n      rate_percent: 100\n", 1)
	ts := startServer(t, yaml, newFakeNative("chat", "models"))
	c := newClient(t)
	do(t, c, "GET", ts.URL+"/models", "", nil)
	waitFor(t, func() bool { return routeSummary(ts.Mirror(), "models").Compared == 1 })
	if s := getSummary(t, c, ts.AdminURL); s.Scope != shadow.ScopeProcess || s.Process != nil || len(s.Routes) != 1 || s.Routes[0].Compared != 1 {
		t.Errorf("summary: %+v", s)
	}
	resp, body := do(t, c, "DELETE", ts.AdminURL+"/admin/shadow/summary", "", map[string]string{"Authorization": "Bearer admin-secret"})
	if resp.StatusCode != 409 || !strings.Contains(string(body), "redis_url") {
		t.Errorf("reset without Redis: %d %s, want 409 naming redis_url", resp.StatusCode, body)
	}
}

func getSummary(t *testing.T, c *http.Client, adminURL string) fleetSummary {
	t.Helper()
	_, body := do(t, c, "GET", adminURL+"/admin/shadow/summary", "", adminAuth)
	var s fleetSummary
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("summary: %v: %s", err, body)
	}
	return s
}
