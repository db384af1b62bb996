package proxy

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/cutover/cutover/internal/console"
)

// metricsPath is the one admin endpoint served without the token
// (Prometheus convention; it holds counts by route name, nothing else).
const metricsPath = "/metrics"

// guard runs before routing on every admin request: the Host must be one
// the admin listener answers (hostAllowed), and every path but /metrics and
// the console's static page (console.Public) needs the admin token. Refusals are audited; so are reads of diff records
// (they hold users' chat text).
func (a *Admin) guard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		cfg := a.rt.Config()
		if !hostAllowed(r.Host, cfg.Admin.AllowedHosts) {
			a.auditRefusal(c, http.StatusForbidden, "host not allowed")
			return echo.NewHTTPError(http.StatusForbidden,
				"host not allowed: the admin API answers IP literals, localhost and admin.allowed_hosts only")
		}
		if r.URL.Path == metricsPath || console.Public(r) {
			return next(c) // the console's static page carries no data; what it reads needs the token
		}
		if err := a.checkToken(c); err != nil {
			return err
		}
		if r.Method == http.MethodGet && (r.URL.Path == "/admin/diffs" || strings.HasPrefix(r.URL.Path, "/admin/diffs/")) {
			a.rt.auditAction(a.actor(c, "read_diffs"), "audit: diff records read", "path", r.URL.Path, "query", r.URL.RawQuery)
		}
		return next(c)
	}
}

// checkToken lets a call through only with "Authorization: Bearer
// <admin.token>" (compared in constant time). With no token configured every
// call is refused (403); a missing or wrong token is 401. Both are audited.
func (a *Admin) checkToken(c echo.Context) error {
	want := a.rt.Config().Admin.Token
	if want == "" {
		a.auditRefusal(c, http.StatusForbidden, "no admin token configured")
		return echo.NewHTTPError(http.StatusForbidden, "admin calls are refused: no admin token is configured (admin.token / CUTOVER_ADMIN_TOKEN)")
	}
	got, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) != 1 {
		a.auditRefusal(c, http.StatusUnauthorized, "missing or wrong bearer token")
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="cutover"`)
		return echo.NewHTTPError(http.StatusUnauthorized, "missing or wrong bearer token")
	}
	return nil
}

// auditRefusal audits a refused admin call; what the caller sent as a
// token is never recorded.
func (a *Admin) auditRefusal(c echo.Context, status int, reason string) {
	r := c.Request()
	a.rt.auditAction(a.actor(c, "auth_failed"), "audit: admin call refused",
		"method", r.Method, "path", r.URL.Path, "status", status, "reason", reason)
}

// hostAllowed says whether the admin listener answers a request for host
// (the Host header, port included or not): an IP literal, localhost, or a
// name in allowed (case-insensitive). A page a browser loaded from a name
// that an attacker re-points at 127.0.0.1 (DNS rebinding) sends that name,
// and is refused.
func hostAllowed(host string, allowed []string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if host == "" {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	for _, a := range allowed {
		if strings.EqualFold(strings.TrimSuffix(a, "."), host) {
			return true
		}
	}
	return false
}
