package proxy

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/internal/fleet"
)

// With fleet.redis_url set, the shares in force are the fleet store's
// (internal/fleet): the Router keeps the config as its file gives it
// (Router.file) and applies it with the shares of each fleet snapshot laid
// over it, one whole compiled snapshot per fleet generation. Share changes,
// rollbacks and auto-rollbacks are written to the store (compare-and-set on
// the generation the instance applies), never to the file; the instance
// applies them when the store says so, like every other instance.

// newFleet builds the fleet store for s and hooks it to the Router: every
// snapshot the store applies is laid over the file's config.
func (s *Server) newFleet(cfg *config.Config, version string) error {
	f := cfg.Fleet
	st, err := fleet.New(fleet.Options{
		URL: f.RedisURL, Instance: f.Instance, Version: version, KeyPrefix: f.KeyPrefix,
		ReconcileInterval: f.ReconcileInterval, HeartbeatTTL: f.HeartbeatTTL, StartupBound: f.StartupSyncBound,
		AuditMaxLen: f.AuditMaxLen, FileShares: fileShares(cfg), Report: s.fleetReport,
		OnApply: s.Router.applyFleet, Log: s.log.With("component", "fleet"),
	})
	if err != nil {
		return err
	}
	s.fleet = st
	s.Router.useFleet(st)
	reg := s.Router.Metrics().Registry
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cutover_fleet_store_up", Help: "1 while the fleet store answers, 0 while it cannot be reached (changes are refused).",
		}, func() float64 { return boolFloat(st.Healthy()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cutover_fleet_generation", Help: "Generation of the fleet state this instance applies (0: none yet, or the file's shares).",
		}, func() float64 { return float64(st.Status().Generation) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cutover_fleet_synced", Help: "1 once the fleet store's state is applied, 0 before (health check failing) or while serving the file's shares after startup_sync_bound.",
		}, func() float64 { return boolFloat(st.Current() != nil && st.Current().Source() == fleet.SourceStore) }),
	)
	s.Admin.fleet = st
	return nil
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// fileShares are the shares a config file gives, by route.
func fileShares(cfg *config.Config) map[string]int {
	out := make(map[string]int, len(cfg.Routes))
	for _, r := range cfg.Routes {
		out[r.Name] = r.Share
	}
	return out
}

// fleetReport is this instance's load for its heartbeat.
func (s *Server) fleetReport() fleet.Report {
	rep := fleet.Report{Breakers: map[string]string{}}
	for _, r := range s.Router.Config().Routes {
		st := s.Breakers.Status(r.Name)
		if st.Native != nil {
			rep.Breakers[r.Name+"/native"] = st.Native.State
		}
		if st.Legacy != nil {
			rep.Breakers[r.Name+"/legacy"] = st.Legacy.State
		}
		if st.LegacyWide != nil {
			rep.Breakers["legacy"] = st.LegacyWide.State
		}
	}
	var m dto.Metric
	if s.Router.metrics.inFlight.Write(&m) == nil {
		rep.InFlight = int64(m.GetGauge().GetValue())
	}
	if mi := s.Mirror(); mi != nil {
		rep.ShadowQueue = mi.QueueDepth()
	}
	return rep
}

// useFleet makes the Router take its shares from st from now on.
func (rt *Router) useFleet(st *fleet.Store) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.fleet = st
	rt.file = rt.cfg
}

// applyFleet lays snap's shares over the file's config and applies the
// result as one snapshot (fleet.Options.OnApply).
func (rt *Router) applyFleet(snap *fleet.Snapshot) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if err := rt.applyLocked(rt.overlay(rt.file, snap)); err != nil {
		rt.log.Error("fleet: generation not applied", "generation", snap.Generation(), "error", err)
		return
	}
	rt.fleetGen = snap.Generation()
	rt.log.Info("fleet: generation applied", "generation", snap.Generation(), "source", string(snap.Source()))
}

// overlay is file with the shares of snap (nil: file as is). A route the
// fleet shares natively but this instance has no native handler for stays
// on legacy here (logged): refusing the whole generation would leave every
// other route behind.
func (rt *Router) overlay(file *config.Config, snap *fleet.Snapshot) *config.Config {
	if snap == nil {
		return file
	}
	next := file.Clone()
	for i := range next.Routes {
		r := &next.Routes[i]
		bp, ok := snap.Share(r.Name)
		if !ok {
			continue
		}
		if bp > 0 && !rt.native[r.Name] {
			rt.log.Error("fleet: a native share for a route this instance has no native handler for; it stays on legacy here",
				"route", r.Name, "fleet_share_bp", bp)
			bp = 0
		}
		r.Share = bp
	}
	return next
}

// ErrNoFleet is a change made from a fleet generation on an instance
// without a fleet store.
var ErrNoFleet = errors.New("no fleet store: this instance runs alone (set fleet.redis_url)")

// SetSharesFrom is SetShares made from fleet generation gen, the one the
// caller looked at, rather than the one this instance applies: it fails
// with fleet.ErrConflict unless the fleet is still at gen, and with
// ErrNoFleet without a fleet store.
func (rt *Router) SetSharesFrom(gen uint64, shares map[string]int, actor Actor) (ChangeResult, error) {
	if rt.fleet == nil {
		return ChangeResult{}, ErrNoFleet
	}
	return rt.setFleetShares(shares, actor, &gen, false)
}

// ConfigAt returns the config in force with the fleet generation whose
// shares it carries (0 without a fleet store or before the first), read
// together.
func (rt *Router) ConfigAt() (*config.Config, uint64) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.cfg, rt.fleetGen
}

// setFleetShares is SetShares with a fleet store: the change is written to
// the store on top of generation base (nil: the one this instance applies;
// ErrConflict if the fleet has moved on), or, for latest, on top of
// whatever the store holds (auto-rollback).
func (rt *Router) setFleetShares(shares map[string]int, actor Actor, at *uint64, latest bool) (ChangeResult, error) {
	rt.mu.Lock()
	cur, base := rt.cfg, rt.fleetGen
	rt.mu.Unlock()
	if at != nil {
		base = *at
	}
	changes, err := rt.checkShares(cur, shares)
	if err != nil {
		return ChangeResult{}, err
	}
	res := ChangeResult{Changes: changes, Persisted: true, Generation: base}
	if len(changes) == 0 && !latest {
		return res, nil
	}
	ch := fleet.Change{Edits: map[string]fleet.Edit{}, Actor: fleet.Actor{Who: actor.Who, Remote: actor.Remote, Action: actor.Action, Reason: actor.Reason}}
	for _, name := range slices.Sorted(maps.Keys(shares)) {
		bp := shares[name]
		ch.Edits[name] = fleet.Edit{Share: &bp}
	}
	// In the same change: a rollout of a route changed by hand pauses.
	interrupted, reportInterrupts := rt.rollouts.interruptEdits(rt.fleet.Current(), shares, actor)
	for name, blob := range interrupted {
		e := ch.Edits[name]
		e.Rollout = blob
		ch.Edits[name] = e
	}
	var snap *fleet.Snapshot
	if latest {
		snap, err = rt.fleet.ApplyLatest(context.Background(), ch)
	} else {
		snap, err = rt.fleet.Apply(context.Background(), base, ch)
	}
	if err != nil {
		return ChangeResult{}, err
	}
	reportInterrupts()
	res.Generation = snap.Generation()
	for _, c := range res.Changes {
		rt.metrics.changes.WithLabelValues(c.Route, actor.Action).Inc()
	}
	rt.audit(cur.Admin.AuditLog, actor, res)
	return res, nil
}

// changeStatus is the HTTP status of a failed share change: 409 for a
// change the fleet or the route table cannot take now, 503 for a fleet
// store that cannot be reached, else def.
func changeStatus(err error, def int) int {
	switch {
	case errors.Is(err, fleet.ErrConflict), errors.Is(err, ErrNoHandler):
		return http.StatusConflict
	case errors.Is(err, fleet.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrNoFleet):
		return http.StatusBadRequest
	}
	return def
}

// FleetResponse is GET /admin/fleet: this instance's link to the store and
// the fleet as the store sees it (Error says why Fleet is missing).
type FleetResponse struct {
	Status fleet.Status `json:"status"`
	Fleet  *fleet.View  `json:"fleet,omitempty"`
	Error  string       `json:"error,omitempty"`
}

// errNoFleet answers the fleet endpoints of a single instance.
var errNoFleet = echo.NewHTTPError(http.StatusNotFound, ErrNoFleet.Error())

func (a *Admin) getFleet(c echo.Context) error {
	if a.fleet == nil {
		return errNoFleet
	}
	out := FleetResponse{Status: a.fleet.Status()}
	if v, err := a.fleet.View(c.Request().Context()); err != nil {
		out.Error = err.Error()
	} else {
		out.Fleet = &v
	}
	return c.JSON(http.StatusOK, out)
}

func (a *Admin) getAudit(c echo.Context) error {
	if a.fleet == nil {
		return errNoFleet
	}
	limit := 100
	if q := c.QueryParam("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > 10000 {
			return echo.NewHTTPError(http.StatusBadRequest, "limit must be an integer in [1, 10000]")
		}
		limit = n
	}
	recs, err := a.fleet.Audit(c.Request().Context(), limit)
	if err != nil {
		return echo.NewHTTPError(changeStatus(err, http.StatusInternalServerError), err.Error())
	}
	return c.JSON(http.StatusOK, map[string]any{"records": recs})
}
