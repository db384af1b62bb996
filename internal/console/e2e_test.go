package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/testenv"
	"github.com/cutover/cutover/proxy"
)

// update writes the screenshots to docs/console/ (the committed ones); so
// does CONSOLE_SCREENSHOTS=docs. CONSOLE_SCREENSHOTS=DIR writes them to DIR;
// by default they go to the test's temporary directory.
var update = flag.Bool("update", false, "write the console screenshots to docs/console/")

const (
	adminToken = "console-e2e-token"
	operator   = "Ada QA"
	// stepTimeout bounds every browser step and every wait of the test.
	stepTimeout = 20 * time.Second
)

// The console, end to end: a real cutover serve process (built from
// ./cmd/cutover) in front of the legacy app under gunicorn, real Redis and
// the Bedrock stub, driven by headless Chromium at 1280x800. The native app
// has its own system prompt, so every /chat shadowed from legacy to native
// differs at $.reply: a real semantic diff.
func TestConsoleEndToEnd(t *testing.T) {
	browserPath, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the console tests need Debian's chromium (make setup installs it): %v", err)
	}
	shots := screenshotDir(t)
	env := startStack(t)

	b := newBrowser(t, browserPath)
	shot := func(name string) {
		t.Helper()
		png := b.run(t, chromedp.CaptureScreenshot())
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	console := env.admin + "/console/"

	// A wrong token is refused, by the API and by the login form.
	if code := env.status(t, "GET", "/admin/events", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("GET /admin/events with a wrong token: %d, want 401", code)
	}
	b.do(t, chromedp.Navigate(console), chromedp.WaitVisible(chromedp.CSS("#login-token")),
		chromedp.SendKeys(chromedp.CSS("#login-actor"), operator),
		chromedp.SendKeys(chromedp.CSS("#login-token"), "not-the-token"),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#login-error")))
	if msg := b.text(t, "#login-error"); !strings.Contains(msg, "Refused") {
		t.Fatalf("login error %q, want a refusal", msg)
	}
	if b.eval(t, `document.querySelector('#bar').hidden`) != true {
		t.Fatal("the console opened with a wrong token")
	}
	shot("login-refused")

	// The right token: the overview lists every route, live.
	b.do(t, chromedp.Clear(chromedp.CSS("#login-token")), chromedp.SendKeys(chromedp.CSS("#login-token"), adminToken+"\n"),
		chromedp.WaitVisible(chromedp.CSS(`table.routes tr[data-route="chat"]`)),
		chromedp.WaitVisible(chromedp.CSS("#single-instance")),
		chromedp.WaitVisible(chromedp.CSS("#live.on")))
	if n := b.eval(t, `document.querySelectorAll('table.routes tbody tr').length`); n != float64(len(testenv.LegacyRoutes)) {
		t.Errorf("overview lists %v routes, want %d", n, len(testenv.LegacyRoutes))
	}
	if s := b.text(t, `.share-value[data-route="chat"]`); s != "0 %" {
		t.Errorf("chat share %q, want 0 %%", s)
	}
	if b.eval(t, `sessionStorage.getItem('cutover.token') === '`+adminToken+`' && document.cookie === ''`) != true {
		t.Error("the token is not (only) in sessionStorage")
	}
	shot("overview")

	// Set chat to 30 % with the keyboard alone; the confirmation says how
	// many users move.
	b.do(t, chromedp.Focus(chromedp.CSS(`button[data-key="share-chat"]`)), chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("#share-input")))
	if b.eval(t, `document.activeElement.id`) != "share-input" {
		t.Error("the share dialog did not take the focus")
	}
	b.do(t, chromedp.KeyEvent("30"))
	if p := b.text(t, "#share-preview"); !strings.Contains(p, "About 30 % of users move from legacy to native") {
		t.Errorf("share preview %q", p)
	}
	shot("set-share")
	b.do(t, chromedp.KeyEvent(kb.Enter))
	b.waitJS(t, `document.querySelector('.share-value[data-route="chat"]').textContent === '30 %' && !document.querySelector('#dialog').open`)
	var routes struct {
		Routes []proxy.RouteInfo `json:"routes"`
	}
	env.getJSON(t, "/admin/routes", &routes)
	for _, r := range routes.Routes {
		if want := map[bool]int{true: 3000}[r.Name == "chat"]; r.NativeBP != want {
			t.Errorf("route %s at %d bp, want %d", r.Name, r.NativeBP, want)
		}
	}

	// Live, without a reload: the diffs page counts the comparisons of the
	// traffic that follows.
	b.do(t, chromedp.Click(chromedp.CSS(`a[data-nav="diffs"]`)), chromedp.WaitVisible(chromedp.CSS("#f-route")))
	b.eval(t, `window.e2eMarker = 'same page'`)

	// Real requests follow the share: each user's bucket decides.
	seed := proxy.Seed("chat")
	legacyServed, nativeServed := 0, 0
	for i := range 40 {
		user := "user-" + strconv.Itoa(i)
		want := "legacy"
		if proxy.Bucket(seed, user) < 3000 {
			want = "native"
		}
		if got := env.chat(t, "/chat", user, i); got != want {
			t.Fatalf("%s served by %q, want %s", user, got, want)
		}
		if want == "native" {
			nativeServed++
		} else {
			legacyServed++
		}
	}
	if nativeServed == 0 || legacyServed == 0 {
		t.Fatalf("the 40 users all landed on one side (%d native): pick other users", nativeServed)
	}
	if got := env.metric(t, `cutover_requests_total`, `route="chat"`, `backend="native"`); got != float64(nativeServed) {
		t.Errorf("cutover_requests_total native for chat = %v, want %d", got, nativeServed)
	}
	// Every /chat is shadowed to the other side and differs.
	sum := env.waitSummary(t, "chat", func(s routeSummary) bool { return s.Compared+s.skips() >= 40 })
	if sum.Compared != 40 {
		t.Errorf("chat summary %+v: want the 40 requests compared", sum)
	}
	if sum.Semantic == 0 || sum.Semantic != sum.Compared {
		t.Fatalf("chat summary %+v: want every comparison semantic", sum)
	}
	b.waitJS(t, fmt.Sprintf(`(document.querySelector('#summary tr[data-route="chat"] .semantic-count') || {}).textContent === '%d'`, sum.Semantic))
	// The list is read on demand; the feed says there is more to read.
	b.do(t, chromedp.WaitVisible(chromedp.CSS("#new-records")), chromedp.Click(chromedp.CSS("#new-records")),
		chromedp.WaitVisible(chromedp.CSS(`table.diffs tbody tr[data-class="semantic"]`)))
	if n := b.eval(t, `document.querySelectorAll('table.diffs tbody tr').length`); n != float64(40) {
		t.Errorf("%v records listed, want the 40 comparisons", n)
	}
	if b.eval(t, `window.e2eMarker`) != "same page" {
		t.Error("the diffs page was reloaded to update")
	}
	shot("diffs")

	// Filter to semantic diffs of chat and open one: the differing path is
	// highlighted on both sides, the secret request header is marked redacted.
	b.do(t, chromedp.SetValue(chromedp.CSS("#f-route"), "chat"), chromedp.SetValue(chromedp.CSS("#f-class"), "semantic"),
		chromedp.Click(chromedp.CSS(".filters button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(`table.diffs tbody tr[data-class="semantic"] a`)))
	if n := b.eval(t, `[...document.querySelectorAll('table.diffs tbody tr')].filter(r => r.dataset.class !== 'semantic' || r.children[1].textContent !== 'chat').length`); n != float64(0) {
		t.Errorf("%v rows outside the filter", n)
	}
	b.do(t, chromedp.Click(chromedp.CSS(`table.diffs tbody tr[data-class="semantic"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#side-primary [data-path="$.reply"].diff`)),
		chromedp.WaitVisible(chromedp.CSS(`#side-shadow [data-path="$.reply"].diff`)))
	if b.eval(t, `document.querySelector('#record-class').textContent`) != "semantic" {
		t.Error("the record is not semantic")
	}
	if b.eval(t, `[...document.querySelectorAll('table.mismatches td:first-child')].some(td => td.textContent === '$.reply')`) != true {
		t.Error("the differences table lacks $.reply")
	}
	if b.eval(t, `!!document.querySelector('#side-primary [data-path="$.conversation_id"].diff')`) != false {
		t.Error("a path that does not differ is highlighted")
	}
	if b.eval(t, `!!document.querySelector('section[aria-labelledby="req-title"] .redacted') && !document.body.textContent.includes('user-secret')`) != true {
		t.Error("the redacted Authorization header is not marked, or its value shows")
	}
	shot("diff-record")
	b.eval(t, `document.querySelector('#resp-title').scrollIntoView()`)
	shot("diff-record-responses")

	// A streamed reply: events side by side, the first differing one marked.
	env.chat(t, "/chat/stream", "user-stream", 99)
	env.waitSummary(t, "chat_stream", func(s routeSummary) bool { return s.Semantic >= 1 })
	b.do(t, chromedp.Navigate(console+"#/diffs?route=chat_stream&class=semantic"),
		chromedp.WaitVisible(chromedp.CSS(`table.diffs tbody tr[data-class="semantic"] a`)),
		chromedp.Click(chromedp.CSS(`table.diffs tbody tr[data-class="semantic"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#side-shadow li.event.first-diff`)))
	if got := b.eval(t, `document.querySelector('#side-primary li.first-diff').dataset.eventIndex === document.querySelector('#side-shadow li.first-diff').dataset.eventIndex && document.querySelectorAll('li.first-diff').length`); got != float64(2) {
		t.Errorf("first differing event marked %v times, want once per side", got)
	}
	shot("diff-stream")
	b.eval(t, `document.querySelector('#resp-title').scrollIntoView()`)
	shot("diff-stream-events")

	// Roll everything back, with a confirmation naming what moves.
	b.do(t, chromedp.Navigate(console+"#/overview"), chromedp.WaitVisible(chromedp.CSS(`table.routes tr[data-route="chat"]`)),
		chromedp.Click(chromedp.CSS("#rollback")), chromedp.WaitVisible(chromedp.CSS("#rollback-list")))
	if s := b.text(t, "#rollback-list"); !strings.Contains(s, "chat: 30 % of its users move back to legacy") {
		t.Errorf("rollback confirmation %q", s)
	}
	env.getJSON(t, "/admin/routes", &routes)
	if r := routes.Routes[2]; r.Name != "chat" || r.NativeBP != 3000 {
		t.Fatalf("the rollback happened before its confirmation: %+v", r)
	}
	shot("rollback-confirm")
	b.do(t, chromedp.Click(chromedp.CSS("#dialog-confirm")))
	b.waitJS(t, `document.querySelector('.share-value[data-route="chat"]').textContent === '0 %' && !document.querySelector('#dialog').open`)
	for i := range 40 {
		user := "user-" + strconv.Itoa(i)
		if proxy.Bucket(seed, user) < 3000 {
			if got := env.chat(t, "/chat", user, 100+i); got != "legacy" {
				t.Fatalf("after the rollback %s is served by %q", user, got)
			}
		}
	}

	// The audit log names the operator for both changes.
	b.do(t, chromedp.Click(chromedp.CSS(`a[data-nav="audit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table.audit tr[data-action="rollback"]`)))
	rows := b.eval(t, `[...document.querySelectorAll('table.audit tbody tr')].map(r => [...r.children].map(c => c.textContent).join(' | '))`)
	want := []string{operator + " | 127.0.0.1", "| rollback | chat | 30 % → 0 % |", "| set | chat | 0 % → 30 % |"}
	got := fmt.Sprint(rows)
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("audit rows lack %q: %s", w, got)
		}
	}
	shot("audit")
	// A change made elsewhere (the CLI, another operator) shows up live.
	env.putShare(t, "models", 5, "ops-bot@host")
	b.waitJS(t, `[...document.querySelectorAll('table.audit td.who')].some(td => td.textContent === 'ops-bot@host')`)

	// The page says when it lost its live connection.
	env.stop(t)
	b.do(t, chromedp.WaitVisible(chromedp.CSS("#lost")))
	if s := b.text(t, "#live"); s != "Connection lost" {
		t.Errorf("live indicator %q after cutover stopped", s)
	}
	shot("connection-lost")
	b.close(t)
}

func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CONSOLE_SCREENSHOTS")
	if *update || dir == "docs" {
		dir = filepath.Join("..", "..", "docs", "console")
	}
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// browser is one headless Chromium tab at 1280x800.
type browser struct {
	ctx    context.Context
	cancel func()
	mu     sync.Mutex
	errs   []string // uncaught exceptions of the page
	done   chan struct{}
}

func newBrowser(t *testing.T, path string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true), chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("password-store", "basic"), chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	b := &browser{ctx: ctx, cancel: func() { cancelCtx(); cancelAlloc() }, done: make(chan struct{})}
	// Start the browser on a context without a deadline (a deadline on the
	// first run would end the browser with it); it is bounded by chromedp's
	// own start timeout.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		b.cancel()
		t.Fatalf("start chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		defer close(b.done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() {
				b.mu.Lock()
				b.errs = append(b.errs, m.String())
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { b.close(t) })
	return b
}

// close ends the browser and reports the page's uncaught exceptions.
func (b *browser) close(t *testing.T) {
	t.Helper()
	if b.cancel == nil {
		return
	}
	b.cancel()
	b.cancel = nil
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errs {
		t.Errorf("page exception: %s", e)
	}
}

func (b *browser) do(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		png, _ := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
		failed := filepath.Join(t.TempDir(), "failed.png")
		_ = os.WriteFile(failed, png, 0o644)
		t.Fatalf("browser: %v (screenshot %s; page: %v)", err, failed, b.eval(t, `document.querySelector('main') && document.querySelector('main').innerText.slice(0, 600)`))
	}
}

func run[T any](t *testing.T, b *browser, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}

func (b *browser) run(t *testing.T, a chromedp.Action[[]byte]) []byte {
	t.Helper()
	return run(t, b, a)
}

func (b *browser) eval(t *testing.T, js string) any {
	t.Helper()
	return run(t, b, chromedp.Evaluate[any](js))
}

func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	return run(t, b, chromedp.Text(chromedp.CSS(sel)))
}

// waitJS waits (bounded) until the expression is true in the page.
func (b *browser) waitJS(t *testing.T, js string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		t.Fatalf("waiting for %s: %v (page: %v)", js, err, b.eval(t, `document.querySelector('main').innerText.slice(0, 600)`))
	}
}

// stack is the running cutover and its admin and traffic URLs.
type stack struct {
	admin, traffic string
	cmd            *exec.Cmd
	exited         chan struct{}
	log            string
	hc             *http.Client
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startStack builds cutover and runs `cutover serve` in front of the legacy
// app (gunicorn), with real Redis and the Bedrock stub.
func startStack(t *testing.T) *stack {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "cutover")
	bctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(bctx, "go", "build", "-o", bin, "github.com/cutover/cutover/cmd/cutover").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/cutover: %v\n%s", err, out)
	}
	redis := testenv.StartRedis(t)
	stub := testenv.StartStub(t, bedrockstub.Options{})
	legacy := testenv.StartLegacy(t, map[string]string{"REDIS_URL": redis.URL(), "BEDROCK_ENDPOINT_URL": stub})
	// Shadowed writes go only to isolated sides: a second legacy app and
	// native on the isolated Redis database.
	isolatedRedis := strings.TrimSuffix(redis.URL(), "/0") + "/1"
	isolated := testenv.StartLegacy(t, map[string]string{"REDIS_URL": isolatedRedis, "BEDROCK_ENDPOINT_URL": stub, "GUNICORN_WORKERS": "1"})
	traffic, admin := freeAddr(t), freeAddr(t)
	shadowed := []string{"shadow: {rate_percent: 100, safe: true, compare: json}"}
	yaml := fmt.Sprintf(`listen:
  addr: %s
  served_by_header: X-Cutover-Served-By
shutdown: {drain_delay: 1ms, timeout: 5s}
admin:
  addr: %s
  token: %s
  audit_log: %s
legacy: {url: %s}
native:
  redis_url: %s
  bedrock_endpoint_url: %s
  secret_key: %s
  system_prompt: "You are the rewritten Go assistant: answer in one short paragraph."
shadow:
  isolated_redis_url: %s
  isolated_legacy_url: %s
  store: {jsonl_path: %s}
`, traffic, admin, adminToken, filepath.Join(dir, "audit.jsonl"), legacy.URL(), redis.URL(), stub, testenv.LegacySecretKey,
		isolatedRedis, isolated.URL(), filepath.Join(dir, "diffs.jsonl")) +
		testenv.RoutesYAML(func(name string) []string {
			if name == "chat" || name == "chat_stream" {
				return shadowed
			}
			return nil
		})
	cfg := filepath.Join(dir, "cutover.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &stack{admin: "http://" + admin, traffic: "http://" + traffic, exited: make(chan struct{}), log: filepath.Join(dir, "cutover.log"),
		hc: &http.Client{Timeout: stepTimeout, Transport: &http.Transport{}}}
	t.Cleanup(s.hc.CloseIdleConnections)
	logf, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	s.cmd = exec.Command(bin, "serve", "-config", cfg)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.Env = cutoverEnv()
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			b, _ := os.ReadFile(s.log)
			t.Logf("cutover log (tail):\n%s", tail(string(b), 4000))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.exited:
			b, _ := os.ReadFile(s.log)
			t.Fatalf("cutover serve exited at start:\n%s", b)
		default:
		}
		if resp, err := s.hc.Get(s.traffic + "/_cutover/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(s.log)
			t.Fatalf("cutover serve never answered:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// cutoverEnv is this process's environment without CUTOVER_ and AWS_
// settings, plus static credentials for the stub (no real AWS lookup).
func cutoverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CUTOVER_") && !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return append(env, "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// stop ends cutover with SIGTERM (it drains), then SIGKILL after 20s.
func (s *stack) stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		t.Errorf("cutover serve did not stop on SIGTERM within 20s")
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// call makes one admin API call with token (and actor, when not "") and
// returns the status and body.
func (s *stack) call(t *testing.T, method, path, token, actor, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, s.admin+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if actor != "" {
		req.Header.Set(proxy.ActorHeader, actor)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (s *stack) status(t *testing.T, method, path, token string) int {
	t.Helper()
	code, _ := s.call(t, method, path, token, "", "")
	return code
}

// putShare sets route's native share through the admin API as actor.
func (s *stack) putShare(t *testing.T, route string, percent float64, actor string) {
	t.Helper()
	if code, b := s.call(t, http.MethodPut, "/admin/routes/"+route, adminToken, actor, fmt.Sprintf(`{"native_percent": %g}`, percent)); code != 200 {
		t.Fatalf("PUT %s: %d %s", route, code, b)
	}
}

func (s *stack) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	if code, b := s.call(t, http.MethodGet, path, adminToken, "", ""); code != 200 || json.Unmarshal(b, v) != nil {
		t.Fatalf("GET %s: %d %s", path, code, b)
	}
}

// chat sends one chat request as user (an Authorization header the diff
// store must redact) and returns the backend that served it.
func (s *stack) chat(t *testing.T, path, user string, n int) string {
	t.Helper()
	body := fmt.Sprintf(`{"message": "Hello number %d, what is a canary release?", "conversation_id": "conv-%s-%d"}`, n, user, n)
	req, _ := http.NewRequest(http.MethodPost, s.traffic+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User-Id", user)
	req.Header.Set("Authorization", "Bearer user-secret-"+user)
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s as %s: %d %s", path, user, resp.StatusCode, b)
	}
	return resp.Header.Get("X-Cutover-Served-By")
}

// metric sums the samples of name whose labels contain every one of labels.
func (s *stack) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := s.hc.Get(s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q", line)
		}
		sum += v
	}
	return sum
}

type routeSummary struct {
	Route    string           `json:"route"`
	Compared int64            `json:"compared"`
	Semantic int64            `json:"semantic"`
	Skipped  map[string]int64 `json:"skipped"`
}

// skips counts the requests of the route that were not compared.
func (r routeSummary) skips() int64 {
	var n int64
	for _, v := range r.Skipped {
		n += v
	}
	return n
}

// waitSummary waits (bounded) until route's shadow summary satisfies ok.
func (s *stack) waitSummary(t *testing.T, route string, ok func(routeSummary) bool) routeSummary {
	t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		var sum struct {
			Routes []routeSummary `json:"routes"`
		}
		s.getJSON(t, "/admin/shadow/summary", &sum)
		for _, r := range sum.Routes {
			if r.Route == route && ok(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("shadow summary of %s never got there: %+v", route, sum.Routes)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
