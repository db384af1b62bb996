package console_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/labstack/echo/v4"

	"github.com/cutover/cutover/internal/console"
	"github.com/cutover/cutover/proxy"
)

// The fleet views, in Chromium, against stand-ins for the endpoints the
// fleet and rollout work adds (GET /admin/fleet, GET /admin/audit, GET and
// POST /admin/routes/{name}/rollout[/action]), answering the shapes agreed
// for them. They pin what the console does with those answers (a lagging
// instance flagged, the fleet's audit entries, rollout actions sent under
// the operator's name, a 409 explained) until the real endpoints land;
// then this test should run against a real fleet instead.
func TestConsoleFleetViews(t *testing.T) {
	browserPath, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the console tests need Debian's chromium (make setup installs it): %v", err)
	}
	var mu sync.Mutex
	var actions []string
	answer := func(v any) echo.HandlerFunc {
		return func(c echo.Context) error { return c.JSON(http.StatusOK, v) }
	}
	e := echo.New()
	auth := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if c.Request().Header.Get("Authorization") != "Bearer "+adminToken {
				return echo.NewHTTPError(http.StatusUnauthorized, "missing or wrong bearer token")
			}
			return next(c)
		}
	}
	e.GET("/admin/routes", answer(json.RawMessage(`{"routes":[{"name":"chat","path":"/chat","methods":["POST"],"native_bp":1000,
		"native_handler":true,"shadow":{"rate_bp":500},"status":{"native":{"state":"closed"},"legacy":{"state":"open"}}}]}`)), auth)
	e.GET("/admin/shadow/summary", answer(json.RawMessage(`{"scope":"fleet","queue_depth":0,"in_flight":0,"routes":[]}`)), auth)
	e.GET("/admin/fleet", answer(json.RawMessage(`{"generation":7,"store":"ok","instances":[
		{"name":"cutover-a","version":"1.4.0","generation":7,"uptime":3600,"breakers":{"chat/native":{"state":"closed"}},"in_flight":3,"shadow_queue":0,"lagging":false},
		{"name":"cutover-b","version":"1.4.0","generation":6,"uptime":120,"breakers":{"chat/legacy":{"state":"open"}},"in_flight":1,"shadow_queue":4,"lagging":true}]}`)), auth)
	e.GET("/admin/routes/chat/rollout", answer(json.RawMessage(`{"state":"running","step":2,"steps":[1,5,25,100],"why":"gates held at step 2"}`)), auth)
	e.POST("/admin/routes/chat/rollout/:action", func(c echo.Context) error {
		mu.Lock()
		actions = append(actions, c.Param("action")+" by "+c.Request().Header.Get(proxy.ActorHeader))
		mu.Unlock()
		return c.JSON(http.StatusConflict, map[string]string{"error": "the fleet generation moved (7 -> 8)"})
	}, auth)
	e.GET("/admin/audit", answer(json.RawMessage(`[{"time":"2026-12-05T10:00:00Z","who":"ann","instance":"cutover-b","action":"set",
		"route":"chat","old":"5 %","new":"10 %","why":"canary step"}]`)), auth)
	c := console.New(console.Options{API: e, Token: func() string { return adminToken }})
	c.Mount(e, auth)
	srv := httptest.NewUnstartedServer(e)
	srv.Config.RegisterOnShutdown(c.Close)
	srv.Start()
	t.Cleanup(func() { c.Close(); srv.Close() })

	b := newBrowser(t, browserPath)
	b.do(t, chromedp.Navigate(srv.URL+"/console/"), chromedp.WaitVisible(chromedp.CSS("#login-token")),
		chromedp.SendKeys(chromedp.CSS("#login-actor"), "Fleet Op"),
		chromedp.SendKeys(chromedp.CSS("#login-token"), adminToken+"\n"),
		chromedp.WaitVisible(chromedp.CSS("#fleet tr.lagging")),
		chromedp.WaitVisible(chromedp.CSS(`table.routes tr[data-route="chat"] button[data-key="ro-pause-chat"]`)))
	if s := b.text(t, "#fleet tr.lagging th"); !strings.Contains(s, "cutover-b") || !strings.Contains(s, "lagging") {
		t.Errorf("lagging row %q", s)
	}
	if n := b.eval(t, `document.querySelectorAll('#fleet tbody tr').length`); n != float64(2) {
		t.Errorf("%v instances listed, want 2", n)
	}
	if b.eval(t, `!!document.querySelector('#single-instance')`) != false {
		t.Error("a fleet is shown as a single instance")
	}
	png := b.run(t, chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(screenshotDir(t), "overview-fleet-standin.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if s := b.text(t, `table.routes tr[data-route="chat"]`); !strings.Contains(s, "running") || !strings.Contains(s, "gates held at step 2") {
		t.Errorf("rollout cell %q", s)
	}
	b.do(t, chromedp.Click(chromedp.CSS(`button[data-key="ro-pause-chat"]`)), chromedp.WaitVisible(chromedp.CSS("#dialog-confirm")),
		chromedp.Click(chromedp.CSS("#dialog-confirm")), chromedp.WaitVisible(chromedp.CSS("#dialog-error")))
	if s := b.text(t, "#dialog-error"); !strings.Contains(s, "Refused (409): the fleet generation moved") {
		t.Errorf("conflict shown as %q", s)
	}
	mu.Lock()
	got := strings.Join(actions, ";")
	mu.Unlock()
	if got != "pause by Fleet Op" {
		t.Errorf("rollout actions received: %q", got)
	}
	b.do(t, chromedp.Click(chromedp.CSS("#dialog-cancel")), chromedp.Click(chromedp.CSS(`a[data-nav="audit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table.audit tr[data-action="set"]`)))
	if s := b.text(t, `table.audit tr[data-action="set"]`); !strings.Contains(s, "cutover-b") || !strings.Contains(s, "5 % → 10 %") ||
		!strings.Contains(s, "canary step") || !strings.Contains(s, "ann") {
		t.Errorf("fleet audit row %q", s)
	}
	b.close(t)
}
