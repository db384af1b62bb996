package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/handlers"
	"github.com/cutover/cutover/internal/testenv"
)

// native.headers becomes the handlers' header profile; the default is
// exactly the profile the conformance suite proves against gunicorn.
func TestHandlerConfigHeaders(t *testing.T) {
	tests := []struct {
		name string
		give string
		want http.Header
	}{
		{name: "default", want: handlers.GunicornHeaders()},
		{name: "set", give: "server: gunicorn/20.0.4", want: http.Header{"Server": {"gunicorn/20.0.4"}}},
		{name: "none", give: `server: "-"`, want: http.Header{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte("native:\n  headers:\n    "+tt.give+"\n"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := handlerConfig(c.Native).Headers; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Headers = %#v, want %#v", got, tt.want)
			}
		})
	}
	if got := handlerConfig(config.Native{}).Headers; got != nil {
		t.Errorf("an unloaded config's Headers = %#v, want nil (the handlers' default)", got)
	}
}

// Through a real cutover serve in front of the legacy app under gunicorn, a
// native response carries the configured Server value, and by default the
// same header fields and body as legacy's.
func TestServeNativeHeaderProfile(t *testing.T) {
	legacy := testenv.StartLegacy(t, nil)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	get := func(t *testing.T, base, backend string) (http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/health", nil)
		req.Header.Set("X-Cutover-Backend", backend)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", backend, resp.StatusCode, err)
		}
		// Date and the connection framing may differ (issue 4).
		resp.Header.Del("Date")
		resp.Header.Del("Connection")
		return resp.Header, string(body)
	}

	tests := []struct {
		name       string
		give       string
		wantServer []string // nil: no Server field
	}{
		{name: "default", wantServer: []string{"gunicorn"}},
		{name: "set", give: "headers:\n    server: gunicorn/20.0.4", wantServer: []string{"gunicorn/20.0.4"}},
		{name: "none", give: "headers:\n    server: \"-\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _, _ := startServe(t, legacy.URL(), tt.give)
			legacyHeader, legacyBody := get(t, base, "legacy")
			nativeHeader, nativeBody := get(t, base, "native")
			if got := legacyHeader.Values("Server"); !reflect.DeepEqual(got, []string{"gunicorn"}) {
				t.Errorf("legacy Server = %q, want gunicorn's (native.headers must not touch legacy's)", got)
			}
			if got := nativeHeader.Values("Server"); !reflect.DeepEqual(got, tt.wantServer) {
				t.Errorf("native Server = %q, want %q", got, tt.wantServer)
			}
			if nativeBody != legacyBody {
				t.Errorf("body: native %q, legacy %q", nativeBody, legacyBody)
			}
			if tt.name == "default" && !reflect.DeepEqual(nativeHeader, legacyHeader) {
				t.Errorf("header:\nnative %v\nlegacy %v", nativeHeader, legacyHeader)
			}
		})
	}
}

// native.headers is read at start, like every native setting: a reload
// that changes it is accepted, logged as needing a restart, and leaves the
// running handlers' profile as it was.
func TestServeNativeHeadersTakeEffectOnRestart(t *testing.T) {
	legacy := testenv.StartLegacy(t, nil)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	base, path, log := startServe(t, legacy.URL(), "headers:\n    server: before")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	nativeServer := func() []string {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/health", nil)
		req.Header.Set("X-Cutover-Backend", "native")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Values("Server")
	}
	if got := nativeServer(); !reflect.DeepEqual(got, []string{"before"}) {
		t.Fatalf("native Server = %q, want before", got)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(data), "server: before", "server: after", 1)
	if changed == string(data) {
		t.Fatal("config has no server: before")
	}
	if err := os.WriteFile(path, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	const warning = "legacy, native and runtime settings take effect on restart"
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(log.String(), warning) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q after the config changed\n%s", warning, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(log.String(), "config reload rejected") {
		t.Errorf("the reload was rejected\n%s", log.String())
	}
	if got := nativeServer(); !reflect.DeepEqual(got, []string{"before"}) {
		t.Errorf("native Server after the reload = %q, want before until a restart", got)
	}
}

// startServe runs cutover serve in front of legacyURL with the QA override
// on and native settings extra (YAML under native:) until the test ends, and
// returns its traffic URL once it answers, its config file and its log.
func startServe(t *testing.T, legacyURL, extra string) (base, path string, log *lockedBuffer) {
	t.Helper()
	traffic, admin := freeAddr(t), freeAddr(t)
	path = filepath.Join(t.TempDir(), "cutover.yaml")
	yaml := fmt.Sprintf(`listen:
  addr: %s
admin:
  addr: %s
shutdown:
  drain_delay: 1ms
legacy:
  url: %s
native:
  secret_key: native-test-secret
  bedrock_endpoint_url: http://127.0.0.1:1
  redis_url: redis://127.0.0.1:1/0
  %s
override:
  enabled: true
  allow_without_token: true
routes:
  - name: health
    path: /health
`, traffic, admin, legacyURL, extra)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{}
	var code int
	done := make(chan struct{})
	go func() { defer close(done); code = run(ctx, []string{"serve", "-config", path}, out, out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
			if code != 0 {
				t.Errorf("serve exited %d\n%s", code, out.String())
			}
		case <-time.After(30 * time.Second):
			t.Errorf("serve did not exit\n%s", out.String())
		}
	})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("serve exited %d before answering\n%s", code, out.String())
		default:
		}
		r, err := c.Get("http://" + traffic + "/_cutover/health")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return "http://" + traffic, path, out
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("cutover serve never answered its health check\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
