package proxy

// The fault-injection suite: real Redis, the legacy app under gunicorn, the
// Bedrock stub and the native handlers, behind a proxy on a real listener.
// Each scenario injects a fault under bounded load, with shares flipped and
// the config reloaded while it lasts, and asserts that every request got a
// deliberate answer, that nothing leaked (goroutines, client connections,
// heap) and that the proxy recovered once the fault cleared (breakers
// closed, traffic back on the configured split).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/cutover/cutover/compat"
	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/handlers"
	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/testenv"
)

type faultEnv struct {
	redis   *testenv.Redis
	legacy  *testenv.Legacy
	stub    *bedrockstub.Server
	pacer   *streamPacer
	stubURL string
	ts      *testServer
	c       *http.Client
	yaml    string
	// clock is the breakers' clock: an open breaker stays open until
	// waitRecovered moves it past faultOpenTimeout.
	clock *testClock
}

// faultOpenTimeout is faultConfig's open_timeout.
const faultOpenTimeout = 250 * time.Millisecond

// The legacy app gives up on a hanging Bedrock after
// faultLegacyBedrockTimeout seconds, past faultConfig's 4s
// response_header_timeout, so a hang answered by legacy is the proxy's 504.
// The response timeout is generous because a gunicorn /chat on a starved
// machine can take over a second; a scenario that hangs workers waits for
// the stub to be idle (waitStubIdle) before it checks recovery.
const faultLegacyBedrockTimeout = 6

func faultConfig(legacyURL string) string {
	return `
listen:
  served_by_header: X-Cutover-Served-By
  read_header_timeout: 500ms
  body_read_timeout: 500ms
shutdown:
  drain_delay: 1ms
  timeout: 5s
admin:
  token: admin-secret
override:
  enabled: true
  allow_without_token: true
  fallback: true # the suite forces native with the override and wants the breakers to act
legacy:
  url: ` + legacyURL + `
  response_header_timeout: 4s
legacy_breaker:
  consecutive_failures: 5
  open_timeout: 250ms
stickiness: [header:X-User-Id]
` + testenv.RoutesYAML(func(name string) []string {
		extra := []string{"breaker: {consecutive_failures: 5, open_timeout: 250ms}"}
		switch name {
		case "models", "chat", "get_conversation":
			extra = append(extra, "native_percent: 50")
		case "chat_stream":
			extra = append(extra, "native_percent: 50", "replayable: true")
		}
		return extra
	})
}

// startStub runs a Bedrock stub behind a streamPacer and returns them with
// the URL.
func startStub(t *testing.T, opts bedrockstub.Options) (*bedrockstub.Server, *streamPacer, string) {
	t.Helper()
	stub := bedrockstub.New(opts)
	pacer := &streamPacer{next: stub, gap: 250 * time.Millisecond, completed: map[string]int{}, cut: map[string]int{}}
	srv := httptest.NewServer(pacer)
	t.Cleanup(func() {
		stub.Close()
		srv.Close()
	})
	return stub, pacer, srv.URL
}

// slowMarker in a chat message makes the stub stream its answer slowly (see
// streamPacer): the message reaches the Bedrock request body from either
// backend.
const slowMarker = "(slow-stream)"

// streamPacer sits in front of the Bedrock stub. A request whose body
// contains slowMarker gets its response writes (one event-stream frame each)
// spaced gap apart, so a client can leave while the stream is surely in
// progress: a stream of the stub's shortest reply (8 words: 13 frames) lasts
// 3s at 250ms. It counts how those requests ended, by the SDK that sent them
// (boto3: the legacy app; the Go SDK: native).
type streamPacer struct {
	next http.Handler
	gap  time.Duration

	mu        sync.Mutex
	inFlight  int
	completed map[string]int // every frame written
	cut       map[string]int // ended early: the caller went away
}

func (p *streamPacer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if !bytes.Contains(body, []byte(slowMarker)) {
		p.next.ServeHTTP(w, r)
		return
	}
	caller := "native"
	if ua := strings.ToLower(r.UserAgent()); strings.Contains(ua, "boto3") || strings.Contains(ua, "botocore") {
		caller = "legacy"
	}
	pw := &pacedWriter{ResponseWriter: w, ctx: r.Context(), gap: p.gap}
	p.mu.Lock()
	p.inFlight++
	p.mu.Unlock()
	returned := false
	defer func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.inFlight--
		if returned && !pw.cut {
			p.completed[caller]++
		} else {
			p.cut[caller]++
		}
	}()
	p.next.ServeHTTP(pw, r)
	returned = true
}

// counts returns the slow requests in flight and, by caller, those that
// completed and those cut short.
func (p *streamPacer) counts() (inFlight int, completed, cut map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	completed, cut = map[string]int{}, map[string]int{}
	for k, v := range p.completed {
		completed[k] = v
	}
	for k, v := range p.cut {
		cut[k] = v
	}
	return p.inFlight, completed, cut
}

// pacedWriter delays every write after the first by gap; it gives up, and
// records the stream as cut, when the request's context ends (the caller
// closed the connection) or a write fails.
type pacedWriter struct {
	http.ResponseWriter
	ctx    context.Context
	gap    time.Duration
	writes int
	cut    bool
}

func (w *pacedWriter) Write(b []byte) (int, error) {
	if w.writes > 0 {
		timer := time.NewTimer(w.gap)
		select {
		case <-timer.C:
		case <-w.ctx.Done():
			timer.Stop()
			w.cut = true
			return 0, w.ctx.Err()
		}
	}
	w.writes++
	n, err := w.ResponseWriter.Write(b)
	if err != nil {
		w.cut = true
	}
	return n, err
}

func (w *pacedWriter) FlushError() error {
	err := http.NewResponseController(w.ResponseWriter).Flush()
	if err != nil {
		w.cut = true
	}
	return err
}

func (w *pacedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// newNative builds the real native handlers against a stub and Redis.
func newNative(t *testing.T, stubURL, redisURL string) *handlers.App {
	t.Helper()
	br, err := handlers.NewBedrockClient(context.Background(), handlers.BedrockOptions{
		EndpointURL: stubURL, Timeout: time.Second, MaxAttempts: 2,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := handlers.NewRedisClient(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	app, err := handlers.New(handlers.Config{SecretKey: testenv.LegacySecretKey, BedrockTimeout: time.Second},
		handlers.Deps{Bedrock: br, Store: rc})
	if err != nil {
		t.Fatal(err)
	}
	return app
}

func startFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("fault suite runs real processes")
	}
	e := &faultEnv{c: newClient(t)}
	e.redis = testenv.StartRedis(t)
	e.stub, e.pacer, e.stubURL = startStub(t, bedrockstub.Options{})
	stubURL := e.stubURL
	e.legacy = testenv.StartLegacy(t, map[string]string{
		"REDIS_URL": e.redis.URL(), "BEDROCK_ENDPOINT_URL": stubURL,
		"BEDROCK_TIMEOUT": strconv.Itoa(faultLegacyBedrockTimeout), "BEDROCK_MAX_ATTEMPTS": "1", "GUNICORN_WORKERS": "4",
	})
	e.yaml = faultConfig(e.legacy.URL())
	e.clock = newTestClock()
	e.ts = startServerClock(t, e.yaml, newNative(t, stubURL, e.redis.URL()), e.clock.Now)
	return e
}

// outcome is what one client request got.
type outcome struct {
	status  int
	served  string
	header  http.Header
	body    []byte
	err     error // transport error: the connection broke
	request string
	user    string
}

// load sends n requests from conc workers; gen builds request i.
func (e *faultEnv) load(t *testing.T, n, conc int, gen func(i int) (*http.Request, string), progress *atomic.Int64) []outcome {
	t.Helper()
	out := make([]outcome, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				out[i] = e.send(gen(i))
				if progress != nil {
					progress.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return out
}

// send sends req for user and returns what came back.
func (e *faultEnv) send(req *http.Request, user string) outcome {
	o := outcome{request: req.Method + " " + req.URL.Path, user: user}
	resp, err := e.c.Do(req)
	if err == nil {
		o.status, o.header, o.served = resp.StatusCode, resp.Header, resp.Header.Get("X-Cutover-Served-By")
		o.body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	o.err = err
	return o
}

// background is the normal traffic of a scenario whose fault comes from
// one misbehaving client or a single backend: e.mixed from 3 clients, each
// pausing 5ms between requests, with shares flipped and the config reloaded
// throughout (startFlipper). Every answer is checked with deliberate as it
// arrives and only counts and the first errors are kept, so its memory is
// bounded however long the fault lasts.
type background struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	fl     *flipper
	once   sync.Once

	mu     sync.Mutex
	counts map[int]int
	errs   []error
	more   int // errors beyond the first 10
}

// startBackground starts the background traffic and returns once it is
// under way: requests answered and a share flip and reload done.
func (e *faultEnv) startBackground(t *testing.T) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bg := &background{cancel: cancel, counts: map[int]int{}}
	bg.fl = e.startFlipper(t)
	t.Cleanup(bg.halt) // after a t.Fatal; a no-op once stop ran
	var next, answered atomic.Int64
	for range 3 {
		bg.wg.Go(func() {
			for ctx.Err() == nil {
				o := e.send(e.mixed(int(next.Add(1)) - 1))
				bg.mu.Lock()
				bg.counts[o.status]++
				if err := deliberate(o); err != nil {
					if len(bg.errs) < 10 {
						bg.errs = append(bg.errs, err)
					} else {
						bg.more++
					}
				}
				bg.mu.Unlock()
				answered.Add(1)
				select {
				case <-ctx.Done():
				case <-time.After(5 * time.Millisecond):
				}
			}
		})
	}
	waitFor(t, func() bool { return answered.Load() >= 10 && bg.fl.rounds.Load() >= 1 })
	return bg
}

// halt ends the traffic and the flips, once.
func (bg *background) halt() {
	bg.once.Do(func() {
		bg.cancel()
		bg.wg.Wait()
		bg.fl.stop()
	})
}

// stop ends the background traffic (requests in flight finish), restores
// the configured shares and fails t on any answer that was not deliberate.
func (bg *background) stop(t *testing.T) {
	t.Helper()
	bg.halt()
	for _, err := range bg.errs {
		t.Errorf("background traffic: %v", err)
	}
	if bg.more > 0 {
		t.Errorf("background traffic: %d more undeliberate answers", bg.more)
	}
	t.Logf("background traffic statuses: %v", bg.counts)
}

// mixed is the usual traffic: health, models, chat and conversation reads,
// from 40 sticky users.
func (e *faultEnv) mixed(i int) (*http.Request, string) {
	user := "u" + strconv.Itoa(i%40)
	var req *http.Request
	switch i % 5 {
	case 4:
		req, _ = http.NewRequest("POST", e.ts.URL+"/chat/stream", strings.NewReader(`{"message":"stream `+strconv.Itoa(i)+`"}`))
		req.Header.Set("Content-Type", "application/json")
	case 0:
		req, _ = http.NewRequest("GET", e.ts.URL+"/health", nil)
	case 1:
		req, _ = http.NewRequest("GET", e.ts.URL+"/models", nil)
	case 2:
		req, _ = http.NewRequest("POST", e.ts.URL+"/chat", strings.NewReader(`{"message":"hello `+strconv.Itoa(i)+`"}`))
		req.Header.Set("Content-Type", "application/json")
	case 3:
		req, _ = http.NewRequest("GET", e.ts.URL+"/conversations/missing-"+strconv.Itoa(i), nil)
	}
	req.Header.Set("X-User-Id", user)
	return req, user
}

// healthyStatus is the status a mixed request gets when nothing fails.
func healthyStatus(o outcome) bool {
	switch {
	case strings.HasPrefix(o.request, "GET /conversations/"):
		return o.status == 404
	case o.request == "POST /chat/stream":
		return o.status == 200 && strings.Contains(string(o.body), "event: done\n")
	}
	return o.status == 200
}

// deliberate checks that an outcome during a fault is one of the answers
// the fault suite documents (docs/faults.md).
func deliberate(o outcome) error {
	if o.err != nil {
		return fmt.Errorf("%s: connection broke: %v", o.request, o.err)
	}
	switch {
	case healthyStatus(o):
		return nil
	case o.status == 503 && o.header.Get("Retry-After") != "" && string(o.body) == string(compat.ErrorPage(503, compat.DefaultDescription(503))):
		return nil // breakers open, no backend
	case o.status == 502 && string(o.body) == string(compat.ErrorPage(502, compat.DefaultDescription(502))):
		return nil // legacy unreachable
	case o.status == 504 && string(o.body) == string(compat.ErrorPage(504, compat.DefaultDescription(504))):
		return nil // legacy timed out
	case o.status == 503 && strings.Contains(string(o.body), `"code":"store_unavailable"`):
		return nil // Redis down, either backend
	case o.status == 502 && strings.Contains(string(o.body), `"code":"bedrock_error"`):
		return nil // the model failed, either backend
	}
	return fmt.Errorf("%s: undocumented answer %d served by %q: %.200s", o.request, o.status, o.served, o.body)
}

// wantBackend is the backend the configured split sends user to on route.
func (e *faultEnv) wantBackend(route, user string) string {
	rc := e.ts.Router.Config().Route(route)
	if Bucket(Seed(rc.Salt), user) < rc.Share {
		return "native"
	}
	return "legacy"
}

// assertSplit checks that healthy traffic is answered as configured: every
// request healthy and served by the backend its sticky bucket selects.
func (e *faultEnv) assertSplit(t *testing.T, outs []outcome) {
	t.Helper()
	routes := map[string]string{"GET /health": "health", "GET /models": "models", "POST /chat": "chat", "POST /chat/stream": "chat_stream"}
	native := 0
	for _, o := range outs {
		if o.err != nil || !healthyStatus(o) {
			t.Errorf("after recovery: %s got %d %v: %.200s", o.request, o.status, o.err, o.body)
			continue
		}
		route := routes[o.request]
		if strings.HasPrefix(o.request, "GET /conversations/") {
			route = "get_conversation"
		}
		if want := e.wantBackend(route, o.user); o.served != want {
			t.Errorf("after recovery: %s for %s served by %s, the split says %s", o.request, o.user, o.served, want)
		}
		if o.served == "native" {
			native++
		}
	}
	if native == 0 || native == len(outs) {
		t.Errorf("after recovery %d of %d requests native: the split is not in force", native, len(outs))
	}
}

// waitRecovered moves the breakers' clock past open_timeout (open ones let
// a probe through) and sends healthy traffic, until every breaker is closed.
func (e *faultEnv) waitRecovered(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		e.clock.Add(faultOpenTimeout + time.Millisecond)
		outs := e.load(t, 40, 4, e.mixed, nil)
		allClosed := true
		for _, r := range e.ts.Router.Config().Routes {
			st := e.ts.Breakers.Status(r.Name)
			for _, b := range []*BreakerStatus{st.Legacy, st.Native, st.LegacyWide} {
				if b != nil && b.State != "closed" {
					allClosed = false
				}
			}
		}
		healthy := true
		for _, o := range outs {
			if o.err != nil || !healthyStatus(o) {
				healthy = false
			}
		}
		if allClosed && healthy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not recovered after 15s: breakers closed %v, healthy %v", allClosed, healthy)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assertBackToNormal ends a scenario on the suite's proxy: breakers closed and
// answers healthy again, n mixed requests on the configured split, and no
// connection or goroutine left over since b.
func (e *faultEnv) assertBackToNormal(t *testing.T, b baseline, n int) {
	t.Helper()
	e.waitStubIdle(t)
	e.waitRecovered(t)
	e.assertSplit(t, e.load(t, n, 8, e.mixed, nil))
	e.assertNoLeak(t, b, e.ts)
}

// waitStubIdle waits until the Bedrock stub holds no request: gunicorn
// workers a hang scenario held are free again (a request queued behind them
// in gunicorn's backlog reaches the stub and hangs in turn, so this can take
// a few faultLegacyBedrockTimeouts).
func (e *faultEnv) waitStubIdle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for e.stub.InFlight() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the Bedrock stub still holds %d requests after 90s", e.stub.InFlight())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// baseline is the resource use before a scenario.
type baseline struct {
	goroutines int
	heap       uint64
}

func takeBaseline() baseline {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return baseline{goroutines: runtime.NumGoroutine(), heap: ms.HeapInuse}
}

// assertNoLeak checks, once the scenario's clients are gone, that the
// proxy ts the scenario used (e.ts, or one of its own) holds no client
// connection, that goroutines are back near the baseline (pooled backend
// connections may differ by a few) and that the heap did not grow by more
// than 32 MiB. A scenario's own proxy is stopped between the connection
// check and the goroutine check, so that its goroutines are not counted.
func (e *faultEnv) assertNoLeak(t *testing.T, b baseline, ts *testServer) {
	t.Helper()
	e.c.CloseIdleConnections()
	port := ts.TrafficAddr()[strings.LastIndexByte(ts.TrafficAddr(), ':')+1:]
	deadline := time.Now().Add(10 * time.Second)
	for {
		conns := establishedTo(t, port)
		if conns == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leak: %d client connections to the proxy on port %s still open", conns, port)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ts != e.ts {
		ts.stop(t)
	}
	for {
		g := runtime.NumGoroutine()
		if g <= b.goroutines+25 {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("leak: %d goroutines (baseline %d)\n%s", g, b.goroutines, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse > b.heap+32<<20 {
		t.Errorf("heap grew from %d to %d bytes", b.heap, ms.HeapInuse)
	}
}

// establishedTo counts established TCP connections whose local port is port
// (the server side of connections to it), from /proc/net/tcp.
func establishedTo(t *testing.T, port string) int {
	t.Helper()
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(":%04X", p)
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) > 3 && strings.HasSuffix(fields[1], want) && fields[3] == "01" {
				n++
			}
		}
	}
	return n
}

// flipper changes shares and reloads the config file while a fault runs;
// stop restores the configured shares.
type flipper struct {
	stop   func()
	rounds atomic.Int64 // share changes done; every third came with a reload
}

func (e *faultEnv) startFlipper(t *testing.T) *flipper {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var errs atomic.Int64
	fl := &flipper{}
	wg.Go(func() {
		shares := []int{0, 5000, 10000, 2500}
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := e.ts.Router.SetShares(map[string]int{"models": shares[i%4], "chat": shares[(i+1)%4]},
				Actor{Who: "fault-suite", Action: "set"}); err != nil {
				errs.Add(1)
			}
			if i%3 == 0 {
				if err := e.ts.Reload(); err != nil {
					errs.Add(1)
				}
			}
			fl.rounds.Add(1)
			select {
			case <-ctx.Done():
			case <-time.After(30 * time.Millisecond):
			}
		}
	})
	fl.stop = func() {
		cancel()
		wg.Wait()
		if errs.Load() > 0 {
			t.Errorf("%d share changes or reloads failed during the fault", errs.Load())
		}
		writeConfigAtomic(t, e.ts.File, e.yaml)
		if err := e.ts.Reload(); err != nil {
			t.Fatalf("restore config: %v", err)
		}
	}
	return fl
}

func checkAll(t *testing.T, outs []outcome) map[int]int {
	t.Helper()
	counts := map[int]int{}
	for _, o := range outs {
		counts[o.status]++
		if err := deliberate(o); err != nil {
			t.Error(err)
		}
	}
	return counts
}

func metricSum(t *testing.T, c *http.Client, adminURL, prefix string) float64 {
	t.Helper()
	_, body := do(t, c, "GET", adminURL+"/metrics", "", nil)
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix) {
			f, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			sum += f
		}
	}
	return sum
}

func TestFaults(t *testing.T) {
	e := startFaultEnv(t)
	e.waitRecovered(t)

	t.Run("legacy killed mid-load and restarted", func(t *testing.T) {
		b := takeBaseline()
		fl := e.startFlipper(t)
		var progress atomic.Int64
		done := make(chan []outcome)
		go func() { done <- e.load(t, 240, 8, e.mixed, &progress) }()
		waitFor(t, func() bool { return progress.Load() >= 40 })
		e.legacy.Kill()
		waitFor(t, func() bool { return progress.Load() >= 160 })
		fl.stop()
		var outs []outcome
		restarted := make(chan error, 1)
		go func() { restarted <- e.legacy.Start() }()
		outs = <-done
		if err := <-restarted; err != nil {
			t.Fatal(err)
		}
		broken := 0
		var rest []outcome
		for _, o := range outs {
			// A response cut when gunicorn died mid-body is aborted, never
			// made to look complete; only requests in flight at the kill.
			if o.err != nil && (errors.Is(o.err, io.ErrUnexpectedEOF) || strings.Contains(o.err.Error(), "EOF")) {
				broken++
				continue
			}
			rest = append(rest, o)
		}
		if broken > 8 {
			t.Errorf("%d responses cut: more than the requests in flight at the kill", broken)
		}
		counts := checkAll(t, rest)
		t.Logf("statuses while legacy was killed: %v (cut: %d)", counts, broken)
		if counts[503]+counts[502] == 0 {
			t.Error("no request saw legacy down: the kill did not happen under load")
		}
		if v := metricSum(t, e.c, e.ts.AdminURL, `cutover_fallbacks_total{reason="legacy_breaker_open"`); v == 0 {
			t.Error("no request fell back to native while legacy was down")
		}
		e.assertBackToNormal(t, b, 120)
	})

	t.Run("legacy hanging past its timeout", func(t *testing.T) {
		b := takeBaseline()
		hang := func(i int) (*http.Request, string) {
			req, _ := http.NewRequest("POST", e.ts.URL+"/chat", strings.NewReader(`{"message":"[[stub-fault:hang]] `+strconv.Itoa(i)+`"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Cutover-Backend", "legacy")
			return req, ""
		}
		bg := e.startBackground(t)
		outs := e.load(t, 6, 6, hang, nil)
		bg.stop(t)
		counts := checkAll(t, outs)
		t.Logf("statuses of hanging requests: %v", counts)
		if counts[504] == 0 {
			t.Errorf("no 504 for a legacy hanging past response_header_timeout: %v", counts)
		}
		// The hung gunicorn workers give up on the stub after BEDROCK_TIMEOUT;
		// assertBackToNormal waits for that.
		e.assertBackToNormal(t, b, 80)
	})

	t.Run("legacy returning 500s", func(t *testing.T) {
		b := takeBaseline()
		// The real legacy app behind a switch that makes it answer 500.
		target, _ := url.Parse(e.legacy.URL())
		rp := httputil.NewSingleHostReverseProxy(target)
		var failing atomic.Bool
		front := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if failing.Load() {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.WriteHeader(500)
				_, _ = w.Write(compat.ErrorPage(500, compat.DefaultDescription(500)))
				return
			}
			rp.ServeHTTP(w, r)
		}))
		e2 := *e
		e2.yaml = faultConfig(front.URL)
		e2.ts = startServerClock(t, e2.yaml, newNative(t, e.stubURL, e.redis.URL()), e2.clock.Now)
		failing.Store(true)
		fl := e2.startFlipper(t)
		outs := e2.load(t, 200, 8, e2.mixed, nil)
		fl.stop()
		counts := map[int]int{}
		for _, o := range outs {
			counts[o.status]++
			if o.status == 500 && o.served == "legacy" && string(o.body) == string(compat.ErrorPage(500, compat.DefaultDescription(500))) {
				continue // legacy's own answer, passed through until its breaker opens
			}
			if err := deliberate(o); err != nil {
				t.Error(err)
			}
		}
		t.Logf("statuses while legacy answered 500: %v", counts)
		if v := metricSum(t, e2.c, e2.ts.AdminURL, `cutover_fallbacks_total{reason="legacy_breaker_open"`); v == 0 {
			t.Error("no request went native while legacy's breakers were open")
		}
		// Each of the 5 routes passes consecutive_failures (5) 500s before
		// its legacy breaker opens, plus the requests already admitted when
		// it tripped (at most the other 7 clients), then one per half-open probe.
		probes := metricSum(t, e2.c, e2.ts.AdminURL, `cutover_breaker_transitions_total{backend="legacy",from="open"`)
		if counts[500] == 0 || float64(counts[500]) > 5*(5+7)+probes {
			t.Errorf("%d legacy 500s passed through: want some, at most 12 per route plus %v probes", counts[500], probes)
		}
		failing.Store(false)
		e2.waitRecovered(t)
		e2.assertSplit(t, e2.load(t, 100, 8, e2.mixed, nil))
		front.CloseClientConnections()
		e.assertNoLeak(t, b, e2.ts)
	})

	t.Run("stub faults through native", func(t *testing.T) {
		b := takeBaseline()
		fl := e.startFlipper(t)
		type call struct {
			path, fault string
			check       func(o outcome) error
		}
		// Once both of a route's breakers are open the answer is the 503
		// page; a hang answered by legacy (which retries past
		// response_header_timeout) is a 504 page.
		jsonErr := func(status int, code string) func(o outcome) error {
			return func(o outcome) error {
				if o.err == nil && o.status == 503 && o.header.Get("Retry-After") != "" &&
					string(o.body) == string(compat.ErrorPage(503, compat.DefaultDescription(503))) {
					return nil
				}
				if code == "bedrock_error" && o.served == "legacy" && o.status == 504 &&
					string(o.body) == string(compat.ErrorPage(504, compat.DefaultDescription(504))) {
					return nil
				}
				if o.err != nil || o.status != status || !strings.Contains(string(o.body), `"code":"`+code+`"`) {
					return fmt.Errorf("want %d %s, got %d %v %.200s", status, code, o.status, o.err, o.body)
				}
				return nil
			}
		}
		calls := []call{
			{"/chat", "throttle", func(o outcome) error {
				if err := jsonErr(429, "throttled")(o); err != nil {
					return err
				}
				if o.header.Get("Retry-After") != "1" {
					return fmt.Errorf("429 without Retry-After: 1")
				}
				return nil
			}},
			{"/chat", "unavailable", jsonErr(502, "bedrock_error")},
			{"/chat", "model-timeout", jsonErr(502, "bedrock_error")},
			{"/chat", "hang", jsonErr(502, "bedrock_error")},
			{"/chat/stream", "unavailable", jsonErr(502, "bedrock_error")},
			{"/chat/stream", "stream-error", func(o outcome) error {
				s := string(o.body)
				if o.err != nil || o.status != 200 || strings.Count(s, "event: delta") != 3 ||
					!strings.HasSuffix(s, "event: error\ndata: {\"error\": \"the model stream failed\", \"code\": \"bedrock_error\"}\n\n") {
					return fmt.Errorf("stream-error: %d %v %q", o.status, o.err, s)
				}
				return nil
			}},
		}
		// A hang answered by legacy holds a gunicorn worker for
		// BEDROCK_TIMEOUT (6s), past the proxy's 4s response_header_timeout,
		// so hangs under concurrency can fill all four workers and turn any
		// other call that falls back to legacy into a 504 while they drain.
		// The hangs therefore run in a phase of their own, after the calls
		// whose answers the test pins exactly.
		phases := [2][]call{}
		for _, c := range calls {
			if c.fault == "hang" {
				phases[1] = append(phases[1], c)
			} else {
				phases[0] = append(phases[0], c)
			}
		}
		trips := `cutover_breaker_transitions_total{backend="native",from="closed",route="chat",to="open"}`
		tripsBefore := metricSum(t, e.c, e.ts.AdminURL, trips)
		for _, phase := range phases {
			gen := func(i int) (*http.Request, string) {
				c := phase[i%len(phase)]
				req, _ := http.NewRequest("POST", e.ts.URL+c.path, strings.NewReader(`{"message":"[[stub-fault:`+c.fault+`]] q`+strconv.Itoa(i)+`"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Cutover-Backend", "native")
				return req, ""
			}
			outs := e.load(t, 6*len(phase), 6, gen, nil)
			for i, o := range outs {
				c := phase[i%len(phase)]
				if err := c.check(o); err != nil {
					t.Errorf("%s with %s (served by %s): %v", c.path, c.fault, o.served, err)
				}
			}
		}
		fl.stop()
		// The native 502s count: chat's native breaker holds failures or has
		// tripped (it may have closed again since, after a successful probe).
		if st := e.ts.Breakers.Status("chat").Native; st == nil || st.TotalFailures == 0 && metricSum(t, e.c, e.ts.AdminURL, trips) == tripsBefore {
			t.Errorf("native failures not counted on chat: %+v", st)
		}
		if v := metricSum(t, e.c, e.ts.AdminURL, `cutover_fallbacks_total{reason="native_5xx",route="chat_stream"}`); v == 0 {
			t.Error("replayable chat_stream never fell back to legacy on a native 502")
		}
		e.assertBackToNormal(t, b, 80)
	})

	t.Run("redis stopped and restarted", func(t *testing.T) {
		b := takeBaseline()
		fl := e.startFlipper(t)
		e.redis.Stop()
		outs := e.load(t, 160, 8, e.mixed, nil)
		fl.stop()
		counts := checkAll(t, outs)
		t.Logf("statuses while Redis was down: %v", counts)
		if counts[503] == 0 {
			t.Error("no 503 while Redis was down")
		}
		if err := e.redis.Start(); err != nil {
			t.Fatal(err)
		}
		e.assertBackToNormal(t, b, 120)
	})

	t.Run("slow clients and slowloris", func(t *testing.T) {
		b := takeBaseline()
		addr := e.ts.TrafficAddr()
		bg := e.startBackground(t)
		// Headers dribbled past read_header_timeout: the connection is closed
		// without a request reaching a backend.
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(conn, "GET /health HTTP/1.1\r\nHost: x\r\n")
		closed := make(chan error, 1)
		go func() {
			_, err := io.ReadAll(conn)
			closed <- err
		}()
		func() {
			for range 30 {
				select {
				case <-closed:
					return
				case <-time.After(100 * time.Millisecond):
					_, _ = io.WriteString(conn, "X-Slow: 1\r\n")
				}
			}
			t.Error("a header slowloris kept its connection for 3s (read_header_timeout 500ms)")
		}()
		conn.Close()
		// A body dribbled past body_read_timeout: 408 on the legacy path,
		// the native handlers' own 400 on the native path; the connection ends.
		for _, backend := range []string{"legacy", "native"} {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.WriteString(conn, "POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Cutover-Backend: "+backend+
				"\r\nContent-Length: 100\r\n\r\n{\"message\":")
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("%s: slow body: no answer: %v", backend, err)
			}
			resp.Body.Close()
			if want := map[string]int{"legacy": 408, "native": 400}[backend]; resp.StatusCode != want {
				t.Errorf("%s: slow body answered %d, want %d", backend, resp.StatusCode, want)
			}
			conn.Close()
		}
		// A client reading its response slowly still gets all of it.
		conn, err = net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(conn, "GET /models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		var got []byte
		buf := make([]byte, 16)
		for {
			n, err := conn.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		conn.Close()
		if !strings.HasPrefix(string(got), "HTTP/1.1 200 OK") || !strings.Contains(string(got), `"default"`) {
			t.Errorf("slow reader got %q", got)
		}
		bg.stop(t)
		e.assertBackToNormal(t, b, 80)
	})

	t.Run("oversized bodies", func(t *testing.T) {
		b := takeBaseline()
		big := `{"message":"` + strings.Repeat("x", 2<<20) + `"}`
		want413 := string(compat.ErrorPage(413, compat.DefaultDescription(413)))
		bg := e.startBackground(t)
		for _, backend := range []string{"legacy", "native"} {
			resp, body := do(t, e.c, "POST", e.ts.URL+"/chat", big, map[string]string{"Content-Type": "application/json", "X-Cutover-Backend": backend})
			if resp.StatusCode != 413 || string(body) != want413 {
				t.Errorf("%s: 2 MiB body: %d %.200s", backend, resp.StatusCode, body)
			}
		}
		bg.stop(t)
		e.assertBackToNormal(t, b, 80)
	})

	t.Run("malformed HTTP and absurd headers", func(t *testing.T) {
		b := takeBaseline()
		addr := e.ts.TrafficAddr()
		tests := []struct {
			name string
			give string
			want string // status line prefix
		}{
			{"garbage request line", "HELLO\r\n\r\n", "HTTP/1.1 400"},
			{"header without colon", "GET /health HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", "HTTP/1.1 400"},
			{"space in header name", "GET /health HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", "HTTP/1.1 400"},
			{"NUL in header value", "GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", "HTTP/1.1 400"},
			{"CTL in header name", "GET /health HTTP/1.1\r\nHost: x\r\nX\x01A: b\r\n\r\n", "HTTP/1.1 400"},
			// Folded into one value, as gunicorn does too.
			{"obsolete line folding", "GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\nConnection: close\r\n\r\n", "HTTP/1.1 200"},
			{"2 MiB header", "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\n\r\n", "HTTP/1.1 431"},
			{"20000 headers", "GET /health HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-H: v\r\n", 200000) + "\r\n", "HTTP/1.1 431"},
			{"2 MiB URL", "GET /" + strings.Repeat("a", 2<<20) + " HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 431"},
			{"unknown HTTP version", "GET /health HTTP/9.9\r\nHost: x\r\n\r\n", "HTTP/1.1 505"},
			{"missing Host", "GET /health HTTP/1.1\r\n\r\n", "HTTP/1.1 400"},
			{"bad Content-Length", "POST /chat HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", "HTTP/1.1 400"},
		}
		bg := e.startBackground(t)
		for _, tt := range tests {
			got, err := rawExchange(addr, tt.give)
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("%s: got %.80q (%v), want %q", tt.name, got, err, tt.want)
			}
		}
		bg.stop(t)
		e.assertBackToNormal(t, b, 80)
	})

	t.Run("client disconnecting mid-stream", func(t *testing.T) {
		b := takeBaseline()
		requests499 := func(backend string) float64 {
			return metricSum(t, e.c, e.ts.AdminURL, `cutover_requests_total{backend="`+backend+`",code="499",route="chat_stream"} `)
		}
		clientGone := func(backend string) float64 {
			return metricSum(t, e.c, e.ts.AdminURL, `cutover_backend_errors_total{backend="`+backend+`",reason="client_gone",route="chat_stream"} `)
		}
		logged499 := func(backend string) int {
			n := 0
			for _, line := range strings.Split(e.ts.Logs.String(), "\n") {
				if strings.Contains(line, `"msg":"request","route":"chat_stream","backend":"`+backend+`"`) && strings.Contains(line, `"status":499,`) {
					n++
				}
			}
			return n
		}
		backends := []string{"legacy", "native"}
		requestsBefore, goneBefore, loggedBefore := map[string]float64{}, map[string]float64{}, map[string]int{}
		for _, backend := range backends {
			requestsBefore[backend], goneBefore[backend], loggedBefore[backend] = requests499(backend), clientGone(backend), logged499(backend)
		}
		_, completedBefore, cutBefore := e.pacer.counts()

		// Each round, one client leaves a legacy stream and one a native
		// stream, both after the first delta; the stub paces those streams
		// (streamPacer) so they are surely mid-way. With the background
		// traffic's 3 clients, at most 4 gunicorn workers are busy: nobody
		// waits for one.
		const rounds = 2
		bg := e.startBackground(t)
		for range rounds {
			var wg sync.WaitGroup
			for _, backend := range backends {
				wg.Go(func() {
					if err := e.leaveMidStream(backend); err != nil {
						t.Errorf("%s: %v", backend, err)
					}
				})
			}
			wg.Wait()
			// The proxy cancels each backend call: native's Bedrock call at
			// once; legacy's upstream connection, whose gunicorn worker then
			// fails to write its next delta and closes its Bedrock stream.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				n, completed, cut := e.pacer.counts()
				if n == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d Bedrock streams still running 10s after their clients left (completed %v, cut %v)", n, completed, cut)
				}
			}
		}
		bg.stop(t)

		_, completed, cut := e.pacer.counts()
		for _, backend := range backends {
			// Cut, not completed: the backend's Bedrock stream ended because
			// its caller went away, long before its last frame.
			if got := cut[backend] - cutBefore[backend]; got != rounds || completed[backend] != completedBefore[backend] {
				t.Errorf("%s: %d of %d Bedrock streams cut when the client left, %d ran to the end",
					backend, got, rounds, completed[backend]-completedBefore[backend])
			}
		}
		// Streams left mid-way are logged and counted as 499 (client gone),
		// once each, whichever backend was streaming.
		for _, backend := range backends {
			waitFor(t, func() bool { return requests499(backend)-requestsBefore[backend] >= rounds })
			if got := requests499(backend) - requestsBefore[backend]; got != rounds {
				t.Errorf("%v %s chat_stream requests counted 499, want %d", got, backend, rounds)
			}
			if got := clientGone(backend) - goneBefore[backend]; got != rounds {
				t.Errorf("%v %s chat_stream errors counted client_gone, want %d", got, backend, rounds)
			}
			if got := logged499(backend) - loggedBefore[backend]; got != rounds {
				t.Errorf("%d %s chat_stream access log lines with status 499, want %d", got, backend, rounds)
			}
		}
		e.assertBackToNormal(t, b, 80)
	})
}

// leaveMidStream asks the proxy for a slow chat stream served by backend
// (the QA override), reads up to its first delta and closes the connection.
func (e *faultEnv) leaveMidStream(backend string) error {
	conn, err := net.Dial("tcp", e.ts.TrafficAddr())
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	body := `{"message":"` + slowMarker + ` tell me a long story"}`
	fmt.Fprintf(conn, "POST /chat/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Cutover-Backend: %s\r\nContent-Length: %d\r\n\r\n%s",
		backend, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return fmt.Errorf("stream response: %w", err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("X-Cutover-Served-By") != backend {
		return fmt.Errorf("stream answered %d by %q", resp.StatusCode, resp.Header.Get("X-Cutover-Served-By"))
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "event: delta\n" {
		return fmt.Errorf("stream start %q %v", line, err)
	}
	return nil
}

// rawExchange writes req on a new connection and returns what comes back
// until the server closes it (or 5s pass).
func rawExchange(addr, req string) (string, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	go func() { _, _ = io.WriteString(conn, req) }()
	b, err := io.ReadAll(conn)
	return string(b), err
}

var _ = config.MaxShare
var _ = filepath.Join
