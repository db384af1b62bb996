package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cutover/cutover/config"
)

func TestDecisionReasons(t *testing.T) {
	legacy := newBackend(t, echoHandler("legacy"))
	yaml := strings.Replace(baseConfig(legacy.URL), "    path: /models\n", "    path: /models\n    native_percent: 50\n    stickiness: [header:X-User-Id]\n", 1)
	yaml = strings.Replace(yaml, "    path: /health\n", "    path: /health\n    native_percent: 100\n", 1)
	yaml += "override:\n  enabled: true\n  allow_without_token: true\n"
	ts := startServer(t, yaml, newFakeNative("models", "health"))
	c := newClient(t)
	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		wantServed string
		wantReason string
	}{
		{"no identity stays legacy", "GET", "/models", nil, "legacy", "no_identity"},
		{"100 % needs no identity", "GET", "/health", nil, "native", "share"},
		{"route without a native handler", "GET", "/conversations/x", map[string]string{"X-User-Id": "u"}, "legacy", "no_handler"},
		{"unmatched path", "GET", "/nowhere", nil, "legacy", "unmatched"},
		{"method not allowed is unmatched", "POST", "/models", nil, "legacy", "unmatched"},
		{"override to native on a route with a handler", "GET", "/models", map[string]string{"X-Cutover-Backend": "native"}, "native", "override"},
		{"override to native on an unmatched path stays legacy", "GET", "/static/x", map[string]string{"X-Cutover-Backend": "native"}, "legacy", "override_no_handler"},
		{"override to native on a route without a handler stays legacy", "GET", "/conversations/y", map[string]string{"X-Cutover-Backend": "native"}, "legacy", "override_no_handler"},
		{"override to legacy on an unmatched path", "GET", "/static/y", map[string]string{"X-Cutover-Backend": "legacy"}, "legacy", "override"},
		{"override to legacy on a 100 % route", "GET", "/health", map[string]string{"X-Cutover-Backend": "legacy"}, "legacy", "override"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, c, tt.method, ts.URL+tt.path, "", tt.header)
			if got := resp.Header.Get("X-Cutover-Served-By"); got != tt.wantServed {
				t.Errorf("served by %s, want %s (%s)", got, tt.wantServed, body)
			}
			want := `"path":"` + tt.path + `","status"`
			found := false
			for _, line := range strings.Split(ts.Logs.String(), "\n") {
				if strings.Contains(line, want) && strings.Contains(line, `"method":"`+tt.method+`"`) &&
					strings.Contains(line, `"reason":"`+tt.wantReason+`"`) && strings.Contains(line, `"backend":"`+tt.wantServed+`"`) {
					found = true
				}
			}
			if !found {
				t.Errorf("no access log line with reason %s and backend %s for %s %s:\n%s", tt.wantReason, tt.wantServed, tt.method, tt.path, ts.Logs.String())
			}
		})
	}
}

// A panicking native handler, with no fallback decorator, is answered with
// a 500 by the Router, counted, logged, and the process keeps serving.
// (With the breakers and fallback of Server, legacy answers instead.)
func TestRouterContainsNativePanic(t *testing.T) {
	legacy := newBackend(t, echoHandler("legacy"))
	yaml := strings.Replace(baseConfig(legacy.URL), "    path: /models\n", "    path: /models\n    native_percent: 100\n", 1)
	cfg, err := config.Parse([]byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	native := &fakeNative{endpoints: []string{"models"}, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Late") != "" {
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
		}
		panic("boom")
	})}
	tr := NewTransport(cfg.Legacy)
	defer tr.CloseIdleConnections()
	lh, err := NewLegacy(cfg.Legacy, LegacyOptions{Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	rt, err := NewRouter(cfg, RouterOptions{Legacy: lh, Native: native, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(rt)
	defer front.Close()
	c := newClient(t)
	resp, body := do(t, c, "GET", front.URL+"/models", "", nil)
	if resp.StatusCode != 500 || !strings.Contains(string(body), "500 Internal Server Error") {
		t.Errorf("got %d %q, want a 500 page", resp.StatusCode, body)
	}
	// After bytes were sent the connection is aborted, so the client sees a
	// broken response rather than one that looks complete.
	req, _ := http.NewRequest("GET", front.URL+"/models", nil)
	req.Header.Set("X-Late", "1")
	if resp, err := c.Do(req); err == nil {
		if _, rerr := readAll(resp); rerr == nil {
			t.Error("a response cut by a panic looked complete")
		}
	}
	resp, _ = do(t, c, "GET", front.URL+"/health", "", nil)
	if resp.StatusCode != 200 {
		t.Errorf("unhealthy after a panic: %d", resp.StatusCode)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", rt.Metrics().Handler())
	admin := httptest.NewServer(mux)
	defer admin.Close()
	if v := metricValue(t, c, admin.URL, `cutover_backend_errors_total{backend="native",reason="panic",route="models"}`); v != "2" {
		t.Errorf("panics counted %q, want 2", v)
	}
	if !strings.Contains(logs.String(), `"msg":"handler panic"`) {
		t.Errorf("panic not logged:\n%s", logs.String())
	}
}

func readAll(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			if err.Error() == "EOF" {
				return []byte(b.String()), nil
			}
			return []byte(b.String()), err
		}
	}
}

// The json: source reads the body ahead and the backend still receives
// every byte, on both sides of the split.
func TestJSONIdentityKeepsTheBody(t *testing.T) {
	legacy := newBackend(t, echoHandler("legacy"))
	yaml := strings.Replace(baseConfig(legacy.URL), "    methods: [POST]\n", "    methods: [POST]\n    native_percent: 50\n", 1) // chat
	ts := startServer(t, yaml, newFakeNative("chat"))
	c := newClient(t)
	seed := Seed("chat")
	sides := map[string]bool{}
	for i := range 40 {
		id := fmt.Sprintf("conv-%d", i)
		body := fmt.Sprintf(`{"message":"%s","conversation_id":"%s"}`, strings.Repeat("é", i*50), id)
		resp, out := do(t, c, "POST", ts.URL+"/chat", body, map[string]string{"Content-Type": "application/json"})
		s := decodeSeen(t, out)
		sum := sha256.Sum256([]byte(body))
		if s.BodySHA != hex.EncodeToString(sum[:]) || s.BodyLen != len(body) {
			t.Fatalf("%s: backend got %d bytes, sent %d", id, s.BodyLen, len(body))
		}
		want := "legacy"
		if Bucket(seed, id) < 5000 {
			want = "native"
		}
		if got := resp.Header.Get("X-Cutover-Served-By"); got != want || s.Backend != want {
			t.Fatalf("%s served by %s/%s, bucket says %s", id, got, s.Backend, want)
		}
		sides[want] = true
	}
	if len(sides) != 2 {
		t.Errorf("40 conversations all landed on %v", sides)
	}
}
