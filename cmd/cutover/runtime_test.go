package main

import (
	"errors"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/cutover/cutover/config"
)

func TestTuneRuntime(t *testing.T) {
	prevGC, prevLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(prevGC); debug.SetMemoryLimit(prevLimit) })
	cgroupErr := errors.New("cgroup unreadable")
	tests := []struct {
		name      string
		env       map[string]string
		rc        config.Runtime
		limit     memlimit.Provider
		wantGC    int // the collector's target in force afterwards
		wantLimit int64
		wantFrom  string
	}{
		{"defaults in a container", nil, config.Runtime{GCPercent: 400, MemoryLimitRatio: 0.9}, memlimit.Limit(1 << 30),
			400, 966367641, "container"}, // 0.9 × 1 GiB, truncated
		{"ratio", nil, config.Runtime{GCPercent: 200, MemoryLimitRatio: 0.5}, memlimit.Limit(1 << 30), 200, 1 << 29, "container"},
		{"collector off until the limit", nil, config.Runtime{GCPercent: -1, MemoryLimitRatio: 0.5}, memlimit.Limit(1 << 30), -1, 1 << 29, "container"},
		{"no container limit", nil, config.Runtime{GCPercent: 400, MemoryLimitRatio: 0.9},
			func() (uint64, error) { return 0, memlimit.ErrNoLimit }, 400, math.MaxInt64, "none"},
		{"environment wins", map[string]string{"GOGC": "150", "GOMEMLIMIT": "100MiB"}, config.Runtime{GCPercent: 400, MemoryLimitRatio: 0.9},
			memlimit.Limit(1 << 30), 100, math.MaxInt64, "environment"},
		{"unreadable limit is reported, not fatal", nil, config.Runtime{GCPercent: 400, MemoryLimitRatio: 0.9},
			func() (uint64, error) { return 0, cgroupErr }, 400, math.MaxInt64, cgroupErr.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"GOGC", "GOMEMLIMIT", "AUTOMEMLIMIT"} {
				t.Setenv(k, tt.env[k]) // restored after the test
				if tt.env[k] == "" {
					os.Unsetenv(k) // set but empty is not unset (AUTOMEMLIMIT)
				}
			}
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
			got := tuneRuntime(tt.rc, tt.limit)
			if gc := debug.SetGCPercent(100); gc != tt.wantGC {
				t.Errorf("GC percent in force = %d, want %d", gc, tt.wantGC)
			}
			if l := debug.SetMemoryLimit(-1); l != tt.wantLimit {
				t.Errorf("memory limit in force = %d, want %d", l, tt.wantLimit)
			}
			if !strings.Contains(got.LimitFrom, tt.wantFrom) {
				t.Errorf("limit from %q, want %q", got.LimitFrom, tt.wantFrom)
			}
			if tt.env["GOGC"] != "" && got.GC != "GOGC=150 (environment)" {
				t.Errorf("GC reported %q, want the environment's", got.GC)
			}
		})
	}
}
