package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/internal/bedrockhttp"
	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/testenv"
	"github.com/cutover/cutover/internal/tracing"
	"github.com/cutover/cutover/internal/tracing/otlptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestXRayExtract(t *testing.T) {
	const tid = "5759e988bd862e3fe1be46a994272793"
	tests := []struct {
		give        string
		wantParent  string // span id of the remote parent, "" for none
		wantSampled bool
	}{
		{give: "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1", wantParent: "53995c3f42cd8ad8", wantSampled: true},
		{give: "Root=1-5759e988-bd862e3fe1be46a994272793; Parent=53995c3f42cd8ad8; Sampled=0", wantParent: "53995c3f42cd8ad8"},
		{give: "Self=1-67891234-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1", wantParent: "53995c3f42cd8ad8", wantSampled: true},
		{give: "Root=1-5759e988-bd862e3fe1be46a994272793"},                                   // the ALB's: no parent
		{give: "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?"}, // undecided: no parent
		{give: "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"},
		{give: "Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8;Sampled=1"},
		{give: "Root=1-zz59e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"},
		{give: "garbage"},
	}
	for _, tt := range tests {
		ctx := tracing.XRay{}.Extract(context.Background(), propagation.HeaderCarrier{"X-Amzn-Trace-Id": {tt.give}})
		sc := trace.SpanContextFromContext(ctx)
		if tt.wantParent == "" {
			if sc.IsValid() {
				t.Errorf("%q: parent %v, want none", tt.give, sc)
			}
			continue
		}
		if sc.TraceID().String() != tid || sc.SpanID().String() != tt.wantParent || sc.IsSampled() != tt.wantSampled || !sc.IsRemote() {
			t.Errorf("%q: %s/%s sampled %v, want %s/%s sampled %v", tt.give, sc.TraceID(), sc.SpanID(), sc.IsSampled(), tid, tt.wantParent, tt.wantSampled)
		}
	}
}

func TestXRayInject(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("5759e988bd862e3fe1be46a994272793")
	sid, _ := trace.SpanIDFromHex("53995c3f42cd8ad8")
	for _, flags := range []trace.TraceFlags{trace.FlagsSampled, 0} {
		ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags}))
		h := propagation.HeaderCarrier{}
		tracing.XRay{}.Inject(ctx, h)
		want := "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=" + map[bool]string{true: "1", false: "0"}[flags.IsSampled()]
		if got := h.Get("X-Amzn-Trace-Id"); got != want {
			t.Errorf("injected %q, want %q", got, want)
		}
	}
	h := propagation.HeaderCarrier{}
	tracing.XRay{}.Inject(context.Background(), h)
	if len(h) != 0 {
		t.Errorf("injected %v without a span", h)
	}
}

// Off is nil, and nil does nothing: no wrapped transport, no hook.
func TestOff(t *testing.T) {
	tr, err := tracing.New(context.Background(), config.Tracing{}, nil)
	if err != nil || tr != nil {
		t.Fatalf("New without an endpoint: %v, %v; want nil, nil", tr, err)
	}
	base := http.DefaultTransport
	if tr.LegacyTransport(base) != base || tr.BedrockTransport(base) != base {
		t.Error("a nil Tracer wrapped a transport")
	}
	if tr.RedisHook() != nil {
		t.Error("a nil Tracer made a Redis hook")
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

// headerRecorder is a backend that records the headers of each request.
type headerRecorder struct {
	mu   sync.Mutex
	seen []http.Header
	next http.Handler
}

func (h *headerRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.seen = append(h.seen, r.Header.Clone())
	h.mu.Unlock()
	h.next.ServeHTTP(w, r)
}

func (h *headerRecorder) last() http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[len(h.seen)-1]
}

func start(t *testing.T, cfg config.Tracing) *tracing.Tracer {
	t.Helper()
	tr, err := tracing.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr
}

func byName(spans []otlptest.Span, name string) (otlptest.Span, bool) {
	for _, s := range spans {
		if s.Name == name {
			return s, true
		}
	}
	return otlptest.Span{}, false
}

// One request's spans, as a real OTLP/HTTP receiver decodes them: the
// server span under the caller's traceparent, the legacy round trip (which
// carries it on), a Bedrock call through the real SDK to the stub (which gets
// traceparent and X-Amzn-Trace-Id), Redis commands on a real Redis, and a
// linked span in a trace of its own.
func TestSpansReachTheReceiver(t *testing.T) {
	rcv := otlptest.Start(t)
	tr := start(t, config.Tracing{OTLPEndpoint: rcv.URL()})

	legacy := &headerRecorder{next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	legacySrv := httptest.NewServer(legacy)
	defer legacySrv.Close()
	stub := &headerRecorder{next: bedrockstub.New(bedrockstub.Options{})}
	stubSrv := httptest.NewServer(stub)
	defer stubSrv.Close()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.StartRedis(t).Addr()})
	defer rdb.Close()
	rdb.AddHook(tr.RedisHook())
	bt := &http.Transport{}
	defer bt.CloseIdleConnections()
	br := bedrockruntime.New(bedrockruntime.Options{
		Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""),
		BaseEndpoint: aws.String(stubSrv.URL), RetryMaxAttempts: 1,
		HTTPClient: bedrockhttp.Client(&http.Client{Transport: tr.BedrockTransport(bt)}),
	}, func(o *bedrockruntime.Options) { o.BearerAuthTokenProvider = nil; o.AuthSchemePreference = nil })

	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	in := httptest.NewRequest("POST", "/chat", nil)
	in.Header.Set("traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	in.Header.Set("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793")
	r, span := tr.StartRequest(in)

	lt := &http.Transport{}
	defer lt.CloseIdleConnections()
	out, _ := http.NewRequestWithContext(r.Context(), "GET", legacySrv.URL+"/models", nil)
	out.Header.Set("X-Amzn-Trace-Id", in.Header.Get("X-Amzn-Trace-Id")) // passed through as the proxy does
	out.Header.Set("traceparent", in.Header.Get("traceparent"))
	resp, err := tr.LegacyTransport(lt).RoundTrip(out)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	if err := rdb.RPush(r.Context(), "conversation:t", "x").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.LRange(r.Context(), "conversation:t", 0, -1).Err(); err != nil {
		t.Fatal(err)
	}
	model := "anthropic.claude-3-5-sonnet-20240620-v1:0"
	if _, err := br.InvokeModel(r.Context(), &bedrockruntime.InvokeModelInput{
		ModelId: aws.String(model), ContentType: aws.String("application/json"),
		Body: []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`),
	}); err != nil {
		t.Fatal(err)
	}
	_, shadow := tr.StartLinked(context.WithoutCancel(r.Context()), trace.SpanContext{}, "shadow models")
	shadow.End()
	tracing.EndRequest(span, "POST", tracing.Outcome{Route: "chat", Path: "/chat", Reason: "share", Backend: "legacy", Status: 200})
	if err := rdb.Get(context.Background(), "outside-any-trace").Err(); err != redis.Nil {
		t.Fatal(err)
	}
	if err := tr.Shutdown(context.Background()); err != nil { // flushes
		t.Fatal(err)
	}

	spans := rcv.Spans()
	if bad := rcv.Rejected(); len(bad) > 0 {
		t.Fatalf("receiver rejected %v", bad)
	}
	server, ok := byName(spans, "POST /chat")
	if !ok {
		t.Fatalf("no server span in %+v", spans)
	}
	if server.TraceID != clientTrace || server.ParentSpanID != clientSpan || server.Kind != "SERVER" || server.Service != "cutover" {
		t.Errorf("server span %+v: want trace %s, parent %s (W3C wins over X-Amzn-Trace-Id), kind SERVER, service cutover", server, clientTrace, clientSpan)
	}
	for k, v := range map[string]any{"cutover.route": "chat", "cutover.reason": "share", "cutover.backend": "legacy",
		"http.response.status_code": int64(200), "http.route": "/chat"} {
		if server.Attrs[k] != v {
			t.Errorf("server span %s = %v, want %v", k, server.Attrs[k], v)
		}
	}
	child := func(name string) otlptest.Span {
		s, ok := byName(spans, name)
		if !ok {
			t.Fatalf("no span %q in %+v", name, spans)
		}
		if s.TraceID != clientTrace || s.ParentSpanID != server.SpanID {
			t.Errorf("span %q in trace %s under %s, want a child of the server span %s", name, s.TraceID, s.ParentSpanID, server.SpanID)
		}
		return s
	}
	leg := child("legacy GET")
	if got, want := legacy.last().Get("traceparent"), "00-"+clientTrace+"-"+leg.SpanID+"-01"; got != want {
		t.Errorf("legacy got traceparent %q, want %q (the legacy span)", got, want)
	}
	if got := legacy.last().Get("X-Amzn-Trace-Id"); got != in.Header.Get("X-Amzn-Trace-Id") {
		t.Errorf("legacy got X-Amzn-Trace-Id %q, want the ALB's %q unchanged", got, in.Header.Get("X-Amzn-Trace-Id"))
	}
	child("redis RPUSH")
	child("redis LRANGE")
	if _, ok := byName(spans, "redis GET"); ok {
		t.Error("a Redis command outside any trace made a span")
	}
	bed := child("bedrock invoke")
	if bed.Kind != "CLIENT" || bed.Attrs["gen_ai.request.model"] != model || bed.Attrs["cutover.bedrock.attempt"] != int64(1) ||
		bed.Attrs["gen_ai.usage.input_tokens"] == nil || bed.Attrs["gen_ai.usage.output_tokens"] == nil {
		t.Errorf("bedrock span %+v: want CLIENT, the model, attempt 1 and token counts", bed)
	}
	sh := stub.last()
	if got, want := sh.Get("traceparent"), "00-"+clientTrace+"-"+bed.SpanID+"-01"; got != want {
		t.Errorf("Bedrock got traceparent %q, want %q", got, want)
	}
	if got, want := sh.Get("X-Amzn-Trace-Id"), "Root=1-"+clientTrace[:8]+"-"+clientTrace[8:]+";Parent="+bed.SpanID+";Sampled=1"; got != want {
		t.Errorf("Bedrock got X-Amzn-Trace-Id %q, want %q", got, want)
	}
	if !strings.Contains(sh.Get("Authorization"), "SignedHeaders=") || strings.Contains(sh.Get("Authorization"), "traceparent") {
		t.Errorf("Bedrock request's signature %q: trace headers must not be signed", sh.Get("Authorization"))
	}
	linked, ok := byName(spans, "shadow models")
	if !ok || linked.TraceID == clientTrace || linked.ParentSpanID != "" || len(linked.Links) != 1 ||
		linked.Links[0] != [2]string{clientTrace, server.SpanID} {
		t.Errorf("linked span %+v: want a trace of its own, linked to the server span %s/%s", linked, clientTrace, server.SpanID)
	}
}

// The ALB's X-Amzn-Trace-Id (a Root, no parent) becomes the trace id of the
// request's root span; sample_ratio applies to such requests, and a sampled
// parent is always followed.
func TestRootAndSampling(t *testing.T) {
	rcv := otlptest.Start(t)
	zero := 0.0
	tr := start(t, config.Tracing{OTLPEndpoint: rcv.URL() + "/v1/traces", SampleRatio: &zero})

	alb := httptest.NewRequest("GET", "/models", nil)
	alb.Header.Set("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793")
	_, span := tr.StartRequest(alb)
	if got := span.SpanContext().TraceID().String(); got != "5759e988bd862e3fe1be46a994272793" {
		t.Errorf("trace id %s, want the ALB's Root", got)
	}
	if span.SpanContext().IsSampled() {
		t.Error("sample_ratio 0 sampled a request without a parent")
	}
	span.End()

	parent := httptest.NewRequest("GET", "/models", nil)
	parent.Header.Set("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272794;Parent=53995c3f42cd8ad8;Sampled=1")
	_, span = tr.StartRequest(parent)
	tracing.EndRequest(span, "GET", tracing.Outcome{Route: "models", Path: "/models", Status: 502})
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := rcv.Spans()
	if len(spans) != 1 || spans[0].TraceID != "5759e988bd862e3fe1be46a994272794" || spans[0].ParentSpanID != "53995c3f42cd8ad8" || !spans[0].Error {
		t.Errorf("exported %+v, want only the sampled parent's request, as an error (502)", spans)
	}
}

func TestBadEndpoint(t *testing.T) {
	for _, e := range []string{"127.0.0.1:4318", "ftp://x:1", "http://"} {
		if tr, err := tracing.New(context.Background(), config.Tracing{OTLPEndpoint: e}, nil); err == nil {
			tr.Shutdown(context.Background())
			t.Errorf("endpoint %q accepted", e)
		}
	}
}
