package config

import (
	"strings"
	"testing"
)

// Isolated shadow targets are compared with production by where they
// connect, not by spelling.
func TestIsolatedTargetsComparedByServer(t *testing.T) {
	tests := []struct {
		name                    string
		legacy, isoLegacy       string
		redis, isoRedis         string
		wantLegacySame, wantRed bool
	}{
		{name: "distinct", legacy: "http://127.0.0.1:8000", isoLegacy: "http://127.0.0.1:8001",
			redis: "redis://127.0.0.1:6379/0", isoRedis: "redis://127.0.0.1:6380/0"},
		{name: "localhost vs 127.0.0.1", legacy: "http://127.0.0.1:8000/", isoLegacy: "http://localhost:8000/",
			redis: "redis://127.0.0.1:6379/0", isoRedis: "redis://localhost:6379/0", wantLegacySame: true, wantRed: true},
		{name: "case, trailing dot, path", legacy: "http://LocalHost.:8000/app", isoLegacy: "http://127.0.0.1:8000/isolated",
			redis: "redis://LOCALHOST.:6379", isoRedis: "redis://127.0.0.1:6379/0", wantLegacySame: true, wantRed: true},
		{name: "default ports", legacy: "http://legacy.internal", isoLegacy: "http://legacy.internal:80/",
			redis: "redis://10.0.0.5", isoRedis: "redis://10.0.0.5:6379/0", wantLegacySame: true, wantRed: true},
		{name: "https default port", legacy: "https://legacy.internal:443", isoLegacy: "https://legacy.internal",
			redis: "redis://127.0.0.1:6379/0", isoRedis: "redis://127.0.0.1:6379/1", wantLegacySame: true},
		{name: "other loopback spellings", legacy: "http://[::1]:8000", isoLegacy: "http://127.0.0.2:8000",
			redis: "redis://[::ffff:127.0.0.1]:6379/0", isoRedis: "redis://0.0.0.0:6379/0", wantLegacySame: true, wantRed: true},
		{name: "userinfo and db query", legacy: "http://127.0.0.1:8000", isoLegacy: "http://127.0.0.1:9000",
			redis: "redis://:pw@127.0.0.1:6379/0", isoRedis: "redis://user:other@localhost:6379?db=0", wantRed: true},
		{name: "db query overrides path", legacy: "http://127.0.0.1:8000", isoLegacy: "http://127.0.0.1:9000",
			redis: "redis://127.0.0.1:6379/3", isoRedis: "redis://127.0.0.1:6379/0?db=3", wantRed: true},
		{name: "unix sockets", legacy: "http://127.0.0.1:8000", isoLegacy: "http://127.0.0.1:9000",
			redis: "unix:///run/redis/redis.sock", isoRedis: "unix:///run/redis/../redis/redis.sock?db=0", wantRed: true},
		{name: "other database", legacy: "http://127.0.0.1:8000", isoLegacy: "http://127.0.0.1:9000",
			redis: "redis://127.0.0.1:6379", isoRedis: "redis://localhost:6379/1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := "legacy:\n  url: " + tt.legacy + "\nnative:\n  redis_url: " + tt.redis +
				"\nshadow:\n  isolated_legacy_url: " + tt.isoLegacy + "\n  isolated_redis_url: " + tt.isoRedis + "\n"
			_, err := Parse([]byte(yaml), nil)
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			if got := strings.Contains(msg, "isolated_legacy_url is the production legacy app"); got != tt.wantLegacySame {
				t.Errorf("legacy refused %v, want %v: %v", got, tt.wantLegacySame, err)
			}
			if got := strings.Contains(msg, "isolated_redis_url is the production Redis"); got != tt.wantRed {
				t.Errorf("redis refused %v, want %v: %v", got, tt.wantRed, err)
			}
			if strings.Contains(msg, "pw@") || strings.Contains(msg, "other@") {
				t.Errorf("error echoes a password: %v", err)
			}
			if !tt.wantLegacySame && !tt.wantRed && err != nil {
				t.Errorf("distinct targets refused: %v", err)
			}
		})
	}
}

func TestParseRedisTargetRefusesBadURLs(t *testing.T) {
	for _, give := range []string{"http://127.0.0.1:6379", "redis://127.0.0.1:6379/x", "redis://127.0.0.1/1/2", "unix://", "redis://h/0?db=y"} {
		if _, err := parseRedisTarget(give); err == nil {
			t.Errorf("parseRedisTarget(%q) accepted", give)
		}
	}
}

func TestAdminAndOverrideNeedTokens(t *testing.T) {
	tests := []struct {
		name, yaml, want string // want "" = accepted
	}{
		{"loopback admin without token", "admin: {addr: 127.0.0.1:9090}\n", ""},
		{"localhost admin without token", "admin: {addr: localhost:9090}\n", ""},
		{"ipv6 loopback admin without token", "admin: {addr: \"[::1]:9090\"}\n", ""},
		{"every interface without token", "admin: {addr: \":9090\"}\n", "admin: addr \":9090\" is not loopback"},
		{"0.0.0.0 without token", "admin: {addr: 0.0.0.0:9090}\n", "is not loopback and admin.token is empty"},
		{"public address without token", "admin: {addr: 10.0.0.5:9090}\n", "is not loopback"},
		{"public address with token", "admin: {addr: 0.0.0.0:9090, token: t}\n", ""},
		{"bad metrics addr", "admin: {metrics_addr: nowhere}\n", "metrics_addr"},
		{"metrics addr", "admin: {metrics_addr: \"0.0.0.0:9100\"}\n", ""},
		{"allowed host with port", "admin: {allowed_hosts: [\"cutover:9090\"]}\n", "allowed_hosts entry"},
		{"allowed host", "admin: {allowed_hosts: [cutover-1.internal]}\n", ""},
		{"override without token", "override: {enabled: true}\n", "override: enabled without a token"},
		{"override with token", "override: {enabled: true, token: qa}\n", ""},
		{"override allowed without token", "override: {enabled: true, allow_without_token: true}\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), nil)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
