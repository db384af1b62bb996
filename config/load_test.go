package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Decode errors (bad values, unknown keys) are reported together with the
// validation of everything that did decode, each naming its field.
func TestDecodeErrorsJoinValidation(t *testing.T) {
	yaml := `
listen:
  read_timeout: abc
  bogus: 1
whatever: 2
routes:
  - name: chat
    path: /chat
    native_bp: 20000
    breaker:
      interval: zz
    nope: 2
  - name: models
    path: models
`
	c, err := Parse([]byte(yaml), nil)
	if err == nil || c != nil {
		t.Fatalf("Parse = %v, %v; want no config and an error", c, err)
	}
	want := []string{
		`listen.read_timeout: time: invalid duration`,
		`listen: has invalid keys: bogus`,
		`decode config: has invalid keys: whatever`,
		`route "chat": breaker.interval: time: invalid duration`,
		`route "chat": has invalid keys: nope`,
		`route "chat": native_bp 20000 is not in [0, 10000]`,
		`route "models": path "models" must start with /`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q", w)
		}
	}
	if n := len(strings.Split(err.Error(), "\n")); n != len(want) {
		t.Errorf("%d problems reported, want %d:\n%v", n, len(want), err)
	}
}

// Inspect returns what it could decode along with the problems, for
// check-config to add its own checks; unreadable YAML gives no config.
func TestInspect(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", "listen:\n  idle_timeout: soon\nroutes:\n  - name: chat\n    path: /chat\n    native_percent: 5\n")
	c, err := Inspect(bad)
	if err == nil || c == nil {
		t.Fatalf("Inspect = %v, %v; want a config and an error", c, err)
	}
	if r := c.Route("chat"); r == nil || r.Share != 500 {
		t.Errorf("decoded route: %+v", r)
	}
	if c.Listen.IdleTimeout != 75*time.Second {
		t.Errorf("a field that failed to decode keeps its default: idle_timeout = %v", c.Listen.IdleTimeout)
	}
	if _, err := Load(bad); err == nil {
		t.Error("Load accepted the file")
	}
	notYAML := writeFile(t, dir, "broken.yaml", "listen: [\n")
	if c, err := Inspect(notYAML); c != nil || err == nil {
		t.Errorf("Inspect of broken YAML = %v, %v", c, err)
	}
}

// The raw Flask session cookie is never an identity source: its timestamp
// and signature change on every refresh (issue 3).
func TestRawSessionCookieRejected(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		wantErr string // "" means valid
	}{
		{"global list", "stickiness: [cookie:session, client_ip]\n", `stickiness: source "cookie:session" is the raw session cookie`},
		{"route list", "routes:\n  - name: chat\n    path: /chat\n    stickiness: [cookie:session]\n", `route "chat": stickiness: source "cookie:session" is the raw session cookie`},
		{"renamed session cookie", "identity:\n  session_cookie: sid\nstickiness: [cookie:sid]\n", `source "cookie:sid" is the raw session cookie`},
		{"message points at the payload", "stickiness: [cookie:session]\n", `use session:FIELD`},
		{"another cookie", "stickiness: [cookie:uid, client_ip]\n", ""},
		{"old name once renamed", "identity:\n  session_cookie: sid\nstickiness: [cookie:session]\n", ""},
		{"the session payload", "stickiness: [session:conversation_id, session]\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.give), nil)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("rejected: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
