package proxy

import (
	"bytes"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/cutover/cutover/handlers"
	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/testenv"
)

// Through the proxy at 0 %, the real legacy app (Flask under gunicorn, with
// Redis and the Bedrock stub) answers exactly as when called directly.
func TestLegacyGunicornPassThrough(t *testing.T) {
	redis := testenv.StartRedis(t)
	stub := testenv.StartStub(t, bedrockstub.Options{})
	legacy := testenv.StartLegacy(t, map[string]string{
		"REDIS_URL": redis.URL(), "BEDROCK_ENDPOINT_URL": stub,
		"CUTOVER_TEST_CLOCK": "1700000000.25", "CUTOVER_TEST_IDS": "1",
	})
	ts := startServer(t, strings.Replace(baseConfig(legacy.URL()), "  served_by_header: X-Cutover-Served-By\n", "", 1), nil)
	direct := legacy.Addr()
	proxied := strings.TrimPrefix(ts.URL, "http://")
	chat := `{"message":"Hello <b>&</b> \"world\" \u00e9 😀","conversation_id":"pt-%s"}`

	tests := []struct {
		name  string
		setup string // a request sent before each side's call, to reset state
		head  string
		body  string
		code  int // the status the legacy app answers
	}{
		{name: "health", head: "GET /health HTTP/1.1", code: 200},
		{name: "models", head: "GET /models HTTP/1.1", code: 200},
		{name: "HEAD models", head: "HEAD /models HTTP/1.1", code: 200},
		{name: "OPTIONS chat", head: "OPTIONS /chat HTTP/1.1", code: 200},
		{name: "unknown path", head: "GET /nope/%7E?x=%41 HTTP/1.1", code: 404},
		{name: "method not allowed", head: "DELETE /chat HTTP/1.1", code: 405},
		{name: "trailing slash", head: "GET /models/ HTTP/1.1", code: 404},
		{name: "double slash", head: "GET //models HTTP/1.1", code: 200},
		{name: "validation error", head: "POST /chat HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 15", body: `{"message": ""}`, code: 400},
		{name: "wrong content type", head: "POST /chat HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2", body: `{}`, code: 415},
		{name: "chat", setup: "DELETE /conversations/pt-chat HTTP/1.1",
			head: "POST /chat HTTP/1.1\r\nContent-Type: application/json", body: fmt.Sprintf(chat, "chat"), code: 200},
		{name: "chat without id sets the session cookie", head: "POST /chat HTTP/1.1\r\nContent-Type: application/json", body: `{"message":"new here"}`,
			setup: "DELETE /conversations/" + handlers.HashedID([]byte(`{"message":"new here"}`)) + " HTTP/1.1", code: 200},
		{name: "chat stream", setup: "DELETE /conversations/pt-stream HTTP/1.1",
			head: "POST /chat/stream HTTP/1.1\r\nContent-Type: application/json", body: fmt.Sprintf(chat, "stream"), code: 200},
		{name: "chat stream, chunked upload", setup: "DELETE /conversations/pt-chunked HTTP/1.1",
			head: "POST /chat/stream HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked", body: fmt.Sprintf(chat, "chunked"), code: 200},
		{name: "get conversation", head: "GET /conversations/pt-chat HTTP/1.1", code: 200},
		{name: "unknown conversation", head: "GET /conversations/never HTTP/1.1", code: 404},
		{name: "stub fault through legacy", head: "POST /chat HTTP/1.1\r\nContent-Type: application/json",
			body: `{"message":"[[stub-fault:validation]]","conversation_id":"pt-fault"}`, code: 502},
	}
	call := func(addr, head, body string) wireResponse {
		chunked := strings.Contains(head, "chunked")
		if body != "" && !chunked && !strings.Contains(head, "Content-Length") {
			head += fmt.Sprintf("\r\nContent-Length: %d", len(body))
		}
		method, _, _ := strings.Cut(head, " ")
		rs := roundTripRaw(t, addr, head+"\r\nHost: chatbot.example.com\r\nConnection: close\r\n\r\n", []byte(body), chunked, method)
		return rs[len(rs)-1]
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != "" {
				call(direct, tt.setup, "")
			}
			want := call(direct, tt.head, tt.body)
			if tt.setup != "" {
				call(direct, tt.setup, "")
			}
			got := call(proxied, tt.head, tt.body)
			if want.Code != tt.code {
				t.Errorf("legacy answered %d directly, the case expects %d: %q", want.Code, tt.code, want.Body)
			}
			if got.Code != want.Code {
				t.Errorf("status %d through the proxy, %d direct", got.Code, want.Code)
			}
			if !reflect.DeepEqual(comparableHeader(got.Header), comparableHeader(want.Header)) {
				t.Errorf("headers differ:\nproxy:  %v\ndirect: %v", comparableHeader(got.Header), comparableHeader(want.Header))
			}
			if !bytes.Equal(got.Body, want.Body) {
				t.Errorf("body differs:\nproxy:  %q\ndirect: %q", got.Body, want.Body)
			}
			if !slicesEqual(got.Encoding, want.Encoding) || got.Length != want.Length {
				t.Errorf("framing: %d %v through the proxy, %d %v direct", got.Length, got.Encoding, want.Length, want.Encoding)
			}
		})
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// The real native handlers behind the split, against the same Redis and
// stub as legacy: each user lands where its bucket says, and both
// backends answer.
func TestSplitWithRealBackends(t *testing.T) {
	redis := testenv.StartRedis(t)
	stub := testenv.StartStub(t, bedrockstub.Options{})
	legacy := testenv.StartLegacy(t, map[string]string{"REDIS_URL": redis.URL(), "BEDROCK_ENDPOINT_URL": stub})
	rc, err := handlers.NewRedisClient(redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	app, err := handlers.New(handlers.Config{SecretKey: testenv.LegacySecretKey}, handlers.Deps{Bedrock: testenv.BedrockClient(t, stub), Store: rc})
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.Replace(baseConfig(legacy.URL()), "    path: /models\n", "    path: /models\n    native_percent: 40\n", 1)
	ts := startServer(t, yaml, app)
	c := newClient(t)
	const n = 400
	native := 0
	seed := Seed("models")
	var firstBody []byte
	for i := range n {
		id := fmt.Sprintf("u%d", i)
		resp, body := do(t, c, "GET", ts.URL+"/models", "", map[string]string{"X-User-Id": id})
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", id, resp.StatusCode, body)
		}
		want := "legacy"
		if Bucket(seed, id) < 4000 {
			want = "native"
			native++
		}
		if got := resp.Header.Get("X-Cutover-Served-By"); got != want {
			t.Fatalf("%s served by %s, bucket says %s", id, got, want)
		}
		if firstBody == nil {
			firstBody = body
		}
	}
	if ok, mean, sd := within5Sigma(native, n, 0.4); !ok {
		t.Errorf("%d of %d native at 40 %%; want %.0f ± %.0f", native, n, mean, 5*sd)
	}
	_ = http.StatusOK
}
