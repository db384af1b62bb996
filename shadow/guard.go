package shadow

import (
	"context"
	"sync"
	"time"
)

// GuardConfig caps what shadowing may spend. The zero value caps nothing.
type GuardConfig struct {
	// MaxInFlight caps shadow calls running at once (across every mirror that
	// shares the guard): a call past it waits for a slot, it is not dropped.
	// Zero means no cap beyond the mirror's workers; a cap at or above a
	// lone mirror's workers is never reached.
	MaxInFlight int
	// ModelCallsPerMinute caps shadow calls that invoke the model (Job.ModelCall),
	// noise replays included, as a token bucket holding at most one minute's
	// budget. Zero means no cap.
	ModelCallsPerMinute int
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Guard enforces GuardConfig. Safe for concurrent use; it starts no
// goroutines and blocks only in Acquire, waiting for an in-flight slot.
type Guard struct {
	cfg      GuardConfig
	slots    chan struct{} // one per running call; nil without MaxInFlight
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
	g := &Guard{cfg: cfg, tokens: float64(cfg.ModelCallsPerMinute), last: cfg.Now()}
	if cfg.MaxInFlight > 0 {
		g.slots = make(chan struct{}, cfg.MaxInFlight)
	}
	return g
}

// Acquire takes an in-flight slot, waiting for one until ctx ends, then a
// model-call token when model is true (never waiting: the per-minute budget
// refuses at once). On success it returns a release func to call when the
// shadow call ends; on refusal it returns nil and the skip reason
// (SkipInFlight when ctx ended first, or SkipRateLimited). A nil Guard
// allows everything.
func (g *Guard) Acquire(ctx context.Context, model bool) (release func(), reason string) {
	if g == nil {
		return func() {}, ""
	}
	if g.slots != nil {
		select {
		case g.slots <- struct{}{}:
		default:
			select {
			case g.slots <- struct{}{}:
			case <-ctx.Done():
				return nil, SkipInFlight
			}
		}
	}
	g.mu.Lock()
	ok := !model || g.takeLocked()
	if ok {
		g.inFlight++
	}
	g.mu.Unlock()
	if !ok {
		g.freeSlot()
		return nil, SkipRateLimited
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.inFlight--
			g.mu.Unlock()
			g.freeSlot()
		})
	}, ""
}

func (g *Guard) freeSlot() {
	if g.slots != nil {
		<-g.slots
	}
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
