package console

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// requireToken stands in for the admin API's bearer check (proxy.Admin's
// RequireToken, which this package cannot import).
func requireToken(token string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if c.Request().Header.Get("Authorization") != "Bearer "+token {
				return echo.NewHTTPError(http.StatusUnauthorized, "missing or wrong bearer token")
			}
			return next(c)
		}
	}
}

// The whole console is small, self-contained and fetches nothing from
// another origin.
func TestAssetsSelfContained(t *testing.T) {
	var total int64
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/|@import|url\(`)
	err := fs.WalkDir(assets, "assets", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(path)
		if err != nil {
			return err
		}
		total += int64(len(b))
		if loc := external.FindIndex(b); loc != nil {
			t.Errorf("%s refers to something outside: %q", path, b[loc[0]:loc[1]])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total == 0 || total > 150<<10 {
		t.Errorf("console assets weigh %d bytes, want (0, 150 KiB]", total)
	}
	t.Logf("console assets: %d bytes", total)
}

func newServer(t *testing.T, opts Options) (*Console, *httptest.Server) {
	t.Helper()
	c := New(opts)
	e := echo.New()
	c.Mount(e, requireToken("tok"))
	srv := httptest.NewUnstartedServer(e)
	srv.Config.RegisterOnShutdown(c.Close)
	srv.Start()
	t.Cleanup(func() {
		c.Close()
		srv.Close()
	})
	return c, srv
}

func get(t *testing.T, url, token string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestPagesAndSession(t *testing.T) {
	_, srv := newServer(t, Options{})
	tests := []struct {
		path, token string
		status      int
		want        string
	}{
		{"/console/", "", 200, `<script src="app.js" defer></script>`},
		{"/console/app.js", "", 200, "sessionStorage"},
		{"/console/app.css", "", 200, ".diff"},
		{"/console", "", 301, ""},
		{"/console/nope.js", "", 404, ""},
		{"/admin/console/session", "", 401, "wrong bearer token"},
		{"/admin/console/session", "bad", 401, "wrong bearer token"},
		{"/admin/console/session", "tok", 200, `"ok":true`},
		{"/admin/events", "", 401, "wrong bearer token"},
		{"/admin/console/audit", "", 401, "wrong bearer token"},
	}
	for _, tt := range tests {
		resp, body := get(t, srv.URL+tt.path, tt.token)
		if resp.StatusCode != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s (token %q): %d %.80q, want %d with %q", tt.path, tt.token, resp.StatusCode, body, tt.status, tt.want)
		}
		if strings.HasPrefix(tt.path, "/console/") && tt.status == 200 {
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("GET %s: CSP %q", tt.path, csp)
			}
		}
	}
	if resp, _ := get(t, srv.URL+"/console", ""); resp.Header.Get("Location") != "/console/" {
		t.Errorf("/console redirects to %q", resp.Header.Get("Location"))
	}
}

func TestAudit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	var audit atomic.Value
	audit.Store("")
	_, srv := newServer(t, Options{AuditLog: func() string { return audit.Load().(string) }})
	read := func(q string) auditAnswer {
		t.Helper()
		resp, body := get(t, srv.URL+"/admin/console/audit"+q, "tok")
		var a auditAnswer
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &a) != nil {
			t.Fatalf("audit%s: %d %s", q, resp.StatusCode, body)
		}
		return a
	}
	if a := read(""); a.Available || !strings.Contains(a.Reason, "admin.audit_log") || len(a.Entries) != 0 {
		t.Errorf("without an audit log: %+v", a)
	}
	audit.Store(path)
	if a := read(""); !a.Available || len(a.Entries) != 0 {
		t.Errorf("audit log not written yet: %+v", a)
	}
	lines := `{"time":"2026-01-01T00:00:00Z","who":"ann","action":"set","route":"chat","old_bp":0,"new_bp":1000}
{"time":"2026-01-01T00:00:01Z","who":"bob","action":"rol` + "\n" + // torn
		`{"time":"2026-01-01T00:00:02Z","who":"bob","action":"rollback","route":"chat","old_bp":1000,"new_bp":0}
`
	if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	a := read("")
	if !a.Available || len(a.Entries) != 2 || !strings.Contains(string(a.Entries[0]), `"rollback"`) ||
		!strings.Contains(string(a.Entries[1]), `"who":"ann"`) || a.Truncated {
		t.Errorf("audit entries: %+v", a)
	}
	if a := read("?limit=1"); len(a.Entries) != 1 || !a.Truncated || !strings.Contains(string(a.Entries[0]), `"rollback"`) {
		t.Errorf("limit 1: %+v", a)
	}
	for _, q := range []string{"?limit=0", "?limit=x", "?limit=1001"} {
		if resp, body := get(t, srv.URL+"/admin/console/audit"+q, "tok"); resp.StatusCode != 400 || !strings.Contains(body, "limit") {
			t.Errorf("audit%s: %d %s", q, resp.StatusCode, body)
		}
	}
	// Only the file's tail is read: a huge file gives its newest entries.
	big, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20000 {
		_, _ = big.WriteString(`{"who":"w` + strings.Repeat("x", 20) + `","n":` + itoa(i) + "}\n")
	}
	big.Close()
	if a := read("?limit=1000"); len(a.Entries) != 1000 || !a.Truncated || !strings.Contains(string(a.Entries[0]), `"n":19999`) {
		t.Errorf("big file: %d entries, truncated %v, first %s", len(a.Entries), a.Truncated, a.Entries[0])
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// sseReader reads one event stream, one block at a time.
type sseReader struct {
	resp *http.Response
	r    *bufio.Reader
}

func openEvents(t *testing.T, ctx context.Context, url string) (*sseReader, int) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/admin/events", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sseReader{resp: resp, r: bufio.NewReader(resp.Body)}, 200
}

// next returns the next block (lines up to a blank line), or "" at EOF.
func (s *sseReader) next() string {
	var b strings.Builder
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return b.String()
		}
		if line == "\n" {
			if b.Len() > 0 {
				return b.String()
			}
			continue
		}
		b.WriteString(line)
	}
}

// nextEvent skips heartbeats and returns the next named event's block.
func (s *sseReader) nextEvent(t *testing.T) string {
	t.Helper()
	for {
		b := s.next()
		if b == "" || !strings.HasPrefix(b, ": heartbeat") {
			return b
		}
	}
}

func TestEventsFeed(t *testing.T) {
	var routes atomic.Int64
	var reads atomic.Int64
	api := http.NewServeMux()
	api.HandleFunc("GET /admin/routes", func(w http.ResponseWriter, r *http.Request) {
		reads.Add(1)
		// The feed reads as a loopback caller would: token and an IP
		// literal Host (what an admin Host allow-list accepts).
		if r.Header.Get("Authorization") != "Bearer admin-token" || net.ParseIP(r.Host) == nil {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"share":` + itoa(int(routes.Load())) + `}`))
	})
	c, srv := newServer(t, Options{
		API: api, Token: func() string { return "admin-token" }, Interval: 5 * time.Millisecond, Heartbeat: 20 * time.Millisecond,
		MaxSubscribers: 2, Topics: map[string][]string{"routes": {"/admin/routes"}, "fleet": {"/admin/fleet"}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if got := reads.Load(); got != 0 {
		t.Fatalf("%d reads with no page connected", got)
	}
	a, code := openEvents(t, ctx, srv.URL)
	if code != 200 {
		t.Fatalf("events: %d", code)
	}
	if b := a.next(); b != "retry: 2000\n" {
		t.Fatalf("first block %q", b)
	}
	if b := a.next(); b != "event: hello\ndata: {\"topics\":[\"fleet\",\"routes\"]}\n" {
		t.Fatalf("hello %q", b)
	}
	// Heartbeats keep an idle stream alive.
	if b := a.next(); b != ": heartbeat\n" {
		t.Fatalf("want a heartbeat, got %q", b)
	}
	routes.Store(1)
	if b := a.nextEvent(t); b != "event: change\ndata: {\"topics\":[\"routes\"]}\n" {
		t.Fatalf("after a change: %q", b)
	}
	b, code := openEvents(t, ctx, srv.URL)
	if code != 200 || !strings.Contains(b.next()+b.next(), "event: hello") {
		t.Fatalf("second page: %d", code)
	}
	// Bounded: a third page is refused.
	if _, code := openEvents(t, ctx, srv.URL); code != http.StatusServiceUnavailable {
		t.Errorf("third page: %d, want 503", code)
	}
	routes.Store(2)
	for _, s := range []*sseReader{a, b} {
		if got := s.nextEvent(t); got != "event: change\ndata: {\"topics\":[\"routes\"]}\n" {
			t.Errorf("fan-out: %q", got)
		}
	}
	// The last page leaving stops the reads.
	a.resp.Body.Close()
	b.resp.Body.Close()
	waitFor(t, func() bool {
		c.hub.mu.Lock()
		defer c.hub.mu.Unlock()
		return c.hub.poll == nil && len(c.hub.subs) == 0
	})
	n := reads.Load()
	s, _ := openEvents(t, ctx, srv.URL)
	if s == nil || !strings.Contains(s.next()+s.next(), "event: hello") || reads.Load() == n {
		t.Fatalf("reconnect: the feed did not read again")
	}
	// Close ends the streams and refuses new ones.
	c.Close()
	for {
		if b := s.next(); b == "" {
			break
		} else if !strings.HasPrefix(b, ": heartbeat") {
			t.Fatalf("after Close: %q", b)
		}
	}
	if _, code := openEvents(t, ctx, srv.URL); code != http.StatusServiceUnavailable {
		t.Errorf("after Close: %d, want 503", code)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A page that has not read yet gets what changed meanwhile merged into one
// event: one pending set per page, never a queue.
func TestSlowPageGetsChangesMerged(t *testing.T) {
	h := newHub(Options{MaxSubscribers: 1, Interval: time.Hour, Heartbeat: time.Hour, Topics: map[string][]string{}})
	s, ready, err := h.subscribe()
	if err != nil {
		t.Fatal(err)
	}
	<-ready
	if _, _, err := h.subscribe(); err != errFull {
		t.Errorf("second subscriber: %v, want errFull", err)
	}
	h.publish([]string{"routes"})
	h.publish([]string{"diffs", "routes"})
	h.publish([]string{"audit"})
	if len(s.wake) != 1 {
		t.Errorf("%d wake-ups pending, want 1", len(s.wake))
	}
	if got := strings.Join(s.take(), ","); got != "audit,diffs,routes" {
		t.Errorf("pending %q, want audit,diffs,routes", got)
	}
	if got := s.take(); len(got) != 0 {
		t.Errorf("pending after take: %q", got)
	}
	h.unsubscribe(s)
	h.close()
	if _, _, err := h.subscribe(); err != errClosed {
		t.Errorf("after close: %v, want errClosed", err)
	}
}

func TestPublic(t *testing.T) {
	tests := []struct {
		method, target string
		want           bool
	}{
		{"GET", "/console", true},
		{"GET", "/console/", true},
		{"HEAD", "/console/app.js", true},
		{"POST", "/console/", false},
		{"GET", "/consoles", false},
		{"GET", "/admin/console/session", false},
		{"GET", "/admin/events", false},
		{"GET", "/metrics", false},
	}
	for _, tt := range tests {
		if got := Public(httptest.NewRequest(tt.method, tt.target, nil)); got != tt.want {
			t.Errorf("Public(%s %s) = %v, want %v", tt.method, tt.target, got, tt.want)
		}
	}
}
