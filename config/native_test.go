package config

import (
	"strings"
	"testing"
)

func TestNativeHeaders(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		env     []string
		want    string
		wantErr string
	}{
		{name: "default", want: "gunicorn"},
		{name: "set", give: `"gunicorn/20.0.4"`, want: "gunicorn/20.0.4"},
		{name: "with spaces", give: `"nginx/1.25.3 (Ubuntu)"`, want: "nginx/1.25.3 (Ubuntu)"},
		{name: "none", give: `"-"`, want: NoServerHeader},
		{name: "env", env: []string{"CUTOVER_NATIVE_HEADERS_SERVER=envoy"}, want: "envoy"},
		{name: "env none", env: []string{"CUTOVER_NATIVE_HEADERS_SERVER=-"}, want: NoServerHeader},
		{name: "newline", give: `"gunicorn\r\nX-Injected: 1"`,
			wantErr: `native: headers.server "gunicorn\r\nX-Injected: 1" has byte 0x0d at offset 8: a header value here must be printable ASCII`},
		{name: "tab", give: `"a\tb"`, wantErr: `native: headers.server "a\tb" has byte 0x09 at offset 1`},
		{name: "non-ASCII", give: `"güni"`, wantErr: `native: headers.server "güni" has byte 0xc3 at offset 1`},
		{name: "leading space", give: `" gunicorn"`,
			wantErr: `native: headers.server " gunicorn" has leading or trailing whitespace, which clients strip`},
		{name: "trailing space", give: `"gunicorn "`, wantErr: `native: headers.server "gunicorn " has leading or trailing whitespace`},
		{name: "not a scalar", give: "[a, b]", wantErr: "native.headers.server"},
		{name: "unknown key", give: "gunicorn\n    powered_by: flask", wantErr: "powered_by"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var yaml string
			if tt.give != "" {
				yaml = "native:\n  headers:\n    server: " + tt.give + "\n"
			}
			c, err := Parse([]byte(yaml), tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Native.Headers.Server != tt.want {
				t.Errorf("native.headers.server = %q, want %q", c.Native.Headers.Server, tt.want)
			}
		})
	}
}
