package rollout

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Flusher adds an instance's counts to the windows of the routes under
// rollout, on its own goroutine, so the request path only bumps in-process
// counters. Counts that could not be added (the store unreachable) are
// kept, one Window per route and window, and added with the next flush.
type Flusher struct {
	// Counters receive the counts. Required.
	Counters Counters
	// Windows returns the window of every route under an active rollout, as
	// this instance knows it (no I/O). Required.
	Windows func() map[string]uint64
	// Collect returns what the instance counted per route since its last
	// call. Required.
	Collect func() map[string]Window
	// Interval is the pace of flushes. Zero means 1s.
	Interval time.Duration
	// Tick, when not nil, replaces the ticker of Interval (tests).
	Tick <-chan time.Time
	// Log receives the flusher's lines. Nil means slog.Default().
	Log *slog.Logger

	pending map[pendingKey]Window
	failing bool
}

type pendingKey struct {
	route  string
	window uint64
}

// Run flushes on every tick until ctx ends, then once more (bounded by a
// second) so the last counts are not lost.
func (f *Flusher) Run(ctx context.Context) {
	tick, stop := ticks(f.Tick, f.Interval, time.Second)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = f.Flush(fctx)
			cancel()
			return
		case <-tick:
			_ = f.Flush(ctx)
		}
	}
}

// Flush collects the counts since the last flush and adds those of routes
// under rollout to their windows; the counts of other routes are dropped.
// It is not safe for concurrent use (Run calls it).
func (f *Flusher) Flush(ctx context.Context) error {
	counts := f.Collect()
	windows := f.Windows()
	if f.pending == nil {
		f.pending = map[pendingKey]Window{}
	}
	for route, w := range counts {
		id, ok := windows[route]
		if !ok || w.Zero() {
			continue
		}
		k := pendingKey{route, id}
		p := f.pending[k]
		p.Add(w)
		f.pending[k] = p
	}
	var errs []error
	for k, w := range f.pending {
		if id, ok := windows[k.route]; !ok || id != k.window {
			// The window ended before its counts could be added.
			delete(f.pending, k)
			continue
		}
		if err := f.Counters.Add(ctx, k.route, k.window, w); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(f.pending, k)
	}
	err := errors.Join(errs...)
	log := f.Log
	if log == nil {
		log = slog.Default()
	}
	if err != nil && !f.failing {
		log.Error("rollout: counts not flushed; kept for the next flush", "error", err)
	} else if err == nil && f.failing {
		log.Warn("rollout: counts flushed again")
	}
	f.failing = err != nil
	return err
}
