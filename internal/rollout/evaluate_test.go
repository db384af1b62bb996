package rollout

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 18, 0, 0, 0, time.UTC)

func testPlan() Plan {
	return Plan{Steps: []Step{{Shadow: true}, {Share: 100}, {Share: 5000}, {Share: MaxShare}},
		Interval: Duration(time.Minute), MinRequests: 10, MaxHold: Duration(10 * time.Minute)}
}

// lat is a latency histogram with n samples in the bucket of bound b.
func lat(b float64, n int64) []int64 {
	out := make([]int64, len(LatencyBounds)+1)
	for i, v := range LatencyBounds {
		if v >= b {
			out[i] = n
			return out
		}
	}
	out[len(LatencyBounds)] = n
	return out
}

func healthy(n int64) Window {
	return Window{Legacy: Counts{Requests: n, Errors: 0, Latency: lat(0.05, n)},
		Native: Counts{Requests: n, Errors: 0, Latency: lat(0.025, n)}, Compared: n}
}

func at(st State, step int, status Status) State {
	st.Step, st.Status = step, status
	return st
}

func TestEvaluate(t *testing.T) {
	start, err := Start("chat", testPlan(), "ops", "", t0)
	if err != nil {
		t.Fatal(err)
	}
	holding := at(start, 1, StatusHolding)
	holding.HoldSince = t0.Add(time.Minute)
	tests := []struct {
		name      string
		give      State
		w         Window
		now       time.Time
		want      Event
		wantGate  string // a gate whose result is wantRes
		wantRes   string
		wantInWhy string
	}{
		{name: "shadow step passes after interval", give: start, w: healthy(20), now: t0.Add(time.Minute), want: EventStep,
			wantGate: "mismatch_rate", wantRes: ResultPass},
		{name: "shadow step before interval keeps measuring", give: start, w: healthy(20), now: t0.Add(59 * time.Second), want: ""},
		{name: "shadow mismatches roll back at once", give: start, w: Window{Compared: 20, Mismatched: 5}, now: t0.Add(time.Second),
			want: EventRollback, wantGate: "mismatch_rate", wantRes: ResultFail, wantInWhy: "5 semantic mismatches in 20"},
		{name: "shadow with too few comparisons holds", give: start, w: Window{Compared: 3}, now: t0.Add(2 * time.Minute), want: EventHold,
			wantGate: "mismatch_rate", wantRes: ResultInsufficient, wantInWhy: "mismatch_rate has 3 of 10 samples"},
		{name: "live step passes", give: at(start, 1, StatusRunning), w: healthy(20), now: t0.Add(time.Minute), want: EventStep,
			wantGate: "p99_ratio", wantRes: ResultPass},
		{name: "step before the last completes", give: at(start, 2, StatusRunning), w: healthy(20), now: t0.Add(time.Minute), want: EventComplete},
		{name: "native errors over the ceiling roll back", give: at(start, 1, StatusRunning),
			w:   Window{Legacy: Counts{Requests: 100, Latency: lat(0.05, 100)}, Native: Counts{Requests: 20, Errors: 4, Latency: lat(0.05, 20)}},
			now: t0.Add(time.Second), want: EventRollback, wantGate: "error_rate", wantRes: ResultFail, wantInWhy: "native 4 errors in 20"},
		{name: "native errors within ceiling but over legacy's plus excess roll back", give: at(start, 1, StatusRunning),
			w:   Window{Legacy: Counts{Requests: 1000, Latency: lat(0.05, 1000)}, Native: Counts{Requests: 100, Errors: 3, Latency: lat(0.05, 100)}},
			now: t0.Add(time.Second), want: EventRollback, wantGate: "error_excess", wantRes: ResultFail},
		{name: "native as bad as legacy passes", give: at(start, 1, StatusRunning),
			w:   Window{Legacy: Counts{Requests: 1000, Errors: 30, Latency: lat(0.05, 1000)}, Native: Counts{Requests: 100, Errors: 3, Latency: lat(0.05, 100)}},
			now: t0.Add(time.Minute), want: EventStep, wantGate: "error_excess", wantRes: ResultPass},
		{name: "slow native rolls back", give: at(start, 1, StatusRunning),
			w:   Window{Legacy: Counts{Requests: 100, Latency: lat(0.1, 100)}, Native: Counts{Requests: 100, Latency: lat(1, 100)}},
			now: t0.Add(time.Second), want: EventRollback, wantGate: "p99_ratio", wantRes: ResultFail},
		{name: "a breaker trip rolls back without samples", give: at(start, 1, StatusRunning), w: Window{NativeTrips: 1},
			now: t0.Add(time.Second), want: EventRollback, wantGate: "breaker", wantRes: ResultFail},
		{name: "one error in one request is not judged", give: at(start, 1, StatusRunning),
			w: Window{Native: Counts{Requests: 1, Errors: 1}}, now: t0.Add(time.Second), want: "", wantGate: "error_rate", wantRes: ResultInsufficient},
		{name: "no traffic holds", give: at(start, 1, StatusRunning), now: t0.Add(time.Minute), want: EventHold},
		{name: "holding stays holding", give: holding, now: t0.Add(5 * time.Minute), want: ""},
		{name: "held past max_hold pauses", give: holding, now: t0.Add(11 * time.Minute), want: EventPause, wantInWhy: "max_hold 10m0s"},
		{name: "paused is not judged", give: at(start, 1, StatusPaused), w: Window{NativeTrips: 1}, now: t0.Add(time.Hour), want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Evaluate(tt.give, tt.w, tt.now)
			if d.Event != tt.want {
				t.Fatalf("event %q, want %q (reason %q, gates %+v)", d.Event, tt.want, d.Reason, d.Gates)
			}
			if tt.wantGate != "" {
				found := false
				for _, g := range d.Gates {
					if g.Gate == tt.wantGate {
						found = true
						if g.Result != tt.wantRes {
							t.Errorf("gate %s: %s, want %s (%+v)", g.Gate, g.Result, tt.wantRes, g)
						}
					}
				}
				if !found {
					t.Errorf("no gate %s in %+v", tt.wantGate, d.Gates)
				}
			}
			if !strings.Contains(d.Reason, tt.wantInWhy) {
				t.Errorf("reason %q does not contain %q", d.Reason, tt.wantInWhy)
			}
		})
	}
}

// TestRolloutToCompletion walks a plan through Evaluate and Apply with an
// injected clock: every step once, in order, then completed.
func TestRolloutToCompletion(t *testing.T) {
	st, err := Start("chat", testPlan(), "ops", "go", t0)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	var shares []int
	windows := map[uint64]bool{st.Window: true}
	for i := 0; st.Status.Active(); i++ {
		if i > 20 {
			t.Fatalf("not completed after %d evaluations: %+v", i, st)
		}
		now = now.Add(time.Minute)
		st = Apply(st, Evaluate(st, healthy(50), now), now)
		shares = append(shares, st.Share())
		// Every step measures a window of its own.
		if windows[st.Window] {
			t.Fatalf("step %d reuses window %d", st.Step, st.Window)
		}
		windows[st.Window] = true
	}
	if st.Status != StatusCompleted || st.Share() != MaxShare {
		t.Fatalf("status %s share %d, want completed at 10000", st.Status, st.Share())
	}
	if want := []int{100, 5000, MaxShare}; !slices.Equal(shares, want) {
		t.Errorf("shares %v, want %v", shares, want)
	}
	var events []Event
	for _, e := range st.History {
		events = append(events, e.Event)
	}
	if want := []Event{EventStart, EventStep, EventStep, EventComplete}; !slices.Equal(events, want) {
		t.Errorf("history %v, want %v", events, want)
	}
	// The state survives the fleet store's JSON round trip.
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Share() != st.Share() || back.Status != st.Status || len(back.History) != len(st.History) || !back.Plan.Steps[0].Shadow {
		t.Errorf("round trip: %+v", back)
	}
}

func TestRollbackRecordsGate(t *testing.T) {
	st, _ := Start("chat", testPlan(), "ops", "", t0)
	st = at(st, 2, StatusRunning)
	w := Window{Legacy: Counts{Requests: 50, Latency: lat(0.05, 50)}, Native: Counts{Requests: 50, Errors: 50, Latency: lat(0.05, 50)}}
	st = Apply(st, Evaluate(st, w, t0.Add(time.Second)), t0.Add(time.Second))
	if st.Status != StatusRolledBack || st.Share() != 0 {
		t.Fatalf("status %s share %d, want rolled_back at 0", st.Status, st.Share())
	}
	last := st.History[len(st.History)-1]
	if last.Event != EventRollback || !strings.Contains(last.Reason, "error_rate") || len(last.Gates) == 0 {
		t.Fatalf("last entry %+v", last)
	}
}

func TestDo(t *testing.T) {
	st, _ := Start("chat", testPlan(), "ops", "", t0)
	tests := []struct {
		name    string
		give    State
		action  Action
		want    Status
		step    int
		wantErr bool
	}{
		{name: "pause running", give: st, action: ActionPause, want: StatusPaused},
		{name: "resume running fails", give: st, action: ActionResume, wantErr: true},
		{name: "resume paused", give: at(st, 1, StatusPaused), action: ActionResume, want: StatusRunning, step: 1},
		{name: "promote", give: st, action: ActionPromote, want: StatusRunning, step: 1},
		{name: "promote to the last completes", give: at(st, 2, StatusPaused), action: ActionPromote, want: StatusCompleted, step: 3},
		{name: "abort", give: at(st, 2, StatusHolding), action: ActionAbort, want: StatusAborted, step: 2},
		{name: "abort completed fails", give: at(st, 3, StatusCompleted), action: ActionAbort, wantErr: true},
		{name: "pause rolled back fails", give: at(st, 1, StatusRolledBack), action: ActionPause, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Do(tt.give, tt.action, "ops", "", t0.Add(time.Minute))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got.Status != tt.want || got.Step != tt.step {
				t.Errorf("status %s step %d, want %s %d", got.Status, got.Step, tt.want, tt.step)
			}
			if tt.want == StatusAborted && got.Share() != 0 {
				t.Errorf("aborted share %d", got.Share())
			}
			if got.History[len(got.History)-1].Who != "ops" {
				t.Errorf("history does not name who: %+v", got.History[len(got.History)-1])
			}
		})
	}
}

func TestPlanValidate(t *testing.T) {
	tests := []struct {
		name string
		give string
		want []string
	}{
		{name: "defaults", give: `{}`},
		{name: "last not 100", give: `{"steps": [1, 5]}`, want: []string{"last step is 5%"}},
		{name: "shadow not first, shrinking", give: `{"steps": [5, "shadow", 1, 100]}`, want: []string{"steps[1]: shadow", "steps[2]: 1% does not grow"}},
		{name: "bad values", give: `{"min_requests": -1, "interval": "-1s", "gates": {"max_error_rate": 2}}`,
			want: []string{"min_requests -1", "interval -1s", "max_error_rate 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Plan
			if err := json.Unmarshal([]byte(tt.give), &p); err != nil {
				t.Fatal(err)
			}
			err := p.WithDefaults().Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not contain %q", err, w)
				}
			}
		})
	}
	var s Step
	if err := json.Unmarshal([]byte(`"ten"`), &s); err == nil {
		t.Error(`step "ten" parsed`)
	}
}
