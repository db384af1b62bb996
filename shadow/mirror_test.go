package shadow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// chatApp is a stand-in backend: it answers a JSON body {"message": m}
// deterministically, with usage counts derived from the message.
func chatApp(tokens func(int) int, encode func(map[string]any) []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Message string `json:"message"`
		}
		if r.Method == http.MethodPost {
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
				http.Error(w, "bad json", http.StatusBadRequest)
				return
			}
		}
		out := map[string]any{
			"reply": "Echo: " + in.Message + " é",
			"usage": map[string]any{"input_tokens": len(in.Message), "output_tokens": tokens(len(in.Message))},
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(encode(out))
	})
}

func goodTokens(n int) int { return n + 2 }

func stdEncode(v map[string]any) []byte {
	b, _ := json.Marshal(v)
	return append(b, '\n')
}

// pyEncode mimics Python's json.dumps defaults: ", " and ": " separators and
// \u escapes; the same values as stdEncode, in different bytes.
func pyEncode(v map[string]any) []byte {
	b := stdEncode(v)
	s := strings.NewReplacer(`":`, `": `, `,"`, `, "`, "é", `\u00e9`).Replace(string(b))
	return []byte(s)
}

// serverTarget serves h on a real loopback listener and returns a Target
// reaching it over HTTP.
func serverTarget(t *testing.T, h http.Handler) Target {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return urlTarget(t, srv.URL)
}

func urlTarget(t *testing.T, base string) Target {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return TargetFunc(func(r *http.Request) (*http.Response, error) {
		r.URL.Scheme, r.URL.Host, r.Host = u.Scheme, u.Host, u.Host
		return tr.RoundTrip(r)
	})
}

// bufferBody is what the proxy's one body buffer does for the shadow: it
// returns the body when it is at most max bytes, and r.Body still yields
// every byte for the primary.
func bufferBody(r *http.Request, max int64) ([]byte, error) {
	orig := r.Body
	body, err := io.ReadAll(io.LimitReader(orig, max+1))
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), orig))
	switch {
	case err != nil:
		return nil, err
	case int64(len(body)) > max:
		return nil, errors.New("body too large")
	}
	return body, nil
}

// front is what the proxy does around a primary: buffer the body, tee the
// response, hand a job to the mirror.
func front(t *testing.T, m *Mirror, route string, primary http.Handler, shadow Target, job func(*Job)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := bufferBody(r, 1<<16)
		if err != nil {
			m.Skip(route, SkipBodyTooLarge)
		}
		tee := NewTee(w, 1<<16)
		primary.ServeHTTP(tee, r)
		if err != nil {
			return
		}
		j := Job{Route: route, Request: NewRequest(r, body), Primary: tee.Captured(), PrimarySide: SideLegacy, Target: shadow}
		if job != nil {
			job(&j)
		}
		m.Submit(j)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newMirror(t *testing.T, opts Options) *Mirror {
	t.Helper()
	m, err := NewMirror(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

func drain(t *testing.T, m *Mirror) {
	t.Helper()
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func post(t *testing.T, base, path, body string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func summaryOf(m *Mirror, route string) RouteSummary {
	for _, s := range m.Summary() {
		if s.Route == route {
			return s
		}
	}
	return RouteSummary{}
}

func TestMirrorClassifiesEquivalentBrokenAndEncoding(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	primary := chatApp(goodTokens, stdEncode)
	tests := []struct {
		name      string
		shadow    http.Handler
		wantClass Class
		wantPath  string
	}{
		{"equivalent", chatApp(goodTokens, stdEncode), ClassMatch, ""},
		{"broken native", chatApp(func(n int) int { return n + 3 }, stdEncode), ClassSemantic, "$.usage.output_tokens"},
		{"encoding only", chatApp(goodTokens, pyEncode), ClassEncoding, "$"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmp := mustComparator(t, ComparatorConfig{Default: Rules{JSON: true}})
			m := newMirror(t, Options{Comparator: cmp})
			srv := front(t, m, "chat", primary, serverTarget(t, tt.shadow), nil)
			for i := range 10 {
				st, body := post(t, srv.URL, "/api/chat", fmt.Sprintf(`{"message":"hi %d"}`, i))
				if st != 200 || !strings.Contains(body, fmt.Sprintf("Echo: hi %d", i)) {
					t.Fatalf("client got %d %q", st, body)
				}
			}
			drain(t, m)
			s := summaryOf(m, "chat")
			got := map[Class]int64{ClassMatch: s.Matched, ClassSemantic: s.Semantic, ClassEncoding: s.EncodingOnly}
			if s.Compared != 10 || got[tt.wantClass] != 10 {
				t.Fatalf("summary %+v, want 10 compared all %s", s, tt.wantClass)
			}
			page, _ := m.Store().List(context.Background(), Query{})
			if tt.wantClass == ClassMatch {
				if len(page.Records) != 0 {
					t.Errorf("matches stored: %d records", len(page.Records))
				}
				return
			}
			if len(page.Records) != 10 {
				t.Fatalf("%d records, want 10", len(page.Records))
			}
			rec := page.Records[0]
			if rec.Class != tt.wantClass || len(rec.Mismatches) != 1 || rec.Mismatches[0].Path != tt.wantPath {
				t.Errorf("record class %s mismatches %+v", rec.Class, rec.Mismatches)
			}
			if rec.Request.Method != "POST" || rec.Request.Path != "/api/chat" || rec.Primary.Status != 200 || rec.Shadow.Status != 200 {
				t.Errorf("record %+v", rec)
			}
		})
	}
}

// blockingTarget holds every call until release is closed or the call's
// context ends; it counts calls and calls running.
type blockingTarget struct {
	release chan struct{}
	calls   atomic.Int64
	running atomic.Int64
}

func (b *blockingTarget) RoundTrip(r *http.Request) (*http.Response, error) {
	b.calls.Add(1)
	b.running.Add(1)
	defer b.running.Add(-1)
	select {
	case <-b.release:
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("{}"))}, nil
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
}

func TestMirrorSlowShadowNeverBlocksPrimary(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	reg := prometheus.NewRegistry()
	slow := &blockingTarget{release: make(chan struct{})}
	const workers, queue = 2, 4
	m := newMirror(t, Options{Workers: workers, QueueSize: queue, Registerer: reg})
	srv := front(t, m, "chat", chatApp(goodTokens, stdEncode), slow, nil)
	before := runtime.NumGoroutine()

	const n = 60
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			if st, _ := post(t, srv.URL, "/api/chat", fmt.Sprintf(`{"message":"m%d"}`, i)); st != 200 {
				t.Errorf("request %d: status %d", i, st)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // a hang detector, not a speed assertion
		t.Fatal("primary requests blocked behind a stuck shadow")
	}

	s := summaryOf(m, "chat")
	dropped := s.Skipped[SkipQueueFull]
	accepted := n - dropped
	if accepted < queue || accepted > queue+workers {
		t.Errorf("accepted %d jobs, want between %d and %d (queue + workers)", accepted, queue, queue+workers)
	}
	if got := counterValue(m.mt.skips.WithLabelValues("chat", SkipQueueFull)); got != float64(dropped) {
		t.Errorf("metric queue_full = %v, want %d", got, dropped)
	}
	if d := m.QueueDepth(); d > queue {
		t.Errorf("queue depth %d > %d", d, queue)
	}
	if r := slow.running.Load(); r > workers {
		t.Errorf("%d shadow calls running, want <= %d workers", r, workers)
	}
	if g := runtime.NumGoroutine() - before; g > workers+4 {
		t.Errorf("goroutines grew by %d with a stuck shadow", g)
	}

	close(slow.release)
	drain(t, m)
	s = summaryOf(m, "chat")
	if s.Compared != accepted || int64(slow.calls.Load()) != accepted {
		t.Errorf("compared %d, target calls %d, want %d", s.Compared, slow.calls.Load(), accepted)
	}
}

func TestMirrorDeadAndTimedOutShadow(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	ln.Close()
	hang := &blockingTarget{release: make(chan struct{})}
	defer close(hang.release)
	m := newMirror(t, Options{Timeout: 100 * time.Millisecond})
	deadSrv := front(t, m, "dead", chatApp(goodTokens, stdEncode), urlTarget(t, deadURL), nil)
	hangSrv := front(t, m, "hang", chatApp(goodTokens, stdEncode), hang, nil)
	for range 3 {
		if st, _ := post(t, deadSrv.URL, "/", `{"message":"x"}`); st != 200 {
			t.Fatalf("primary status %d with a dead shadow", st)
		}
		if st, _ := post(t, hangSrv.URL, "/", `{"message":"x"}`); st != 200 {
			t.Fatalf("primary status %d with a hanging shadow", st)
		}
	}
	drain(t, m)
	for _, route := range []string{"dead", "hang"} {
		s := summaryOf(m, route)
		if s.Errors != 3 || s.Compared != 0 {
			t.Errorf("%s: %+v, want 3 errors", route, s)
		}
	}
	page, _ := m.Store().List(context.Background(), Query{Route: "hang", Class: ClassError})
	if len(page.Records) != 3 || !strings.Contains(page.Records[0].Shadow.Error, "deadline") {
		t.Errorf("hang records: %+v", page.Records)
	}
}

// Close with an expired context cancels running shadow calls, drops the
// queue, and still returns only once every worker has stopped.
func TestMirrorCloseCancelsRunningCalls(t *testing.T) {
	hang := &blockingTarget{release: make(chan struct{})}
	m, err := NewMirror(Options{Workers: 2, QueueSize: 8, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if !m.Submit(Job{Route: "r", Request: Request{Method: "GET", URL: &url.URL{Path: fmt.Sprint("/", i)}}, Primary: Response{Status: 200}, Target: hang}) {
			t.Fatalf("submit %d refused", i)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v", err)
	}
	s := summaryOf(m, "r")
	if s.Errors+s.Skipped[SkipClosed] != 6 {
		t.Errorf("summary %+v: every job must be accounted for", s)
	}
	if m.Submit(Job{Route: "r", Primary: Response{Status: 200}, Target: hang}) {
		t.Error("Submit accepted after Close")
	}
	if err := m.Close(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v", err)
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestGuard(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1700000000, 0)}
	g := NewGuard(GuardConfig{MaxInFlight: 2, ModelCallsPerMinute: 3, Now: clk.Now})
	bg := context.Background()
	r1, _ := g.Acquire(bg, true)
	r2, _ := g.Acquire(bg, false)
	if r1 == nil || r2 == nil {
		t.Fatal("first two refused")
	}
	// A third waits for a slot: refused only when its context ends first.
	ended, cancel := context.WithCancel(bg)
	cancel()
	if r, why := g.Acquire(ended, false); r != nil || why != SkipInFlight {
		t.Fatalf("third in flight, context ended: %v", why)
	}
	got := make(chan func(), 1)
	go func() { r, _ := g.Acquire(bg, false); got <- r }()
	r1()
	r1() // release is idempotent
	r3 := <-got
	if r3 == nil || g.InFlight() != 2 {
		t.Fatalf("waiting third: %v, in flight %d", r3 != nil, g.InFlight())
	}
	r3()
	if g.InFlight() != 1 {
		t.Fatalf("in flight %d", g.InFlight())
	}
	r2()
	// 3 tokens per minute: one used; two left, then empty.
	for i := range 2 {
		r, why := g.Acquire(bg, true)
		if r == nil {
			t.Fatalf("model call %d refused: %s", i, why)
		}
		r()
	}
	if r, why := g.Acquire(bg, true); r != nil || why != SkipRateLimited {
		t.Fatalf("4th model call in the same minute: %v", why)
	}
	if r, _ := g.Acquire(bg, false); r == nil {
		t.Fatal("a non-model shadow must not need a token")
	} else {
		r()
	}
	clk.Add(20 * time.Second) // refills one token
	if !g.TakeModelCall() {
		t.Fatal("no token after 20s")
	}
	if g.TakeModelCall() {
		t.Fatal("two tokens after 20s")
	}
	clk.Add(-time.Hour) // a clock stepping back grants nothing
	if g.TakeModelCall() {
		t.Fatal("token granted by a clock going backwards")
	}
	clk.Add(time.Hour + 10*time.Minute) // bucket holds at most a minute's budget
	for range 3 {
		if !g.TakeModelCall() {
			t.Fatal("bucket not refilled")
		}
	}
	if g.TakeModelCall() {
		t.Fatal("bucket exceeded its capacity")
	}
}

// The in-flight cap bounds shadow calls across the workers: past it a job
// waits for a slot (within its timeout) instead of being dropped.
func TestMirrorInFlightCapWaits(t *testing.T) {
	const jobs = 4
	m := newMirror(t, Options{Workers: jobs, QueueSize: jobs, Timeout: time.Minute, Guard: NewGuard(GuardConfig{MaxInFlight: 1})})
	var running, most atomic.Int64
	entered, proceed := make(chan struct{}, jobs), make(chan struct{})
	target := HandlerTarget{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := running.Add(1)
		for old := most.Load(); n > old && !most.CompareAndSwap(old, n); old = most.Load() {
		}
		entered <- struct{}{}
		<-proceed
		running.Add(-1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"a":1}`))
	})}
	for range jobs {
		if !m.Submit(Job{Route: "r", Request: Request{Method: "GET", URL: &url.URL{Path: "/x"}}, Target: target,
			Primary: Response{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"a":1}`)}}) {
			t.Fatal("submit refused")
		}
	}
	// Every job is on a worker; one is calling, the others wait for the slot.
	<-entered
	deadline := time.Now().Add(20 * time.Second)
	for m.busy.Load() != jobs {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d jobs on a worker", m.busy.Load(), jobs)
		}
		time.Sleep(time.Millisecond)
	}
	if n := running.Load(); n != 1 {
		t.Fatalf("%d shadow calls running under a cap of 1", n)
	}
	for i := range jobs {
		proceed <- struct{}{}
		if i < jobs-1 {
			<-entered
		}
	}
	drain(t, m)
	s := summaryOf(m, "r")
	if s.Compared != jobs || s.Matched != jobs || len(s.Skipped) != 0 || most.Load() != 1 {
		t.Errorf("summary %+v, at most %d at once; want %d matched, none skipped, 1 at once", s, most.Load(), jobs)
	}
}

func TestMirrorCostGuardAndModelMetrics(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1700000000, 0)}
	reg := prometheus.NewRegistry()
	m := newMirror(t, Options{Workers: 1, QueueSize: 16, Registerer: reg,
		Guard: NewGuard(GuardConfig{ModelCallsPerMinute: 2, Now: clk.Now})})
	target := HandlerTarget{Handler: chatApp(goodTokens, stdEncode)}
	primary := httptest.NewRecorder()
	chatApp(goodTokens, stdEncode).ServeHTTP(primary, httptest.NewRequest("GET", "/models", nil))
	for range 5 {
		m.Submit(Job{Route: "chat", Request: Request{Method: "GET", URL: &url.URL{Path: "/models"}},
			Primary: Response{Status: 200, Header: primary.Result().Header, Body: primary.Body.Bytes()}, Target: target, ModelCall: true})
	}
	drain(t, m)
	s := summaryOf(m, "chat")
	if s.Compared != 2 || s.Skipped[SkipRateLimited] != 3 {
		t.Errorf("summary %+v: want 2 compared, 3 rate limited", s)
	}
	if got := counterValue(m.mt.modelCalls.WithLabelValues("chat", "shadow")); got != 2 {
		t.Errorf("shadow model calls metric = %v, want 2", got)
	}
	if got := counterValue(m.mt.comparisons.WithLabelValues("chat", "match")); got != 2 {
		t.Errorf("comparisons{match} = %v, want 2", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"cutover_shadow_comparisons_total", "cutover_shadow_skips_total", "cutover_shadow_queue_depth",
		"cutover_shadow_duration_seconds", "cutover_shadow_model_calls_total", "cutover_shadow_inflight"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
}

func TestMirrorNoiseLearning(t *testing.T) {
	var seq atomic.Int64
	// Each run of a backend stamps a fresh id: the same backend differs from
	// itself on $.id, never on $.answer.
	backend := func(answer string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"req-%d","answer":%q}`, seq.Add(1), answer)
		})
	}
	primary, good, broken := backend("42"), backend("42"), backend("41")
	cmp := mustComparator(t, ComparatorConfig{Default: Rules{JSON: true}})
	m := newMirror(t, Options{Workers: 1, QueueSize: 64, Comparator: cmp, Noise: NewNoise(NoiseConfig{MinSamples: 5})})
	job := func(shadow http.Handler) Job {
		rec := httptest.NewRecorder()
		primary.ServeHTTP(rec, httptest.NewRequest("GET", "/q", nil))
		res := rec.Result()
		return Job{Route: "q", Request: Request{Method: "GET", URL: &url.URL{Path: "/q"}},
			Primary: Response{Status: 200, Header: res.Header, Body: rec.Body.Bytes()},
			Target:  HandlerTarget{Handler: shadow}, Replay: HandlerTarget{Handler: primary}}
	}
	for range 20 {
		m.Submit(job(good))
	}
	m.Submit(job(broken))
	drain(t, m)
	s := summaryOf(m, "q")
	// Jobs 1-4 run before the route has 5 noise samples: reported semantic.
	// From job 5 on, $.id is known noise. The broken job differs on $.answer too.
	if s.Compared != 21 || s.Semantic != 5 || s.Noise != 16 {
		t.Errorf("summary %+v: want 21 compared, 5 semantic, 16 noise", s)
	}
	fields := map[string]FieldStat{}
	for _, f := range m.Noise().Fields("q") {
		fields[f.Path] = f
	}
	if f := fields["$.id"]; !f.Noise || f.NoiseRate != 1 || f.RawRate != 1 {
		t.Errorf("$.id: %+v", f)
	}
	if f := fields["$.answer"]; f.Noise || f.NoiseRate != 0 || f.RawRate == 0 {
		t.Errorf("$.answer: %+v", f)
	}
	page, _ := m.Store().List(context.Background(), Query{Class: ClassSemantic, Limit: 1})
	last := page.Records[0]
	var sawAnswer, sawNoisyID bool
	for _, mm := range last.Mismatches {
		sawAnswer = sawAnswer || (mm.Path == "$.answer" && mm.Class == ClassSemantic)
		sawNoisyID = sawNoisyID || (mm.Path == "$.id" && mm.Noise)
	}
	if !sawAnswer || !sawNoisyID {
		t.Errorf("broken job mismatches %+v", last.Mismatches)
	}
}

func TestNoiseThresholds(t *testing.T) {
	n := NewNoise(NoiseConfig{MinSamples: 10, Relative: 0.5, Absolute: 0.1})
	for i := range 10 {
		var p []string
		if i < 2 { // the backend differs from itself 20% of the time
			p = []string{"$.items[3].ts"}
		}
		n.ObserveNoise("r", p)
	}
	for i := range 10 {
		var p []string
		if i < 3 { // shadow differs 30%: +0.1 abs, +50% rel: not clearly above noise
			p = []string{"$.items[0].ts"}
		}
		n.ObserveRaw("r", p)
	}
	if !n.IsNoise("r", "$.items[7].ts") {
		t.Error("30% raw vs 20% noise should be noise at these thresholds")
	}
	for range 10 {
		n.ObserveRaw("r", []string{"$.items[1].ts"})
	}
	// raw now 13/20 = 65% vs 20%: far above both thresholds.
	if n.IsNoise("r", "$.items[1].ts") {
		t.Error("65% raw vs 20% noise must be reported, not hidden as noise")
	}
	if n.IsNoise("other", "$.items[0].ts") {
		t.Error("noise leaked across routes")
	}
}

func counterValue(c prometheus.Counter) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return -1
	}
	return d.GetCounter().GetValue()
}

// A comparator swapped in (a config reload) applies to jobs submitted after
// the swap; jobs submitted before it, the one running and the one queued,
// finish under the rules they were submitted with.
func TestMirrorSetComparator(t *testing.T) {
	primary := chatApp(goodTokens, stdEncode)
	broken := chatApp(func(n int) int { return n + 3 }, stdEncode) // differs on $.usage.output_tokens only
	arrived, release := make(chan struct{}, 8), make(chan struct{})
	gated := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		broken.ServeHTTP(w, r)
	})
	job := func(msg string) Job {
		body := `{"message":"` + msg + `"}`
		rec := httptest.NewRecorder()
		primary.ServeHTTP(rec, httptest.NewRequest("POST", "/chat", strings.NewReader(body)))
		return Job{Route: "chat", Request: Request{Method: "POST", URL: &url.URL{Path: "/chat"}, Body: []byte(body)},
			Primary: Response{Status: 200, Header: rec.Result().Header, Body: rec.Body.Bytes()}, PrimarySide: SideLegacy,
			Target: HandlerTarget{Handler: gated}}
	}
	strict := mustComparator(t, ComparatorConfig{Default: Rules{JSON: true}})
	lenient := mustComparator(t, ComparatorConfig{Default: Rules{JSON: true, Ignore: []string{"$.usage"}}})
	m := newMirror(t, Options{Workers: 1, QueueSize: 8, Comparator: strict})

	if !m.Submit(job("running")) {
		t.Fatal("job refused")
	}
	select {
	case <-arrived: // the first job is in its shadow call
	case <-time.After(10 * time.Second):
		t.Fatal("the first shadow call never started")
	}
	if !m.Submit(job("queued")) {
		t.Fatal("job refused")
	}
	m.SetComparator(lenient)
	if !m.Submit(job("after")) {
		t.Fatal("job refused")
	}
	close(release)
	drain(t, m)

	page, err := m.Store().List(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Class{}
	for _, rec := range page.Records {
		got[rec.Request.Body.Text] = rec.Class
	}
	want := map[string]Class{`{"message":"running"}`: ClassSemantic, `{"message":"queued"}`: ClassSemantic}
	if s := summaryOf(m, "chat"); s.Compared != 3 || s.Semantic != 2 || s.Matched != 1 || !maps.Equal(got, want) {
		t.Errorf("summary %+v, records %v; want the two jobs submitted before the swap semantic, the one after matched", s, got)
	}
}

// A record the store cannot write is lost, so it is counted (and logged):
// here the diff file's directory is removed after the store opened.
func TestMirrorCountsStoreFailures(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "diffs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	store, err := OpenFileStore(filepath.Join(dir, "diffs.jsonl"), 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := newMirror(t, Options{Workers: 1, QueueSize: 4, Registerer: reg, Store: store})
	primary := httptest.NewRecorder()
	chatApp(func(n int) int { return n + 3 }, stdEncode).ServeHTTP(primary, httptest.NewRequest("GET", "/chat", nil))
	m.Submit(Job{Route: "chat", Request: Request{Method: "GET", URL: &url.URL{Path: "/chat"}},
		Primary: Response{Status: 200, Header: primary.Result().Header, Body: primary.Body.Bytes()},
		Target:  HandlerTarget{Handler: chatApp(goodTokens, stdEncode)}})
	drain(t, m)
	if s := summaryOf(m, "chat"); s.Semantic != 1 {
		t.Fatalf("summary %+v: want the one semantic mismatch", s)
	}
	if got := counterValue(m.mt.storeFails.WithLabelValues("chat")); got != 1 {
		t.Errorf("cutover_shadow_store_failures_total{route=chat} = %v, want 1", got)
	}
}
