package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// Actor is who makes a rollout change, for the audit log.
type Actor struct {
	Who    string
	Remote string
	// Action names the change ("rollout_step", "rollout_pause"...).
	Action string
	Reason string
}

// Store keeps the rollout states and applies their shares: the fleet store
// (FleetStore) or a single instance's memory (the proxy's).
type Store interface {
	// Lead takes or keeps the driver's leadership; false while another
	// instance holds it. It is called before every round of evaluations.
	Lead(ctx context.Context) (bool, error)
	// Load returns every route's rollout state and the generation they
	// were read at.
	Load(ctx context.Context) (map[string]State, uint64, error)
	// Save writes st and its Share() for st.Route on top of generation gen
	// (an error wrapping a conflict when the state moved on); fenced writes
	// (the driver's) are refused unless this instance still leads. It
	// returns the generation after the write.
	Save(ctx context.Context, gen uint64, st State, actor Actor, fenced bool) (uint64, error)
}

// Driver evaluates every active rollout on each tick while its instance
// leads, and saves what the evaluations decide. Its zero value is not
// usable: Store and Counters are required.
type Driver struct {
	Store    Store
	Counters Counters
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Interval is the pace of evaluations. Zero means 5s.
	Interval time.Duration
	// Tick, when not nil, replaces the ticker of Interval (tests).
	Tick <-chan time.Time
	// Notify, when not nil, is given every history entry the driver saves
	// (webhooks); it must not block.
	Notify func(State, Entry)
	// Observe, when not nil, is given every evaluation (metrics); it must
	// not block.
	Observe func(State, Decision)
	// Log receives the driver's lines. Nil means slog.Default().
	Log *slog.Logger

	mu      sync.Mutex
	leading bool
}

// Leading reports whether the last round found this instance leading.
func (d *Driver) Leading() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.leading
}

func (d *Driver) now() time.Time {
	if d.Now == nil {
		return time.Now()
	}
	return d.Now()
}

func (d *Driver) log() *slog.Logger {
	if d.Log == nil {
		return slog.Default()
	}
	return d.Log
}

// Run evaluates on every tick until ctx ends.
func (d *Driver) Run(ctx context.Context) {
	tick, stop := ticks(d.Tick, d.Interval, 5*time.Second)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			if err := d.Round(ctx); err != nil && ctx.Err() == nil {
				d.log().Warn("rollout: evaluation round failed", "error", err)
			}
		}
	}
}

// Round is one round: if this instance leads, it evaluates every active
// rollout on its window and saves each decision (fenced by the lease).
func (d *Driver) Round(ctx context.Context) error {
	lead, err := d.Store.Lead(ctx)
	d.mu.Lock()
	was := d.leading
	d.leading = lead && err == nil
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("lead: %w", err)
	}
	if lead != was {
		d.log().Info("rollout: driver leadership changed", "leading", lead)
	}
	if !lead {
		return nil
	}
	states, gen, err := d.Store.Load(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, route := range slices.Sorted(maps.Keys(states)) {
		st := states[route]
		if !st.Status.Active() {
			continue
		}
		w, err := d.Counters.Read(ctx, route, st.Window)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		now := d.now()
		dec := Evaluate(st, w, now)
		next := Apply(st, dec, now)
		if d.Observe != nil {
			d.Observe(next, dec)
		}
		_ = d.Counters.SetLast(ctx, route, Evaluation{Time: now, Window: st.Window, Step: st.Step, Measured: w, Decision: dec, Gates: dec.Gates})
		if dec.Event == "" {
			continue
		}
		actor := Actor{Who: "cutover", Action: "rollout_" + string(dec.Event), Reason: dec.Reason}
		if gen, err = d.Store.Save(ctx, gen, next, actor, true); err != nil {
			// A conflict (an operator acted, another route's save moved the
			// generation) is decided again next round, from what is then stored.
			errs = append(errs, fmt.Errorf("route %q: save %s: %w", route, dec.Event, err))
			return errors.Join(errs...)
		}
		d.log().Warn("rollout: "+string(dec.Event), "route", route, "step", next.CurrentStep().String(), "share_bp", next.Share(),
			"status", string(next.Status), "reason", dec.Reason)
		if d.Notify != nil {
			d.Notify(next, next.History[len(next.History)-1])
		}
	}
	return errors.Join(errs...)
}

// ticks returns tick when it is not nil, else a ticker of interval (def
// when zero or negative), and the function that stops it.
func ticks(tick <-chan time.Time, interval, def time.Duration) (<-chan time.Time, func()) {
	if tick != nil {
		return tick, func() {}
	}
	if interval <= 0 {
		interval = def
	}
	t := time.NewTicker(interval)
	return t.C, t.Stop
}
