package proxy

import (
	"net/http"
	"strings"
	"testing"
)

// TestPprofAdminOnly: admin.pprof serves profiles on the admin listener only;
// off by default; the traffic port passes /debug/pprof/ to legacy like any path.
func TestPprofAdminOnly(t *testing.T) {
	tests := []struct {
		name      string
		give      string
		wantAdmin int
	}{
		{"default off", "", http.StatusNotFound},
		{"enabled", "  pprof: true\n", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backend := newBackend(t, echoHandler("legacy"))
			yaml := strings.Replace(baseConfig(backend.URL), "  token: admin-secret\n", "  token: admin-secret\n"+tt.give, 1)
			ts := startServer(t, yaml, nil)
			c := newClient(t)
			resp, body := do(t, c, "GET", ts.AdminURL+"/debug/pprof/cmdline", "", adminAuth)
			if resp.StatusCode != tt.wantAdmin {
				t.Errorf("admin /debug/pprof/cmdline: %d %q, want %d", resp.StatusCode, body, tt.wantAdmin)
			}
			if tt.wantAdmin == http.StatusOK {
				if resp, body := do(t, c, "GET", ts.AdminURL+"/debug/pprof/goroutine?debug=1", "", adminAuth); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
					t.Errorf("admin goroutine profile: %d %.80q", resp.StatusCode, body)
				}
			}
			resp, body = do(t, c, "GET", ts.URL+"/debug/pprof/cmdline", "", nil)
			if s := decodeSeen(t, body); resp.StatusCode != http.StatusOK || s.Backend != "legacy" || s.RequestURI != "/debug/pprof/cmdline" {
				t.Errorf("traffic /debug/pprof/cmdline: %d, backend %q %q; want legacy to see it", resp.StatusCode, s.Backend, s.RequestURI)
			}
		})
	}
}
