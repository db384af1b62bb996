package rollout

import (
	"time"
)

// Status is where a rollout stands.
type Status string

// The statuses of a rollout. Running and holding are active (the driver
// evaluates them); the others wait for an operator.
const (
	// StatusRunning: the step's window is being measured.
	StatusRunning Status = "running"
	// StatusHolding: the step's interval passed but some gate has too few
	// samples to be judged; it waits for traffic, at most Plan.MaxHold.
	StatusHolding Status = "holding"
	// StatusPaused: stopped at its step (max_hold passed, an operator paused
	// it, or a manual share change); resume or promote goes on.
	StatusPaused Status = "paused"
	// StatusCompleted: the last step (100 %) was reached.
	StatusCompleted Status = "completed"
	// StatusRolledBack: a gate failed; native's share was set to 0.
	StatusRolledBack Status = "rolled_back"
	// StatusAborted: an operator aborted it; native's share was set to 0.
	StatusAborted Status = "aborted"
)

// Active reports whether the driver evaluates a rollout in this status.
func (s Status) Active() bool { return s == StatusRunning || s == StatusHolding }

// Code is the status as a number, for the cutover_rollout_state gauge:
// 0 none, 1 running, 2 holding, 3 paused, 4 completed, 5 rolled_back, 6 aborted.
func (s Status) Code() int {
	for i, v := range []Status{StatusRunning, StatusHolding, StatusPaused, StatusCompleted, StatusRolledBack, StatusAborted} {
		if s == v {
			return i + 1
		}
	}
	return 0
}

// Event names an entry of a rollout's history (and a webhook).
type Event string

// The events of a rollout.
const (
	EventStart    Event = "start"
	EventStep     Event = "step"
	EventHold     Event = "hold"
	EventPause    Event = "pause"
	EventResume   Event = "resume"
	EventRollback Event = "rollback"
	EventComplete Event = "complete"
	EventAbort    Event = "abort"
)

// GateValue is one gate as one evaluation measured it: enough to answer
// "why" without anything else.
type GateValue struct {
	// Gate names it: error_rate, error_excess, p99_ratio, mismatch_rate, breaker.
	Gate string `json:"gate"`
	// Result is pass, fail, or insufficient (too few samples: not judged).
	Result string `json:"result"`
	// Value is what was measured and Threshold the limit it is held to.
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	// Samples is the smaller sample count the gate was judged on, Need the
	// least it needs.
	Samples int64 `json:"samples"`
	Need    int64 `json:"need,omitempty"`
	// Detail says it in words, with the raw counts.
	Detail string `json:"detail"`
}

// Gate results.
const (
	ResultPass         = "pass"
	ResultFail         = "fail"
	ResultInsufficient = "insufficient"
)

// Entry is one entry of a rollout's history.
type Entry struct {
	Time  time.Time `json:"time"`
	Event Event     `json:"event"`
	// Step is the step index after the event and Share its native share (bp).
	Step  int    `json:"step"`
	Share int    `json:"share_bp"`
	Who   string `json:"who,omitempty"`
	// Reason says why in words.
	Reason string      `json:"reason,omitempty"`
	Gates  []GateValue `json:"gates,omitempty"`
}

// HistoryLimit bounds the history kept in a State (oldest dropped).
const HistoryLimit = 50

// State is one route's rollout, as persisted (the fleet store's opaque
// per-route blob, or memory on a single instance). It is a value: every
// transition returns a new one.
type State struct {
	Route  string `json:"route"`
	Status Status `json:"status"`
	Plan   Plan   `json:"plan"`
	// Step is the index of the current step in Plan.Steps.
	Step int `json:"step"`
	// Window numbers the measurement window: it changes with every step and
	// every resume, so counts of an earlier window never judge a later one.
	Window uint64 `json:"window"`
	// StepStarted is when the current window began.
	StepStarted time.Time `json:"step_started"`
	// HoldSince is when the step began to hold (zero when not holding).
	HoldSince time.Time `json:"hold_since,omitzero"`
	Started   time.Time `json:"started"`
	Updated   time.Time `json:"updated"`
	// Gates are the values of the evaluation behind the last decision (the
	// driver saves decisions only; Counters.Last keeps the latest one).
	Gates   []GateValue `json:"gates,omitempty"`
	History []Entry     `json:"history"`
}

// Share is the native share (bp) the rollout asks for in its current state:
// the step's share while it is running, holding, paused or completed, 0 once
// rolled back or aborted, and 0 in the shadow step.
func (s State) Share() int {
	if s.Status == StatusRolledBack || s.Status == StatusAborted || s.Step >= len(s.Plan.Steps) {
		return 0
	}
	return s.Plan.Steps[s.Step].Share
}

// CurrentStep is the step the rollout is at.
func (s State) CurrentStep() Step {
	if s.Step >= len(s.Plan.Steps) {
		return Step{}
	}
	return s.Plan.Steps[s.Step]
}

func (s State) record(e Entry) State {
	e.Step, e.Share = s.Step, s.Share()
	h := append(append([]Entry(nil), s.History...), e)
	if len(h) > HistoryLimit {
		h = h[len(h)-HistoryLimit:]
	}
	s.History = h
	s.Updated = e.Time
	return s
}

// Start is a new rollout of route with plan (defaults applied, validated)
// at its first step.
func Start(route string, plan Plan, who, reason string, now time.Time) (State, error) {
	plan = plan.WithDefaults()
	if err := plan.Validate(); err != nil {
		return State{}, err
	}
	// The window is numbered from the start time, so a later rollout of the
	// same route never reads an earlier one's counts.
	s := State{Route: route, Status: StatusRunning, Plan: plan, Window: uint64(now.UnixNano()), StepStarted: now, Started: now}
	return s.record(Entry{Time: now, Event: EventStart, Who: who, Reason: reason}), nil
}
