package proxy

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/cutover/cutover/compat"
	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/internal/fleet"
	"github.com/cutover/cutover/internal/tracing"
)

// Errors of share changes.
var (
	// ErrUnknownRoute: no route has that name.
	ErrUnknownRoute = errors.New("unknown route")
	// ErrNoHandler: the route has no native handler, so its share must stay 0.
	ErrNoHandler = errors.New("route has no native handler")
)

// RouterOptions are the parts a Router is built from.
type RouterOptions struct {
	// Legacy serves requests routed to legacy. Required (see NewLegacy).
	Legacy *Passthrough
	// Native serves requests routed to native. Nil means no native handlers:
	// every request goes to legacy and any share above 0 is rejected.
	Native NativeApp
	// Metrics receives request metrics. Nil means NewMetrics().
	Metrics *Metrics
	// Logger receives the access log and events. Nil means slog.Default().
	Logger *slog.Logger
	// Prepare, when set, is given every config the Router is about to apply
	// (the first one included) to compile what the stages need from it:
	// an error rejects the config, joined with the Router's own problems, and
	// commit runs once the config is in force, under the same lock. Nil means
	// none. (The shadow stage compiles its comparison rules this way.)
	Prepare func(*config.Config) (commit func(), err error)
	// Tracer makes a server span per request, and a span around the native
	// handlers. Nil means tracing is off.
	Tracer *tracing.Tracer
}

// Router is the first and last stage of the pipeline: it matches each
// request against the route table, computes the request's facts once into a
// Decision (backend: override header, else the sticky bucket against the
// route's share), hands it to the next stage, and logs and counts the
// outcome the stages recorded in it. NewRouter alone sends requests straight
// to the backends; New builds the whole pipeline (pipeline.go).
// The config in force is an immutable snapshot swapped atomically, so a
// reload or a share change never blocks or drops a request. Safe for
// concurrent use.
type Router struct {
	snap     atomic.Pointer[snapshot]
	base     *backends  // the innermost stage
	dispatch Dispatcher // the next stage: base, or the pipeline built on it
	prepare  func(*config.Config) (func(), error)
	native   map[string]bool
	metrics  *Metrics
	log      *slog.Logger
	tracer   *tracing.Tracer // nil: off

	mu  sync.Mutex // serialises config changes
	cfg *config.Config

	// fleet, when not nil, holds the shares (fleet.go); it is set before
	// serving and never changes. file is then the config as its file gives
	// it, and fleetGen the fleet generation whose shares are in force. Both
	// are guarded by mu.
	fleet    *fleet.Store
	file     *config.Config
	fleetGen uint64

	// Without a fleet store: fromFile are the shares of the config last
	// applied as a whole (the file's, for a config from a file); unsaved the
	// share changes in force that it does not hold (shares.go). Both guarded
	// by mu.
	fromFile map[string]int
	unsaved  map[string]unsavedShare

	// rollouts, when not nil, are told of share changes made outside them
	// (rollout.go); set before serving, never changed.
	rollouts *rollouts
}

// snapshot is the compiled config in force.
type snapshot struct {
	cfg       *config.Config
	rules     *compat.Map // nil when there are no routes
	routes    map[string]*route
	unmatched *routeMetrics
	ov        struct {
		enabled     bool
		header      string
		tokenHeader string
		token       []byte
	}
	servedBy  string
	id        identityOpts
	accessLog bool
	// bodyLimit bounds the one body buffer of a request: the largest limit
	// of the stages that read it (identity, shadow, native replay).
	bodyLimit int64
}

type route struct {
	cfg     *config.Route
	share   int
	native  bool
	seed    uint64 // routing
	shadow  uint64 // shadow sampling
	noise   uint64 // noise sampling
	sources []source
	m       *routeMetrics
}

// NewRouter builds a Router for cfg.
func NewRouter(cfg *config.Config, opts RouterOptions) (*Router, error) {
	if opts.Legacy == nil {
		return nil, errors.New("new router: no legacy handler")
	}
	rt := &Router{native: map[string]bool{}, metrics: opts.Metrics, log: opts.Logger, prepare: opts.Prepare, tracer: opts.Tracer}
	if rt.metrics == nil {
		rt.metrics = NewMetrics()
	}
	if rt.log == nil {
		rt.log = slog.Default()
	}
	rt.base = &backends{legacy: opts.Legacy}
	if opts.Native != nil {
		rt.base.native = opts.Tracer.Handler("native", opts.Native)
		for _, e := range opts.Native.Endpoints() {
			rt.native[e] = true
		}
	}
	rt.dispatch = rt.base
	if err := rt.Apply(cfg); err != nil {
		return nil, err
	}
	return rt, nil
}

// Metrics returns the router's collectors.
func (rt *Router) Metrics() *Metrics { return rt.metrics }

// Config returns the config in force (read only).
func (rt *Router) Config() *config.Config { return rt.snap.Load().cfg }

// HasNative reports whether a native handler serves the named endpoint.
func (rt *Router) HasNative(name string) bool { return rt.native[name] }

// Check reports every problem that would make cfg rejected by Apply, beyond
// config's own validation: rules that do not compile, shares on routes
// without a native handler, a health path that collides with a route.
func Check(cfg *config.Config, nativeEndpoints []string) error {
	native := map[string]bool{}
	for _, e := range nativeEndpoints {
		native[e] = true
	}
	_, err := compile(cfg, native, nil)
	return errors.Join(err, CheckShadow(cfg))
}

// Apply swaps cfg in atomically; requests in flight finish under the
// snapshot they started with. An invalid cfg is rejected and the previous
// one stays in force.
func (rt *Router) Apply(cfg *config.Config) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if err := rt.applyLocked(cfg); err != nil {
		return err
	}
	rt.fromFile, rt.unsaved = sharesOf(cfg), nil
	return nil
}

// ApplyFile is Apply for a config the watcher read from its file: if the
// file changed since (a share change was persisted meanwhile), the stale
// config is dropped with config.ErrSuperseded instead of undoing that change.
func (rt *Router) ApplyFile(cfg *config.Config) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if cfg.File() != "" {
		if now, err := os.ReadFile(cfg.File()); err == nil && !bytes.Equal(now, cfg.Raw()) {
			return config.ErrSuperseded
		}
	}
	if rt.fleet == nil {
		return rt.reloadLocked(cfg)
	}
	// The fleet's shares stay in force; the file's are handed to the store,
	// which writes those edited since it last took them (package fleet).
	if err := rt.applyLocked(rt.overlay(cfg, rt.fleet.Current())); err != nil {
		return err
	}
	rt.file = cfg
	rt.fleet.SetFileShares(fileShares(cfg))
	return nil
}

func (rt *Router) applyLocked(cfg *config.Config) error {
	s, err := compile(cfg, rt.native, rt.metrics)
	var commit func()
	if rt.prepare != nil {
		c, perr := rt.prepare(cfg)
		commit, err = c, errors.Join(err, perr)
	}
	if err != nil {
		return err
	}
	rt.snap.Store(s)
	rt.cfg = cfg
	if commit != nil {
		commit()
	}
	for name, r := range s.routes {
		rt.metrics.shares.WithLabelValues(name).Set(float64(r.share) / config.MaxShare)
	}
	return nil
}

func compile(cfg *config.Config, native map[string]bool, m *Metrics) (*snapshot, error) {
	s := &snapshot{cfg: cfg, routes: map[string]*route{}}
	var errs []error
	rules := make([]compat.Rule, 0, len(cfg.Routes))
	for i := range cfg.Routes {
		rc := &cfg.Routes[i]
		rules = append(rules, compat.Rule{Endpoint: rc.Name, Pattern: rc.Path, Methods: rc.Methods})
		r := &route{cfg: rc, share: rc.Share, native: native[rc.Name], seed: Seed(rc.Salt), shadow: shadowSeed(rc.Salt),
			noise: noiseSeed(rc.Salt), sources: compileSources(rc.Sources)}
		if r.share > 0 && !r.native {
			errs = append(errs, fmt.Errorf("route %q: native share %v%% but no native handler is registered for it; its share must be 0",
				rc.Name, config.BPToPercent(r.share)))
		}
		if rc.Rollout != nil {
			if _, err := routePlan(rc.Rollout); err != nil {
				errs = append(errs, fmt.Errorf("route %q: rollout: %w", rc.Name, err))
			}
		}
		if m != nil {
			r.m = m.route(rc.Name)
		}
		s.routes[rc.Name] = r
	}
	if len(rules) > 0 {
		mp, err := compat.NewMap(rules...)
		if err != nil {
			errs = append(errs, fmt.Errorf("routes: %w", err))
		} else {
			s.rules = mp
			if mt, err := mp.Match("GET", cfg.Listen.HealthPath); err == nil {
				errs = append(errs, fmt.Errorf("listen: health_path %q collides with route %q", cfg.Listen.HealthPath, mt.Endpoint))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if m != nil {
		s.unmatched = m.route(UnmatchedRoute)
	}
	s.ov.enabled = cfg.Override.Enabled
	s.ov.header = textproto.CanonicalMIMEHeaderKey(cfg.Override.Header)
	s.ov.tokenHeader = textproto.CanonicalMIMEHeaderKey(cfg.Override.TokenHeader)
	if cfg.Override.Token != "" {
		s.ov.token = []byte(cfg.Override.Token)
	}
	if cfg.Listen.ServedByHeader != "" {
		s.servedBy = textproto.CanonicalMIMEHeaderKey(cfg.Listen.ServedByHeader)
	}
	s.id = identityOpts{sessionCookie: cfg.Identity.SessionCookie, trustedHops: cfg.Identity.TrustedHops, maxBody: cfg.Identity.MaxBodyBytes}
	s.accessLog = cfg.Log.AccessLog()
	s.bodyLimit = max(cfg.Identity.MaxBodyBytes, cfg.Native.MaxContentLength, cfg.Shadow.MaxBodyBytes)
	return s, nil
}

var decisionPool = sync.Pool{New: func() any { return new(Decision) }}

// ServeHTTP routes one request.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var span trace.Span
	if rt.tracer != nil {
		r, span = rt.tracer.StartRequest(r)
	}
	s := rt.snap.Load()
	d := decisionPool.Get().(*Decision)
	d.reset()
	rm := rt.decide(s, r, d)
	// The override header and its token, cutover's internal headers and
	// protocol upgrades never reach a backend (nor a shadow).
	stripInbound(r.Header, s.ov.header, s.ov.tokenHeader)

	rec := getRecorder(w, d, s.servedBy)
	rt.metrics.inFlight.Inc()
	defer func() {
		p := recover()
		wroteBefore := rec.wrote
		rt.metrics.inFlight.Dec()
		status := rt.finish(s, r, d, rm, rec, start, p)
		if span != nil {
			o := tracing.Outcome{Route: d.Route, Reason: d.Reason.String(), Backend: d.Served.String(), Fallback: d.Fallback, Status: status}
			if d.Config != nil {
				o.Path = d.Config.Path
			}
			tracing.EndRequest(span, r.Method, o)
		}
		putRecorder(rec)
		*d = Decision{}
		decisionPool.Put(d)
		if p == http.ErrAbortHandler || (p != nil && wroteBefore) {
			// Abort the connection so the client sees a truncated response,
			// not one that looks complete (net/http recovers this one quietly).
			panic(http.ErrAbortHandler)
		}
	}()
	rt.dispatch.Dispatch(rec, r, d)
}

// decide fills d with the request's facts and returns the metrics of the
// route it matched.
func (rt *Router) decide(s *snapshot, r *http.Request, d *Decision) *routeMetrics {
	d.Safe = safeMethod(r.Method)
	d.body.limit = s.bodyLimit
	var rte *route
	if s.rules != nil {
		if mt, err := s.rules.Match(r.Method, compat.PathInfo(r)); err == nil {
			rte = s.routes[mt.Endpoint]
			d.Match = mt
		}
	}
	rm := s.unmatched
	d.Route = UnmatchedRoute
	d.Reason = ReasonUnmatched
	if rte != nil {
		rm = rte.m
		d.Route = rte.cfg.Name
		d.Config = rte.cfg
		d.rte = rte
		// The identity, once: routing needs it for a split share, the
		// shadow stage to sample.
		if (rte.native && rte.share > 0 && rte.share < config.MaxShare) || rte.cfg.Shadow.Rate > 0 {
			d.Key, d.Source = identity(r, d, rte.sources, &s.id)
		}
	}
	defer func() { d.Served = d.Backend }()
	if b, ok := s.override(r); ok {
		d.Backend, d.Reason = b, ReasonOverride
		if b == Native && (rte == nil || !rte.native) {
			// Unmatched requests and routes without a native handler are
			// always legacy, override or not.
			d.Backend, d.Reason = Legacy, ReasonOverrideNoHandler
		}
		return rm
	}
	if rte == nil {
		return rm
	}
	switch {
	case !rte.native:
		d.Backend, d.Reason = Legacy, ReasonNoHandler
	case rte.share <= 0:
		d.Backend, d.Reason = Legacy, ReasonShare
	case rte.share >= config.MaxShare:
		d.Backend, d.Reason = Native, ReasonShare
	default:
		if d.Key == "" {
			d.Backend, d.Reason = Legacy, ReasonNoIdentity
			return rm
		}
		d.Bucket = Bucket(rte.seed, d.Key)
		d.Reason = ReasonShare
		if d.Bucket < rte.share {
			d.Backend = Native
		}
	}
	return rm
}

// override returns the backend the QA override header asks for, when the
// override is enabled and (if a token is configured) authorised.
func (s *snapshot) override(r *http.Request) (Backend, bool) {
	if !s.ov.enabled {
		return Legacy, false
	}
	vs := r.Header[s.ov.header]
	if len(vs) == 0 {
		return Legacy, false
	}
	if s.ov.token != nil {
		t := r.Header[s.ov.tokenHeader]
		if len(t) != 1 || subtle.ConstantTimeCompare([]byte(t[0]), s.ov.token) != 1 {
			return Legacy, false
		}
	}
	switch strings.ToLower(strings.TrimSpace(vs[0])) {
	case "legacy":
		return Legacy, true
	case "native":
		return Native, true
	}
	return Legacy, false
}

// finish records the outcome of a request, metrics and the access log, and
// returns the status recorded.
func (rt *Router) finish(s *snapshot, r *http.Request, d *Decision, rm *routeMetrics, rec *recorder, start time.Time, p any) int {
	status := rec.Status()
	errKind := ""
	if d.Err != nil {
		errKind = ErrorKind(r, d.Err)
		if !rec.wrote {
			status = StatusFor(r, d.Err) // nobody to answer: what it would have been
		}
	}
	if p != nil {
		if p != http.ErrAbortHandler {
			rt.log.Error("handler panic", "route", d.Route, "backend", d.Served.String(), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if !rec.wrote {
				writeErrorPage(rec, http.StatusInternalServerError)
				status = http.StatusInternalServerError
			}
			errKind = "panic"
		} else if errKind == "" {
			errKind = "aborted"
		}
	}
	// The client left before the answer was complete: nothing was written,
	// the backend failed, or the answer was aborted (http.ErrAbortHandler:
	// the reverse proxy and the native stream handler abort a response they
	// cut short). An answer the handler finished keeps its status, even if
	// the client closed right after it.
	if errors.Is(r.Context().Err(), context.Canceled) && (p != nil || d.Err != nil || !rec.wrote) && !bodyTimedOut(r) {
		status = StatusClientClosed
		errKind = "client_gone"
	}
	if rm != nil {
		class := codeClass(status)
		rm.requests[d.Served][class].Inc()
		rm.latency[d.Served][class].Observe(time.Since(start).Seconds())
		rm.decisions[d.Backend][d.Reason].Inc()
	}
	if errKind != "" {
		rt.metrics.errors.WithLabelValues(d.Route, d.Served.String(), errKind).Inc()
	}
	if !s.accessLog {
		return status
	}
	attrs := [...]slog.Attr{
		slog.String("route", d.Route),
		slog.String("backend", d.Served.String()),
		slog.String("reason", d.Reason.String()),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", rec.bytes),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		slog.String("bucket", bucketLabel(d.Bucket)),
		slog.String("source", d.Source),
		slog.String("fallback", d.Fallback),
		slog.String("error", errKind),
	}
	rt.log.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs[:]...)
	return status
}

// rollback sets route's native share to 0 %, audited as action
// "auto_rollback" by "cutover": the breakers' auto rollback.
// With a fleet store it rolls the route back fleet-wide, on top of whatever
// the store holds (it does not depend on what it replaces).
func (rt *Router) rollback(route string) (ChangeResult, error) {
	actor := Actor{Who: "cutover", Action: "auto_rollback", Reason: "native breaker tripped"}
	if rt.fleet != nil {
		return rt.setFleetShares(map[string]int{route: 0}, actor, nil, true)
	}
	return rt.SetShares(map[string]int{route: 0}, actor)
}
