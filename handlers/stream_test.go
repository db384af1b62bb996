package handlers

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"

	"github.com/cutover/cutover/compat"
	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/testenv"
)

// sseEvent is one parsed server-sent event.
type sseEvent struct{ name, data string }

func parseSSE(t *testing.T, body string) []sseEvent {
	t.Helper()
	if !strings.HasSuffix(body, "\n\n") {
		t.Fatalf("SSE body does not end with a blank line: %q", body)
	}
	var out []sseEvent
	for _, block := range strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		name, data, ok := strings.Cut(block, "\n")
		if !ok || !strings.HasPrefix(name, "event: ") || !strings.HasPrefix(data, "data: ") || strings.Contains(data, "\n") {
			t.Fatalf("malformed SSE block %q", block)
		}
		out = append(out, sseEvent{strings.TrimPrefix(name, "event: "), strings.TrimPrefix(data, "data: ")})
	}
	return out
}

// deltaText joins the text of the delta events, checking each data line is
// json.dumps({"text": ...}) with Python's separators.
func deltaText(t *testing.T, events []sseEvent) string {
	t.Helper()
	var b strings.Builder
	for _, ev := range events {
		if ev.name != "delta" {
			continue
		}
		var d struct{ Text string }
		if err := json.Unmarshal([]byte(ev.data), &d); err != nil {
			t.Fatalf("delta %q: %v", ev.data, err)
		}
		if want := `{"text": ` + string(mustDumps(d.Text)) + `}`; ev.data != want {
			t.Errorf("delta data %q, want %q", ev.data, want)
		}
		b.WriteString(d.Text)
	}
	return b.String()
}

func TestChatStream(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	body := `{"message": "stream <me> ✨", "temperature": 0.25}`
	r := h.postJSON(t, "/chat/stream", body)
	if r.status != 200 {
		t.Fatalf("stream: %d %s", r.status, r.body)
	}
	wantHeader(t, r, "Content-Type", "text/event-stream; charset=utf-8")
	wantNoHeader(t, r, "Content-Length")
	wantHeader(t, r, "Vary", "Cookie")
	if len(r.header.Values("Set-Cookie")) != 1 {
		t.Errorf("Set-Cookie = %q", r.header.Values("Set-Cookie"))
	}
	events := parseSSE(t, r.body)
	if len(events) < 3 {
		t.Fatalf("events %+v", events)
	}
	text := deltaText(t, events)
	last := events[len(events)-1]
	id := HashedID([]byte(body))
	if last.name != "done" || !strings.HasPrefix(last.data, `{"conversation_id": "`+id+`", "usage": {"input_tokens": `) || !strings.HasSuffix(last.data, `}, "stop_reason": "end_turn"}`) {
		t.Errorf("last event %+v", last)
	}
	got := h.lrange(t, "conversation:"+id)
	want := []string{storedTurn("user", "stream <me> ✨"), storedTurn("assistant", text)}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stored\n got %q\nwant %q", got, want)
	}
	bodies, _ := h.rec.calls()
	if wantBody := `{"anthropic_version": "bedrock-2023-05-31", "system": "` + DefaultSystemPrompt + `", "messages": [{"role": "user", "content": "stream <me> \u2728"}], "max_tokens": 1024, "temperature": 0.25}`; len(bodies) != 1 || bodies[0] != wantBody {
		t.Errorf("bedrock body %q, want %q", bodies, wantBody)
	}
}

func TestChatStreamError(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.postJSON(t, "/chat/stream", `{"message": "x [[stub-fault:stream-error]]", "conversation_id": "se"}`)
	if r.status != 200 {
		t.Fatalf("stream: %d %s", r.status, r.body)
	}
	events := parseSSE(t, r.body)
	last := events[len(events)-1]
	if last.name != "error" || last.data != `{"error": "the model stream failed", "code": "bedrock_error"}` {
		t.Errorf("last event %+v", last)
	}
	if deltaText(t, events) == "" {
		t.Errorf("no delta before the stream error: %+v", events)
	}
	if n := len(h.lrange(t, "conversation:se")); n != 0 {
		t.Errorf("a failed stream stored %d turns", n)
	}
}

func TestRedisDown(t *testing.T) {
	rs := testenv.StartRedis(t)
	// 10 tokens a second: Redis is down well before the stream ends.
	h := newHarness(t, harnessOpts{redis: rs, stub: bedrockstub.Options{TokensPerSecond: 10}})
	unavailable := "{\"code\":\"store_unavailable\",\"error\":\"conversation store unavailable\"}\n"

	// The store fails after the stream started: the error is reported in-band.
	resp, err := http.Post(h.srv.URL+"/chat/stream", "application/json", strings.NewReader(`{"message": "late failure", "conversation_id": "late"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || first != "event: delta\n" {
		t.Fatalf("first line %q, %v", first, err)
	}
	rs.Stop()
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	events := parseSSE(t, first+string(rest))
	if last := events[len(events)-1]; last.name != "error" || last.data != `{"error": "conversation store unavailable", "code": "store_unavailable"}` {
		t.Errorf("last event %+v", last)
	}

	for _, path := range []string{"/chat", "/chat/stream"} {
		r := h.postJSON(t, path, `{"message": "hi"}`)
		wantStatusBody(t, r, 503, unavailable)
		wantHeader(t, r, "Vary", "Cookie")
		if len(r.header.Values("Set-Cookie")) != 1 {
			t.Errorf("%s: Set-Cookie = %q", path, r.header.Values("Set-Cookie"))
		}
	}
	wantStatusBody(t, h.do(t, http.MethodGet, "/conversations/x", nil, ""), 503, unavailable)
	wantStatusBody(t, h.do(t, http.MethodDelete, "/conversations/x", nil, ""), 503, unavailable)
	wantStatusBody(t, h.do(t, http.MethodGet, "/health", nil, ""), 200, "{\"status\":\"ok\"}\n")

	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	// go-redis probes a server it failed to dial once a second.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := h.postJSON(t, "/chat", `{"message": "hi", "conversation_id": "back"}`)
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5s after Redis came back: %d %s", r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestUnreadableHistory(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ctx := context.Background()
	page500 := string(compat.ErrorPage(500, compat.DefaultDescription(500)))
	h.rdb.RPush(ctx, "conversation:bad", `{"role": "user"}`)
	h.rdb.RPush(ctx, "conversation:notjson", `nope`)
	h.rdb.Set(ctx, "conversation:string", "x", 0)
	for _, id := range []string{"bad", "notjson", "string"} {
		wantStatusBody(t, h.postJSON(t, "/chat", `{"message": "hi", "conversation_id": "`+id+`"}`), 500, page500)
		wantStatusBody(t, h.do(t, http.MethodGet, "/conversations/"+id, nil, ""), 500, page500)
	}
	bodies, _ := h.rec.calls()
	if len(bodies) != 0 {
		t.Errorf("Bedrock called despite unreadable history: %q", bodies)
	}
}

func TestDryRun(t *testing.T) {
	h := newHarness(t, harnessOpts{dryRun: true})
	ctx := context.Background()
	h.rdb.RPush(ctx, "conversation:keep", storedTurn("user", "q"), storedTurn("assistant", "a"))

	r := h.postJSON(t, "/chat", `{"message": "dry", "conversation_id": "keep"}`)
	if r.status != 200 {
		t.Fatalf("dry chat: %d %s", r.status, r.body)
	}
	s := h.postJSON(t, "/chat/stream", `{"message": "dry", "conversation_id": "keep"}`)
	if events := parseSSE(t, s.body); events[len(events)-1].name != "done" {
		t.Errorf("dry stream: %+v", events)
	}
	d := h.do(t, http.MethodDelete, "/conversations/keep", nil, "")
	wantStatusBody(t, d, 204, "")
	wantStatusBody(t, h.do(t, http.MethodDelete, "/conversations/none", nil, ""), 404, "{\"code\":\"not_found\",\"error\":\"conversation not found\"}\n")
	g := h.do(t, http.MethodGet, "/conversations/keep", nil, "")
	if g.status != 200 {
		t.Errorf("dry get: %d %s", g.status, g.body)
	}
	// History was read (the Bedrock body holds it) and nothing was written.
	bodies, _ := h.rec.calls()
	if len(bodies) != 2 || !strings.Contains(bodies[0], `{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "dry"}`) {
		t.Errorf("bedrock bodies %q", bodies)
	}
	if got := h.lrange(t, "conversation:keep"); len(got) != 2 {
		t.Errorf("dry run wrote: %q", got)
	}
	if keys, _ := h.rdb.Keys(ctx, "*").Result(); len(keys) != 1 {
		t.Errorf("keys after dry run: %v", keys)
	}
}

func TestStreamClientDisconnectCancelsBedrock(t *testing.T) {
	// One token every 2s: the whole reply would take about a minute, so a
	// call that ends within seconds was cancelled, not finished.
	h := newHarness(t, harnessOpts{stub: bedrockstub.Options{TokensPerSecond: 0.5}})
	conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	body := `{"message": "long answer please", "conversation_id": "gone"}`
	req := "POST /chat/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading until the first delta: %v", err)
		}
		if line == "event: delta\n" {
			break
		}
	}
	conn.Close()

	_, ctxs := h.rec.calls()
	if len(ctxs) != 1 {
		t.Fatalf("%d Bedrock calls", len(ctxs))
	}
	select {
	case <-ctxs[0].Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the Bedrock call was not cancelled after the client went away")
	}
	// The handler gives up without saving: wait for the server to be idle.
	h.srv.Close()
	if n := len(h.lrange(t, "conversation:gone")); n != 0 {
		t.Errorf("an abandoned stream stored %d turns", n)
	}
}

// panicky is a Bedrock whose calls panic: no real component panics on demand.
type panicky struct{ Bedrock }

func (panicky) InvokeModel(context.Context, *bedrockruntime.InvokeModelInput, ...func(*bedrockruntime.Options)) (*bedrockruntime.InvokeModelOutput, error) {
	panic("boom")
}

func TestPanicIsA500Page(t *testing.T) {
	h := newHarness(t, harnessOpts{wrap: func(b Bedrock) Bedrock { return panicky{b} }})
	r := h.postJSON(t, "/chat", `{"message": "hi"}`)
	wantStatusBody(t, r, 500, string(compat.ErrorPage(500, compat.DefaultDescription(500))))
	wantHeader(t, r, "Content-Type", "text/html; charset=utf-8")
	wantHeader(t, r, "Server", "gunicorn")
	// Flask saves the session on the 500 response too.
	wantHeader(t, r, "Vary", "Cookie")
	if len(r.header.Values("Set-Cookie")) != 1 {
		t.Errorf("Set-Cookie = %q", r.header.Values("Set-Cookie"))
	}
	// The server is still up.
	wantStatusBody(t, h.do(t, http.MethodGet, "/health", nil, ""), 200, "{\"status\":\"ok\"}\n")
}

// TestBedrockReadTimeout: a Bedrock that sends its headers and then stalls
// fails the call after the read timeout (botocore's read_timeout), for /chat
// (502) and for /chat/stream (the error event after what was sent).
func TestBedrockReadTimeout(t *testing.T) {
	release := make(chan struct{})
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if strings.HasSuffix(r.URL.Path, "/invoke-with-response-stream") {
			// A stream whose first event never comes.
			w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
			w.Header().Set("X-Amzn-Bedrock-Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
		} else {
			// A body cut short.
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"content": [`))
		}
		_ = http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() {
		close(release)
		stall.Close()
	})
	client, err := NewBedrockClient(context.Background(), BedrockOptions{
		EndpointURL: stall.URL,
		Timeout:     300 * time.Millisecond,
		MaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, client)
	rdb, err := NewRedisClient(sharedRedis.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	// A long handler-level stream timeout: the transport's read timeout must act alone.
	app, err := New(Config{BedrockTimeout: time.Hour}, Deps{Bedrock: client, Store: rdb, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	h := &harness{app: app, srv: srv, rdb: rdb}

	done := make(chan response, 2)
	go func() { done <- h.postJSON(t, "/chat", `{"message": "hi", "conversation_id": "stall"}`) }()
	go func() { done <- h.postJSON(t, "/chat/stream", `{"message": "hi", "conversation_id": "stall"}`) }()
	for range 2 {
		select {
		case r := <-done:
			switch r.status {
			case 502:
				wantStatusBody(t, r, 502, "{\"code\":\"bedrock_error\",\"error\":\"the model could not answer, please retry\"}\n")
			case 200:
				wantStatusBody(t, r, 200, "event: error\ndata: {\"error\": \"the model stream failed\", \"code\": \"bedrock_error\"}\n\n")
			default:
				t.Errorf("got %d %q", r.status, r.body)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a stalled Bedrock response was waited on past the read timeout")
		}
	}
}

// TestDeltaEvent checks the hand-composed delta event against sse(), which
// encodes the whole payload.
func TestDeltaEvent(t *testing.T) {
	st := &streamState{}
	for _, text := range []any{"", "hi", "caf\u00e9 \U0001F600 <&> \"q\" \\ \n\t\x00\x7f", "\xed\xa0\x80", "\xff", int64(5), 1.5, nil, true, compat.Object{{Key: "a", Value: "b"}}, []any{"x"}} {
		want := sse("delta", compat.Object{{Key: "text", Value: text}})
		if got := st.delta(text); string(got) != string(want) {
			t.Errorf("delta(%#v) = %q, want %q", text, got, want)
		}
	}
}
