package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxShare is a native share of 100 % in basis points.
const MaxShare = 10000

// Step is one step of a plan: a native share, or the shadow step (native
// answers nobody; it runs as a shadow of legacy at the route's shadow.rate
// and only the mismatch gate is judged). In JSON a step is "shadow" or a percentage (1, 0.5, 100).
type Step struct {
	// Shadow marks the shadow step; Share is then 0.
	Shadow bool
	// Share is the native share of the step in basis points (0-10000).
	Share int
}

// String renders the step as in a plan: "shadow" or "5%".
func (s Step) String() string {
	if s.Shadow {
		return "shadow"
	}
	return strconv.FormatFloat(float64(s.Share)/100, 'f', -1, 64) + "%"
}

// MarshalJSON renders "shadow" or the percentage.
func (s Step) MarshalJSON() ([]byte, error) {
	if s.Shadow {
		return []byte(`"shadow"`), nil
	}
	return []byte(strconv.FormatFloat(float64(s.Share)/100, 'f', -1, 64)), nil
}

// UnmarshalJSON reads "shadow", a percentage, or a percentage as a string.
func (s *Step) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	st, err := ParseStep(v)
	if err != nil {
		return err
	}
	*s = st
	return nil
}

// ParseStep reads a step given as "shadow", a number or a numeric string
// (a percentage in [0, 100], at most two decimals).
func ParseStep(v any) (Step, error) {
	var pct float64
	switch x := v.(type) {
	case string:
		if strings.EqualFold(strings.TrimSpace(x), "shadow") {
			return Step{Shadow: true}, nil
		}
		f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(x), "%"), 64)
		if err != nil {
			return Step{}, fmt.Errorf("step %q is neither \"shadow\" nor a percentage", x)
		}
		pct = f
	case float64:
		pct = x
	case int:
		pct = float64(x)
	default:
		return Step{}, fmt.Errorf("step %v is neither \"shadow\" nor a percentage", v)
	}
	bp := pct * 100
	if pct < 0 || pct > 100 || bp != float64(int(bp)) {
		return Step{}, fmt.Errorf("step %v%% is not a percentage in [0, 100] with at most two decimals", pct)
	}
	return Step{Share: int(bp)}, nil
}

// Duration is a time.Duration written as a string in JSON ("30s").
type Duration time.Duration

// MarshalJSON renders the duration as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "1m30s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case string:
		p, err := time.ParseDuration(x)
		if err != nil {
			return err
		}
		*d = Duration(p)
	case float64:
		*d = Duration(x)
	default:
		return fmt.Errorf("duration %v is not a string like \"30s\"", v)
	}
	return nil
}

// Gates are the thresholds a step must pass. Each zero value means the
// default its comment gives; a negative value turns the gate off.
type Gates struct {
	// MaxErrorRate is the ceiling of native's error rate (5xx answers and
	// transport failures over requests). Zero means 0.05.
	MaxErrorRate float64 `json:"max_error_rate,omitempty"`
	// MaxErrorExcess is how far native's error rate may exceed legacy's in
	// the same window. Zero means 0.02.
	MaxErrorExcess float64 `json:"max_error_excess,omitempty"`
	// MaxP99Ratio is the ceiling of native's p99 latency over legacy's.
	// Zero means 2.
	MaxP99Ratio float64 `json:"max_p99_ratio,omitempty"`
	// P99Floor is the least legacy p99 the ratio is taken against, so a
	// legacy answering in microseconds does not fail a native answering in
	// a few milliseconds. Zero means 50ms.
	P99Floor Duration `json:"p99_floor,omitempty"`
	// MaxMismatchRate is the ceiling of the shadow comparisons' semantic
	// mismatch rate. Zero means 0.05.
	MaxMismatchRate float64 `json:"max_mismatch_rate,omitempty"`
	// AllowBreakerTrip, when true, turns off the gate that fails a step in
	// which native's breaker tripped on any instance. False means the gate is on.
	AllowBreakerTrip bool `json:"allow_breaker_trip,omitempty"`
}

// Plan is how a route is rolled out. The zero Plan is not valid; see
// DefaultPlan and WithDefaults.
type Plan struct {
	// Steps are the steps in order; the last one must be 100 and shares must
	// grow. Empty means DefaultSteps.
	Steps []Step `json:"steps,omitempty"`
	// Interval is the least time a step lasts before it may pass. Zero means 5m.
	Interval Duration `json:"interval,omitempty"`
	// MinRequests is the least number of samples each gate needs per step
	// and per backend (native and legacy requests, or shadow comparisons)
	// to be judged; fewer holds the step. Zero means 100.
	MinRequests int64 `json:"min_requests,omitempty"`
	// MaxHold is how long a step may hold (too few samples) before the
	// rollout pauses. Zero means 1h.
	MaxHold Duration `json:"max_hold,omitempty"`
	Gates   Gates    `json:"gates"`
}

// DefaultSteps are the steps of a plan that gives none.
var DefaultSteps = []Step{{Shadow: true}, {Share: 100}, {Share: 500}, {Share: 2500}, {Share: 5000}, {Share: MaxShare}}

// WithDefaults returns p with every zero field set to its default.
func (p Plan) WithDefaults() Plan {
	if len(p.Steps) == 0 {
		p.Steps = append([]Step(nil), DefaultSteps...)
	}
	def := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	def(&p.Interval, 5*time.Minute)
	def(&p.MaxHold, time.Hour)
	def(&p.Gates.P99Floor, 50*time.Millisecond)
	if p.MinRequests == 0 {
		p.MinRequests = 100
	}
	deff := func(f *float64, v float64) {
		if *f == 0 {
			*f = v
		}
	}
	deff(&p.Gates.MaxErrorRate, 0.05)
	deff(&p.Gates.MaxErrorExcess, 0.02)
	deff(&p.Gates.MaxP99Ratio, 2)
	deff(&p.Gates.MaxMismatchRate, 0.05)
	return p
}

// Validate reports every problem of p (after WithDefaults) at once.
func (p Plan) Validate() error {
	var errs []error
	if len(p.Steps) == 0 {
		errs = append(errs, errors.New("steps: none"))
	}
	prev := -1
	for i, s := range p.Steps {
		switch {
		case s.Shadow && i != 0:
			errs = append(errs, fmt.Errorf("steps[%d]: shadow must be the first step", i))
		case !s.Shadow && (s.Share <= 0 || s.Share > MaxShare):
			errs = append(errs, fmt.Errorf("steps[%d]: %s is not in (0%%, 100%%]", i, s))
		case !s.Shadow && s.Share <= prev:
			errs = append(errs, fmt.Errorf("steps[%d]: %s does not grow from the step before", i, s))
		}
		if !s.Shadow {
			prev = s.Share
		}
	}
	if n := len(p.Steps); n > 0 && (p.Steps[n-1].Shadow || p.Steps[n-1].Share != MaxShare) {
		errs = append(errs, fmt.Errorf("steps: the last step is %s, not 100%%", p.Steps[n-1]))
	}
	if p.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval %s is negative", time.Duration(p.Interval)))
	}
	if p.MaxHold < 0 {
		errs = append(errs, fmt.Errorf("max_hold %s is negative", time.Duration(p.MaxHold)))
	}
	if p.MinRequests < 1 {
		errs = append(errs, fmt.Errorf("min_requests %d is below 1", p.MinRequests))
	}
	for _, g := range []struct {
		name string
		v    float64
	}{{"max_error_rate", p.Gates.MaxErrorRate}, {"max_error_excess", p.Gates.MaxErrorExcess}, {"max_mismatch_rate", p.Gates.MaxMismatchRate}} {
		if g.v > 1 {
			errs = append(errs, fmt.Errorf("gates: %s %v is above 1", g.name, g.v))
		}
	}
	return errors.Join(errs...)
}
