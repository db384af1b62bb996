package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"testing"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/shadow"
)

// The shadow settings a config leaves at their defaults, end to end: records
// go to cutover-diffs.jsonl in the working directory (jsonl_path "-": the
// ring only), the shadow package's default headers are redacted
// (Proxy-Authorization and X-Amz-Security-Token included) along with the
// configured body fields, and an ignore rule works in the default byte mode.
func TestShadowConfigDefaults(t *testing.T) {
	const (
		bearer, proxyAuth, amzToken, cookie = "bearer-secret-1", "proxy-secret-2", "amz-secret-3", "cookie-secret-4"
		querySecret, bodySecret             = "query-secret-5", "body-secret-6"
	)
	answer := func(side string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			switch r.URL.Path {
			case "/models": // differs only in the ignored field
				_, _ = w.Write([]byte(`{"conversation_id":"` + side + `-1","models":[]}`))
			default: // differs in status, a semantic difference
				_, _ = w.Write([]byte(`{"session_token":"` + bodySecret + `","status":"` + side + `"}`))
			}
		})
	}
	legacy := newBackend(t, answer("legacy"))
	native := &fakeNative{Handler: answer("native"), endpoints: []string{"health", "models"}}

	tests := []struct {
		name     string
		store    string
		wantFile bool
	}{
		{name: "default file", wantFile: true},
		{name: "no file", store: "  store: {jsonl_path: \"-\"}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			cfg, err := config.Parse([]byte(`shutdown: {drain_delay: 1ms, timeout: 5s}
legacy: {url: `+legacy.URL+`}
shadow:
  redact_fields: [session_token]
`+tt.store+`routes:
  - name: health
    path: /health
    shadow: {rate_percent: 100}
  - name: models
    path: /models
    shadow: {rate_percent: 100, ignore: ["$.conversation_id"]}
`), nil)
			if err != nil {
				t.Fatal(err)
			}
			ts := startShadowConfig(t, cfg, native, nil)
			m := ts.Mirror()
			c := newClient(t)
			do(t, c, http.MethodGet, ts.URL+"/models", "", nil)
			do(t, c, http.MethodGet, ts.URL+"/health?session_token="+querySecret+"&x=1", "", map[string]string{
				"Authorization": "Bearer " + bearer, "Proxy-Authorization": "Basic " + proxyAuth,
				"X-Amz-Security-Token": amzToken, "Cookie": "session=" + cookie,
			})
			waitOutcomes(t, m, 2)
			if s := routeSummary(m, "models"); s.Compared != 1 || s.Matched != 1 {
				t.Errorf("models (ignore rule, byte mode): %+v, want 1 matched", s)
			}
			if s := routeSummary(m, "health"); s.Compared != 1 || s.Semantic != 1 {
				t.Errorf("health: %+v, want 1 semantic", s)
			}

			// Counted means stored.
			recs := records(t, m, shadow.Query{})
			if len(recs) != 1 {
				t.Fatalf("%d records stored, want the one mismatch", len(recs))
			}
			raw, err := os.ReadFile(config.DefaultJSONLPath)
			if !tt.wantFile {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("jsonl_path \"-\" wrote a file: %v %s", err, raw)
				}
				return
			}
			if err != nil {
				t.Fatalf("default JSONL file: %v", err)
			}
			if n := bytes.Count(raw, []byte("\n")); n != 1 {
				t.Fatalf("%d records in the file, want the one mismatch:\n%s", n, raw)
			}
			for _, secret := range []string{bearer, proxyAuth, amzToken, cookie, querySecret, bodySecret} {
				if bytes.Contains(raw, []byte(secret)) {
					t.Errorf("record keeps %q:\n%s", secret, raw)
				}
			}
			var rec shadow.Record
			if err := json.Unmarshal(raw, &rec); err != nil {
				t.Fatal(err)
			}
			for _, h := range []string{"Authorization", "Proxy-Authorization", "X-Amz-Security-Token", "Cookie"} {
				if got := rec.Request.Header.Get(h); got != shadow.Redacted {
					t.Errorf("request header %s recorded as %q", h, got)
				}
			}
			if rec.Route != "health" || rec.Class != shadow.ClassSemantic || !bytes.Contains([]byte(rec.Primary.Body.Text), []byte(`"status":"legacy"`)) {
				t.Errorf("record: route %s class %s primary body %q", rec.Route, rec.Class, rec.Primary.Body.Text)
			}
		})
	}
}

// shadow.store.ring_max_bytes reaches the ring: a record larger than it is
// not stored, and counted as dropped.
func TestShadowStoreByteBoundFromConfig(t *testing.T) {
	answer := func(side string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"status":"` + side + `"}`))
		})
	}
	legacy := newBackend(t, answer("legacy"))
	native := &fakeNative{Handler: answer("native"), endpoints: []string{"health"}}
	cfg, err := config.Parse([]byte(`shutdown: {drain_delay: 1ms, timeout: 5s}
admin: {token: admin-secret}
legacy: {url: `+legacy.URL+`}
shadow:
  store: {jsonl_path: "-", ring_max_bytes: 100}
routes:
  - name: health
    path: /health
    shadow: {rate_percent: 100}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := startShadowConfig(t, cfg, native, nil)
	m := ts.Mirror()
	c := newClient(t)
	do(t, c, http.MethodGet, ts.URL+"/health", "", nil)
	waitOutcomes(t, m, 1)
	if s := routeSummary(m, "health"); s.Semantic != 1 {
		t.Fatalf("health: %+v, want 1 semantic", s)
	}
	if recs := records(t, m, shadow.Query{}); len(recs) != 0 {
		t.Errorf("%d records stored in a ring of 100 bytes", len(recs))
	}
	if v := metricValue(t, c, ts.AdminURL, `cutover_shadow_store_dropped_total{reason="too_large",store="memory"}`); v != "1" {
		t.Errorf("dropped too_large = %q, want 1", v)
	}
}
