package shadow

import (
	"sync"
	"time"
)

// GuardConfig caps what shadowing may spend. The zero value caps nothing.
type GuardConfig struct {
	// MaxInFlight caps shadow calls running at once (across every mirror that
	// shares the guard). Zero means no cap beyond the mirror's workers.
	MaxInFlight int
	// ModelCallsPerMinute caps shadow calls that invoke the model (Job.ModelCall),
	// noise replays included, as a token bucket holding at most one minute's
	// budget. Zero means no cap.
	ModelCallsPerMinute int
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Guard enforces GuardConfig. Safe for concurrent use; it starts no
// goroutines and never blocks.
type Guard struct {
	cfg      GuardConfig
	mu       sync.Mutex
	inFlight int
	tokens   float64
	last     time.Time
}

// Skip reasons counted by Mirror (and by the proxy through Mirror.Skip).
const (
	SkipBodyTooLarge     = "body_too_large"
	SkipUnsafeMethod     = "unsafe_method"
	SkipQueueFull        = "queue_full"
	SkipRateLimited      = "rate_limited"
	SkipInFlight         = "inflight_limit"
	SkipNotSampled       = "not_sampled"
	SkipResponseTooLarge = "response_too_large"
	SkipShadowError      = "shadow_error"
	SkipSnapshot         = "snapshot_failed"
	SkipClosed           = "closed"
	SkipPrimaryError     = "primary_error"
	SkipClientGone       = "client_gone"
	SkipNoTarget         = "no_target"
	SkipMethodExcluded   = "method_excluded"
)

// NewGuard returns a guard with a full bucket.
func NewGuard(cfg GuardConfig) *Guard {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Guard{cfg: cfg, tokens: float64(cfg.ModelCallsPerMinute), last: cfg.Now()}
}

// Acquire takes an in-flight slot, and a model-call token when model is true.
// On success it returns a release func to call when the shadow call ends; on
// refusal it returns nil and the skip reason (SkipInFlight or SkipRateLimited).
// A nil Guard allows everything.
func (g *Guard) Acquire(model bool) (release func(), reason string) {
	if g == nil {
		return func() {}, ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cfg.MaxInFlight > 0 && g.inFlight >= g.cfg.MaxInFlight {
		return nil, SkipInFlight
	}
	if model && !g.takeLocked() {
		return nil, SkipRateLimited
	}
	g.inFlight++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.inFlight--
			g.mu.Unlock()
		})
	}, ""
}

// TakeModelCall takes one model-call token without an in-flight slot (used
// for a noise replay inside an already admitted shadow call).
func (g *Guard) TakeModelCall() bool {
	if g == nil {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.takeLocked()
}

func (g *Guard) takeLocked() bool {
	perMin := float64(g.cfg.ModelCallsPerMinute)
	if perMin <= 0 {
		return true
	}
	now := g.cfg.Now()
	if el := now.Sub(g.last); el > 0 { // a clock stepping back refills nothing
		g.tokens = min(perMin, g.tokens+el.Minutes()*perMin)
		g.last = now
	}
	if g.tokens < 1 {
		return false
	}
	g.tokens--
	return true
}

// InFlight returns the shadow calls currently admitted.
func (g *Guard) InFlight() int {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight
}
