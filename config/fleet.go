package config

import (
	"net"
	"os"
	"strings"
	"time"
)

func (f *Fleet) setDefaults(listenAddr string) {
	if f.Instance == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "cutover"
		}
		port := "8080"
		if _, p, err := net.SplitHostPort(listenAddr); err == nil && p != "" {
			port = p
		}
		f.Instance = host + ":" + port
	}
	if f.KeyPrefix == "" {
		f.KeyPrefix = "cutover:"
	}
	if f.ReconcileInterval == 0 {
		f.ReconcileInterval = time.Second
	}
	if f.HeartbeatTTL == 0 {
		f.HeartbeatTTL = 15 * time.Second
	}
	if f.StartupSyncBound == 0 {
		f.StartupSyncBound = 30 * time.Second
	}
	if f.AuditMaxLen == 0 {
		f.AuditMaxLen = 10000
	}
}

func (c *Config) validateFleet(add func(string, ...any)) {
	f := c.Fleet
	if u := f.RedisURL; u != "" {
		if !strings.HasPrefix(u, "redis://") && !strings.HasPrefix(u, "rediss://") && !strings.HasPrefix(u, "unix://") {
			add("fleet: redis_url %q is not a redis://, rediss:// or unix:// URL", u)
		} else if u == c.Native.RedisURL {
			add("fleet: redis_url %q is native.redis_url, the conversation store: give the fleet another database (redis://host:6379/1) or server", u)
		}
	}
	if strings.ContainsFunc(f.Instance, func(r rune) bool { return r <= ' ' || r == 0x7f }) || len(f.Instance) > 200 {
		add("fleet: instance %q must be at most 200 characters without spaces or control characters", f.Instance)
	}
	if strings.ContainsFunc(f.KeyPrefix, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		add("fleet: key_prefix %q must not contain spaces or control characters", f.KeyPrefix)
	}
	if f.ReconcileInterval < 10*time.Millisecond {
		add("fleet: reconcile_interval %s is below 10ms", f.ReconcileInterval)
	}
	if f.HeartbeatTTL < time.Second {
		add("fleet: heartbeat_ttl %s is below 1s", f.HeartbeatTTL)
	}
	if f.AuditMaxLen < 0 {
		add("fleet: audit_max_len %d is negative", f.AuditMaxLen)
	}
}
