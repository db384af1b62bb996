package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/internal/fleet"
)

// RouteInfo is one route as GET /admin/routes reports it.
type RouteInfo struct {
	Name          string             `json:"name"`
	Path          string             `json:"path"`
	Methods       []string           `json:"methods"`
	NativeBP      int                `json:"native_bp"`
	NativePercent float64            `json:"native_percent"`
	NativeHandler bool               `json:"native_handler"`
	Salt          string             `json:"salt"`
	Stickiness    []string           `json:"stickiness"`
	Replayable    bool               `json:"replayable"`
	Breaker       config.Breaker     `json:"breaker"`
	Shadow        config.RouteShadow `json:"shadow"`
	// Status is live state added by the pipeline's stages (breaker states, shadow
	// counters) through Admin.RouteStatus; absent when none.
	Status any `json:"status,omitempty"`
}

// Admin is the admin API: routes, share changes, rollback and metrics, on
// its own Echo instance (a separate listener, loopback by default).
type Admin struct {
	rt *Router
	e  *echo.Echo
	// RouteStatus, if set before serving, adds live state to each route of
	// GET /admin/routes (e.g. breaker states).
	RouteStatus func(route string) any
	// fleet serves GET /admin/fleet and /admin/audit; nil without a fleet store.
	fleet *fleet.Store
}

// NewAdmin builds the admin API for rt.
func NewAdmin(rt *Router) *Admin {
	a := &Admin{rt: rt, e: echo.New()}
	a.e.HideBanner, a.e.HidePort = true, true
	a.e.HTTPErrorHandler = func(err error, c echo.Context) {
		code := http.StatusInternalServerError
		msg := err.Error()
		var he *echo.HTTPError
		if errors.As(err, &he) {
			code = he.Code
			msg = strings.ToLower(http.StatusText(code))
			if s, ok := he.Message.(string); ok {
				msg = s
			}
		}
		if !c.Response().Committed {
			_ = c.JSON(code, map[string]string{"error": msg})
		}
	}
	a.e.Pre(a.guard) // the token on every path but /metrics, the Host allow-list
	a.e.GET("/admin/routes", a.listRoutes)
	a.e.GET("/admin/routes/:name", a.getRoute)
	a.e.PUT("/admin/routes/:name", a.putRoute, a.RequireToken)
	a.e.POST("/admin/rollback", a.rollback, a.RequireToken)
	a.e.GET("/admin/fleet", a.getFleet)
	a.e.GET("/admin/audit", a.getAudit)
	a.e.GET("/metrics", echo.WrapHandler(rt.Metrics().Handler()))
	return a
}

// Echo returns the admin Echo instance so other packages can add endpoints
// (use RequireToken on mutating ones) before serving.
func (a *Admin) Echo() *echo.Echo { return a.e }

// ServeHTTP serves the admin API.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.e.ServeHTTP(w, r) }

// RequireToken is middleware that lets a call through only with
// "Authorization: Bearer <admin.token>" (compared in constant time). With no
// token configured every call is refused (403); a missing or wrong token is
// 401 and nothing happens. Every admin path but /metrics already passes
// this check (guard); mutating endpoints name it anyway, so a route moved
// off the guard stays protected.
func (a *Admin) RequireToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := a.checkToken(c); err != nil {
			return err
		}
		return next(c)
	}
}

func (a *Admin) info(r *config.Route) RouteInfo {
	src := make([]string, len(r.Sources))
	for i, s := range r.Sources {
		src[i] = s.String()
	}
	ri := RouteInfo{
		Name: r.Name, Path: r.Path, Methods: r.Methods, NativeBP: r.Share, NativePercent: config.BPToPercent(r.Share),
		NativeHandler: a.rt.HasNative(r.Name), Salt: r.Salt, Stickiness: src, Replayable: r.Replayable,
		Breaker: r.Breaker, Shadow: r.Shadow,
	}
	if a.RouteStatus != nil {
		ri.Status = a.RouteStatus(r.Name)
	}
	return ri
}

func (a *Admin) listRoutes(c echo.Context) error {
	cfg, gen := a.rt.ConfigAt()
	out := make([]RouteInfo, 0, len(cfg.Routes))
	for i := range cfg.Routes {
		out = append(out, a.info(&cfg.Routes[i]))
	}
	resp := map[string]any{"routes": out}
	if a.fleet != nil {
		resp["generation"] = gen
	}
	return c.JSON(http.StatusOK, resp)
}

func (a *Admin) getRoute(c echo.Context) error {
	r := a.rt.Config().Route(c.Param("name"))
	if r == nil {
		return echo.NewHTTPError(http.StatusNotFound, "unknown route "+quote(c.Param("name")))
	}
	return c.JSON(http.StatusOK, a.info(r))
}

// ShareRequest is the body of PUT /admin/routes/{name}: exactly one of the two.
type ShareRequest struct {
	NativePercent *float64 `json:"native_percent"`
	NativeBP      *int     `json:"native_bp"`
	// Reason is why, for the audit log. Zero means none given.
	Reason string `json:"reason,omitempty"`
	// Generation, with a fleet store, is the fleet generation the change
	// was decided on (GET /admin/routes gives it): the change fails with 409
	// unless the fleet is still there. Nil means the generation this
	// instance applies.
	Generation *uint64 `json:"generation,omitempty"`
}

// setShares makes a change from the admin API, from the generation the
// caller gave if any.
func (a *Admin) setShares(shares map[string]int, actor Actor, gen *uint64) (ChangeResult, error) {
	if gen != nil {
		return a.rt.SetSharesFrom(*gen, shares, actor)
	}
	return a.rt.SetShares(shares, actor)
}

func (a *Admin) putRoute(c echo.Context) error {
	name := c.Param("name")
	if a.rt.Config().Route(name) == nil {
		return echo.NewHTTPError(http.StatusNotFound, "unknown route "+quote(name))
	}
	var req ShareRequest
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, 64<<10))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "read body: "+err.Error())
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, `body must be {"native_percent": N} or {"native_bp": N}: `+err.Error())
	}
	var bp int
	switch {
	case req.NativePercent != nil && req.NativeBP != nil:
		return echo.NewHTTPError(http.StatusBadRequest, "give native_percent or native_bp, not both")
	case req.NativePercent != nil:
		bp, err = config.PercentToBP(*req.NativePercent)
		if err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, "native_percent "+err.Error())
		}
	case req.NativeBP != nil:
		bp = *req.NativeBP
		if bp < 0 || bp > config.MaxShare {
			return echo.NewHTTPError(http.StatusBadRequest, "native_bp must be in [0, 10000]")
		}
	default:
		return echo.NewHTTPError(http.StatusBadRequest, `body must be {"native_percent": N} or {"native_bp": N}`)
	}
	actor := a.actor(c, "set")
	actor.Reason = truncate(req.Reason, 500)
	res, err := a.setShares(map[string]int{name: bp}, actor, req.Generation)
	if err != nil {
		return echo.NewHTTPError(changeStatus(err, http.StatusBadRequest), err.Error())
	}
	return c.JSON(http.StatusOK, map[string]any{"route": a.info(a.rt.Config().Route(name)), "result": res})
}

// RollbackRequest is the optional body of POST /admin/rollback.
type RollbackRequest struct {
	// Reason is why, for the audit log. Zero means none given.
	Reason string `json:"reason,omitempty"`
	// Generation is as in ShareRequest.
	Generation *uint64 `json:"generation,omitempty"`
}

func (a *Admin) rollback(c echo.Context) error {
	var req RollbackRequest
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, 64<<10))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "read body: "+err.Error())
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, `body must be empty or {"reason": "..."}: `+err.Error())
		}
	}
	actor := a.actor(c, "rollback")
	actor.Reason = truncate(req.Reason, 500)
	res, err := a.setShares(a.rt.zeroShares(), actor, req.Generation)
	if err != nil {
		return echo.NewHTTPError(changeStatus(err, http.StatusInternalServerError), err.Error())
	}
	return c.JSON(http.StatusOK, map[string]any{"result": res})
}

// ActorHeader names who makes an admin call, as the audit records it. It is
// what the caller says, not an authenticated identity (the bearer token is
// the authentication): cutover weights sends the OS user as user@host (or
// -actor / CUTOVER_ACTOR); a call without it is recorded as "unknown".
const ActorHeader = "X-Cutover-Actor"

func (a *Admin) actor(c echo.Context, action string) Actor {
	who := c.Request().Header.Get(ActorHeader)
	if who == "" {
		who = "unknown"
	}
	who = truncate(who, 200)
	return Actor{Who: who, Remote: c.Request().RemoteAddr, Action: action}
}

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
