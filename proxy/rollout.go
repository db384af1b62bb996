package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/internal/fleet"
	"github.com/cutover/cutover/internal/rollout"
	"github.com/cutover/cutover/shadow"
)

// Progressive rollouts (internal/rollout, docs/rollout.md) in a Server:
// every instance counts each route's outcomes (the request path only
// bumps the Prometheus counters it already had; a flusher goroutine turns
// their growth into windowed counts in the fleet store), and one instance,
// the holder of the fleet lease (or the single instance), evaluates the
// rollouts and applies their steps. Operators start and steer them through
// the admin API on any instance.

// rollouts wires the rollout package into a Server.
type rollouts struct {
	rt       *Router
	breakers *Breakers
	mirror   func() *shadow.Mirror
	log      *slog.Logger
	now      func() time.Time

	store    rollout.Store
	fleet    *rollout.FleetStore // nil on a single instance
	local    *localRollouts      // nil with a fleet store
	counters rollout.Counters
	driver   *rollout.Driver
	flusher  *rollout.Flusher
	hooks    *webhooks
	probe    probe

	evaluations *prometheus.CounterVec // route, gate, result
}

// newRollouts builds the rollout parts of s for cfg, after the fleet store
// (if any) and before serving.
func (s *Server) newRollouts(cfg *config.Config) {
	rc := cfg.Rollout
	x := &rollouts{rt: s.Router, breakers: s.Breakers, log: s.log.With("component", "rollout"), now: time.Now}
	x.mirror = s.Mirror
	if s.fleet != nil {
		x.fleet = &rollout.FleetStore{Fleet: s.fleet, LeaseTTL: rc.LeaseTTL}
		x.store = x.fleet
		rdb, prefix := s.fleet.Redis()
		x.counters = &rollout.RedisCounters{Client: rdb, Prefix: prefix}
	} else {
		x.local = &localRollouts{rt: s.Router, states: map[string]rollout.State{}}
		x.store = x.local
		x.counters = &rollout.MemoryCounters{}
	}
	reg := s.Router.Metrics().Registry
	x.evaluations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cutover_rollout_gate_evaluations_total", Help: "Rollout gate evaluations by route, gate and result (pass, fail, insufficient), on the driving instance.",
	}, []string{"route", "gate", "result"})
	x.hooks = newWebhooks(rc.Webhooks, rc.WebhookQueue, x.log)
	reg.MustRegister(x.evaluations, x.hooks.dropped, x.hooks.failed, rolloutCollector{x})
	x.driver = &rollout.Driver{Store: x.store, Counters: x.counters, Now: x.now, Interval: rc.Interval, Log: x.log,
		Notify: x.notify, Observe: x.observe}
	x.flusher = &rollout.Flusher{Counters: x.counters, Windows: x.windows, Collect: x.probe.collect(x), Interval: rc.FlushInterval, Log: x.log}
	s.rollouts = x
	s.Router.rollouts = x
	x.mount(s.Admin)
}

// run drives, flushes and notifies until ctx ends; on return every
// goroutine it started has ended and the driver's lease is released.
func (x *rollouts) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); x.driver.Run(ctx) }()
	go func() { defer wg.Done(); x.flusher.Run(ctx) }()
	go func() { defer wg.Done(); x.hooks.run(ctx) }()
	wg.Wait()
	if x.fleet != nil {
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		x.fleet.Release(rctx)
		cancel()
	}
}

// states are the rollouts as this instance knows them (no I/O).
func (x *rollouts) states() map[string]rollout.State {
	if x.local != nil {
		return x.local.snapshot()
	}
	return rollout.States(x.fleet.Fleet.Current())
}

// windows are the measurement windows of the active rollouts.
func (x *rollouts) windows() map[string]uint64 {
	out := map[string]uint64{}
	for route, st := range x.states() {
		if st.Status.Active() {
			out[route] = st.Window
		}
	}
	return out
}

func (x *rollouts) notify(st rollout.State, e rollout.Entry) { x.hooks.send(st, e) }

func (x *rollouts) observe(st rollout.State, d rollout.Decision) {
	for _, g := range d.Gates {
		x.evaluations.WithLabelValues(st.Route, g.Gate, g.Result).Inc()
	}
}

// rolloutCollector exports cutover_rollout_step and cutover_rollout_state
// from the states this instance applies, so every instance shows them.
type rolloutCollector struct{ x *rollouts }

var (
	rolloutStepDesc = prometheus.NewDesc("cutover_rollout_step",
		"Index of the current step of each route's rollout (0: the first), as the fleet state says.", []string{"route"}, nil)
	rolloutStateDesc = prometheus.NewDesc("cutover_rollout_state",
		"State of each route's rollout: 1 running, 2 holding, 3 paused, 4 completed, 5 rolled_back, 6 aborted.", []string{"route"}, nil)
	rolloutLeaderDesc = prometheus.NewDesc("cutover_rollout_driver",
		"1 while this instance drives the rollouts (holds the lease, or runs alone), else 0.", nil, nil)
)

func (c rolloutCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rolloutStepDesc
	ch <- rolloutStateDesc
	ch <- rolloutLeaderDesc
}

func (c rolloutCollector) Collect(ch chan<- prometheus.Metric) {
	for route, st := range c.x.states() {
		ch <- prometheus.MustNewConstMetric(rolloutStepDesc, prometheus.GaugeValue, float64(st.Step), route)
		ch <- prometheus.MustNewConstMetric(rolloutStateDesc, prometheus.GaugeValue, float64(st.Status.Code()), route)
	}
	ch <- prometheus.MustNewConstMetric(rolloutLeaderDesc, prometheus.GaugeValue, boolFloat(c.x.driver.Leading()))
}

// interruptEdits returns the rollout edits a share change by actor makes on
// a fleet: an active rollout of a route whose share an operator sets by
// hand (set, rollback) is paused, and one whose native breaker rolled it
// back is marked rolled back, in the same change, so the driver never
// fights the change. Changes made by the rollouts themselves are left alone.
//
// It returns the edits and the function that reports them (log, webhooks),
// to call once the change is written.
func (x *rollouts) interruptEdits(snap *fleet.Snapshot, shares map[string]int, actor Actor) (map[string]json.RawMessage, func()) {
	if x == nil || snap == nil || strings.HasPrefix(actor.Action, "rollout") {
		return nil, func() {}
	}
	states := rollout.States(snap)
	out := map[string]json.RawMessage{}
	var changed []rollout.State
	for route, bp := range shares {
		st, ok := states[route]
		if !ok || bp == st.Share() {
			continue
		}
		if next, ok := rollout.Interrupt(st, bp, actor.Action, actor.Who, x.now()); ok {
			if b, err := json.Marshal(next); err == nil {
				out[route] = b
				changed = append(changed, next)
			}
		}
	}
	return out, func() {
		for _, st := range changed {
			x.log.Warn("rollout interrupted by a share change", "route", st.Route, "action", actor.Action, "who", actor.Who,
				"status", string(st.Status))
			x.hooks.send(st, st.History[len(st.History)-1])
		}
	}
}

// localInterrupt is interruptEdits on a single instance, after the change.
func (x *rollouts) localInterrupt(changes []Change, actor Actor) {
	if x == nil || x.local == nil || strings.HasPrefix(actor.Action, "rollout") {
		return
	}
	for _, c := range changes {
		if next, ok := x.local.interrupt(c.Route, c.New, actor, x.now()); ok {
			x.log.Warn("rollout interrupted by a share change", "route", c.Route, "action", actor.Action, "who", actor.Who,
				"status", string(next.Status))
			x.hooks.send(next, next.History[len(next.History)-1])
		}
	}
}

// localRollouts is the rollout.Store of a single instance: the states in
// memory (a restart forgets them; the share stays in the config file), the
// shares through Router.SetShares (persisted and audited as usual).
type localRollouts struct {
	rt     *Router
	mu     sync.Mutex
	gen    uint64
	states map[string]rollout.State
}

var _ rollout.Store = (*localRollouts)(nil)

// Lead implements rollout.Store: a single instance always leads.
func (l *localRollouts) Lead(context.Context) (bool, error) { return true, nil }

// Load implements rollout.Store.
func (l *localRollouts) Load(context.Context) (map[string]rollout.State, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.copyLocked(), l.gen, nil
}

func (l *localRollouts) snapshot() map[string]rollout.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.copyLocked()
}

func (l *localRollouts) copyLocked() map[string]rollout.State {
	out := make(map[string]rollout.State, len(l.states))
	for k, v := range l.states {
		out[k] = v
	}
	return out
}

// Save implements rollout.Store.
func (l *localRollouts) Save(_ context.Context, gen uint64, st rollout.State, actor rollout.Actor, _ bool) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen != l.gen {
		return 0, fmt.Errorf("%w: rollouts at %d, the change was made from %d", fleet.ErrConflict, l.gen, gen)
	}
	if _, err := l.rt.SetShares(map[string]int{st.Route: st.Share()},
		Actor{Who: actor.Who, Remote: actor.Remote, Action: actor.Action, Reason: actor.Reason}); err != nil {
		return 0, err
	}
	l.states[st.Route] = st
	l.gen++
	return l.gen, nil
}

func (l *localRollouts) interrupt(route string, bp int, actor Actor, now time.Time) (rollout.State, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, ok := l.states[route]
	if !ok || bp == st.Share() {
		return st, false
	}
	next, changed := rollout.Interrupt(st, bp, actor.Action, actor.Who, now)
	if changed {
		l.states[route] = next
		l.gen++
	}
	return next, changed
}

// probe turns the growth of the proxy's own counters into rollout counts
// per route: requests and 5xx answers by backend that served, latency
// buckets, native attempts that failed over to legacy (native's errors
// too), shadow comparisons and native breaker trips. It runs on the
// flusher's goroutine only.
type probe struct {
	prev map[string]rollout.Window
	// opened is each route's native breaker's last trip time seen.
	opened map[string]time.Time
}

// collect returns the probe's Collect function for x.
func (p *probe) collect(x *rollouts) func() map[string]rollout.Window {
	return func() map[string]rollout.Window {
		cur := x.cumulative(p)
		out := map[string]rollout.Window{}
		for route, w := range cur {
			out[route] = delta(w, p.prev[route])
		}
		p.prev = cur
		return out
	}
}

// cumulative reads every route's counts since the process started.
func (x *rollouts) cumulative(p *probe) map[string]rollout.Window {
	if p.opened == nil {
		p.opened = map[string]time.Time{}
	}
	m := x.rt.metrics
	m.mu.Lock()
	routes := make(map[string]*routeMetrics, len(m.routes))
	for k, v := range m.routes {
		routes[k] = v
	}
	m.mu.Unlock()
	out := make(map[string]rollout.Window, len(routes))
	for name, rm := range routes {
		if name == UnmatchedRoute {
			continue
		}
		var w rollout.Window
		for b, c := range []*rollout.Counts{&w.Legacy, &w.Native} {
			c.Latency = make([]int64, len(rollout.LatencyBounds)+1)
			for class := range classLabels {
				if class == 5 { // 499: the client left; not the backend's doing
					continue
				}
				n := counterValue(rm.requests[b][class])
				c.Requests += n
				if class == 4 {
					c.Errors += n
				}
				addBuckets(c.Latency, rm.latency[b][class])
			}
		}
		out[name] = w
	}
	// Native attempts answered by legacy after failing: native's errors.
	failed := map[string]int64{}
	collectVec(x.breakers.fallbacks, func(labels map[string]string, v float64) {
		switch labels["reason"] {
		case FallbackNative5xx, FallbackNativeTimeout, FallbackNativePanic:
			failed[labels["route"]] += int64(v)
		}
	})
	for route, n := range failed {
		w := out[route]
		w.Native.Requests += n
		w.Native.Errors += n
		out[route] = w
	}
	if mi := x.mirror(); mi != nil {
		for _, s := range mi.Summary() {
			w := out[s.Route]
			w.Compared, w.Mismatched = s.Compared, s.Semantic+s.Errors
			out[s.Route] = w
		}
	}
	// A trip is a newer open time of the route's native breaker: counted
	// once per flush at most, which is all the gate needs.
	for route := range out {
		st := x.breakers.Status(route).Native
		if st == nil || st.OpenedAt.IsZero() {
			continue
		}
		w := out[route]
		w.NativeTrips = p.prev[route].NativeTrips
		if last, ok := p.opened[route]; ok && st.OpenedAt.After(last) || !ok {
			w.NativeTrips++
		}
		p.opened[route] = st.OpenedAt
		out[route] = w
	}
	return out
}

// delta is cur - prev, field by field; a counter that went down (a reset
// shadow summary, a rebuilt breaker) counts from zero again.
func delta(cur, prev rollout.Window) rollout.Window {
	d := func(a, b int64) int64 {
		if a < b {
			return a
		}
		return a - b
	}
	sub := func(c, p rollout.Counts) rollout.Counts {
		out := rollout.Counts{Requests: d(c.Requests, p.Requests), Errors: d(c.Errors, p.Errors), Latency: make([]int64, len(c.Latency))}
		for i := range c.Latency {
			var pv int64
			if i < len(p.Latency) {
				pv = p.Latency[i]
			}
			out.Latency[i] = d(c.Latency[i], pv)
		}
		return out
	}
	return rollout.Window{Legacy: sub(cur.Legacy, prev.Legacy), Native: sub(cur.Native, prev.Native),
		Compared: d(cur.Compared, prev.Compared), Mismatched: d(cur.Mismatched, prev.Mismatched),
		NativeTrips: d(cur.NativeTrips, prev.NativeTrips)}
}

func counterValue(c prometheus.Counter) int64 {
	var m dto.Metric
	if c == nil || c.Write(&m) != nil {
		return 0
	}
	return int64(m.GetCounter().GetValue())
}

// addBuckets adds the histogram behind o (cumulative buckets) to lat, as
// per-bucket counts.
func addBuckets(lat []int64, o prometheus.Observer) {
	pm, ok := o.(prometheus.Metric)
	if !ok {
		return
	}
	var m dto.Metric
	if pm.Write(&m) != nil || m.Histogram == nil {
		return
	}
	var prev uint64
	for i, b := range m.Histogram.GetBucket() {
		if i < len(lat) {
			lat[i] += int64(b.GetCumulativeCount() - prev)
		}
		prev = b.GetCumulativeCount()
	}
	lat[len(lat)-1] += int64(m.Histogram.GetSampleCount() - prev)
}

// collectVec calls f with the labels and value of every series of the
// counter vector v (without creating any).
func collectVec(v *prometheus.CounterVec, f func(map[string]string, float64)) {
	ch := make(chan prometheus.Metric, 64)
	go func() { v.Collect(ch); close(ch) }()
	for pm := range ch {
		var m dto.Metric
		if pm.Write(&m) != nil {
			continue
		}
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		f(labels, m.GetCounter().GetValue())
	}
}

// RolloutStatus is GET /admin/routes/{name}/rollout: the rollout's state
// with its last evaluation's gate values and the whole history.
type RolloutStatus struct {
	rollout.State
	// State repeats Status under the name the console reads.
	StateName rollout.Status `json:"state"`
	// Steps are the plan's steps and StepName the current one ("5%").
	Steps    []rollout.Step `json:"steps"`
	StepName string         `json:"step_name"`
	// ShareBP is the share the rollout asks for; AppliedBP the share this
	// instance applies (they differ after a manual change).
	ShareBP   int `json:"share_bp"`
	AppliedBP int `json:"applied_bp"`
	// Why is the reason of the last history entry, or of the last
	// evaluation when it holds.
	Why string `json:"why,omitempty"`
	// LastEvaluation is the driver's last evaluation of the route (its
	// gate values and the measured window); absent before the first.
	LastEvaluation *rollout.Evaluation `json:"last_evaluation,omitempty"`
	// Driver is the instance driving the rollouts (fleet only).
	Driver string `json:"driver,omitempty"`
}

// mount adds the rollout endpoints to the admin API (changes need the
// token and are audited).
func (x *rollouts) mount(a *Admin) {
	e := a.Echo()
	e.GET("/admin/routes/:name/rollout", x.get)
	e.POST("/admin/routes/:name/rollout", func(c echo.Context) error { return x.start(c, a) }, a.RequireToken)
	e.POST("/admin/routes/:name/rollout/:action", func(c echo.Context) error { return x.act(c, a) }, a.RequireToken)
}

// rolloutStatus is the HTTP status of a failed rollout call.
func rolloutStatus(err error) int {
	switch {
	case errors.Is(err, rollout.ErrNone):
		return http.StatusNotFound
	case errors.Is(err, rollout.ErrState):
		return http.StatusConflict
	}
	return changeStatus(err, http.StatusBadRequest)
}

func (x *rollouts) status(ctx context.Context, route string) (RolloutStatus, error) {
	st, ok := x.states()[route]
	if !ok {
		return RolloutStatus{}, fmt.Errorf("route %q: %w", route, rollout.ErrNone)
	}
	out := RolloutStatus{State: st, StateName: st.Status, Steps: st.Plan.Steps, StepName: st.CurrentStep().String(), ShareBP: st.Share()}
	if rc := x.rt.Config().Route(route); rc != nil {
		out.AppliedBP = rc.Share
	}
	if len(st.History) > 0 {
		out.Why = st.History[len(st.History)-1].Reason
	}
	if ev, err := x.counters.Last(ctx, route); err == nil && !ev.Time.IsZero() && ev.Window == st.Window {
		out.LastEvaluation = &ev
		if st.Status == rollout.StatusHolding && ev.Decision.Reason != "" {
			out.Why = ev.Decision.Reason
		}
	}
	if x.fleet != nil {
		out.Driver, _, _ = x.fleet.Fleet.LeaseHolder(ctx, rollout.LeaseName)
	}
	return out, nil
}

func (x *rollouts) get(c echo.Context) error {
	name := c.Param("name")
	if x.rt.Config().Route(name) == nil {
		return echo.NewHTTPError(http.StatusNotFound, "unknown route "+quote(name))
	}
	out, err := x.status(c.Request().Context(), name)
	if err != nil {
		return echo.NewHTTPError(rolloutStatus(err), err.Error())
	}
	return c.JSON(http.StatusOK, out)
}

// RolloutStartRequest is the optional body of POST
// /admin/routes/{name}/rollout: plan fields overriding the route's
// `rollout:` block (or the defaults), and why.
type RolloutStartRequest struct {
	rollout.Plan
	Reason string `json:"reason,omitempty"`
}

func (x *rollouts) start(c echo.Context, a *Admin) error {
	name := c.Param("name")
	rc := x.rt.Config().Route(name)
	if rc == nil {
		return echo.NewHTTPError(http.StatusNotFound, "unknown route "+quote(name))
	}
	if !x.rt.HasNative(name) {
		return echo.NewHTTPError(http.StatusConflict, fmt.Sprintf("route %q: %v: nothing to roll out", name, ErrNoHandler))
	}
	var plan rollout.Plan
	if rc.Rollout != nil {
		p, err := routePlan(rc.Rollout)
		if err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, "route's rollout plan: "+err.Error())
		}
		plan = p
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, 64<<10))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "read body: "+err.Error())
	}
	var req RolloutStartRequest
	if len(bytes.TrimSpace(body)) > 0 {
		// Decoded over the route's plan: the fields given override it.
		req.Plan = plan
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, "body must be a plan: {\"steps\": [\"shadow\", 1, 5, 100], \"interval\": \"5m\", ...}: "+err.Error())
		}
		plan = req.Plan
	}
	plan = plan.WithDefaults()
	if err := plan.Validate(); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("route %q: rollout plan: %v", name, err))
	}
	if plan.Steps[0].Shadow && rc.Shadow.Rate <= 0 {
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf(
			"route %q: the plan starts with a shadow step but the route's shadow.rate_percent is 0: set it, or start without the shadow step", name))
	}
	actor := a.actor(c, "rollout_start")
	actor.Reason = truncate(req.Reason, 500)
	st, err := rollout.Begin(c.Request().Context(), x.store, name, plan, rollout.Actor(actor), x.now())
	if err != nil {
		return echo.NewHTTPError(rolloutStatus(err), err.Error())
	}
	x.rt.auditAction(actor, "audit: rollout started", "route", name, "steps", fmt.Sprint(plan.Steps), "share_bp", st.Share())
	x.hooks.send(st, st.History[len(st.History)-1])
	out, err := x.status(c.Request().Context(), name)
	if err != nil {
		return echo.NewHTTPError(rolloutStatus(err), err.Error())
	}
	return c.JSON(http.StatusOK, out)
}

// RolloutActionRequest is the optional body of POST
// /admin/routes/{name}/rollout/{action}.
type RolloutActionRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (x *rollouts) act(c echo.Context, a *Admin) error {
	name := c.Param("name")
	if x.rt.Config().Route(name) == nil {
		return echo.NewHTTPError(http.StatusNotFound, "unknown route "+quote(name))
	}
	action, err := rollout.ParseAction(c.Param("action"))
	if err != nil {
		return echo.NewHTTPError(http.StatusNotFound, err.Error())
	}
	var req RolloutActionRequest
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, 64<<10))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "read body: "+err.Error())
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, `body must be empty or {"reason": "..."}: `+err.Error())
		}
	}
	actor := a.actor(c, "rollout_"+string(action))
	actor.Reason = truncate(req.Reason, 500)
	st, err := rollout.Act(c.Request().Context(), x.store, name, action, rollout.Actor(actor), x.now())
	if err != nil {
		return echo.NewHTTPError(rolloutStatus(err), err.Error())
	}
	x.rt.auditAction(actor, "audit: rollout "+string(action), "route", name, "status", string(st.Status), "share_bp", st.Share())
	x.hooks.send(st, st.History[len(st.History)-1])
	out, err := x.status(c.Request().Context(), name)
	if err != nil {
		return echo.NewHTTPError(rolloutStatus(err), err.Error())
	}
	return c.JSON(http.StatusOK, out)
}

// routePlan is a route's `rollout:` block as a plan, the rollout package's
// defaults applied and validated.
func routePlan(p *config.RoutePlan) (rollout.Plan, error) {
	out := rollout.Plan{Interval: rollout.Duration(p.Interval), MinRequests: p.MinRequests, MaxHold: rollout.Duration(p.MaxHold),
		Gates: rollout.Gates{MaxErrorRate: p.Gates.MaxErrorRate, MaxErrorExcess: p.Gates.MaxErrorExcess, MaxP99Ratio: p.Gates.MaxP99Ratio,
			P99Floor: rollout.Duration(p.Gates.P99Floor), MaxMismatchRate: p.Gates.MaxMismatchRate, AllowBreakerTrip: p.Gates.AllowBreakerTrip}}
	var errs []error
	for _, s := range p.Steps {
		st, err := rollout.ParseStep(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.Steps = append(out.Steps, st)
	}
	if err := errors.Join(errs...); err != nil {
		return rollout.Plan{}, err
	}
	out = out.WithDefaults()
	return out, out.Validate()
}
