// Package console is cutover's web console for ops and QA: a single page
// (plain HTML, CSS and JavaScript embedded with go:embed, no build step,
// nothing fetched from outside) served on the admin listener under
// /console/, and the few admin endpoints only the console needs:
//
//	GET /admin/console/session  200 when the bearer token is right (the login check)
//	GET /admin/console/audit    the local audit log (admin.audit_log), newest first
//	GET /admin/events           server-sent events: a compact change signal
//
// The page itself holds no data: it reads the admin API with the token the
// operator typed (kept in the tab's sessionStorage, sent as
// "Authorization: Bearer", never a cookie) and names the operator on every
// change with the admin API's actor header. The three endpoints above are
// behind the admin token; the static files are not (they carry no data).
package console

import (
	"embed"
	"errors"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

//go:embed assets
var assets embed.FS

// Options are what the console is given by the server that mounts it. The
// zero value of each field is documented; API is required for live updates.
type Options struct {
	// API is the admin API, called in process (never over the network) by
	// the live feed to notice changes. Nil means the feed never signals a
	// change (the page still works, reloading data when it navigates).
	API http.Handler
	// Token returns the admin token, set as the bearer token of the feed's
	// in-process reads (needed once every admin GET requires it). Nil means
	// none is sent.
	Token func() string
	// AuditLog returns the path of the local audit log (admin.audit_log).
	// Nil or "" means this instance keeps no audit file.
	AuditLog func() string
	// Topics maps each topic of the live feed to the admin API paths
	// (GET) whose answers make it up; a topic is signalled when any of its
	// answers (status or body) changes. Nil means DefaultTopics.
	Topics map[string][]string
	// Interval is how often the feed reads the topics while at least one
	// page is connected (nothing is read while none is). Zero means 1s.
	Interval time.Duration
	// Heartbeat is how often an idle stream gets a comment line, so that
	// proxies keep it open and the page can tell a dead connection. Zero
	// means 15s.
	Heartbeat time.Duration
	// MaxSubscribers bounds the open event streams; one more is answered
	// 503. Zero means 32.
	MaxSubscribers int
}

// DefaultTopics are the feed's topics: routes and shares (with breaker
// states), the diff summary, the fleet and the audit log. Paths that do not
// exist on this instance (404) simply never change.
var DefaultTopics = map[string][]string{
	"routes": {"/admin/routes"},
	"diffs":  {"/admin/shadow/summary"},
	"fleet":  {"/admin/fleet"},
	"audit":  {"/admin/audit", "/admin/console/audit"},
}

// Console serves the console's pages and endpoints. Build it with New, mount
// it with Mount, and Close it when the admin server shuts down (an event
// stream never goes idle on its own, so http.Server.Shutdown would wait for
// it: register Close with http.Server.RegisterOnShutdown).
type Console struct {
	opts  Options
	hub   *hub
	files http.Handler
}

// New builds a console; it starts nothing until a page connects to the feed.
func New(opts Options) *Console {
	if opts.Topics == nil {
		opts.Topics = DefaultTopics
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 15 * time.Second
	}
	if opts.MaxSubscribers <= 0 {
		opts.MaxSubscribers = 32
	}
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return &Console{opts: opts, hub: newHub(opts), files: http.StripPrefix("/console/", http.FileServerFS(sub))}
}

// Mount adds the console to the admin Echo e: the pages under /console/
// (and /console redirecting there), and the console's endpoints behind
// auth, the admin API's bearer-token middleware.
func (c *Console) Mount(e *echo.Echo, auth echo.MiddlewareFunc) {
	e.GET("/console", func(ec echo.Context) error {
		return ec.Redirect(http.StatusMovedPermanently, "/console/")
	})
	e.GET("/console/*", echo.WrapHandler(http.HandlerFunc(c.serveFile)))
	e.GET("/admin/console/session", func(ec echo.Context) error {
		return ec.JSON(http.StatusOK, map[string]any{"ok": true})
	}, auth)
	e.GET("/admin/console/audit", echo.WrapHandler(http.HandlerFunc(c.serveAudit)), auth)
	e.GET("/admin/events", echo.WrapHandler(http.HandlerFunc(c.hub.serve)), auth)
}

// Public reports whether r asks for the console's page or one of its files
// (GET or HEAD of /console or below): they carry no data, and a browser
// cannot send the bearer token when it loads a page, so an admin guard that
// requires the token on every path must let these through. Everything the
// page then reads goes through the guard with the token.
func Public(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return r.URL.Path == "/console" || strings.HasPrefix(r.URL.Path, "/console/")
}

// Close ends every event stream and stops the feed; later streams are
// refused (503). It is safe to call more than once and concurrently.
func (c *Console) Close() { c.hub.close() }

// serveFile serves an embedded file with headers that keep the page to its
// own origin: every script, style and request comes from the admin listener
// itself, and nothing may frame it.
func (c *Console) serveFile(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	// The files change only with the binary; revalidate rather than serve
	// an old page after an upgrade.
	h.Set("Cache-Control", "no-cache")
	c.files.ServeHTTP(w, r)
}

// errAuditUnavailable is why GET /admin/console/audit has nothing to show.
var errAuditUnavailable = errors.New("this instance keeps no audit log file (set admin.audit_log); share changes are audited in the process log only")
