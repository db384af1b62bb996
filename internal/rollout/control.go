package rollout

import (
	"errors"
	"fmt"
	"time"
)

// ErrState is an operator action the rollout's status does not allow
// (HTTP 409): resume a running rollout, pause a completed one...
var ErrState = errors.New("not allowed in the rollout's status")

// Action is an operator's action on a rollout.
type Action string

// The operator actions.
const (
	ActionPause   Action = "pause"
	ActionResume  Action = "resume"
	ActionPromote Action = "promote"
	ActionAbort   Action = "abort"
)

// ParseAction reads an action name.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case ActionPause, ActionResume, ActionPromote, ActionAbort:
		return a, nil
	}
	return "", fmt.Errorf("unknown rollout action %q (pause, resume, promote, abort)", s)
}

// Do applies an operator's action to st at now:
//   - pause: an active rollout stops at its step;
//   - resume: a paused rollout runs its step again, with a fresh window;
//   - promote: an active or paused rollout goes to its next step at once
//     (completed at the last), skipping the gates; the history says who;
//   - abort: an active or paused rollout ends with native's share at 0.
//
// It fails with ErrState when the status does not allow the action.
func Do(st State, a Action, who, reason string, now time.Time) (State, error) {
	live := st.Status.Active() || st.Status == StatusPaused
	switch a {
	case ActionPause:
		if !st.Status.Active() {
			return st, fmt.Errorf("pause a %s rollout: %w", st.Status, ErrState)
		}
		st.Status, st.HoldSince = StatusPaused, time.Time{}
		return st.record(Entry{Time: now, Event: EventPause, Who: who, Reason: orDefault(reason, "paused by an operator")}), nil
	case ActionResume:
		if st.Status != StatusPaused {
			return st, fmt.Errorf("resume a %s rollout: %w", st.Status, ErrState)
		}
		st.Status, st.HoldSince = StatusRunning, time.Time{}
		st.Window++
		st.StepStarted, st.Gates = now, nil
		return st.record(Entry{Time: now, Event: EventResume, Who: who, Reason: orDefault(reason, "resumed by an operator")}), nil
	case ActionPromote:
		if !live {
			return st, fmt.Errorf("promote a %s rollout: %w", st.Status, ErrState)
		}
		ev := EventStep
		last := st.Step+1 >= len(st.Plan.Steps)-1
		st = st.next(now)
		if last {
			ev, st.Status = EventComplete, StatusCompleted
		}
		return st.record(Entry{Time: now, Event: ev, Who: who, Reason: orDefault(reason, "promoted by an operator, gates skipped")}), nil
	case ActionAbort:
		if !live {
			return st, fmt.Errorf("abort a %s rollout: %w", st.Status, ErrState)
		}
		st.Status, st.HoldSince = StatusAborted, time.Time{}
		return st.record(Entry{Time: now, Event: EventAbort, Who: who, Reason: orDefault(reason, "aborted by an operator")}), nil
	}
	return st, fmt.Errorf("unknown rollout action %q", a)
}

// Interrupt is what a share change made outside the rollout does to it:
// an operator's change (action set, rollback...) pauses an active rollout,
// so the driver does not fight it; the native breaker's auto_rollback
// marks an active or paused rollout rolled back. It returns st unchanged
// and false when the change does not concern it.
func Interrupt(st State, share int, action, who string, now time.Time) (State, bool) {
	if action == "auto_rollback" {
		if !st.Status.Active() && st.Status != StatusPaused {
			return st, false
		}
		st.Status, st.HoldSince = StatusRolledBack, time.Time{}
		return st.record(Entry{Time: now, Event: EventRollback, Who: who,
			Reason: "native breaker tripped: the route was rolled back to 0% (auto_rollback)"}), true
	}
	if !st.Status.Active() {
		return st, false
	}
	st.Status, st.HoldSince = StatusPaused, time.Time{}
	return st.record(Entry{Time: now, Event: EventPause, Who: who,
		Reason: fmt.Sprintf("share set to %s by hand (%s): rollout paused", Step{Share: share}, action)}), true
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
