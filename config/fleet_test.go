package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestFleetDefaults(t *testing.T) {
	c, err := Parse([]byte("listen:\n  addr: 0.0.0.0:8081\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	f := c.Fleet
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"off without redis_url", f.Enabled(), false},
		{"instance: host and traffic port", f.Instance, host + ":8081"},
		{"key_prefix", f.KeyPrefix, "cutover:"},
		{"reconcile_interval", f.ReconcileInterval, time.Second},
		{"heartbeat_ttl", f.HeartbeatTTL, 15 * time.Second},
		{"startup_sync_bound", f.StartupSyncBound, 30 * time.Second},
		{"audit_max_len", f.AuditMaxLen, int64(10000)},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	c, err = Parse(nil, []string{"CUTOVER_FLEET_REDIS_URL=redis://10.0.0.5:6379/1", "CUTOVER_FLEET_INSTANCE=task-1", "CUTOVER_FLEET_STARTUP_SYNC_BOUND=-1s"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Fleet.Enabled() || c.Fleet.RedisURL != "redis://10.0.0.5:6379/1" || c.Fleet.Instance != "task-1" || c.Fleet.StartupSyncBound != -time.Second {
		t.Errorf("fleet from the environment: %+v", c.Fleet)
	}
}

func TestFleetValidation(t *testing.T) {
	tests := []struct {
		give string
		want []string
	}{
		{give: "fleet:\n  redis_url: http://x\n", want: []string{`fleet: redis_url "http://x" is not a redis://`}},
		{give: "native:\n  redis_url: redis://r:6379/0\nfleet:\n  redis_url: redis://r:6379/0\n", want: []string{"fleet: redis_url \"redis://r:6379/0\" is native.redis_url, the conversation store"}},
		{give: "fleet:\n  instance: a b\n  key_prefix: \"x y\"\n  reconcile_interval: 1ms\n  heartbeat_ttl: 500ms\n  audit_max_len: -1\n", want: []string{
			`fleet: instance "a b"`, `fleet: key_prefix "x y"`, "fleet: reconcile_interval 1ms is below 10ms", "fleet: heartbeat_ttl 500ms is below 1s", "fleet: audit_max_len -1 is negative",
		}},
		{give: "fleet:\n  reconcile_interval: soon\n", want: []string{"fleet.reconcile_interval"}},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.give), nil)
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Parse(%q) = %v, want an error containing %q", tt.give, err, w)
			}
		}
	}
	if _, err := Parse([]byte("fleet:\n  redis_url: redis://127.0.0.1:6379/1\n"), nil); err != nil {
		t.Errorf("a fleet on database 1 next to the default conversations: %v", err)
	}
}
