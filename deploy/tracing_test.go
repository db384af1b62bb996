package deploy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/testenv"
	"github.com/cutover/cutover/internal/tracing/otlptest"
)

// recorder is an HTTP hop that records the headers of each request it
// passes on.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	seen []http.Header
}

func (h *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.seen = append(h.seen, r.Header.Clone())
	h.mu.Unlock()
	h.next.ServeHTTP(w, r)
}

// find returns the recorded headers for which ok holds.
func (h *recorder) find(ok func(http.Header) bool) []http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []http.Header
	for _, s := range h.seen {
		if ok(s) {
			out = append(out, s)
		}
	}
	return out
}

// tracingEnv is a real cutover process in front of real gunicorn, Redis and
// the stub, with a recording hop before legacy and before the stub, and an
// OTLP/HTTP receiver.
type tracingEnv struct {
	cut          *proc
	base, admin  string
	legacy, stub *recorder
	rcv          *otlptest.Receiver
	c            *http.Client
}

func startTracingEnv(t *testing.T, bin string, tracingOn bool) *tracingEnv {
	t.Helper()
	tmp := t.TempDir()
	redis := testenv.StartRedis(t)
	stub := bedrockstub.New(bedrockstub.Options{})
	e := &tracingEnv{stub: &recorder{next: stub}, rcv: otlptest.Start(t), c: newClient(t)}
	stubSrv := httptest.NewServer(e.stub)
	t.Cleanup(func() { stub.Close(); stubSrv.Close() })
	legacy := testenv.StartLegacy(t, map[string]string{"REDIS_URL": redis.URL(), "BEDROCK_ENDPOINT_URL": stubSrv.URL})
	lu, _ := url.Parse(legacy.URL())
	e.legacy = &recorder{next: httputil.NewSingleHostReverseProxy(lu)}
	legacySrv := httptest.NewServer(e.legacy)
	t.Cleanup(legacySrv.Close)

	extra := "override:\n  enabled: true\n  allow_without_token: true\nshadow:\n  store:\n    jsonl_path: \"-\"\n"
	if tracingOn {
		extra += "tracing:\n  otlp_endpoint: " + e.rcv.URL() + "\n"
	}
	e.cut, e.base, e.admin = startCutover(t, tmp, bin, e.c, cutoverSetup{
		LegacyURL: legacySrv.URL, RedisURL: redis.URL(), StubURL: stubSrv.URL, Extra: extra,
		Routes: func(name string) []string {
			if name == "get_conversation" {
				return []string{"shadow: {rate_percent: 100}"}
			}
			return nil
		},
	})
	return e
}

// stop SIGTERMs cutover and waits for it to exit (it flushes its spans first).
func (e *tracingEnv) stop(t *testing.T) {
	t.Helper()
	_ = syscall.Kill(e.cut.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-e.cut.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("cutover did not exit after SIGTERM:\n%s", e.cut.output())
	}
	if code := e.cut.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("cutover exited %d:\n%s", code, e.cut.output())
	}
}

func (e *tracingEnv) do(t *testing.T, method, path, body string, header map[string]string) {
	t.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	for k, v := range header {
		h[k] = v
	}
	resp, err := request(e.c, method, e.base+path, body, h)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d\n%s", method, path, resp.StatusCode, e.cut.output())
	}
}

// waitShadow waits until the route's shadow comparison has been counted.
func (e *tracingEnv) waitShadow(t *testing.T, route string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := e.c.Get(e.admin + "/metrics")
		if err == nil {
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(data), `cutover_shadow_comparisons_total{class="match",route="`+route+`"} 1`) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the shadow of %s was not compared within 20s:\n%s", route, e.cut.output())
}

const (
	clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan  = "00f067aa0ba902b7"
	albRoot     = "5759e988bd862e3fe1be46a994272793"
	albParent   = "53995c3f42cd8ad8"
)

func spanNamed(spans []otlptest.Span, name string, where func(otlptest.Span) bool) (otlptest.Span, bool) {
	for _, s := range spans {
		if s.Name == name && (where == nil || where(s)) {
			return s, true
		}
	}
	return otlptest.Span{}, false
}

// descends reports whether s is under ancestor in spans.
func descends(spans []otlptest.Span, s, ancestor otlptest.Span) bool {
	byID := map[string]otlptest.Span{}
	for _, x := range spans {
		byID[x.SpanID] = x
	}
	for p := s.ParentSpanID; p != ""; p = byID[p].ParentSpanID {
		if p == ancestor.SpanID {
			return true
		}
		if _, ok := byID[p]; !ok {
			return false
		}
	}
	return false
}

// A real `cutover serve` with tracing.otlp_endpoint set exports, over
// OTLP/HTTP to a receiver that decodes the protobuf: a server span per
// request (route, reason, backend, status) under the caller's traceparent
// or the ALB's X-Amzn-Trace-Id; the legacy round trip, whose traceparent
// legacy receives; the native handler with its Bedrock call (model, attempt,
// tokens; the stub receives traceparent and X-Amzn-Trace-Id) and its Redis
// commands; and a shadow call in a trace of its own linked to the request.
// With tracing off, nothing is exported and legacy receives the client's
// traceparent untouched.
func TestTracingEndToEnd(t *testing.T) {
	bin := buildCutover(t, repoRoot(t), t.TempDir())

	t.Run("on", func(t *testing.T) {
		e := startTracingEnv(t, bin, true)
		e.do(t, "GET", "/models", "", map[string]string{"traceparent": "00-" + clientTrace + "-" + clientSpan + "-01", "X-Cutover-Backend": "legacy"})
		e.do(t, "POST", "/chat", `{"message": "trace me", "conversation_id": "traced-1"}`, map[string]string{
			"X-Amzn-Trace-Id": "Root=1-" + albRoot[:8] + "-" + albRoot[8:] + ";Parent=" + albParent + ";Sampled=1", "X-Cutover-Backend": "native"})
		e.do(t, "GET", "/conversations/traced-1", "", nil)
		e.waitShadow(t, "get_conversation")
		e.stop(t)

		spans := e.rcv.Spans()
		if bad := e.rcv.Rejected(); len(bad) > 0 {
			t.Fatalf("the receiver rejected %v", bad)
		}
		// GET /models, forced to legacy, under the client's traceparent.
		models, ok := spanNamed(spans, "GET /models", nil)
		if !ok {
			t.Fatalf("no server span for GET /models in %+v", spans)
		}
		if models.TraceID != clientTrace || models.ParentSpanID != clientSpan || models.Kind != "SERVER" {
			t.Errorf("GET /models span %+v: want trace %s under %s", models, clientTrace, clientSpan)
		}
		for k, v := range map[string]any{"cutover.route": "models", "cutover.reason": "override", "cutover.backend": "legacy", "http.response.status_code": int64(200)} {
			if models.Attrs[k] != v {
				t.Errorf("GET /models span %s = %v, want %v", k, models.Attrs[k], v)
			}
		}
		leg, ok := spanNamed(spans, "legacy GET", func(s otlptest.Span) bool { return s.TraceID == clientTrace })
		if !ok || !descends(spans, leg, models) {
			t.Fatalf("no legacy span under GET /models: %+v", spans)
		}
		if got := e.legacy.find(func(h http.Header) bool { return h.Get("traceparent") == "00-"+clientTrace+"-"+leg.SpanID+"-01" }); len(got) != 1 {
			t.Errorf("legacy did not receive traceparent 00-%s-%s-01 (the legacy span)", clientTrace, leg.SpanID)
		}

		// POST /chat, forced to native, under the ALB's X-Amzn-Trace-Id.
		chat, ok := spanNamed(spans, "POST /chat", nil)
		if !ok {
			t.Fatalf("no server span for POST /chat in %+v", spans)
		}
		if chat.TraceID != albRoot || chat.ParentSpanID != albParent || chat.Attrs["cutover.backend"] != "native" {
			t.Errorf("POST /chat span %+v: want trace %s under %s, served by native", chat, albRoot, albParent)
		}
		under := func(name string) otlptest.Span {
			s, ok := spanNamed(spans, name, func(s otlptest.Span) bool { return s.TraceID == albRoot })
			if !ok || !descends(spans, s, chat) {
				t.Errorf("no span %q under POST /chat", name)
			}
			return s
		}
		under("native")
		bed := under("bedrock invoke")
		if bed.Attrs["gen_ai.request.model"] != "anthropic.claude-3-5-sonnet-20240620-v1:0" || bed.Attrs["cutover.bedrock.attempt"] != int64(1) ||
			bed.Attrs["gen_ai.usage.output_tokens"] == nil {
			t.Errorf("bedrock span attributes %v: want the model, attempt 1, token counts", bed.Attrs)
		}
		under("redis LRANGE")
		under("redis RPUSH")
		stubGot := e.stub.find(func(h http.Header) bool { return h.Get("traceparent") == "00-"+albRoot+"-"+bed.SpanID+"-01" })
		if len(stubGot) != 1 {
			t.Fatalf("Bedrock did not receive traceparent 00-%s-%s-01", albRoot, bed.SpanID)
		}
		if got, want := stubGot[0].Get("X-Amzn-Trace-Id"), "Root=1-"+albRoot[:8]+"-"+albRoot[8:]+";Parent="+bed.SpanID+";Sampled=1"; got != want {
			t.Errorf("Bedrock got X-Amzn-Trace-Id %q, want %q", got, want)
		}

		// GET /conversations/traced-1 and its shadow, linked.
		conv, ok := spanNamed(spans, "GET /conversations/<conversation_id>", nil)
		if !ok {
			t.Fatalf("no server span for GET /conversations/traced-1 in %+v", spans)
		}
		sh, ok := spanNamed(spans, "shadow get_conversation", nil)
		if !ok {
			t.Fatalf("no shadow span in %+v", spans)
		}
		if sh.TraceID == conv.TraceID || sh.ParentSpanID != "" || len(sh.Links) != 1 || sh.Links[0] != [2]string{conv.TraceID, conv.SpanID} {
			t.Errorf("shadow span %+v: want a trace of its own linked to %s/%s", sh, conv.TraceID, conv.SpanID)
		}
		if s, ok := spanNamed(spans, "redis LRANGE", func(s otlptest.Span) bool { return s.TraceID == sh.TraceID }); !ok || !descends(spans, s, sh) {
			t.Error("the shadow's native call made no Redis span in the shadow's trace")
		}
	})

	t.Run("off", func(t *testing.T) {
		e := startTracingEnv(t, bin, false)
		tp := "00-" + clientTrace + "-" + clientSpan + "-01"
		e.do(t, "GET", "/models", "", map[string]string{"traceparent": tp, "X-Cutover-Backend": "legacy"})
		e.do(t, "POST", "/chat", `{"message": "not traced"}`, map[string]string{"X-Cutover-Backend": "native"})
		e.stop(t)
		if got := e.legacy.find(func(h http.Header) bool { return h.Get("traceparent") == tp }); len(got) != 1 {
			t.Error("with tracing off, legacy did not receive the client's traceparent untouched")
		}
		if got := e.stub.find(func(h http.Header) bool { return h.Get("traceparent") != "" }); len(got) != 0 {
			t.Errorf("with tracing off, Bedrock received a traceparent: %v", got)
		}
		if spans := e.rcv.Spans(); len(spans) != 0 {
			t.Errorf("with tracing off, %d spans were exported", len(spans))
		}
	})
}
