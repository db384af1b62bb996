package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/labstack/echo/v4"

	"github.com/cutover/cutover/internal/console"
	"github.com/cutover/cutover/internal/rollout"
	"github.com/cutover/cutover/proxy"
)

// The fleet views, in Chromium, against stand-ins for the endpoints the
// fleet and rollout work adds, answering in their shapes (proxy/fleet.go
// and internal/fleet: GET /admin/fleet {status, fleet}, GET /admin/audit
// {records}, the generation on GET /admin/routes and PUT; proxy/rollout.go:
// proxy.RolloutStatus, moved by the rollout package's transitions). They
// pin what the console does with those answers (a lagging instance flagged,
// a change sent with the generation it was decided on and a reason, the
// fleet's audit entries, a rollout started, viewed with its gate charts and
// paused under the operator's name, a 409 explained); a test against a real
// fleet should replace the stand-ins.
func TestConsoleFleetViews(t *testing.T) {
	browserPath, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the console tests need Debian's chromium (make setup installs it): %v", err)
	}
	var mu sync.Mutex
	var actions, puts []string
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
	e.GET("/admin/routes", answer(json.RawMessage(`{"generation":7,"routes":[{"name":"chat","path":"/chat","methods":["POST"],"native_bp":1000,
		"native_handler":true,"shadow":{"rate_bp":500},"status":{"native":{"state":"closed"},"legacy":{"state":"open"}}}]}`)), auth)
	e.PUT("/admin/routes/chat", func(c echo.Context) error {
		b, _ := io.ReadAll(c.Request().Body)
		mu.Lock()
		puts = append(puts, string(b)+" by "+c.Request().Header.Get(proxy.ActorHeader))
		mu.Unlock()
		return c.JSON(http.StatusOK, json.RawMessage(`{"result":{"changes":[{"route":"chat","old_bp":1000,"new_bp":2000}],"persisted":true,"generation":8}}`))
	}, auth)
	e.GET("/admin/shadow/summary", answer(json.RawMessage(`{"scope":"fleet","queue_depth":0,"in_flight":0,"routes":[]}`)), auth)
	e.GET("/admin/fleet", answer(json.RawMessage(`{"status":{"store":"redis 127.0.0.1:6390/2","instance":"cutover-a","healthy":true,"ready":true,
		"synced":true,"source":"store","generation":7},"fleet":{"store":"redis 127.0.0.1:6390/2","generation":7,"instances":[
		{"instance":"cutover-a","version":"1.4.0","started":"2026-12-05T09:00:00Z","time":"2026-12-05T10:00:00Z","generation":7,"source":"store",
		 "in_flight":3,"shadow_queue":0,"uptime_seconds":3600,"behind":false},
		{"instance":"cutover-b","version":"1.4.0","started":"2026-12-05T09:58:00Z","time":"2026-12-05T10:00:00Z","generation":6,"source":"store",
		 "breakers":{"chat/legacy":"open"},"in_flight":1,"shadow_queue":4,"uptime_seconds":120,"behind":true}]}}`)), auth)
	// The rollout stand-in keeps a real rollout.State and moves it with the
	// rollout package's own transitions (Start, Evaluate and Apply, Do):
	// the console reads the API's real shape, proxy.RolloutStatus. Its first
	// action is refused with a 409, as a moved fleet would.
	var ro *rollout.State
	refused := false
	status := func(st rollout.State) proxy.RolloutStatus {
		out := proxy.RolloutStatus{State: st, StateName: st.Status, Steps: st.Plan.Steps, StepName: st.CurrentStep().String(),
			ShareBP: st.Share(), AppliedBP: 1000}
		out.Why = st.History[len(st.History)-1].Reason
		return out
	}
	e.GET("/admin/routes/chat/rollout", func(c echo.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if ro == nil {
			return echo.NewHTTPError(http.StatusNotFound, `route "chat": `+rollout.ErrNone.Error())
		}
		return c.JSON(http.StatusOK, status(*ro))
	}, auth)
	e.POST("/admin/routes/chat/rollout", func(c echo.Context) error {
		var req proxy.RolloutStartRequest
		if err := c.Bind(&req); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		actions = append(actions, "start ("+req.Reason+") by "+c.Request().Header.Get(proxy.ActorHeader))
		now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
		plan := rollout.Plan{Steps: []rollout.Step{{Share: 100}, {Share: 500}, {Share: 2500}, {Share: rollout.MaxShare}},
			Interval: rollout.Duration(time.Minute), MinRequests: 50}
		st, err := rollout.Start("chat", plan, c.Request().Header.Get(proxy.ActorHeader), req.Reason, now)
		if err != nil {
			return err
		}
		// Three evaluations a minute apart: two pass (1 % → 5 % → 25 %),
		// the third has too few samples and holds.
		for i, w := range []rollout.Window{
			{Native: rollout.Counts{Requests: 80, Errors: 1}, Legacy: rollout.Counts{Requests: 900, Errors: 9}},
			{Native: rollout.Counts{Requests: 400, Errors: 12}, Legacy: rollout.Counts{Requests: 700, Errors: 14}},
			{Native: rollout.Counts{Requests: 30, Errors: 1}, Legacy: rollout.Counts{Requests: 40}},
		} {
			at := now.Add(time.Duration(i+1) * time.Minute)
			st = rollout.Apply(st, rollout.Evaluate(st, w, at), at)
		}
		ro = &st
		return c.JSON(http.StatusOK, status(st))
	}, auth)
	e.POST("/admin/routes/chat/rollout/:action", func(c echo.Context) error {
		var req proxy.RolloutActionRequest
		if err := c.Bind(&req); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		actions = append(actions, c.Param("action")+" by "+c.Request().Header.Get(proxy.ActorHeader))
		if !refused {
			refused = true
			return c.JSON(http.StatusConflict, map[string]string{"error": "the fleet generation moved (7 -> 8)"})
		}
		a, err := rollout.ParseAction(c.Param("action"))
		if err != nil {
			return echo.NewHTTPError(http.StatusNotFound, err.Error())
		}
		st, err := rollout.Do(*ro, a, c.Request().Header.Get(proxy.ActorHeader), req.Reason, ro.Updated.Add(time.Second))
		if err != nil {
			return echo.NewHTTPError(http.StatusConflict, err.Error())
		}
		ro = &st
		return c.JSON(http.StatusOK, status(st))
	}, auth)
	e.GET("/admin/audit", answer(json.RawMessage(`{"records":[{"id":"1-0","time":"2026-12-05T10:00:00Z","instance":"cutover-b","who":"ann",
		"remote":"127.0.0.1:50000","action":"set","reason":"canary step","generation":7,
		"changes":[{"route":"chat","old":{"share_bp":500,"file_share_bp":0},"new":{"share_bp":1000,"file_share_bp":0}}]}]}`)), auth)
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
		chromedp.WaitVisible(chromedp.CSS(`table.routes tr[data-route="chat"] button[data-key="ro-start-chat"]`)))
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

	// Start a rollout from the overview: confirmed, with a reason, under
	// the operator's name; the row then shows its status and step.
	b.do(t, chromedp.Click(chromedp.CSS(`button[data-key="ro-start-chat"]`)), chromedp.WaitVisible(chromedp.CSS("#reason-input")),
		chromedp.SendKeys(chromedp.CSS("#reason-input"), "canary\n"),
		chromedp.WaitVisible(chromedp.CSS(`table.routes tr[data-route="chat"] button[data-key="ro-pause-chat"]`)))
	if s := b.text(t, `table.routes tr[data-route="chat"]`); !strings.Contains(s, "holding") || !strings.Contains(s, "step 3/4 (25 %)") ||
		!strings.Contains(s, "too few samples: error_rate has 30 of 50 samples") {
		t.Errorf("rollout cell %q", s)
	}
	// The rollout view: steps with the current one marked, why it holds,
	// one chart per gate with a point per evaluation and its threshold.
	b.do(t, chromedp.Click(chromedp.CSS(`table.routes tr[data-route="chat"] a[href="#/rollout/chat"]`)),
		chromedp.WaitVisible(chromedp.CSS(`figure.gate[data-gate="error_rate"] svg`)))
	if s := b.text(t, `.steps li[aria-current="step"]`); s != "25 %" {
		t.Errorf("current step %q, want 25 %%", s)
	}
	if s := b.text(t, "#rollout-why"); !strings.Contains(s, "Holding") || !strings.Contains(s, "error_excess has 30 of 50 samples") {
		t.Errorf("why %q", s)
	}
	if n := b.eval(t, `document.querySelectorAll('figure.gate[data-gate="error_rate"] circle').length`); n != float64(3) {
		t.Errorf("error_rate chart has %v points, want 3 (one per evaluation)", n)
	}
	if s := b.eval(t, `document.querySelector('figure.gate[data-gate="error_rate"] svg').getAttribute('aria-label')`); s != "error_rate per evaluation: 0.0125, 0.03, 0.0333; threshold 0.05" {
		t.Errorf("error_rate chart %q", s)
	}
	if n := b.eval(t, `document.querySelectorAll('figure.gate line.threshold').length`); n != b.eval(t, `document.querySelectorAll('figure.gate').length`) || n == float64(0) {
		t.Errorf("%v threshold lines, want one per gate chart", n)
	}
	png = b.run(t, chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(screenshotDir(t), "rollout.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	// Pause: a 409 is explained, the retry pauses it under the operator's name.
	b.do(t, chromedp.Click(chromedp.CSS(`#rollout button[data-key="ro-pause-chat"]`)), chromedp.WaitVisible(chromedp.CSS("#dialog-confirm")),
		chromedp.Click(chromedp.CSS("#dialog-confirm")), chromedp.WaitVisible(chromedp.CSS("#dialog-error")))
	if s := b.text(t, "#dialog-error"); !strings.Contains(s, "Refused (409): the fleet generation moved") {
		t.Errorf("conflict shown as %q", s)
	}
	b.do(t, chromedp.Click(chromedp.CSS("#dialog-confirm")))
	b.waitJS(t, `!document.querySelector('#dialog').open && !!document.querySelector('#rollout button[data-key="ro-resume-chat"]')`)
	if s := b.text(t, "#rollout-why"); !strings.Contains(s, "Paused") || !strings.Contains(s, "paused by an operator (Fleet Op)") {
		t.Errorf("why after the pause %q", s)
	}
	mu.Lock()
	got := strings.Join(actions, ";")
	mu.Unlock()
	if got != "start (canary) by Fleet Op;pause by Fleet Op;pause by Fleet Op" {
		t.Errorf("rollout actions received: %q", got)
	}
	b.do(t, chromedp.Click(chromedp.CSS(`a[data-nav="overview"]`)), chromedp.WaitVisible(chromedp.CSS(`button[data-key="share-chat"]`)))
	// A share change carries the generation it was decided on, and a reason.
	b.do(t, chromedp.Click(chromedp.CSS(`button[data-key="share-chat"]`)),
		chromedp.WaitVisible(chromedp.CSS("#reason-input")), chromedp.KeyEvent("20"),
		chromedp.SendKeys(chromedp.CSS("#reason-input"), "step 3 of the canary\n"))
	b.waitJS(t, `!document.querySelector('#dialog').open`)
	mu.Lock()
	got = strings.Join(puts, ";")
	mu.Unlock()
	if got != `{"native_percent":20,"generation":7,"reason":"step 3 of the canary"} by Fleet Op` {
		t.Errorf("share change sent: %s", got)
	}
	b.do(t, chromedp.Click(chromedp.CSS(`a[data-nav="audit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table.audit tr[data-action="set"]`)))
	if s := b.text(t, `table.audit tr[data-action="set"]`); !strings.Contains(s, "cutover-b") || !strings.Contains(s, "5 % → 10 %") ||
		!strings.Contains(s, "canary step") || !strings.Contains(s, "ann") {
		t.Errorf("fleet audit row %q", s)
	}
	b.close(t)
}
