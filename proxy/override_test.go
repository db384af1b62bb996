package proxy

import (
	"strings"
	"testing"
)

func TestOverride(t *testing.T) {
	legacy := newBackend(t, echoHandler("legacy"))
	tests := []struct {
		name     string
		override string // the override section
		header   map[string]string
		want     string
	}{
		{"disabled: ignored", "  enabled: false\n", map[string]string{"X-Cutover-Backend": "native"}, "legacy"},
		{"enabled without token: honoured", "  enabled: true\n  allow_without_token: true\n", map[string]string{"X-Cutover-Backend": "native"}, "native"},
		{"enabled, case and spaces", "  enabled: true\n  allow_without_token: true\n", map[string]string{"X-Cutover-Backend": " Native "}, "native"},
		{"enabled, legacy on a 100% route", "  enabled: true\n  allow_without_token: true\n", map[string]string{"X-Cutover-Backend": "legacy", "X-Route": "full"}, "legacy"},
		{"enabled, unknown value: ignored", "  enabled: true\n  allow_without_token: true\n", map[string]string{"X-Cutover-Backend": "both"}, "legacy"},
		{"token required, right token", "  enabled: true\n  token: qa-token\n", map[string]string{"X-Cutover-Backend": "native", "X-Cutover-Token": "qa-token"}, "native"},
		{"token required, wrong token", "  enabled: true\n  token: qa-token\n", map[string]string{"X-Cutover-Backend": "native", "X-Cutover-Token": "qa-tokeN"}, "legacy"},
		{"token required, no token", "  enabled: true\n  token: qa-token\n", map[string]string{"X-Cutover-Backend": "native"}, "legacy"},
		{"custom header names", "  enabled: true\n  header: X-QA\n  token: t\n  token_header: X-QA-Token\n", map[string]string{"X-QA": "native", "X-QA-Token": "t"}, "native"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := baseConfig(legacy.URL) + "override:\n" + tt.override
			if tt.header["X-Route"] == "full" {
				yaml = strings.Replace(yaml, "    path: /models\n", "    path: /models\n    native_percent: 100\n", 1)
			}
			ts := startServer(t, yaml, newFakeNative("models"))
			c := newClient(t)
			resp, body := do(t, c, "GET", ts.URL+"/models", "", tt.header)
			s := decodeSeen(t, body)
			if s.Backend != tt.want || resp.Header.Get("X-Cutover-Served-By") != tt.want {
				t.Errorf("served by %s (header %q), want %s", s.Backend, resp.Header.Get("X-Cutover-Served-By"), tt.want)
			}
			// Neither the override header nor its token reaches a backend, honoured or not.
			for _, h := range []string{"X-Cutover-Backend", "X-Cutover-Token", "X-Qa", "X-Qa-Token"} {
				if v, ok := s.Header[h]; ok {
					t.Errorf("backend %s received %s: %q", s.Backend, h, v)
				}
			}
			if strings.Contains(ts.Logs.String(), "qa-token") {
				t.Error("the override token appears in the logs")
			}
			// An override without a token is a deliberate choice, warned about at start.
			open := strings.Contains(tt.override, "allow_without_token: true")
			if warned := strings.Contains(ts.Logs.String(), "override enabled without a token"); warned != open {
				t.Errorf("start WARN about an override without a token: %v, want %v", warned, open)
			}
		})
	}
}
