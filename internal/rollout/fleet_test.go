package rollout

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cutover/cutover/internal/fleet"
	"github.com/cutover/cutover/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const bound = 20 * time.Second

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// clock is an injected clock moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// member is one instance of the test fleet: its fleet store, running, and
// its rollout store.
type member struct {
	fleet *fleet.Store
	store *FleetStore
	stop  func()
}

func joinFleet(t *testing.T, r *testenv.Redis, name string, ttl time.Duration) *member {
	t.Helper()
	st, err := fleet.New(fleet.Options{URL: r.URL(), Instance: name, Log: quiet, FileShares: map[string]int{"chat": 0},
		ReconcileInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = st.Run(ctx) }()
	m := &member{fleet: st, store: &FleetStore{Fleet: st, LeaseTTL: ttl}}
	var once sync.Once
	m.stop = func() { once.Do(func() { cancel(); <-done; _ = st.Close() }) }
	t.Cleanup(m.stop)
	eventually(t, name+" ready", func() bool { c := st.Current(); return c != nil && c.Source() == fleet.SourceStore })
	return m
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", bound, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func state(t *testing.T, m *member) State {
	t.Helper()
	states, _, err := m.store.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return states["chat"]
}

// TestDriverTakeover runs a rollout through the fleet store with two
// instances: A drives it a step, stops renewing (as if paused or dead), B
// takes the lease over and goes on from the same step without repeating
// or skipping one, and A's fenced write is refused.
func TestDriverTakeover(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	ttl := 300 * time.Millisecond
	a, b := joinFleet(t, r, "a", ttl), joinFleet(t, r, "b", ttl)
	rdb, prefix := a.fleet.Redis()
	counters := &RedisCounters{Client: rdb, Prefix: prefix}
	clk := &clock{t: t0}
	var mu sync.Mutex
	var events []Event
	notify := func(_ State, e Entry) { mu.Lock(); events = append(events, e.Event); mu.Unlock() }
	da := &Driver{Store: a.store, Counters: counters, Now: clk.Now, Notify: notify, Log: quiet}
	db := &Driver{Store: b.store, Counters: counters, Now: clk.Now, Notify: notify, Log: quiet}

	plan := Plan{Steps: []Step{{Shadow: true}, {Share: 1000}, {Share: 5000}, {Share: MaxShare}}, Interval: Duration(time.Minute), MinRequests: 5}
	st, err := Begin(ctx, b.store, "chat", plan, Actor{Who: "ops", Action: "rollout_start"}, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Begin(ctx, a.store, "chat", plan, Actor{Who: "ops", Action: "rollout_start"}, clk.Now()); !errors.Is(err, ErrState) {
		t.Fatalf("second start: %v, want ErrState", err)
	}
	eventually(t, "a sees the rollout", func() bool { return state(t, a).Status == StatusRunning })

	// Step 0 (shadow): enough comparisons, interval passed → A moves to 10 %.
	if err := counters.Add(ctx, "chat", st.Window, Window{Compared: 10}); err != nil {
		t.Fatal(err)
	}
	if err := da.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if s := state(t, a); s.Step != 0 {
		t.Fatalf("stepped before the interval: %+v", s)
	}
	clk.Add(time.Minute)
	if err := da.Round(ctx); err != nil || !da.Leading() {
		t.Fatalf("round: %v, leading %v", err, da.Leading())
	}
	if err := db.Round(ctx); err != nil || db.Leading() {
		t.Fatalf("b round: %v, leading %v (a holds the lease)", err, db.Leading())
	}
	eventually(t, "b sees step 1 at 10 %", func() bool {
		s, _ := b.fleet.Current().Share("chat")
		return state(t, b).Step == 1 && s == 1000
	})
	window1 := state(t, b).Window

	// A stops renewing: B takes over once the lease expires.
	eventually(t, "b takes the lease over", func() bool { return db.Round(ctx) == nil && db.Leading() })
	// A, still believing it leads, cannot write a step: fenced off.
	s1, gen := state(t, a), a.fleet.Current().Generation()
	if _, err := a.store.Save(ctx, gen, Apply(s1, Decision{Event: EventStep}, clk.Now()), Actor{Who: "cutover", Action: "rollout_step"}, true); !errors.Is(err, fleet.ErrFenced) {
		t.Fatalf("stale leader's save: %v, want ErrFenced", err)
	}
	if got := state(t, b); got.Step != 1 || got.Window != window1 {
		t.Fatalf("after the fenced write: %+v", got)
	}
	// B continues from step 1 with its window's counts.
	healthy := Window{Legacy: Counts{Requests: 20, Latency: lat(0.05, 20)}, Native: Counts{Requests: 20, Latency: lat(0.05, 20)}}
	if err := counters.Add(ctx, "chat", window1, healthy); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	if err := db.Round(ctx); err != nil {
		t.Fatal(err)
	}
	got := state(t, b)
	if got.Step != 2 || got.Share() != 5000 {
		t.Fatalf("b: step %d share %d, want 2 at 5000", got.Step, got.Share())
	}
	var hist []Event
	for _, e := range got.History {
		hist = append(hist, e.Event)
	}
	if want := []Event{EventStart, EventStep, EventStep}; !slices.Equal(hist, want) {
		t.Errorf("history %v, want %v", hist, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []Event{EventStep, EventStep}; !slices.Equal(events, want) {
		t.Errorf("notified %v, want %v", events, want)
	}
	// The audit names each change.
	recs, err := b.fleet.Audit(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range recs {
		actions = append(actions, r.Action)
	}
	if len(actions) < 3 || actions[0] != "rollout_step" || actions[1] != "rollout_step" || actions[2] != "rollout_start" {
		t.Errorf("audit actions (newest first) %v", actions)
	}
}

func TestRedisCountersRoundTrip(t *testing.T) {
	r := testenv.StartRedis(t)
	m := joinFleet(t, r, "a", time.Second)
	rdb, prefix := m.fleet.Redis()
	c := &RedisCounters{Client: rdb, Prefix: prefix}
	ctx := context.Background()
	w := Window{Legacy: Counts{Requests: 3, Errors: 1, Latency: lat(0.01, 3)}, Native: Counts{Requests: 2, Latency: lat(70, 2)},
		Compared: 4, Mismatched: 1, NativeTrips: 1}
	for range 2 {
		if err := c.Add(ctx, "chat", 7, w); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Read(ctx, "chat", 7)
	if err != nil {
		t.Fatal(err)
	}
	var want Window
	want.Add(w)
	want.Add(w)
	if got.Legacy.Requests != 6 || got.Legacy.Errors != 2 || got.Native.Requests != 4 || got.Compared != 8 || got.Mismatched != 2 ||
		got.NativeTrips != 2 || !slices.Equal(got.Legacy.Latency, want.Legacy.Latency) || !slices.Equal(got.Native.Latency, want.Native.Latency) {
		t.Errorf("read %+v, want %+v", got, want)
	}
	if other, _ := c.Read(ctx, "chat", 8); !other.Zero() {
		t.Errorf("window 8 counts %+v", other)
	}
}
