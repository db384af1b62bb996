package proxy

import (
	"testing"

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
