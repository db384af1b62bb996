package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cutover/cutover/config"
)

// ErrBreakerOpen wraps round trips refused because a breaker is open (or
// half-open with its probes already in flight).
var ErrBreakerOpen = errors.New("circuit breaker open")

// LegacyBreakerRoute is the route label of the breaker guarding legacy as a
// whole, in metrics, logs and the admin API.
const LegacyBreakerRoute = "_legacy"

// Breakers are the circuit breakers of a proxy: for each route one around
// its legacy round trip and one around its native handler, plus one around
// legacy as a whole. They are two-step circuits (circuit.go: gobreaker's
// semantics on the clock the breakers are given) configured
// from the config in force (route.breaker and legacy_breaker) and created
// lazily; a reload that changes a route's breaker settings replaces its
// breakers (state starts closed), any other reload keeps them and their
// state. State changes are logged and exported as metrics; GET
// /admin/routes shows each route's breakers.
//
// What counts as a failure: transport errors and timeouts always; of
// responses, the statuses in failure_statuses (zero means every 5xx; a 4xx
// never). The legacy-wide breaker counts transport errors and timeouts only
// unless legacy_breaker.failure_statuses lists statuses, so one route's
// application errors (a Bedrock outage answered 502) do not take healthy
// routes down. A request whose client went away counts neither way.
//
// Build with NewBreakers; the fallback stage (fallback.go) asks them before
// each backend call and reports how it went (gobreaker's two steps, Allow
// then done). Safe for concurrent use; no goroutines or timers.
type Breakers struct {
	log       *slog.Logger
	config    func() *config.Config
	hasNative func(route string) bool
	rollback  func(route string) (ChangeResult, error)
	now       func() time.Time

	state       *prometheus.GaugeVec   // route, backend
	transitions *prometheus.CounterVec // route, backend, from, to
	fallbacks   *prometheus.CounterVec // route, reason
	rejected    *prometheus.CounterVec // route: answered 503, no backend available

	mu     sync.Mutex // serialises rebuilding the maps below
	routes atomic.Pointer[map[string]*routeBreakers]
	legacy atomic.Pointer[legacyEntry]
}

// routeBreakers are one route's breakers; nil ones are disabled.
type routeBreakers struct {
	cfg    *config.Route // the route config last seen (fast path of lookups)
	legacy *breaker
	native *breaker
}

type legacyEntry struct {
	cfg      *config.Config
	settings config.Breaker
	b        *breaker // nil when legacy_breaker.disabled
}

// BreakerOptions are what the breakers are given when built.
type BreakerOptions struct {
	// Config returns the config in force (route.breaker, legacy_breaker,
	// override.fallback, native.max_content_length). Nil means the zero
	// config: every breaker with its defaults.
	Config func() *config.Config
	// HasNative reports whether a route has a native handler to fall back
	// to. Nil means none has.
	HasNative func(route string) bool
	// Rollback sets a route's share to 0 % when its native breaker trips
	// and the route has breaker.auto_rollback. Nil means no auto rollback.
	Rollback func(route string) (ChangeResult, error)
	// Registerer receives the breaker metrics. Nil means they are not
	// registered.
	Registerer prometheus.Registerer
	// Logger receives state changes. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock of the breakers (open timeouts, intervals,
	// Retry-After, transition times). Nil means time.Now.
	Now func() time.Time
}

// NewBreakers builds an empty breaker set.
func NewBreakers(opts BreakerOptions) *Breakers {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	b := &Breakers{
		log:       log,
		config:    opts.Config,
		hasNative: opts.HasNative,
		rollback:  opts.Rollback,
		now:       opts.Now,
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cutover_breaker_state", Help: "Circuit breaker state by route and backend (0 closed, 1 half-open, 2 open); route _legacy is legacy as a whole.",
		}, []string{"route", "backend"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_breaker_transitions_total", Help: "Circuit breaker state changes by route, backend, from and to.",
		}, []string{"route", "backend", "from", "to"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_fallbacks_total", Help: "Requests answered by another backend than the one decided, by route and reason (native_breaker_open, native_5xx, native_timeout, native_panic, legacy_breaker_open).",
		}, []string{"route", "reason"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_breaker_rejected_total", Help: "Requests answered 503 with Retry-After because no backend was available, by route.",
		}, []string{"route"}),
	}
	if b.config == nil {
		b.config = func() *config.Config { return nil }
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.hasNative == nil {
		b.hasNative = func(string) bool { return false }
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(b.state, b.transitions, b.fallbacks, b.rejected)
	}
	empty := map[string]*routeBreakers{}
	b.routes.Store(&empty)
	return b
}

// forRoute returns the breakers of the route rc (nil for unmatched requests).
func (b *Breakers) forRoute(rc *config.Route) *routeBreakers {
	if rc == nil {
		return nil
	}
	m := *b.routes.Load()
	if e := m[rc.Name]; e != nil && e.cfg == rc {
		return e
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	m = *b.routes.Load()
	e := m[rc.Name]
	if e != nil && e.cfg == rc {
		return e
	}
	next := &routeBreakers{cfg: rc}
	if e != nil && sameSettings(e.cfg.Breaker, rc.Breaker) {
		next.legacy, next.native = e.legacy, e.native
	} else if !rc.Breaker.Disabled {
		next.legacy = b.newBreaker(rc.Name, Legacy, rc.Breaker, false)
		next.native = b.newBreaker(rc.Name, Native, rc.Breaker, false)
	} else {
		b.state.WithLabelValues(rc.Name, "legacy").Set(0)
		b.state.WithLabelValues(rc.Name, "native").Set(0)
	}
	nm := make(map[string]*routeBreakers, len(m)+1)
	for k, v := range m {
		nm[k] = v
	}
	nm[rc.Name] = next
	b.routes.Store(&nm)
	return next
}

// global returns the breaker guarding legacy as a whole, nil when
// legacy_breaker.disabled.
func (b *Breakers) global() *breaker {
	cfg := b.config()
	if e := b.legacy.Load(); e != nil && e.cfg == cfg {
		return e.b
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.legacy.Load()
	if e != nil && e.cfg == cfg {
		return e.b
	}
	var settings config.Breaker
	if cfg != nil {
		settings = cfg.LegacyBreaker
	}
	next := &legacyEntry{cfg: cfg, settings: settings}
	switch {
	case e != nil && sameSettings(e.settings, settings):
		next.b = e.b
	case settings.Disabled:
		b.state.WithLabelValues(LegacyBreakerRoute, "legacy").Set(0)
	default:
		next.b = b.newBreaker(LegacyBreakerRoute, Legacy, settings, true)
	}
	b.legacy.Store(next)
	return next.b
}

// sameSettings reports whether two breaker configs build the same breaker
// (auto_rollback and native_timeout are read per request, not built in).
func sameSettings(x, y config.Breaker) bool {
	fx, fy := x.FailureStatuses, y.FailureStatuses
	x.FailureStatuses, y.FailureStatuses = nil, nil
	x.AutoRollback, y.AutoRollback = false, false
	x.NativeTimeout, y.NativeTimeout = 0, 0
	return reflect.DeepEqual(x, y) && slices.Equal(fx, fy)
}

// breaker is one circuit with its failure classification.
type breaker struct {
	cb       *circuit
	settings config.Breaker
	route    string
	backend  Backend
	// fail[s-500] says whether status s counts as a failure.
	fail     [100]bool
	openedAt atomic.Int64 // unix nanoseconds of the last trip
	// tripped is set when the breaker opens and taken by the request that
	// tripped it (auto rollback runs there, outside the circuit's lock).
	tripped atomic.Bool

	mu     sync.Mutex // guards recent and nTrans
	recent [maxTransitions]BreakerTransition
	nTrans int // transitions recorded in total; recent holds the last maxTransitions
}

// maxTransitions bounds the transitions each breaker keeps for the admin API.
const maxTransitions = 10

// BreakerTransition is one state change of a breaker.
type BreakerTransition struct {
	At   time.Time `json:"at"`
	From string    `json:"from"`
	To   string    `json:"to"`
}

// record keeps a transition in the bounded ring. It runs under the
// circuit's lock (onStateChange), so it never calls back into the breaker.
func (br *breaker) record(at time.Time, from, to circuitState) {
	br.mu.Lock()
	br.recent[br.nTrans%maxTransitions] = BreakerTransition{At: at.UTC(), From: from.String(), To: to.String()}
	br.nTrans++
	br.mu.Unlock()
}

// transitions returns the recorded transitions, oldest first, and how many
// there were in total.
func (br *breaker) transitions() ([]BreakerTransition, int) {
	br.mu.Lock()
	defer br.mu.Unlock()
	n := min(br.nTrans, maxTransitions)
	out := make([]BreakerTransition, 0, n)
	for i := br.nTrans - n; i < br.nTrans; i++ {
		out = append(out, br.recent[i%maxTransitions])
	}
	return out, br.nTrans
}

func (b *Breakers) newBreaker(route string, backend Backend, s config.Breaker, global bool) *breaker {
	br := &breaker{settings: s, route: route, backend: backend}
	switch {
	case len(s.FailureStatuses) > 0:
		for _, st := range s.FailureStatuses {
			if st >= 500 && st < 600 {
				br.fail[st-500] = true
			}
		}
	case !global:
		for i := range br.fail {
			br.fail[i] = true
		}
	}
	consecutive, ratio, minReq := s.ConsecutiveFailures, s.FailureRatio, s.MinRequests
	if consecutive == 0 {
		consecutive = 5
	}
	labels := prometheus.Labels{"route": route, "backend": backend.String()}
	gauge := b.state.With(labels)
	gauge.Set(0)
	br.cb = newCircuit(circuitSettings{
		maxRequests: s.HalfOpenRequests,
		interval:    s.Interval,
		timeout:     s.OpenTimeout,
		now:         b.now,
		readyToTrip: func(c counts) bool {
			if c.ConsecutiveFailures >= consecutive {
				return true
			}
			return ratio > 0 && c.Requests >= minReq && float64(c.TotalFailures) >= ratio*float64(c.Requests)
		},
		isExcluded: func(err error) bool { return errors.Is(err, errNotCounted) },
		onStateChange: func(from, to circuitState, now time.Time) {
			if to == stateOpen {
				br.openedAt.Store(now.UnixNano())
				br.tripped.Store(true)
			}
			br.record(now, from, to)
			gauge.Set(float64(to))
			b.transitions.WithLabelValues(route, backend.String(), from.String(), to.String()).Inc()
			level := slog.LevelInfo
			if to == stateOpen {
				level = slog.LevelWarn
			}
			b.log.Log(context.Background(), level, "breaker state changed", "route", route, "backend", backend.String(),
				"from", from.String(), "to", to.String())
		},
	})
	return br
}

// Outcomes reported to a circuit: nil is a success.
var (
	// errNotCounted: the client went away, or the attempt never ran.
	errNotCounted = errors.New("not counted")
	errTimeout    = errors.New("timeout")
	errPanic      = errors.New("panic")
)

// statusError is a response whose status counts as a failure.
type statusError int

func (e statusError) Error() string { return fmt.Sprintf("status %d", int(e)) }

// failed reports whether status counts as a failure of this breaker.
func (br *breaker) failed(status int) bool {
	return status >= 500 && status < 600 && br.fail[status-500]
}

// outcome classifies a finished round trip for this breaker (nil: none).
func (br *breaker) outcome(r *http.Request, status int, err error) error {
	if br == nil {
		return nil
	}
	if r != nil && r.Context().Err() != nil && errors.Is(r.Context().Err(), context.Canceled) {
		return errNotCounted
	}
	if err != nil {
		return err
	}
	if br.failed(status) {
		return statusError(status)
	}
	return nil
}

// allow asks the breaker to let a request through; nil breakers always do
// (with the zero permit).
func (br *breaker) allow() (permit, error) {
	if br == nil {
		return permit{}, nil
	}
	p, err := br.cb.allow()
	if err != nil {
		return permit{}, fmt.Errorf("%s breaker of route %q: %w (%w)", br.backend, br.route, ErrBreakerOpen, err)
	}
	return p, nil
}

// retryAfter is the time until the breaker lets probes through, at least 1s.
func (br *breaker) retryAfter(now time.Time) time.Duration {
	if br == nil || br.cb.currentState() != stateOpen {
		return time.Second
	}
	left := time.Unix(0, br.openedAt.Load()).Add(br.settings.OpenTimeout).Sub(now)
	return max(left, time.Second)
}

// open reports whether the breaker refuses requests right now.
func (br *breaker) open() bool { return br != nil && br.cb.currentState() == stateOpen }

// BreakerStatus is one breaker as the admin API shows it.
type BreakerStatus struct {
	State                string `json:"state"`
	Requests             uint32 `json:"requests"`
	TotalFailures        uint32 `json:"total_failures"`
	ConsecutiveFailures  uint32 `json:"consecutive_failures"`
	ConsecutiveSuccesses uint32 `json:"consecutive_successes"`
	// OpenedAt is when it last tripped (zero if never).
	OpenedAt time.Time `json:"opened_at,omitzero"`
	// Transitions are the last state changes (at most 10), oldest first.
	Transitions []BreakerTransition `json:"transitions"`
	// TransitionsTotal counts every state change since the breaker was
	// built (a reload that changes its settings builds a new one).
	TransitionsTotal int `json:"transitions_total"`
}

func (br *breaker) status() *BreakerStatus {
	if br == nil {
		return nil
	}
	c := br.cb.counts()
	s := &BreakerStatus{State: br.cb.currentState().String(), Requests: c.Requests, TotalFailures: c.TotalFailures,
		ConsecutiveFailures: c.ConsecutiveFailures, ConsecutiveSuccesses: c.ConsecutiveSuccesses}
	if at := br.openedAt.Load(); at != 0 {
		s.OpenedAt = time.Unix(0, at).UTC()
	}
	// After State, which may itself record the open -> half-open change.
	s.Transitions, s.TransitionsTotal = br.transitions()
	return s
}

// RouteBreakerStatus is the live breaker state of a route (Admin.RouteStatus).
type RouteBreakerStatus struct {
	// Legacy and Native are the route's breakers (nil when disabled or not
	// yet used).
	Legacy *BreakerStatus `json:"legacy,omitempty"`
	Native *BreakerStatus `json:"native,omitempty"`
	// LegacyWide is the breaker guarding legacy as a whole (null when
	// legacy_breaker.disabled).
	LegacyWide *BreakerStatus `json:"legacy_wide"`
}

// Status returns the breakers of the named route, for GET /admin/routes.
func (b *Breakers) Status(route string) RouteBreakerStatus {
	var s RouteBreakerStatus
	if cfg := b.config(); cfg != nil {
		if rc := cfg.Route(route); rc != nil {
			if e := b.forRoute(rc); e != nil {
				s.Legacy, s.Native = e.legacy.status(), e.native.status()
			}
		}
	}
	s.LegacyWide = b.global().status()
	return s
}

// legacyTicket is the breakers' permission for one legacy round trip:
// the fallback stage gets it (Allow) and hands it to the legacy backend,
// which reports the trip (done) when the response header arrives or the
// round trip fails.
type legacyTicket struct {
	global, route             *breaker
	globalPermit, routePermit permit
	finished                  bool
}

// admitLegacy asks the legacy-wide breaker and the route's legacy breaker
// (rb may be nil) to let a request through, filling t (the caller's, so
// that admitting allocates nothing).
func (b *Breakers) admitLegacy(rb *routeBreakers, t *legacyTicket) error {
	*t = legacyTicket{global: b.global()}
	var err error
	if t.globalPermit, err = t.global.allow(); err != nil {
		return err
	}
	if rb != nil && rb.legacy != nil {
		t.route = rb.legacy
		if t.routePermit, err = t.route.allow(); err != nil {
			t.globalPermit.done(errNotCounted)
			return err
		}
	}
	return nil
}

// legacyRetryAfter is how long until legacy may be asked again for rb.
func (b *Breakers) legacyRetryAfter(rb *routeBreakers) time.Duration {
	now := b.now()
	d := b.global().retryAfter(now)
	if rb != nil {
		d = max(d, rb.legacy.retryAfter(now))
	}
	return d
}

// finish reports the round trip's outcome to the breakers, once. A nil
// ticket (no breakers) does nothing. It runs in the request's goroutine.
func (t *legacyTicket) finish(r *http.Request, status int, err error) {
	if t == nil || t.finished {
		return
	}
	t.finished = true
	t.globalPermit.done(t.global.outcome(r, status, err))
	if t.route != nil {
		t.routePermit.done(t.route.outcome(r, status, err))
	}
}
