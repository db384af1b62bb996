package proxy

import (
	"errors"
	"sync"
	"time"
)

// circuitState is the state of a circuit.
type circuitState uint8

// The three states, in the order of the cutover_breaker_state gauge.
const (
	stateClosed circuitState = iota
	stateHalfOpen
	stateOpen
)

var stateNames = [...]string{"closed", "half-open", "open"}

// String returns "closed", "half-open" or "open", as logged and shown by the
// admin API.
func (s circuitState) String() string { return stateNames[s] }

// Errors of a circuit refusing a request (wrapped in ErrBreakerOpen).
var (
	errOpenState       = errors.New("circuit breaker is open")
	errTooManyRequests = errors.New("too many requests")
)

// counts are a circuit's counters in the current generation (the closed
// state's interval, the half-open probes).
type counts struct {
	Requests             uint32
	TotalSuccesses       uint32
	TotalFailures        uint32
	TotalExclusions      uint32
	ConsecutiveSuccesses uint32
	ConsecutiveFailures  uint32
}

// circuitSettings configure a circuit; every field has the default its
// comment gives.
type circuitSettings struct {
	// maxRequests is how many probes half-open lets through, and how many
	// successes in a row close it. Zero means 1.
	maxRequests uint32
	// interval clears the closed state's counts cyclically. Zero means never.
	interval time.Duration
	// timeout is how long the circuit stays open. Zero means 60s.
	timeout time.Duration
	// readyToTrip decides, after a failure in the closed state, to open.
	// Nil means more than 5 consecutive failures.
	readyToTrip func(counts) bool
	// isExcluded marks outcomes that count neither way. Nil means none.
	isExcluded func(error) bool
	// onStateChange is called on each change, under the circuit's lock: it
	// must not call back into the circuit. Nil means none.
	onStateChange func(from, to circuitState, at time.Time)
	// now is the clock. Nil means time.Now.
	now func() time.Time
}

// circuit is a two-step circuit breaker with gobreaker's semantics (its
// TwoStepCircuitBreaker: allow, then done(outcome); a done from an earlier
// generation is ignored) on an injected clock, so tests move time instead of
// sleeping through open timeouts. No goroutines or timers: the open →
// half-open change happens when the circuit is next asked after timeout.
// Safe for concurrent use.
type circuit struct {
	s circuitSettings

	mu         sync.Mutex
	state      circuitState
	generation uint64
	c          counts
	expiry     time.Time // closed: end of interval (zero: none); open: end of timeout
}

func newCircuit(s circuitSettings) *circuit {
	if s.maxRequests == 0 {
		s.maxRequests = 1
	}
	if s.timeout <= 0 {
		s.timeout = 60 * time.Second
	}
	if s.readyToTrip == nil {
		s.readyToTrip = func(c counts) bool { return c.ConsecutiveFailures > 5 }
	}
	if s.isExcluded == nil {
		s.isExcluded = func(error) bool { return false }
	}
	if s.now == nil {
		s.now = time.Now
	}
	c := &circuit{s: s}
	c.newGeneration(s.now())
	return c
}

// permit is one request let through by a circuit: its done reports the
// request's outcome. The zero permit belongs to no circuit and its done does
// nothing. A value, not a closure, so that admitting a request allocates
// nothing.
type permit struct {
	c   *circuit
	gen uint64
}

// done reports the outcome of the permitted request (nil is a success); call
// it exactly once.
func (p permit) done(outcome error) {
	if p.c != nil {
		p.c.done(p.gen, outcome)
	}
}

// allow asks to let one request through. On success the caller must call
// the permit's done with the request's outcome exactly once.
func (c *circuit) allow() (permit, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	state, gen := c.current(c.s.now())
	switch {
	case state == stateOpen:
		return permit{}, errOpenState
	case state == stateHalfOpen && c.c.Requests-min(c.c.Requests, c.c.TotalExclusions) >= c.s.maxRequests:
		return permit{}, errTooManyRequests
	}
	c.c.Requests++
	return permit{c, gen}, nil
}

func (c *circuit) done(gen uint64, outcome error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.s.now()
	state, cur := c.current(now)
	if cur != gen {
		return
	}
	switch {
	case c.s.isExcluded(outcome):
		c.c.TotalExclusions++
	case outcome == nil:
		c.c.TotalSuccesses++
		c.c.ConsecutiveSuccesses++
		c.c.ConsecutiveFailures = 0
		if state == stateHalfOpen && c.c.ConsecutiveSuccesses >= c.s.maxRequests {
			c.setState(stateClosed, now)
		}
	default:
		c.c.TotalFailures++
		c.c.ConsecutiveFailures++
		c.c.ConsecutiveSuccesses = 0
		if state == stateHalfOpen || (state == stateClosed && c.s.readyToTrip(c.c)) {
			c.setState(stateOpen, now)
		}
	}
}

// currentState returns the state now.
func (c *circuit) currentState() circuitState {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, _ := c.current(c.s.now())
	return s
}

// counts returns the counters of the current generation.
func (c *circuit) counts() counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c
}

func (c *circuit) current(now time.Time) (circuitState, uint64) {
	switch c.state {
	case stateClosed:
		if !c.expiry.IsZero() && c.expiry.Before(now) {
			c.newGeneration(now)
		}
	case stateOpen:
		if c.expiry.Before(now) {
			c.setState(stateHalfOpen, now)
		}
	}
	return c.state, c.generation
}

func (c *circuit) setState(to circuitState, now time.Time) {
	if c.state == to {
		return
	}
	from := c.state
	c.state = to
	c.newGeneration(now)
	if c.s.onStateChange != nil {
		c.s.onStateChange(from, to, now)
	}
}

func (c *circuit) newGeneration(now time.Time) {
	c.generation++
	c.c = counts{}
	switch c.state {
	case stateClosed:
		c.expiry = time.Time{}
		if c.s.interval > 0 {
			c.expiry = now.Add(c.s.interval)
		}
	case stateOpen:
		c.expiry = now.Add(c.s.timeout)
	default:
		c.expiry = time.Time{}
	}
}
