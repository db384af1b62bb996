package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/cutover/cutover/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// bound is how long a test waits for an event before it fails; the
// propagation bound the issue sets (1s) is checked separately.
const bound = 15 * time.Second

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// instance is a Store whose Run goroutine the test owns, with every applied
// snapshot sent on applied.
type instance struct {
	*Store
	applied chan *Snapshot
}

// start builds a Store on r with opt (URL, Log and OnApply filled in) and,
// unless noRun, runs it until the test ends.
func start(t *testing.T, r *testenv.Redis, name string, opt Options, noRun ...bool) *instance {
	t.Helper()
	in := &instance{applied: make(chan *Snapshot, 1000)}
	opt.URL, opt.Instance, opt.Log = r.URL(), name, quiet
	opt.OnApply = func(s *Snapshot) {
		select {
		case in.applied <- s:
		default:
			t.Errorf("%s: applied channel full", name)
		}
	}
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	in.Store = s
	if len(noRun) > 0 && noRun[0] {
		t.Cleanup(func() { _ = s.Close() })
		return in
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = s.Close()
	})
	return in
}

// waitGen waits, up to within, for the instance to apply generation gen or
// later, and returns that snapshot.
func (in *instance) waitGen(t *testing.T, gen uint64, within time.Duration) *Snapshot {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		if cur := in.Current(); cur != nil && cur.Source() == SourceStore && cur.Generation() >= gen {
			return cur
		}
		select {
		case snap := <-in.applied:
			// OnApply runs just before Current has the snapshot: wait for
			// both, so callers may use Current.
			if snap.Source() == SourceStore && snap.Generation() >= gen {
				eventually(t, in.Instance()+" current after OnApply", func() bool { return in.syncedTo(snap.Generation()) })
				return snap
			}
		case <-timer.C:
			t.Fatalf("%s: generation %d not applied within %s (at %+v)", in.Instance(), gen, within, in.Status())
			return nil
		}
	}
}

// eventually polls cond until it holds, failing the test after bound.
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

func share(bp int) *int { return &bp }

func set(who string, shares map[string]int) Change {
	ch := Change{Edits: map[string]Edit{}, Actor: Actor{Who: who, Action: "set", Reason: "test"}}
	for name, bp := range shares {
		ch.Edits[name] = Edit{Share: share(bp)}
	}
	return ch
}

func TestApplyConflictOneWinsNothingLost(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	a := start(t, r, "a", Options{}, true)
	b := start(t, r, "b", Options{}, true)
	if _, err := a.Apply(ctx, 0, set("ops", map[string]int{"chat": 100, "history": 0})); err != nil {
		t.Fatal(err)
	}
	// Both decide from generation 1, at once.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	gate := make(chan struct{})
	for i, in := range []*instance{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			_, errs[i] = in.Apply(ctx, 1, set(in.Instance(), map[string]int{"chat": 1000 * (i + 1)}))
		}()
	}
	close(gate)
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil:
			won = i
		case !errors.Is(err, ErrConflict):
			t.Fatalf("change %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if won < 0 || errs[1-won] == nil {
		t.Fatalf("errors %v: want exactly one winner", errs)
	}
	d, err := a.fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Generation != 2 || d.Routes["chat"].Share != 1000*(won+1) {
		t.Fatalf("store at generation %d with chat %d, want 2 and the winner's %d", d.Generation, d.Routes["chat"].Share, 1000*(won+1))
	}
	// The loser retries from the new generation and its change lands too.
	loser := []*instance{a, b}[1-won]
	snap, err := loser.Apply(ctx, 2, Change{Edits: map[string]Edit{"history": {Share: share(50)}}, Actor: Actor{Who: "ops", Action: "set"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Shares(); got["chat"] != 1000*(won+1) || got["history"] != 50 || snap.Generation() != 3 {
		t.Fatalf("after retry: generation %d shares %v", snap.Generation(), got)
	}
	// A change that changes nothing writes nothing.
	snap, err = loser.Apply(ctx, 3, set("ops", map[string]int{"history": 50}))
	if err != nil || snap.Generation() != 3 {
		t.Fatalf("no-op change: generation %v, %v; want 3, nil", snap, err)
	}
}

func TestChangePropagatesToEveryInstanceWithinOneSecond(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	// A reconcile interval far above the bound: only the change message can
	// deliver the change in time.
	opt := Options{ReconcileInterval: time.Hour}
	subs := []*instance{start(t, r, "a", opt), start(t, r, "b", opt), start(t, r, "c", opt)}
	for _, s := range subs {
		eventually(t, s.Instance()+" ready", s.Ready)
	}
	writer := start(t, r, "w", opt, true)
	// The listeners must have subscribed before the change, or it is missed.
	eventually(t, "three subscribers", func() bool {
		n, err := writer.rdb.PubSubNumSub(ctx, writer.key("changes")).Result()
		return err == nil && n[writer.key("changes")] == 3
	})
	for i, pct := range []int{100, 500, 2500} {
		base := subs[0].Current().Generation()
		snap, err := writer.Apply(ctx, base, set("ops", map[string]int{"chat": pct}))
		if err != nil {
			t.Fatal(err)
		}
		sent := time.Now()
		for _, s := range subs {
			got := s.waitGen(t, snap.Generation(), time.Second-time.Since(sent))
			if bp, _ := got.Share("chat"); bp != pct {
				t.Fatalf("change %d: %s applies chat %d, want %d", i, s.Instance(), bp, pct)
			}
		}
		t.Logf("change %d applied by 3 instances in %s", i, time.Since(sent))
	}
}

func TestReconcileAppliesAChangeWhoseMessageWasMissed(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	a := start(t, r, "a", Options{ReconcileInterval: 50 * time.Millisecond, FileShares: map[string]int{"chat": 0}})
	first := a.waitGen(t, 1, bound)
	// Write generation 2 the way no instance would: no message published.
	d := first.document()
	d.Generation = 2
	rs := d.Routes["chat"]
	rs.Share = 4200
	d.Routes["chat"] = rs
	doc, _ := json.Marshal(d)
	raw := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer raw.Close()
	if err := raw.HSet(ctx, "cutover:state", "gen", 2, "doc", doc).Err(); err != nil {
		t.Fatal(err)
	}
	if bp, _ := a.waitGen(t, 2, bound).Share("chat"); bp != 4200 {
		t.Fatalf("chat %d after reconcile, want 4200", bp)
	}
}

func TestStoreDownKeepsStateRefusesChangesThenConverges(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	opt := Options{ReconcileInterval: 50 * time.Millisecond, Timeout: 500 * time.Millisecond,
		FileShares: map[string]int{"chat": 0, "history": 0}}
	a, b := start(t, r, "a", opt), start(t, r, "b", opt)
	a.waitGen(t, 1, bound)
	snap, err := a.Apply(ctx, a.Current().Generation(), set("ops", map[string]int{"chat": 700}))
	if err != nil {
		t.Fatal(err)
	}
	b.waitGen(t, snap.Generation(), bound)

	r.Stop()
	_, err = a.Apply(ctx, snap.Generation(), set("ops", map[string]int{"chat": 0}))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), r.Addr()) {
		t.Fatalf("change with the store down: %v, want ErrUnavailable naming %s", err, r.Addr())
	}
	if _, err := b.ApplyLatest(ctx, set("cutover", map[string]int{"chat": 0})); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("ApplyLatest with the store down: %v, want ErrUnavailable", err)
	}
	for _, in := range []*instance{a, b} {
		eventually(t, in.Instance()+" reports the store down", func() bool { return !in.Healthy() && in.LastError() != nil })
		if cur := in.Current(); cur.Generation() != snap.Generation() || cur.Shares()["chat"] != 700 {
			t.Fatalf("%s with the store down applies generation %d shares %v, want the last state", in.Instance(), cur.Generation(), cur.Shares())
		}
		if st := in.Status(); st.Healthy || st.Error == "" || !st.Ready || st.Source != SourceStore {
			t.Fatalf("%s status with the store down: %+v", in.Instance(), st)
		}
	}

	// Redis comes back empty (persistence is off): one instance restores the
	// fleet's state, as a newer generation, and both apply it.
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	for _, in := range []*instance{a, b} {
		got := in.waitGen(t, snap.Generation()+1, bound)
		if got.Shares()["chat"] != 700 {
			t.Fatalf("%s after the store returned: shares %v, want chat 700", in.Instance(), got.Shares())
		}
		eventually(t, in.Instance()+" healthy", in.Healthy)
	}
	recs, err := a.Audit(ctx, 10)
	if err != nil || len(recs) != 1 || recs[0].Action != "restore" {
		t.Fatalf("audit after the restart: %+v, %v; want one restore", recs, err)
	}
	// Changes work again and reach both.
	cur := a.Current().Generation()
	snap, err = b.Apply(ctx, cur, set("ops", map[string]int{"chat": 0}))
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []*instance{a, b} {
		if got := in.waitGen(t, snap.Generation(), bound); got.Shares()["chat"] != 0 {
			t.Fatalf("%s: chat %d after the rollback", in.Instance(), got.Shares()["chat"])
		}
	}
}

// fakeClock is a clock the test moves.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (in *instance) sourceIs(src Source) bool {
	cur := in.Current()
	return cur != nil && cur.Source() == src
}
func (in *instance) failed() bool             { return in.LastError() != nil }
func (in *instance) shareOf(route string) int { bp, _ := in.Current().Share(route); return bp }
func (in *instance) generation() uint64       { return in.Current().Generation() }
func (in *instance) syncedTo(gen uint64) bool {
	cur := in.Current()
	return cur != nil && cur.Generation() >= gen
}

func TestStartupWithTheStoreDownWaitsThenFallsBackToTheFile(t *testing.T) {
	r := testenv.StartRedis(t)
	r.Stop()
	ctx := context.Background()
	clock := newClock()
	// An hour between reconciles: the test drives each sync with Poke.
	a := start(t, r, "a", Options{ReconcileInterval: time.Hour, StartupBound: 10 * time.Second, Now: clock.Now,
		FileShares: map[string]int{"chat": 300}})
	eventually(t, "the first sync fails", a.failed)
	clock.Advance(9 * time.Second)
	a.Poke()
	if a.Ready() {
		t.Fatal("ready before the startup bound with the store down")
	}
	clock.Advance(time.Second)
	a.Poke()
	eventually(t, "fallback to the file past the bound", func() bool { return a.sourceIs(SourceFile) })
	if st := a.Status(); !st.Ready || st.Synced || st.FileFallback == nil || a.shareOf("chat") != 300 {
		t.Fatalf("after the fallback: %+v, chat %d", st, a.shareOf("chat"))
	}

	// The store returns, holding another share: the store wins.
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	other := start(t, r, "other", Options{}, true)
	if _, err := other.Apply(ctx, 0, Change{Edits: map[string]Edit{"chat": {Share: share(50), FileShare: share(300)}},
		Actor: Actor{Who: "ops", Action: "set"}}); err != nil {
		t.Fatal(err)
	}
	a.Poke()
	got := a.waitGen(t, 1, bound)
	if bp, _ := got.Share("chat"); bp != 50 {
		t.Fatalf("after the store returned: chat %d, want the store's 50", bp)
	}
	eventually(t, "a reports itself synced from the store", func() bool {
		st := a.Status()
		return st.Synced && st.Source == SourceStore && st.Generation == 1
	})
}

func TestNegativeStartupBoundNeverFallsBack(t *testing.T) {
	r := testenv.StartRedis(t)
	r.Stop()
	clock := newClock()
	a := start(t, r, "a", Options{ReconcileInterval: time.Hour, StartupBound: -1, Now: clock.Now, FileShares: map[string]int{"chat": 1}})
	eventually(t, "the first sync fails", a.failed)
	clock.Advance(24 * time.Hour)
	a.Poke()
	eventually(t, "a second sync fails", func() bool {
		a.Poke()
		return a.failed()
	})
	if a.Ready() {
		t.Fatal("a negative startup bound fell back to the file")
	}
}

func TestSeedingAndFileEdits(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	opt := Options{ReconcileInterval: 50 * time.Millisecond, FileShares: map[string]int{"chat": 100, "history": 0}}
	a := start(t, r, "a", opt)
	a.waitGen(t, 1, bound)
	// Ops change chat through the API.
	snap, err := a.Apply(ctx, 1, set("ops", map[string]int{"chat": 500}))
	if err != nil {
		t.Fatal(err)
	}
	// A new instance with the same (unchanged) file follows the store.
	b := start(t, r, "b", opt)
	if got := b.waitGen(t, snap.Generation(), bound); got.Shares()["chat"] != 500 {
		t.Fatalf("new instance with an unchanged file: chat %d, want the store's 500", got.Shares()["chat"])
	}
	// The file is edited (chat) and gains a route (stream): written to the store.
	b.SetFileShares(map[string]int{"chat": 2000, "history": 0, "stream": 10})
	eventually(t, "a applies the file edit", func() bool { return a.shareOf("chat") == 2000 && a.shareOf("stream") == 10 })
	recs, err := a.Audit(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, rec := range recs {
		actions = append(actions, rec.Action+"/"+rec.Instance)
	}
	if got := strings.Join(actions, " "); got != "config_file/b seed/b set/a seed/a" {
		t.Fatalf("audit actions newest first: %s", got)
	}
	edit := recs[0]
	if edit.Reason != "config file" || len(edit.Changes) != 1 || edit.Changes[0].Old.Share != 500 || edit.Changes[0].New.Share != 2000 {
		t.Fatalf("file edit audit: %+v", edit)
	}
	// The same file again is not an edit: an API change stands.
	cur := a.generation()
	if _, err := a.Apply(ctx, cur, set("ops", map[string]int{"chat": 0})); err != nil {
		t.Fatal(err)
	}
	b.SetFileShares(map[string]int{"chat": 2000, "history": 0, "stream": 10})
	b.waitGen(t, cur+1, bound)
	b.Poke()
	eventually(t, "b synced after the reload", func() bool { return b.syncedTo(cur + 1) })
	if n, err := a.rdb.XLen(ctx, "cutover:audit").Result(); err != nil || n != 5 {
		t.Fatalf("audit length %d, %v: an unchanged file must write nothing", n, err)
	}
}

func TestLeaseTakeoverAndFencing(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	a := start(t, r, "a", Options{}, true)
	b := start(t, r, "b", Options{}, true)
	la, err := a.Acquire(ctx, "rollout", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(ctx, "rollout", time.Second); !errors.Is(err, ErrLeaseHeld) || !strings.Contains(err.Error(), "a") {
		t.Fatalf("acquire a held lease: %v, want ErrLeaseHeld naming a", err)
	}
	if err := la.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	step := func(l *Lease, n string) error {
		_, err := a.ApplyLatest(ctx, Change{Edits: map[string]Edit{"chat": {Rollout: json.RawMessage(`{"step":` + n + `}`)}},
			Actor: Actor{Who: "driver", Action: "rollout"}, Fence: l})
		return err
	}
	if err := step(la, "1"); err != nil {
		t.Fatal(err)
	}
	// a stops renewing (paused): its lease expires and b takes over.
	var lb *Lease
	eventually(t, "b takes the lease over", func() bool {
		lb, err = b.Acquire(ctx, "rollout", time.Minute)
		return err == nil
	})
	if lb.Token() <= la.Token() {
		t.Fatalf("token %d after takeover, want above %d", lb.Token(), la.Token())
	}
	if err := la.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renew after takeover: %v, want ErrLeaseLost", err)
	}
	if err := step(la, "2"); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale holder's step: %v, want ErrFenced", err)
	}
	if err := step(lb, "2"); err != nil {
		t.Fatal(err)
	}
	rs, _ := a.Current().Route("chat")
	if string(rs.Rollout) != `{"step":2}` {
		t.Fatalf("rollout %s, want step 2 from the new holder only", rs.Rollout)
	}
	if holder, tok, err := a.LeaseHolder(ctx, "rollout"); err != nil || holder != "b" || tok != lb.Token() {
		t.Fatalf("holder %q token %d, %v", holder, tok, err)
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if holder, _, _ := a.LeaseHolder(ctx, "rollout"); holder != "" {
		t.Fatalf("holder %q after release", holder)
	}
	// Removing the blob with JSON null.
	if _, err := b.ApplyLatest(ctx, Change{Edits: map[string]Edit{"chat": {Rollout: json.RawMessage("null")}}, Actor: Actor{Who: "ops", Action: "rollout"}}); err != nil {
		t.Fatal(err)
	}
	if rs, _ := b.Current().Route("chat"); rs.Rollout != nil {
		t.Fatalf("rollout %s after null", rs.Rollout)
	}
}

func TestAuditStreamIsCapped(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	a := start(t, r, "a", Options{AuditMaxLen: 5}, true)
	for i := range 8 {
		if _, err := a.Apply(ctx, uint64(i), Change{Edits: map[string]Edit{"chat": {Share: share(i * 10)}},
			Actor: Actor{Who: "ops", Remote: "10.0.0.1:5", Action: "set", Reason: "ramp"}}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := a.Audit(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 {
		t.Fatalf("%d audit records, want the cap 5", len(recs))
	}
	last := recs[0]
	if last.Generation != 8 || last.Who != "ops" || last.Instance != "a" || last.Reason != "ramp" || last.Remote != "10.0.0.1:5" ||
		last.Time.IsZero() || last.ID == "" || len(last.Changes) != 1 || last.Changes[0].Old.Share != 60 || last.Changes[0].New.Share != 70 {
		t.Fatalf("newest record: %+v", last)
	}
	if recs[4].Generation != 4 {
		t.Fatalf("oldest kept record is generation %d, want 4", recs[4].Generation)
	}
	if recs, err := a.Audit(ctx, 2); err != nil || len(recs) != 2 {
		t.Fatalf("limit 2: %d records, %v", len(recs), err)
	}
}

func TestFleetViewFlagsBehindAndHeartbeatsExpire(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	reports := func() Report {
		return Report{Breakers: map[string]string{"chat/native": "closed"}, InFlight: 3, ShadowQueue: 2}
	}
	a := start(t, r, "a", Options{Version: "v1", Report: reports, HeartbeatTTL: time.Minute, FileShares: map[string]int{"chat": 0}})
	a.waitGen(t, 1, bound)
	// c beats once and never again (a frozen instance).
	c := start(t, r, "c", Options{HeartbeatTTL: 500 * time.Millisecond}, true)
	if _, err := c.ApplyLatest(ctx, set("ops", map[string]int{"chat": 10})); err != nil {
		t.Fatal(err)
	}
	if err := c.beat(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ApplyLatest(ctx, set("ops", map[string]int{"chat": 20})); err != nil {
		t.Fatal(err)
	}
	var v View
	eventually(t, "a's heartbeat at generation 3", func() bool {
		v, _ = a.View(ctx)
		return len(v.Instances) == 2 && v.Instances[0].Generation == 3
	})
	ia, ic := v.Instances[0], v.Instances[1]
	if v.Generation != 3 || ia.Instance != "a" || ia.Behind || ia.Version != "v1" || ia.InFlight != 3 || ia.ShadowQueue != 2 ||
		ia.Breakers["chat/native"] != "closed" || ia.Source != SourceStore {
		t.Fatalf("a in the view: %+v (generation %d)", ia, v.Generation)
	}
	if ic.Instance != "c" || !ic.Behind || ic.Generation != 2 {
		t.Fatalf("c in the view: %+v, want behind at generation 2", ic)
	}
	eventually(t, "c's heartbeat expires", func() bool {
		v, _ = a.View(ctx)
		return len(v.Instances) == 1 && v.Instances[0].Instance == "a"
	})
	if n, err := a.rdb.ZCard(ctx, "cutover:instances").Result(); err != nil || n != 1 {
		t.Fatalf("instance index holds %d, %v; want the expired one dropped", n, err)
	}
}

func TestRunRemovesItsHeartbeatOnStop(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	s, err := New(Options{URL: r.URL(), Instance: "a", Log: quiet, FileShares: map[string]int{"chat": 0}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(runCtx) }()
	eventually(t, "a in the view", func() bool { v, _ := s.View(ctx); return len(v.Instances) == 1 })
	cancel()
	<-done
	if v, err := s.View(ctx); err != nil || len(v.Instances) != 0 {
		t.Fatalf("view after stop: %+v, %v", v, err)
	}
}

func TestInvalidInput(t *testing.T) {
	_, err := New(Options{ReconcileInterval: -1, FileShares: map[string]int{"chat": 10001}})
	for _, want := range []string{"url is required", "instance is required", "reconcile_interval", `route "chat": file share 10001`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New error %v does not say %q", err, want)
		}
	}
	if _, err := New(Options{URL: "http://x", Instance: "a"}); err == nil {
		t.Error("an http URL was accepted")
	}
	r := testenv.StartRedis(t)
	a := start(t, r, "a", Options{}, true)
	for _, ch := range []Change{
		{Edits: map[string]Edit{"chat": {Share: share(-1)}}, Actor: Actor{Action: "set"}},
		{Edits: map[string]Edit{"chat": {Share: share(1)}}},
		{Edits: map[string]Edit{"chat": {Rollout: json.RawMessage("{")}}, Actor: Actor{Action: "rollout"}},
		{Edits: map[string]Edit{"": {Share: share(1)}}, Actor: Actor{Action: "set"}},
	} {
		if _, err := a.Apply(context.Background(), 0, ch); !errors.Is(err, ErrInvalid) {
			t.Errorf("change %+v: %v, want ErrInvalid", ch, err)
		}
	}
	if _, err := a.Acquire(context.Background(), "x", 0); err == nil {
		t.Error("a zero lease ttl was accepted")
	}
}

func TestStoreBehindTheFleetGetsItsStateBack(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	a := start(t, r, "a", Options{ReconcileInterval: 50 * time.Millisecond, FileShares: map[string]int{"chat": 0}})
	a.waitGen(t, 1, bound)
	for i := range 4 {
		if _, err := a.Apply(ctx, uint64(i+1), set("ops", map[string]int{"chat": (i + 1) * 100})); err != nil {
			t.Fatal(err)
		}
	}
	// A failover to a replica that missed the last writes: the store goes
	// back to generation 2 (chat 100), without a change message.
	old := document{Generation: 2, Routes: map[string]RouteState{"chat": {Share: 100}}}
	doc, _ := json.Marshal(old)
	raw := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer raw.Close()
	if err := raw.HSet(ctx, "cutover:state", "gen", 2, "doc", doc).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the store restored to generation 6", func() bool {
		d, err := a.fetch(ctx)
		return err == nil && d.Generation == 6
	})
	d, _ := a.fetch(ctx)
	if d.Routes["chat"].Share != 400 || a.generation() != 6 || a.shareOf("chat") != 400 {
		t.Fatalf("store chat %d, instance at %d with chat %d; want generation 6 with the fleet's 400", d.Routes["chat"].Share, a.generation(), a.shareOf("chat"))
	}
	recs, _ := a.Audit(ctx, 1)
	if len(recs) != 1 || recs[0].Action != "restore" || recs[0].Changes[0].Old.Share != 100 || recs[0].Changes[0].New.Share != 400 {
		t.Fatalf("restore audit: %+v", recs)
	}
}

// Redis restarts empty and a new instance seeds it from its file before a
// running instance, at the same generation, restores the fleet's state: the
// running instance's state wins and the new one converges to it.
func TestFleetStateWinsOverAFreshSeedAtTheSameGeneration(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	// An hour between reconciles: a syncs only when the test pokes it.
	a := start(t, r, "a", Options{ReconcileInterval: time.Hour, FileShares: map[string]int{"chat": 0}})
	a.waitGen(t, 1, bound)
	if _, err := a.Apply(ctx, 1, set("ops", map[string]int{"chat": 900})); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	e := start(t, r, "e", Options{ReconcileInterval: 50 * time.Millisecond, FileShares: map[string]int{"chat": 0}})
	e.waitGen(t, 1, bound)
	if e.shareOf("chat") != 0 {
		t.Fatalf("e seeded chat %d, want its file's 0", e.shareOf("chat"))
	}
	a.Poke()
	eventually(t, "e applies the fleet's state restored by a", func() bool { return e.shareOf("chat") == 900 })
	if a.shareOf("chat") != 900 {
		t.Fatalf("a applies chat %d, want its 900", a.shareOf("chat"))
	}
	recs, err := a.Audit(ctx, 10)
	if err != nil || len(recs) != 2 || recs[0].Action != "restore" || recs[0].Instance != "a" || recs[1].Action != "seed" || recs[1].Instance != "e" {
		t.Fatalf("audit after the race: %+v, %v", recs, err)
	}
	// Both stay put: nothing restores again.
	gen := a.generation()
	a.Poke()
	e.Poke()
	if _, err := e.Apply(ctx, gen, set("ops", map[string]int{"chat": 950})); err != nil {
		t.Fatalf("a change after the restore: %v", err)
	}
	a.waitGen(t, gen+1, bound)
}
