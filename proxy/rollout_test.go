package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/internal/rollout"
)

// delta turns the proxy's cumulative counters into a flush's counts; a
// counter that went down (a shadow summary reset, a rebuilt breaker) counts
// from zero again rather than going negative.
func TestRolloutDelta(t *testing.T) {
	lat := func(v ...int64) []int64 { return v }
	tests := []struct {
		name      string
		cur, prev rollout.Window
		want      rollout.Window
	}{
		{name: "growth",
			cur:  rollout.Window{Native: rollout.Counts{Requests: 10, Errors: 2, Latency: lat(4, 6)}, Compared: 7, Mismatched: 1, NativeTrips: 1},
			prev: rollout.Window{Native: rollout.Counts{Requests: 4, Errors: 1, Latency: lat(1, 3)}, Compared: 2},
			want: rollout.Window{Native: rollout.Counts{Requests: 6, Errors: 1, Latency: lat(3, 3)}, Compared: 5, Mismatched: 1, NativeTrips: 1}},
		{name: "first flush", cur: rollout.Window{Legacy: rollout.Counts{Requests: 3, Latency: lat(3, 0)}},
			want: rollout.Window{Legacy: rollout.Counts{Requests: 3, Latency: lat(3, 0)}}},
		{name: "reset summary", cur: rollout.Window{Compared: 2, Mismatched: 1}, prev: rollout.Window{Compared: 50, Mismatched: 9},
			want: rollout.Window{Compared: 2, Mismatched: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := delta(tt.cur, tt.prev)
			var a, b rollout.Window
			a.Add(got)
			b.Add(tt.want)
			if a.Native.Requests != b.Native.Requests || a.Native.Errors != b.Native.Errors || a.Legacy.Requests != b.Legacy.Requests ||
				a.Compared != b.Compared || a.Mismatched != b.Mismatched || a.NativeTrips != b.NativeTrips ||
				!equalInts(a.Native.Latency, b.Native.Latency) || !equalInts(a.Legacy.Latency, b.Legacy.Latency) {
				t.Errorf("delta = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func equalInts(a, b []int64) bool {
	for len(a) < len(b) {
		a = append(a, 0)
	}
	for len(b) < len(a) {
		b = append(b, 0)
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A route's rollout: block is checked with the rollout package's rules
// when a config is applied (start, reload, check-config).
func TestRoutePlanChecked(t *testing.T) {
	p, err := routePlan(&config.RoutePlan{Steps: []string{"shadow", "1", "5.5", "100"}, Interval: 30 * time.Second, MinRequests: 20,
		Gates: config.RolloutGates{MaxP99Ratio: 1.5}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Steps) != 4 || !p.Steps[0].Shadow || p.Steps[2].Share != 550 || time.Duration(p.Interval) != 30*time.Second ||
		p.MinRequests != 20 || p.Gates.MaxP99Ratio != 1.5 || p.Gates.MaxErrorRate != 0.05 {
		t.Errorf("plan %+v", p)
	}
	cfg, err := config.Parse([]byte(`routes:
  - name: chat
    path: /chat
    rollout: {steps: [5, shadow, ten, 50]}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = Check(cfg, []string{"chat"})
	if err == nil || !strings.Contains(err.Error(), `route "chat": rollout: step "ten" is neither`) {
		t.Errorf("Check = %v", err)
	}
	cfg, _ = config.Parse([]byte("routes:\n  - name: chat\n    path: /chat\n    rollout: {steps: [5, shadow, 50]}\n"), nil)
	err = Check(cfg, []string{"chat"})
	for _, want := range []string{"steps[1]: shadow must be the first step", "the last step is 50%, not 100%"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check = %v, want %q", err, want)
		}
	}
}
