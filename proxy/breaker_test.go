package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/cutover/compat"
	"github.com/cutover/cutover/config"
)

// modeNative is a native app whose behaviour each request picks with the
// X-Mode header; it counts the calls it gets.
type modeNative struct {
	calls atomic.Int64
}

func (m *modeNative) Endpoints() []string {
	return []string{"models", "chat", "chat_stream", "get_conversation"}
}

func (m *modeNative) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.calls.Add(1)
	switch r.Header.Get("X-Mode") {
	case "500", "502", "503", "404":
		code := map[string]int{"500": 500, "502": 502, "503": 503, "404": 404}[r.Header.Get("X-Mode")]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, `{"code":"native_failure","error":"native says no"}`)
	case "panic":
		_, _ = io.ReadAll(r.Body)
		panic("boom")
	case "panic-after-stream":
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		_, _ = io.WriteString(w, "event: delta\ndata: {}\n\n")
		w.(http.Flusher).Flush()
		panic("boom mid-stream")
	case "slow":
		select {
		case <-r.Context().Done():
			http.Error(w, "cancelled", http.StatusBadGateway)
		case <-time.After(3 * time.Second):
			echoHandler("native")(w, r)
		}
	case "stream-slow":
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		for i := range 3 {
			_, _ = io.WriteString(w, "event: delta\ndata: {\"i\": "+string(rune('0'+i))+"}\n\n")
			w.(http.Flusher).Flush()
			time.Sleep(120 * time.Millisecond)
		}
	default:
		echoHandler("native")(w, r)
	}
}

// failingLegacy is a legacy backend that echoes, or answers 500 while failing is set.
type failingLegacy struct {
	calls   atomic.Int64
	failing atomic.Bool
}

func (l *failingLegacy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.calls.Add(1)
	if l.failing.Load() {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(500)
		_, _ = w.Write(compat.ErrorPage(500, compat.DefaultDescription(500)))
		return
	}
	echoHandler("legacy")(w, r)
}

// breakerConfig has routes with short breaker timings for tests.
func breakerConfig(legacyURL, auditLog string) string {
	return `
listen:
  served_by_header: X-Cutover-Served-By
shutdown:
  drain_delay: 1ms
  timeout: 5s
admin:
  token: admin-secret
  audit_log: ` + auditLog + `
legacy:
  url: ` + legacyURL + `
  response_header_timeout: 2s
legacy_breaker:
  consecutive_failures: 3
  open_timeout: 300ms
routes:
  - name: health
    path: /health
    breaker:
      consecutive_failures: 3
      open_timeout: 300ms
  - name: models
    path: /models
    native_percent: 100
    breaker:
      consecutive_failures: 3
      open_timeout: 300ms
      native_timeout: 150ms
  - name: chat
    path: /chat
    methods: [POST]
    native_percent: 100
    breaker:
      consecutive_failures: 3
      open_timeout: 300ms
      auto_rollback: true
  - name: chat_stream
    path: /chat/stream
    methods: [POST]
    native_percent: 100
    replayable: true
    breaker:
      consecutive_failures: 3
      open_timeout: 300ms
      failure_statuses: [503]
  - name: get_conversation
    path: /conversations/<conversation_id>
    breaker:
      consecutive_failures: 3
      open_timeout: 300ms
`
}

type breakerEnv struct {
	ts     *testServer
	legacy *failingLegacy
	lsrv   interface{ Close() }
	native *modeNative
	c      *http.Client
	audit  string
	clock  *testClock // the breakers' clock: open_timeout passes when the test says
}

// openTimeout is breakerConfig's open_timeout; pastOpenTimeout moves the
// breakers' clock beyond it.
const openTimeout = 300 * time.Millisecond

func (e *breakerEnv) pastOpenTimeout() { e.clock.Add(openTimeout + time.Millisecond) }

func startBreakerEnv(t *testing.T) *breakerEnv {
	t.Helper()
	e := &breakerEnv{legacy: &failingLegacy{}, native: &modeNative{}, c: newClient(t), clock: newTestClock()}
	ls := newBackend(t, e.legacy)
	e.lsrv = ls
	e.audit = filepath.Join(t.TempDir(), "audit.jsonl")
	e.ts = startServerClock(t, breakerConfig(ls.URL, e.audit), e.native, e.clock.Now)
	return e
}

func (e *breakerEnv) do(t *testing.T, method, path, body, mode string) (*http.Response, []byte) {
	t.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	if mode != "" {
		h["X-Mode"] = mode
	}
	return do(t, e.c, method, e.ts.URL+path, body, h)
}

func (e *breakerEnv) state(route string, b Backend) string {
	s := e.ts.Breakers.Status(route)
	bs := s.Legacy
	if b == Native {
		bs = s.Native
	}
	if bs == nil {
		return "none"
	}
	return bs.State
}

func servedBy(resp *http.Response) string { return resp.Header.Get("X-Cutover-Served-By") }

func TestNativeFailureFallsBackThenBreakerTripsAndRecovers(t *testing.T) {
	e := startBreakerEnv(t)
	for i := range 3 {
		resp, body := e.do(t, "GET", "/models", "", "500")
		if resp.StatusCode != 200 || servedBy(resp) != "legacy" || decodeSeen(t, body).Backend != "legacy" {
			t.Fatalf("request %d: %d served by %q: %s", i, resp.StatusCode, servedBy(resp), body)
		}
	}
	if got := e.native.calls.Load(); got != 3 {
		t.Fatalf("native calls %d, want 3", got)
	}
	if s := e.state("models", Native); s != "open" {
		t.Fatalf("native breaker %s after 3 failures, want open", s)
	}
	// Open: native is not even asked, legacy answers.
	resp, _ := e.do(t, "GET", "/models", "", "")
	if resp.StatusCode != 200 || servedBy(resp) != "legacy" || e.native.calls.Load() != 3 {
		t.Fatalf("open breaker: %d served by %q, native calls %d", resp.StatusCode, servedBy(resp), e.native.calls.Load())
	}
	if v := metricValue(t, e.c, e.ts.AdminURL, `cutover_fallbacks_total{reason="native_5xx",route="models"}`); v != "3" {
		t.Errorf("native_5xx fallbacks %q, want 3", v)
	}
	if v := metricValue(t, e.c, e.ts.AdminURL, `cutover_fallbacks_total{reason="native_breaker_open",route="models"}`); v != "1" {
		t.Errorf("native_breaker_open fallbacks %q, want 1", v)
	}
	if v := metricValue(t, e.c, e.ts.AdminURL, `cutover_breaker_state{backend="native",route="models"}`); v != "2" {
		t.Errorf("state gauge %q, want 2 (open)", v)
	}
	// The admin API shows it.
	resp, body := do(t, e.c, "GET", e.ts.AdminURL+"/admin/routes/models", "", adminAuth)
	var info struct {
		Status RouteBreakerStatus `json:"status"`
	}
	if err := json.Unmarshal(body, &info); err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin route: %d %s %v", resp.StatusCode, body, err)
	}
	if info.Status.Native == nil || info.Status.Native.State != "open" || info.Status.LegacyWide == nil || info.Status.LegacyWide.State != "closed" {
		t.Errorf("admin status %s", body)
	}
	if !strings.Contains(e.ts.Logs.String(), `"msg":"breaker state changed","route":"models","backend":"native","from":"closed","to":"open"`) {
		t.Errorf("no state change log:\n%s", e.ts.Logs.String())
	}
	// After open_timeout one probe goes to native; its success closes the breaker.
	e.pastOpenTimeout()
	if s := e.state("models", Native); s != "half-open" {
		t.Fatalf("breaker %s past open_timeout, want half-open", s)
	}
	resp, body = e.do(t, "GET", "/models", "", "")
	if resp.StatusCode != 200 || servedBy(resp) != "native" || decodeSeen(t, body).Backend != "native" {
		t.Fatalf("probe: %d served by %q", resp.StatusCode, servedBy(resp))
	}
	if s := e.state("models", Native); s != "closed" {
		t.Fatalf("breaker %s after a successful probe, want closed", s)
	}
}

func TestFailedProbeReopens(t *testing.T) {
	e := startBreakerEnv(t)
	for range 3 {
		e.do(t, "GET", "/models", "", "500")
	}
	e.pastOpenTimeout()
	if s := e.state("models", Native); s != "half-open" {
		t.Fatalf("breaker %s past open_timeout, want half-open", s)
	}
	resp, _ := e.do(t, "GET", "/models", "", "500")
	if resp.StatusCode != 200 || servedBy(resp) != "legacy" {
		t.Fatalf("failed probe: %d served by %q, want the legacy answer", resp.StatusCode, servedBy(resp))
	}
	if s := e.state("models", Native); s != "open" {
		t.Fatalf("breaker %s after a failed probe, want open", s)
	}
}

func TestReplayOnlyWhenSafe(t *testing.T) {
	e := startBreakerEnv(t)
	// chat is POST and not replayable: the native 5xx goes to the client as is.
	resp, body := e.do(t, "POST", "/chat", `{"message":"hi"}`, "502")
	if resp.StatusCode != 502 || servedBy(resp) != "native" || !strings.Contains(string(body), "native says no") {
		t.Fatalf("non-replayable: %d served by %q: %s", resp.StatusCode, servedBy(resp), body)
	}
	if e.legacy.calls.Load() != 0 {
		t.Fatalf("legacy got %d calls for a non-replayable request", e.legacy.calls.Load())
	}
	// chat_stream is replayable: legacy answers, with the same body.
	const msg = `{"message":"replay me","conversation_id":"c1"}`
	resp, body = e.do(t, "POST", "/chat/stream", msg, "503")
	s := decodeSeen(t, body)
	if resp.StatusCode != 200 || servedBy(resp) != "legacy" || s.Backend != "legacy" || s.BodyLen != len(msg) {
		t.Fatalf("replayable: %d served by %q, legacy saw %d body bytes: %s", resp.StatusCode, servedBy(resp), s.BodyLen, body)
	}
	if s.Method != "POST" || s.RequestURI != "/chat/stream" {
		t.Errorf("replayed as %s %s", s.Method, s.RequestURI)
	}
}

func TestFailureStatusesAndFourXX(t *testing.T) {
	e := startBreakerEnv(t)
	// chat_stream counts only 503: a 500 is neither replayed nor counted.
	for range 4 {
		resp, _ := e.do(t, "POST", "/chat/stream", `{}`, "500")
		if resp.StatusCode != 500 || servedBy(resp) != "native" {
			t.Fatalf("500 not in failure_statuses: %d served by %q", resp.StatusCode, servedBy(resp))
		}
	}
	if s := e.state("chat_stream", Native); s != "closed" {
		t.Fatalf("breaker %s after statuses outside failure_statuses", s)
	}
	// 4xx never count.
	for range 5 {
		resp, _ := e.do(t, "GET", "/models", "", "404")
		if resp.StatusCode != 404 || servedBy(resp) != "native" {
			t.Fatalf("404: %d served by %q", resp.StatusCode, servedBy(resp))
		}
	}
	if st := e.ts.Breakers.Status("models").Native; st.State != "closed" || st.TotalFailures != 0 {
		t.Fatalf("4xx counted: %+v", st)
	}
}

func TestNativePanic(t *testing.T) {
	e := startBreakerEnv(t)
	// Safe to replay: legacy answers.
	resp, body := e.do(t, "GET", "/models", "", "panic")
	if resp.StatusCode != 200 || servedBy(resp) != "legacy" {
		t.Fatalf("panic on GET: %d served by %q: %s", resp.StatusCode, servedBy(resp), body)
	}
	// Not replayable: Werkzeug's 500 page.
	resp, body = e.do(t, "POST", "/chat", `{}`, "panic")
	if resp.StatusCode != 500 || string(body) != string(compat.ErrorPage(500, compat.DefaultDescription(500))) {
		t.Fatalf("panic on POST: %d %s", resp.StatusCode, body)
	}
	// A panic after the stream started aborts the connection: the client
	// sees a truncated response, never one that looks complete.
	req, _ := http.NewRequest("POST", e.ts.URL+"/chat/stream", strings.NewReader(`{}`))
	req.Header.Set("X-Mode", "panic-after-stream")
	resp, err := e.c.Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("stream interrupted by a panic read as complete")
	}
	if !strings.Contains(e.ts.Logs.String(), "native handler panic") {
		t.Error("panic not logged")
	}
	// The process is still serving.
	resp, _ = e.do(t, "GET", "/models", "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("after panics: %d", resp.StatusCode)
	}
	if v := metricValue(t, e.c, e.ts.AdminURL, `cutover_fallbacks_total{reason="native_panic",route="models"}`); v != "1" {
		t.Errorf("native_panic fallbacks %q", v)
	}
}

func TestNativeTimeout(t *testing.T) {
	e := startBreakerEnv(t)
	// Without native_timeout the slow handler would answer itself (natively, 200).
	resp, body := e.do(t, "GET", "/models", "", "slow")
	if resp.StatusCode != 200 || servedBy(resp) != "legacy" {
		t.Fatalf("slow native: %d served by %q: %s", resp.StatusCode, servedBy(resp), body)
	}
	if v := metricValue(t, e.c, e.ts.AdminURL, `cutover_fallbacks_total{reason="native_timeout",route="models"}`); v != "1" {
		t.Errorf("native_timeout fallbacks %q", v)
	}
	// A stream that started is never cut by native_timeout.
	resp, body = e.do(t, "GET", "/models", "", "stream-slow")
	if resp.StatusCode != 200 || servedBy(resp) != "native" || strings.Count(string(body), "event: delta") != 3 {
		t.Fatalf("slow stream: %d served by %q: %q", resp.StatusCode, servedBy(resp), body)
	}
}

func TestLegacyBreakerOpen(t *testing.T) {
	e := startBreakerEnv(t)
	e.legacy.failing.Store(true)
	// get_conversation has a native handler (share 0); health has none.
	for range 3 {
		resp, _ := e.do(t, "GET", "/conversations/abc", "", "")
		if resp.StatusCode != 500 || servedBy(resp) != "legacy" {
			t.Fatalf("failing legacy: %d served by %q", resp.StatusCode, servedBy(resp))
		}
		resp, _ = e.do(t, "GET", "/health", "", "")
		if resp.StatusCode != 500 {
			t.Fatalf("failing legacy health: %d", resp.StatusCode)
		}
	}
	// The legacy-wide breaker counts transport errors only: still closed.
	if s := e.ts.Breakers.Status("health").LegacyWide.State; s != "closed" {
		t.Fatalf("legacy-wide breaker %s after application 500s", s)
	}
	resp, body := e.do(t, "GET", "/conversations/abc", "", "")
	if resp.StatusCode != 200 || servedBy(resp) != "native" || decodeSeen(t, body).Backend != "native" {
		t.Fatalf("legacy open, native handler: %d served by %q", resp.StatusCode, servedBy(resp))
	}
	resp, body = e.do(t, "GET", "/health", "", "")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" ||
		string(body) != string(compat.ErrorPage(503, compat.DefaultDescription(503))) {
		t.Fatalf("legacy open, no native handler: %d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if v := metricValue(t, e.c, e.ts.AdminURL, `cutover_fallbacks_total{reason="legacy_breaker_open",route="get_conversation"}`); v != "1" {
		t.Errorf("legacy_breaker_open fallbacks %q", v)
	}
	// Legacy recovers: after open_timeout the probe closes the breakers.
	e.legacy.failing.Store(false)
	e.pastOpenTimeout()
	if s := e.state("health", Legacy); s != "half-open" {
		t.Fatalf("breaker %s past open_timeout, want half-open", s)
	}
	resp, _ = e.do(t, "GET", "/health", "", "")
	if resp.StatusCode != 200 || e.state("health", Legacy) != "closed" {
		t.Fatalf("after recovery: %d, breaker %s", resp.StatusCode, e.state("health", Legacy))
	}
}

func TestLegacyWideBreakerOnTransportErrors(t *testing.T) {
	e := startBreakerEnv(t)
	e.lsrv.Close() // legacy unreachable
	for range 3 {
		resp, _ := e.do(t, "GET", "/nowhere", "", "")
		if resp.StatusCode != 502 {
			t.Fatalf("unreachable legacy: %d, want 502", resp.StatusCode)
		}
	}
	if s := e.ts.Breakers.Status("health").LegacyWide.State; s != "open" {
		t.Fatalf("legacy-wide breaker %s after 3 transport errors", s)
	}
	// Unmatched and routes without a native handler: 503; with one: native.
	resp, _ := e.do(t, "GET", "/nowhere", "", "")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("open legacy-wide breaker: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	resp, _ = e.do(t, "GET", "/conversations/x", "", "")
	if resp.StatusCode != 200 || servedBy(resp) != "native" {
		t.Fatalf("open legacy-wide breaker, native route: %d served by %q", resp.StatusCode, servedBy(resp))
	}
	// A native failure cannot fall back now: the native answer stands.
	resp, _ = e.do(t, "GET", "/models", "", "502")
	if resp.StatusCode != 502 || servedBy(resp) != "native" {
		t.Fatalf("native failure with legacy open: %d served by %q", resp.StatusCode, servedBy(resp))
	}
}

func TestAutoRollback(t *testing.T) {
	e := startBreakerEnv(t)
	for range 3 {
		resp, _ := e.do(t, "POST", "/chat", `{}`, "500")
		if resp.StatusCode != 500 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if got := e.ts.Router.Config().Route("chat").Share; got != 0 {
		t.Fatalf("chat share %d bp after its native breaker tripped, want 0", got)
	}
	audit := readTestFile(t, e.audit)
	if !strings.Contains(audit, `"who":"cutover"`) || !strings.Contains(audit, `"action":"auto_rollback"`) ||
		!strings.Contains(audit, `"route":"chat","old_bp":10000,"new_bp":0`) {
		t.Fatalf("audit log: %s", audit)
	}
	resp, _ := e.do(t, "POST", "/chat", `{}`, "")
	if servedBy(resp) != "legacy" {
		t.Fatalf("after rollback served by %q", servedBy(resp))
	}
	// Other routes keep their share; the chat breaker's state survives the change.
	if e.ts.Router.Config().Route("models").Share != 10000 || e.state("chat", Native) != "open" {
		t.Fatalf("models %d bp, chat breaker %s", e.ts.Router.Config().Route("models").Share, e.state("chat", Native))
	}
}

func TestClientGoneNotCounted(t *testing.T) {
	e := startBreakerEnv(t)
	c := &http.Client{Timeout: 50 * time.Millisecond, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	for range 4 {
		req, _ := http.NewRequest("POST", e.ts.URL+"/chat", strings.NewReader(`{}`))
		req.Header.Set("X-Mode", "slow")
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			t.Fatal("slow request answered")
		}
	}
	waitFor(t, func() bool { return e.native.calls.Load() == 4 })
	time.Sleep(50 * time.Millisecond) // let the last attempt report
	if st := e.ts.Breakers.Status("chat").Native; st.State != "closed" || st.TotalFailures != 0 {
		t.Fatalf("client disconnects counted: %+v", st)
	}
}

func TestReloadKeepsOrResetsBreakers(t *testing.T) {
	e := startBreakerEnv(t)
	for range 3 {
		e.do(t, "GET", "/models", "", "500")
	}
	if s := e.state("models", Native); s != "open" {
		t.Fatalf("state %s", s)
	}
	// A share change elsewhere keeps the state.
	if _, err := e.ts.Router.SetShares(map[string]int{"chat": 5000}, Actor{Who: "test", Action: "set"}); err != nil {
		t.Fatal(err)
	}
	if s := e.state("models", Native); s != "open" {
		t.Fatalf("state %s after an unrelated change, want open", s)
	}
	// New breaker settings for the route build a new (closed) breaker.
	next := e.ts.Router.Config().Clone()
	next.Route("models").Breaker.ConsecutiveFailures = 4
	if err := e.ts.Router.Apply(next); err != nil {
		t.Fatal(err)
	}
	if s := e.state("models", Native); s != "closed" {
		t.Fatalf("state %s after new breaker settings, want closed", s)
	}
}

func TestSafeMethod(t *testing.T) {
	tests := []struct {
		give string
		want bool
	}{{"GET", true}, {"HEAD", true}, {"OPTIONS", true}, {"TRACE", true}, {"POST", false}, {"DELETE", false}, {"PUT", false}, {"PATCH", false}}
	for _, tt := range tests {
		if got := safeMethod(tt.give); got != tt.want {
			t.Errorf("safeMethod(%s) = %v", tt.give, got)
		}
	}
}

func TestBreakerSettings(t *testing.T) {
	b := NewBreakers(BreakerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Run("failure ratio over min_requests", func(t *testing.T) {
		br := b.newBreaker("r", Native, config.Breaker{ConsecutiveFailures: 100, FailureRatio: 0.5, MinRequests: 4,
			Interval: time.Minute, OpenTimeout: time.Minute, HalfOpenRequests: 1}, false)
		for i, fail := range []bool{false, true, false, true} {
			if br.open() {
				t.Fatalf("open after %d requests", i)
			}
			p, err := br.allow()
			if err != nil {
				t.Fatal(err)
			}
			var outcome error
			if fail {
				outcome = statusError(503)
			}
			p.done(outcome)
		}
		if !br.open() {
			t.Fatal("not open at a failure ratio of 0.5 over 4 requests")
		}
		if _, err := br.allow(); !errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("open breaker allowed a request: %v", err)
		}
	})
	t.Run("half-open probes", func(t *testing.T) {
		clock := newTestClock()
		b := NewBreakers(BreakerOptions{Now: clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		br := b.newBreaker("r2", Native, config.Breaker{ConsecutiveFailures: 1, Interval: time.Minute,
			OpenTimeout: 30 * time.Second, HalfOpenRequests: 2}, false)
		p, _ := br.allow()
		p.done(errTimeout)
		if !br.open() {
			t.Fatal("not open after one failure")
		}
		if got := br.retryAfter(clock.Now()); got != 30*time.Second {
			t.Errorf("Retry-After %v right after the trip, want 30s", got)
		}
		clock.Add(30 * time.Second)
		if !br.open() {
			t.Fatal("half-open at open_timeout, before it passed")
		}
		clock.Add(time.Millisecond)
		if s := br.cb.currentState(); s != stateHalfOpen {
			t.Fatalf("%s past open_timeout, want half-open", s)
		}
		d1, err1 := br.allow()
		d2, err2 := br.allow()
		if _, err3 := br.allow(); err1 != nil || err2 != nil || !errors.Is(err3, ErrBreakerOpen) {
			t.Fatalf("half-open admitted: %v %v, a third: %v", err1, err2, err3)
		}
		d1.done(nil)
		if br.cb.currentState().String() != "half-open" {
			t.Fatal("closed after one of two probes")
		}
		d2.done(nil)
		if br.cb.currentState().String() != "closed" {
			t.Fatal("not closed after two successful probes")
		}
	})
	t.Run("client gone is not counted", func(t *testing.T) {
		br := b.newBreaker("r3", Legacy, config.Breaker{ConsecutiveFailures: 1, Interval: time.Minute, OpenTimeout: time.Minute}, false)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r, _ := http.NewRequestWithContext(ctx, "GET", "http://x/", nil)
		p, _ := br.allow()
		p.done(br.outcome(r, 0, context.Canceled))
		if br.open() || br.cb.counts().TotalFailures != 0 {
			t.Fatalf("a cancelled request counted: %+v", br.cb.counts())
		}
	})
	t.Run("legacy-wide counts transport errors only by default", func(t *testing.T) {
		br := b.newBreaker(LegacyBreakerRoute, Legacy, config.Breaker{ConsecutiveFailures: 1}, true)
		if br.failed(500) || br.failed(503) {
			t.Fatal("the legacy-wide breaker counts 5xx by default")
		}
		br = b.newBreaker(LegacyBreakerRoute, Legacy, config.Breaker{FailureStatuses: []int{503}}, true)
		if !br.failed(503) || br.failed(500) {
			t.Fatal("failure_statuses not applied to the legacy-wide breaker")
		}
	})
}

// GET /admin/routes shows each breaker's recent transitions, oldest first,
// as the breaker went through them (issue 6: states and transitions).
func TestAdminRoutesShowTransitions(t *testing.T) {
	e := startBreakerEnv(t)
	routeStatus := func() RouteBreakerStatus {
		t.Helper()
		resp, body := do(t, e.c, "GET", e.ts.AdminURL+"/admin/routes", "", adminAuth)
		var list struct {
			Routes []struct {
				Name   string             `json:"name"`
				Status RouteBreakerStatus `json:"status"`
			} `json:"routes"`
		}
		if err := json.Unmarshal(body, &list); err != nil || resp.StatusCode != 200 {
			t.Fatalf("admin routes: %d %s %v", resp.StatusCode, body, err)
		}
		for _, r := range list.Routes {
			if r.Name == "models" {
				return r.Status
			}
		}
		t.Fatalf("no models route in %s", body)
		return RouteBreakerStatus{}
	}
	if st := routeStatus(); st.Native == nil || len(st.Native.Transitions) != 0 || st.Native.TransitionsTotal != 0 {
		t.Fatalf("fresh breaker: %+v", st.Native)
	}
	start := e.clock.Now().UTC()
	for range 3 {
		e.do(t, "GET", "/models", "", "500")
	}
	e.pastOpenTimeout()
	if s := e.state("models", Native); s != "half-open" {
		t.Fatalf("breaker %s past open_timeout, want half-open", s)
	}
	if resp, _ := e.do(t, "GET", "/models", "", ""); servedBy(resp) != "native" {
		t.Fatalf("probe served by %q", servedBy(resp))
	}
	st := routeStatus()
	type step struct{ from, to string }
	want := []step{{"closed", "open"}, {"open", "half-open"}, {"half-open", "closed"}}
	got := make([]step, 0, len(st.Native.Transitions))
	for _, tr := range st.Native.Transitions {
		got = append(got, step{tr.From, tr.To})
	}
	if len(got) != len(want) || st.Native.TransitionsTotal != len(want) {
		t.Fatalf("transitions %v (total %d), want %v", got, st.Native.TransitionsTotal, want)
	}
	prev := start
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("transition %d: %v, want %v", i, got[i], want[i])
		}
		if at := st.Native.Transitions[i].At; at.Before(prev) {
			t.Errorf("transition %d at %v, before the previous one (%v)", i, at, prev)
		} else {
			prev = at
		}
	}
	if !st.Native.OpenedAt.Equal(st.Native.Transitions[0].At) {
		t.Errorf("opened_at %v, first transition at %v", st.Native.OpenedAt, st.Native.Transitions[0].At)
	}
	if st.Legacy == nil || len(st.Legacy.Transitions) != 0 {
		t.Errorf("the legacy breaker never changed state: %+v", st.Legacy)
	}
}

// A breaker keeps only its last maxTransitions transitions, oldest first,
// and counts them all.
func TestBreakerTransitionsBounded(t *testing.T) {
	br := NewBreakers(BreakerOptions{}).newBreaker("r", Native, config.Breaker{}, false)
	states := []circuitState{stateClosed, stateOpen, stateHalfOpen}
	base := time.Unix(1_800_000_000, 0)
	for i := range 25 {
		br.record(base.Add(time.Duration(i)*time.Second), states[i%3], states[(i+1)%3])
	}
	got, total := br.transitions()
	if total != 25 || len(got) != maxTransitions {
		t.Fatalf("%d kept of %d, want %d of 25", len(got), total, maxTransitions)
	}
	for i, tr := range got {
		n := 25 - maxTransitions + i
		if want := base.Add(time.Duration(n) * time.Second).UTC(); !tr.At.Equal(want) || tr.From != states[n%3].String() {
			t.Errorf("kept #%d = %+v, want transition %d at %v", i, tr, n, want)
		}
	}
}

// legacy_breaker.disabled turns the legacy-wide breaker off: unmatched
// requests keep reaching a failing legacy (502 each time, never the 503 of an
// open breaker), and the admin API shows no legacy-wide breaker.
func TestLegacyWideBreakerDisabled(t *testing.T) {
	ls := newBackend(t, echoHandler("legacy"))
	yaml := strings.Replace(breakerConfig(ls.URL, ""), "legacy_breaker:\n", "legacy_breaker:\n  disabled: true\n", 1)
	ts := startServer(t, yaml, &modeNative{})
	c := newClient(t)
	ls.Close() // legacy unreachable
	for i := range 6 {
		if resp, _ := do(t, c, "GET", ts.URL+"/nowhere", "", nil); resp.StatusCode != 502 {
			t.Fatalf("request %d to an unreachable legacy: %d, want 502 (no legacy-wide breaker)", i, resp.StatusCode)
		}
	}
	if st := ts.Breakers.Status("health"); st.LegacyWide != nil || st.Legacy == nil {
		t.Errorf("status %+v: want no legacy-wide breaker and the route's own", st)
	}
}
