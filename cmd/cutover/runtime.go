package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/cutover/cutover/config"
)

// runtimeTuning is what tuneRuntime put in force, for the start log.
type runtimeTuning struct {
	// GC is the collector's target: "GOGC=N (environment)" or "N".
	GC string
	// MemoryLimit is the soft memory limit in bytes; math.MaxInt64 means none.
	MemoryLimit int64
	// LimitFrom says where the limit came from: "environment",
	// "container", "none" (no container limit) or an error's text.
	LimitFrom string
}

// tuneRuntime applies rc to the Go runtime, once, before serving (package
// config's Runtime documents the defaults): GOGC in the environment wins over
// rc.GCPercent; GOMEMLIMIT (or AUTOMEMLIMIT) in the environment wins over
// rc.MemoryLimitRatio. limit is the container's memory limit
// (memlimit.FromCgroup in production); a failure to read it leaves the
// runtime's limit alone and is reported in LimitFrom, never fatal.
func tuneRuntime(rc config.Runtime, limit memlimit.Provider) runtimeTuning {
	var t runtimeTuning
	if v := os.Getenv("GOGC"); v != "" {
		t.GC = "GOGC=" + v + " (environment)"
	} else {
		debug.SetGCPercent(rc.GCPercent)
		t.GC = fmt.Sprint(rc.GCPercent)
		if rc.GCPercent < 0 {
			t.GC = "off"
		}
	}
	n, err := memlimit.Set(memlimit.WithRatio(rc.MemoryLimitRatio), memlimit.WithProvider(limit))
	t.MemoryLimit = n
	switch {
	case os.Getenv("GOMEMLIMIT") != "" || os.Getenv("AUTOMEMLIMIT") != "":
		t.LimitFrom = "environment"
	case err != nil:
		t.LimitFrom = err.Error()
	case n == math.MaxInt64:
		t.LimitFrom = "none"
	default:
		t.LimitFrom = "container"
	}
	return t
}

// logRuntime logs what tuneRuntime put in force.
func logRuntime(log *slog.Logger, t runtimeTuning) {
	limit := "none"
	if t.MemoryLimit != math.MaxInt64 {
		limit = fmt.Sprintf("%d MiB", t.MemoryLimit>>20)
	}
	lvl := slog.LevelInfo
	if t.LimitFrom != "environment" && t.LimitFrom != "container" && t.LimitFrom != "none" {
		lvl = slog.LevelWarn // the container's limit could not be read
	}
	log.Log(context.Background(), lvl, "go runtime tuned", "gc_percent", t.GC, "memory_limit", limit, "memory_limit_from", t.LimitFrom)
}
