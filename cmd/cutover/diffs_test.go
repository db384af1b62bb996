package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/testenv"
	"github.com/cutover/cutover/shadow"
)

// diffsMirror is a real Mirror with three comparisons of /chat done: a match,
// a semantic difference and an encoding-only one, served by its admin API.
func diffsMirror(t *testing.T) string {
	t.Helper()
	cmp, err := shadow.NewComparator(shadow.ComparatorConfig{Routes: map[string]shadow.Rules{"chat": {JSON: true}}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := shadow.NewMirror(shadow.Options{Comparator: cmp, RecordMatches: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	primary := `{"conversation_id":"c1","model":"m-1","reply":"caf\u00e9 <ok>","usage":{"input_tokens":3,"output_tokens":5}}` + "\n"
	shadows := []string{
		primary,
		`{"conversation_id":"c1","model":"m-2","reply":"caf\u00e9 <ok>","usage":{"input_tokens":3,"output_tokens":5}}` + "\n",
		`{"conversation_id":"c1","model":"m-1","reply":"café \u003cok\u003e","usage":{"input_tokens":3,"output_tokens":5}}`,
	}
	for i, body := range shadows {
		target := shadow.HandlerTarget{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
		})}
		r := httptest.NewRequest(http.MethodPost, "/chat", strings.NewReader(`{"message":"hi"}`))
		r.Header.Set("Cookie", "session=secret-value")
		if !m.Submit(shadow.Job{Route: "chat", Request: shadow.NewRequest(r, []byte(`{"message":"hi"}`)), PrimarySide: shadow.SideLegacy,
			Primary: shadow.Response{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(primary)},
			Target:  target}) {
			t.Fatalf("job %d not queued", i)
		}
	}
	m.Skip("chat", shadow.SkipQueueFull)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int64
		for _, s := range m.Summary() {
			n += s.Compared
		}
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("comparisons not done: %+v", m.Summary())
		}
		time.Sleep(time.Millisecond)
	}
	srv := httptest.NewServer(m.Admin())
	t.Cleanup(srv.Close)
	return srv.URL
}

func runDiffs(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"diffs"}, args...), &out, &errb)
	return out.String() + errb.String(), code
}

func TestDiffsCommand(t *testing.T) {
	admin := diffsMirror(t)

	out, code := runDiffs(t, "-admin", admin)
	if code != 0 || !regexp.MustCompile(`chat\s+3\s+1\s+1\s+1\s+0\s+0\s+queue_full=1`).MatchString(out) ||
		!strings.HasPrefix(out, "scope: process (this instance only, since it started)\n") {
		t.Fatalf("summary (%d):\n%s", code, out)
	}

	out, code = runDiffs(t, "-admin", admin, "list", "-class", "semantic", "-since", "1h")
	ids := regexp.MustCompile(`(?m)^(\d+-\d+)\s+\S+\s+chat\s+semantic\s+legacy\s+POST /chat\s+200/200\s+\$\.model`).FindStringSubmatch(out)
	if code != 0 || ids == nil || strings.Contains(out, "encoding_only") {
		t.Fatalf("list -class semantic (%d):\n%s", code, out)
	}
	if out, code := runDiffs(t, "-admin", admin, "list", "-route", "chat"); code != 0 || strings.Count(out, "\n") != 4 {
		t.Errorf("list -route chat (%d):\n%s", code, out)
	}

	out, code = runDiffs(t, "-admin", admin, "show", ids[1])
	for _, want := range []string{
		"class semantic", "request: POST /chat", "Cookie: [REDACTED]", "semantic      $.model: \"m-1\" -> \"m-2\"",
		"--- primary (legacy)\n+++ shadow (native)\n", "-  \"model\": \"m-1\",\n+  \"model\": \"m-2\",",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if code != 0 || strings.Contains(out, "secret-value") {
		t.Errorf("show (%d):\n%s", code, out)
	}

	tests := []struct {
		give []string
		want string
		code int
	}{
		{[]string{"show", "0-42"}, "404", 1},
		{[]string{"list", "-class", "bogus"}, "not one of", 1},
		{[]string{"list", "-limit", "0"}, "-limit", 1},
		{[]string{"frobnicate"}, "usage: cutover diffs", 2},
		{[]string{"show"}, "usage: cutover diffs", 2},
	}
	for _, tt := range tests {
		out, code := runDiffs(t, append([]string{"-admin", admin}, tt.give...)...)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("diffs %q: exit %d, want %d with %q:\n%s", tt.give, code, tt.code, tt.want, out)
		}
	}
}

func TestUnifiedDiff(t *testing.T) {
	tests := []struct {
		a, b string
		want string
	}{
		{"a b c", "a b c", "(responses identical"},
		{"1 2 3 4 5 6 7 8 9", "1 2 3 4 X 6 7 8 9", "@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+X\n 6\n 7\n 8"},
		{"1 2 3 4 5 6 7 8 9 10 11 12", "0 1 2 3 4 5 6 7 8 9 10 11 12 13", "@@ -1,3 +1,4 @@\n+0\n 1\n 2\n 3\n@@ -10,3 +11,4 @@\n 10\n 11\n 12\n+13"},
	}
	for _, tt := range tests {
		got := strings.Join(unifiedDiff(strings.Fields(tt.a), strings.Fields(tt.b), 3), "\n")
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("unifiedDiff(%q, %q):\n%s\nwant\n%s", tt.a, tt.b, got, tt.want)
		}
	}
}

// cutover serve shadows a route to the native app (with the isolated native
// app built for shadow-safe writes), and cutover diffs reads the result back
// through the admin API: the fleet's summary (a Redis store), which
// cutover diffs reset sets back to zero.
func TestServeShadowsAndDiffs(t *testing.T) {
	rs := testenv.StartRedis(t)
	legacy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"default":"legacy-model","models":[]}` + "\n"))
	}))
	defer legacy.Close()
	traffic, admin := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "cutover.yaml")
	yaml := fmt.Sprintf(`listen: {addr: %s}
admin: {addr: %s, token: diffs-secret}
shutdown: {drain_delay: 1ms, timeout: 5s}
legacy: {url: %s}
native:
  secret_key: diffs-test-secret
  aws_region: us-east-1
  bedrock_endpoint_url: http://127.0.0.1:1
  redis_url: %s
shadow:
  isolated_legacy_url: http://127.0.0.1:2
  isolated_redis_url: %s
  store: {jsonl_path: %s, redis_url: %s}
routes:
  - name: models
    path: /models
    shadow: {rate_percent: 100, compare: json}
`, traffic, admin, legacy.URL, testenv.StartRedis(t).URL(), testenv.StartRedis(t).URL(), filepath.Join(dir, "diffs.jsonl"), rs.URL())
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	out := serveUntilEnd(t, path)

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	var body []byte
	for {
		resp, err := c.Get("http://" + traffic + "/models")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never answered: %v\n%s", err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(string(body), "legacy-model") {
		t.Fatalf("client got %s, want legacy's answer", body)
	}
	adminURL := "http://" + admin
	var table string
	for {
		table, _ = runDiffs(t, "-admin", adminURL, "-token", "diffs-secret", "summary")
		if regexp.MustCompile(`models\s+1\s+0\s+0\s+1\s`).MatchString(table) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("summary never showed the semantic diff:\n%s", table)
		}
		time.Sleep(20 * time.Millisecond)
	}
	list, code1 := runDiffs(t, "-admin", adminURL, "-token", "diffs-secret", "list", "-route", "models")
	id := regexp.MustCompile(`(?m)^(\d+-\d+)\s`).FindStringSubmatch(list)
	if code1 != 0 || id == nil {
		t.Fatalf("list:\n%s", list)
	}
	// Diff records hold chat text: reading them needs the token.
	for _, args := range [][]string{{"list"}, {"show", id[1]}, {"summary"}} {
		if out, code := runDiffs(t, append([]string{"-admin", adminURL, "-token", ""}, args...)...); code == 0 || !strings.Contains(out, "missing or wrong bearer token") {
			t.Errorf("diffs %s without the token (%d):\n%s", args[0], code, out)
		}
	}
	show, code2 := runDiffs(t, "-admin", adminURL, "-token", "diffs-secret", "show", id[1])
	if code2 != 0 || !strings.Contains(show, `-  "default": "legacy-model",`) || !strings.Contains(show, `+  "default": "anthropic.claude-3-5-sonnet-20240620-v1:0",`) {
		t.Errorf("show:\n%s", show)
	}
	if !strings.HasPrefix(table, "scope: fleet (") {
		t.Errorf("summary with a Redis store is not the fleet's:\n%s", table)
	}
	if out, code := runDiffs(t, "-admin", adminURL, "-token", "", "reset"); code == 0 || !strings.Contains(out, "missing or wrong bearer token") {
		t.Errorf("reset without the token (%d):\n%s", code, out)
	}
	if out, code := runDiffs(t, "-admin", adminURL, "-token", "diffs-secret", "reset"); code != 0 || out != "fleet summary reset (redis hash cutover:diffs:summary deleted)\n" {
		t.Errorf("reset (%d):\n%s", code, out)
	}
	if table, _ := runDiffs(t, "-admin", adminURL, "-token", "diffs-secret", "summary"); !strings.HasPrefix(table, "scope: fleet (") || !strings.Contains(table, "(no shadowed requests yet)") {
		t.Errorf("summary after reset:\n%s", table)
	}
}
