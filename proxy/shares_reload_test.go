package proxy

import (
	"os"
	"strings"
	"testing"
)

// A share change the file does not hold (admin.persist off here; a write
// that fails is the same) is never reverted silently by a reload: it stays
// over the file until the file catches up or is edited for that route, and
// every share a reload changes is audited.
func TestUnsavedSharesSurviveReloads(t *testing.T) {
	legacy := newBackend(t, echoHandler("legacy"))
	audit := t.TempDir() + "/audit.jsonl"
	yaml := strings.Replace(baseConfig(legacy.URL), "admin:\n  token: admin-secret\n",
		"admin:\n  token: admin-secret\n  persist: false\n  audit_log: "+audit+"\n", 1)
	yaml = strings.Replace(yaml, "    path: /models\n", "    path: /models\n    native_percent: 0\n", 1)
	ts := startServer(t, yaml, newFakeNative("chat", "models"))
	c := newClient(t)
	auth := map[string]string{"Authorization": "Bearer admin-secret", ActorHeader: "oncall"}
	share := func(route string) int { return ts.Router.Config().Route(route).Share }
	rewrite := func(from, to string) {
		t.Helper()
		data, err := os.ReadFile(ts.File)
		if err != nil {
			t.Fatal(err)
		}
		next := strings.Replace(string(data), from, to, 1)
		if next == string(data) {
			t.Fatalf("config has no %q", from)
		}
		if err := os.WriteFile(ts.File, []byte(next), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := ts.Server.Reload(); err != nil {
			t.Fatalf("reload: %v", err)
		}
	}

	if resp, body := do(t, c, "PUT", ts.AdminURL+"/admin/routes/chat", `{"native_percent": 50}`, auth); resp.StatusCode != 200 ||
		!strings.Contains(string(body), `"persisted":false`) {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	// A reload for another reason (SIGHUP, another route edited) keeps it.
	if err := ts.Server.Reload(); err != nil {
		t.Fatal(err)
	}
	rewrite("    path: /models\n    native_percent: 0\n", "    path: /models\n    native_percent: 2\n")
	if share("chat") != 5000 || share("models") != 200 {
		t.Errorf("after reloads: chat %d bp (want the unsaved 5000), models %d bp (want the file's 200)", share("chat"), share("models"))
	}
	if !strings.Contains(ts.Logs.String(), "a share change not saved to the file stays in force over it") {
		t.Error("no WARN about the unsaved share kept over the reload")
	}
	// The file edited for that route since: the file's newer share wins.
	rewrite("  - name: chat\n", "  - name: chat\n    native_percent: 25\n")
	if share("chat") != 2500 {
		t.Errorf("after the file set chat to 25%%: %d bp", share("chat"))
	}
	// Then a reload keeps the file's value (no overlay left).
	if err := ts.Server.Reload(); err != nil || share("chat") != 2500 {
		t.Errorf("reload after the file caught up: %d bp (%v)", share("chat"), err)
	}

	log := readTestFile(t, audit)
	for _, want := range []string{
		`"who":"oncall","remote":"127.0.0.1`, // the admin change
		`"who":"config file","action":"reload","route":"models","old_bp":0,"new_bp":200`,
		`"who":"config file","action":"reload","route":"chat","old_bp":5000,"new_bp":2500`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %s:\n%s", want, log)
		}
	}
	if strings.Count(log, `"route":"chat"`) != 2 {
		t.Errorf("chat audited %d times, want 2 (the admin change, the file's):\n%s", strings.Count(log, `"route":"chat"`), log)
	}
}
