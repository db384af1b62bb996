package rollout

import (
	"fmt"
	"time"
)

// Decision is the outcome of one evaluation.
type Decision struct {
	// Event is what happens: EventStep (next step), EventComplete (the next
	// step is the last), EventHold, EventPause (held past max_hold),
	// EventRollback, or "" (keep measuring).
	Event Event `json:"event,omitempty"`
	// Reason says why in words (the failing gate, the missing samples).
	Reason string `json:"reason,omitempty"`
	// Gates are every gate's values in this evaluation.
	Gates []GateValue `json:"gates"`
}

// Evaluate judges the window w of rollout st at now; it is a pure function
// of its arguments. Only an active rollout is judged (others get a zero
// Decision). Rules, in order:
//   - a gate judged on enough samples fails → rollback, at once, whatever
//     the interval (a breaker trip needs no samples);
//   - the step's interval has not passed → keep measuring;
//   - a gate has too few samples → hold, and pause once the step has held
//     for max_hold (never fail for lack of traffic);
//   - every gate passes → the next step (complete when it is the last).
func Evaluate(st State, w Window, now time.Time) Decision {
	if !st.Status.Active() {
		return Decision{}
	}
	gates := judge(st.Plan, st.CurrentStep(), w)
	d := Decision{Gates: gates}
	var short []string
	for _, g := range gates {
		switch g.Result {
		case ResultFail:
			d.Event, d.Reason = EventRollback, fmt.Sprintf("gate %s failed: %s", g.Gate, g.Detail)
			return d
		case ResultInsufficient:
			short = append(short, fmt.Sprintf("%s has %d of %d samples", g.Gate, g.Samples, g.Need))
		}
	}
	if now.Sub(st.StepStarted) < time.Duration(st.Plan.Interval) {
		return d
	}
	if len(short) > 0 {
		reason := "too few samples: " + join(short)
		if !st.HoldSince.IsZero() && now.Sub(st.HoldSince) >= time.Duration(st.Plan.MaxHold) {
			d.Event, d.Reason = EventPause, fmt.Sprintf("held for %s (max_hold %s): %s", now.Sub(st.HoldSince).Round(time.Millisecond),
				time.Duration(st.Plan.MaxHold), reason)
			return d
		}
		if st.Status != StatusHolding {
			d.Event = EventHold
		}
		d.Reason = reason
		return d
	}
	d.Event, d.Reason = EventStep, fmt.Sprintf("every gate passed in step %s", st.CurrentStep())
	if st.Step+1 >= len(st.Plan.Steps)-1 {
		d.Event = EventComplete
	}
	return d
}

func join(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += "; "
		}
		out += v
	}
	return out
}

// judge measures every gate of step on w. The shadow step is judged on the
// mismatch rate only (native serves nobody); a live step on the error
// rate, its excess over legacy's, the p99 ratio and breaker trips, and on
// the mismatch rate when comparisons were made (optional there).
func judge(p Plan, step Step, w Window) []GateValue {
	g := p.Gates
	need := p.MinRequests
	var out []GateValue
	mismatch := func(required bool) {
		if g.MaxMismatchRate < 0 || (!required && w.Compared < need) {
			return
		}
		out = append(out, ratioGate("mismatch_rate", w.Mismatched, w.Compared, need, g.MaxMismatchRate,
			fmt.Sprintf("%d semantic mismatches in %d shadow comparisons", w.Mismatched, w.Compared)))
	}
	if step.Shadow {
		mismatch(true)
		return out
	}
	if !g.AllowBreakerTrip {
		gv := GateValue{Gate: "breaker", Result: ResultPass, Value: float64(w.NativeTrips), Threshold: 0, Samples: w.NativeTrips,
			Detail: fmt.Sprintf("%d native breaker trips", w.NativeTrips)}
		if w.NativeTrips > 0 {
			gv.Result = ResultFail
		}
		out = append(out, gv)
	}
	n, l := w.Native, w.Legacy
	if g.MaxErrorRate >= 0 {
		out = append(out, ratioGate("error_rate", n.Errors, n.Requests, need, g.MaxErrorRate,
			fmt.Sprintf("native %d errors in %d requests", n.Errors, n.Requests)))
	}
	// Legacy has no traffic of its own at 100 %: its baseline cannot be
	// measured, so the excess and latency gates judge native alone there.
	legacyMeasured := step.Share < MaxShare
	if g.MaxErrorExcess >= 0 && legacyMeasured {
		gv := GateValue{Gate: "error_excess", Threshold: g.MaxErrorExcess, Samples: min(n.Requests, l.Requests), Need: need}
		nr, lr := rate(n.Errors, n.Requests), rate(l.Errors, l.Requests)
		gv.Value = nr - lr
		gv.Detail = fmt.Sprintf("native error rate %.4f (%d/%d) minus legacy's %.4f (%d/%d)", nr, n.Errors, n.Requests, lr, l.Errors, l.Requests)
		out = append(out, verdict(gv, gv.Value > gv.Threshold))
	}
	if g.MaxP99Ratio >= 0 && legacyMeasured {
		gv := GateValue{Gate: "p99_ratio", Threshold: g.MaxP99Ratio, Samples: min(n.Requests, l.Requests), Need: need}
		np, lp := n.Quantile(0.99), l.Quantile(0.99)
		base := max(lp, time.Duration(g.P99Floor))
		if np >= 0 && lp >= 0 {
			gv.Value = float64(np) / float64(base)
		}
		gv.Detail = fmt.Sprintf("native p99 %s over legacy p99 %s (floor %s)", fmtQuantile(np), fmtQuantile(lp), time.Duration(g.P99Floor))
		out = append(out, verdict(gv, gv.Value > gv.Threshold))
	}
	mismatch(false)
	return out
}

// fmtQuantile renders a latency quantile, "none" without samples.
func fmtQuantile(d time.Duration) string {
	if d < 0 {
		return "none"
	}
	return d.Round(time.Microsecond).String()
}

func rate(num, den int64) float64 {
	if den == 0 {
		return 0
	}
	return float64(num) / float64(den)
}

func ratioGate(name string, num, den, need int64, threshold float64, detail string) GateValue {
	gv := GateValue{Gate: name, Value: rate(num, den), Threshold: threshold, Samples: den, Need: need,
		Detail: fmt.Sprintf("%s: %.4f", detail, rate(num, den))}
	return verdict(gv, gv.Value > threshold)
}

// verdict sets the result of a gate that needs gv.Need samples.
func verdict(gv GateValue, breached bool) GateValue {
	switch {
	case gv.Samples < gv.Need:
		gv.Result = ResultInsufficient
	case breached:
		gv.Result = ResultFail
	default:
		gv.Result = ResultPass
	}
	return gv
}

// Apply returns st after decision d made at now, with the history entry
// the decision makes (none for keep-measuring). The share to apply is the
// result's Share().
func Apply(st State, d Decision, now time.Time) State {
	st.Gates = d.Gates
	st.Updated = now
	e := Entry{Time: now, Event: d.Event, Who: "cutover", Reason: d.Reason, Gates: d.Gates}
	switch d.Event {
	case "":
		return st
	case EventHold:
		st.Status, st.HoldSince = StatusHolding, now
	case EventPause:
		st.Status = StatusPaused
	case EventRollback:
		st.Status, st.HoldSince = StatusRolledBack, time.Time{}
	case EventStep, EventComplete:
		st = st.next(now)
		if d.Event == EventComplete {
			st.Status = StatusCompleted
		}
	}
	return st.record(e)
}

// next moves st to its next step with a fresh window.
func (s State) next(now time.Time) State {
	s.Step++
	s.Status, s.HoldSince = StatusRunning, time.Time{}
	s.Window++
	s.StepStarted = now
	s.Gates = nil
	return s
}
