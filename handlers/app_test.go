package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"

	"github.com/cutover/cutover/compat"
	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/conformance"
	"github.com/cutover/cutover/internal/testenv"
)

func wantHeader(t *testing.T, r response, key, want string) {
	t.Helper()
	if got := strings.Join(r.header.Values(key), "\n"); got != want {
		t.Errorf("header %s = %q, want %q", key, got, want)
	}
}

func wantNoHeader(t *testing.T, r response, key string) {
	t.Helper()
	if vs := r.header.Values(key); len(vs) > 0 {
		t.Errorf("header %s = %q, want none", key, vs)
	}
}

func wantStatusBody(t *testing.T, r response, status int, body string) {
	t.Helper()
	if r.status != status || r.body != body {
		t.Errorf("got %d %q\nwant %d %q", r.status, r.body, status, body)
	}
}

func TestHealthAndModels(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.do(t, http.MethodGet, "/health", nil, "")
	wantStatusBody(t, r, 200, "{\"status\":\"ok\"}\n")
	wantHeader(t, r, "Content-Type", "application/json")
	wantHeader(t, r, "Content-Length", "16")
	wantHeader(t, r, "Server", "gunicorn")
	wantNoHeader(t, r, "Vary")
	wantNoHeader(t, r, "Set-Cookie")

	r = h.do(t, http.MethodGet, "/models", nil, "")
	wantStatusBody(t, r, 200, `{"default":"anthropic.claude-3-5-sonnet-20240620-v1:0","models":[`+
		`{"id":"anthropic.claude-3-5-sonnet-20240620-v1:0","max_tokens":4096},`+
		`{"id":"anthropic.claude-3-5-haiku-20241022-v1:0","max_tokens":4096},`+
		`{"id":"anthropic.claude-3-haiku-20240307-v1:0","max_tokens":4096},`+
		`{"id":"anthropic.claude-3-opus-20240229-v1:0","max_tokens":2048}]}`+"\n")

	h2 := newHarness(t, harnessOpts{cfg: Config{ModelID: "anthropic.claude-3-opus-20240229-v1:0", Headers: http.Header{"Server": {"custom/1"}, "X-Extra": {"a", "b"}}}})
	r = h2.do(t, http.MethodGet, "/models", nil, "")
	if !strings.HasPrefix(r.body, `{"default":"anthropic.claude-3-opus-20240229-v1:0",`) {
		t.Errorf("models with another default: %q", r.body)
	}
	wantHeader(t, r, "Server", "custom/1")
	wantHeader(t, r, "X-Extra", "a\nb")
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New(Config{ModelID: "gpt-4", MaxMessageChars: -1}, Deps{})
	if err == nil {
		t.Fatal("New accepted an unknown model and no dependencies")
	}
	for _, want := range []string{`"gpt-4"`, "max message chars -1", "bedrock client", "redis store"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if !errors.Is(err, ErrMissingDep) {
		t.Errorf("error %v is not ErrMissingDep", err)
	}
}

func TestEndpoints(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	got := strings.Join(h.app.Endpoints(), ",")
	if want := "health,models,chat,chat_stream,get_conversation,delete_conversation"; got != want {
		t.Errorf("Endpoints() = %s, want %s", got, want)
	}
}

func validationBody(msg string) string {
	b, _ := compat.JSONBody(compat.Object{{Key: "code", Value: "validation_error"}, {Key: "error", Value: msg}})
	return string(b)
}

func TestChatValidation(t *testing.T) {
	h := newHarness(t, harnessOpts{cfg: Config{MaxMessageChars: 10}})
	const allModels = "model must be one of: anthropic.claude-3-5-sonnet-20240620-v1:0, anthropic.claude-3-5-haiku-20241022-v1:0, anthropic.claude-3-haiku-20240307-v1:0, anthropic.claude-3-opus-20240229-v1:0"
	tests := []struct {
		name string
		give string
		want string // error message; "" means accepted
	}{
		{"list", `[]`, "request body must be a JSON object"},
		{"string", `"hi"`, "request body must be a JSON object"},
		{"number", `1`, "request body must be a JSON object"},
		{"null", `null`, "request body must be a JSON object"},
		{"no message", `{}`, "message is required"},
		{"null message", `{"message": null}`, "message is required"},
		{"int message", `{"message": 1}`, "message must be a string"},
		{"bool message", `{"message": true}`, "message must be a string"},
		{"list message", `{"message": ["hi"]}`, "message must be a string"},
		{"empty message", `{"message": ""}`, "message must not be blank"},
		{"blank message", `{"message": " \t\n\u3000\u00a0\u001c\u2028"}`, "message must not be blank"},
		{"lone surrogate is not blank", `{"message": "\ud800", "conversation_id": "c1"}`, ""},
		{"zero width space is not blank", `{"message": "\u200b", "conversation_id": "c1"}`, ""},
		{"10 code points", `{"message": "😀😀😀😀😀é\ud800\udc00abc", "conversation_id": "c1"}`, ""},
		{"11 code points", `{"message": "😀😀😀😀😀éé\ud800\ud800ab", "conversation_id": "c1"}`, "message must be at most 10 characters"},
		{"too long", `{"message": "aaaaaaaaaaa"}`, "message must be at most 10 characters"},
		{"message checked before conversation", `{"message": 1, "conversation_id": 1}`, "message must be a string"},
		{"int conversation", `{"message": "hi", "conversation_id": 5}`, "conversation_id must be a string"},
		{"empty conversation", `{"message": "hi", "conversation_id": ""}`, "conversation_id must be 1-64 characters of letters, digits, '_' or '-'"},
		{"bad conversation", `{"message": "hi", "conversation_id": "a b"}`, "conversation_id must be 1-64 characters of letters, digits, '_' or '-'"},
		{"non-ascii conversation", `{"message": "hi", "conversation_id": "é"}`, "conversation_id must be 1-64 characters of letters, digits, '_' or '-'"},
		{"65 char conversation", `{"message": "hi", "conversation_id": "` + strings.Repeat("a", 65) + `"}`, "conversation_id must be 1-64 characters of letters, digits, '_' or '-'"},
		{"64 char conversation", `{"message": "hi", "conversation_id": "` + strings.Repeat("a", 64) + `"}`, ""},
		{"null conversation", `{"message": "hi", "conversation_id": null, "max_tokens": 0}`, "max_tokens must be between 1 and 4096"},
		{"unknown model", `{"message": "hi", "conversation_id": "c1", "model": "gpt-4"}`, allModels},
		{"int model", `{"message": "hi", "conversation_id": "c1", "model": 5}`, allModels},
		{"bool temperature", `{"message": "hi", "conversation_id": "c1", "temperature": true}`, "temperature must be a number"},
		{"string temperature", `{"message": "hi", "conversation_id": "c1", "temperature": "0.5"}`, "temperature must be a number"},
		{"high temperature", `{"message": "hi", "conversation_id": "c1", "temperature": 1.5}`, "temperature must be between 0 and 1"},
		{"negative temperature", `{"message": "hi", "conversation_id": "c1", "temperature": -0.1}`, "temperature must be between 0 and 1"},
		{"NaN temperature", `{"message": "hi", "conversation_id": "c1", "temperature": NaN}`, "temperature must be between 0 and 1"},
		{"infinite temperature", `{"message": "hi", "conversation_id": "c1", "temperature": 1e400}`, "temperature must be between 0 and 1"},
		{"big int temperature", `{"message": "hi", "conversation_id": "c1", "temperature": 100000000000000000000000}`, "temperature must be between 0 and 1"},
		{"int temperature", `{"message": "hi", "conversation_id": "c1", "temperature": 1}`, ""},
		{"negative zero temperature", `{"message": "hi", "conversation_id": "c1", "temperature": -0.0}`, ""},
		{"bool max_tokens", `{"message": "hi", "conversation_id": "c1", "max_tokens": false}`, "max_tokens must be an integer"},
		{"float max_tokens", `{"message": "hi", "conversation_id": "c1", "max_tokens": 5.0}`, "max_tokens must be an integer"},
		{"exponent max_tokens", `{"message": "hi", "conversation_id": "c1", "max_tokens": 1e2}`, "max_tokens must be an integer"},
		{"zero max_tokens", `{"message": "hi", "conversation_id": "c1", "max_tokens": 0}`, "max_tokens must be between 1 and 4096"},
		{"huge max_tokens", `{"message": "hi", "conversation_id": "c1", "max_tokens": 1000000000000000000000000000000}`, "max_tokens must be between 1 and 4096"},
		{"max_tokens over opus", `{"message": "hi", "conversation_id": "c1", "model": "anthropic.claude-3-opus-20240229-v1:0", "max_tokens": 2049}`, "max_tokens must be at most 2048 for model anthropic.claude-3-opus-20240229-v1:0"},
		{"max_tokens at opus limit", `{"message": "hi", "conversation_id": "c1", "model": "anthropic.claude-3-opus-20240229-v1:0", "max_tokens": 2048}`, ""},
		{"duplicate key last wins", `{"message": 1, "message": "hi", "conversation_id": "c1"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/chat", "/chat/stream"} {
				r := h.postJSON(t, path, tt.give)
				if tt.want == "" {
					if r.status != 200 {
						t.Errorf("%s: got %d %s, want 200", path, r.status, r.body)
					}
					continue
				}
				wantStatusBody(t, r, 400, validationBody(tt.want))
				wantHeader(t, r, "Content-Type", "application/json")
				wantNoHeader(t, r, "Vary")
			}
		})
	}
}

func TestChatRequestBodyErrors(t *testing.T) {
	h := newHarness(t, harnessOpts{cfg: Config{MaxContentLength: 64}})
	page415 := string(compat.ErrorPage(415, compat.JSONMediaTypeDescription))
	page400 := string(compat.ErrorPage(400, compat.DefaultDescription(400)))
	page413 := string(compat.ErrorPage(413, compat.DefaultDescription(413)))
	tests := []struct {
		name   string
		ct     string
		body   string
		status int
		page   string
	}{
		{"no content type", "", `{"message": "hi"}`, 415, page415},
		{"text/plain", "text/plain", `{"message": "hi"}`, 415, page415},
		{"form", "application/x-www-form-urlencoded", `message=hi`, 415, page415},
		{"empty body", "application/json", ``, 400, page400},
		{"malformed", "application/json", `{"message": `, 400, page400},
		{"trailing data", "application/json", `{} {}`, 400, page400},
		{"invalid utf-8", "application/json", "{\"message\": \"\xff\"}", 400, page400},
		{"too large", "application/json", `{"message": "` + strings.Repeat("x", 80) + `"}`, 413, page413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.ct != "" {
				hdr["Content-Type"] = tt.ct
			}
			r := h.do(t, http.MethodPost, "/chat", hdr, tt.body)
			wantStatusBody(t, r, tt.status, tt.page)
			wantHeader(t, r, "Content-Type", "text/html; charset=utf-8")
			wantHeader(t, r, "Content-Length", strconv.Itoa(len(tt.page)))
		})
	}
}

// storedTurn is json.dumps({"role", "content", "created_at"}) as the legacy app stores it.
func storedTurn(role, content string) string {
	b, err := compat.Dumps(compat.Object{{Key: "role", Value: role}, {Key: "content", Value: content}, {Key: "created_at", Value: "2026-11-26T21:00:00.250000+00:00"}}, compat.DumpOptions{})
	if err != nil {
		panic(err)
	}
	return string(b)
}

type chatReply struct {
	ConversationID string `json:"conversation_id"`
	Reply          string `json:"reply"`
	Model          string `json:"model"`
	StopReason     string `json:"stop_reason"`
	Usage          struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
}

func TestChatConversationFlow(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	body := `{"message": "Héllo <b>&</b> 😀"}`
	r := h.postJSON(t, "/chat", body)
	if r.status != 200 {
		t.Fatalf("chat: %d %s", r.status, r.body)
	}
	var rep chatReply
	if err := json.Unmarshal([]byte(r.body), &rep); err != nil {
		t.Fatalf("chat body %q: %v", r.body, err)
	}
	wantID := HashedID([]byte(body))
	if rep.ConversationID != wantID || rep.Model != DefaultModelID || rep.Reply == "" || rep.StopReason != "end_turn" || rep.Usage.OutputTokens == 0 {
		t.Errorf("chat reply %+v", rep)
	}
	// The body is jsonify's: sorted keys, ASCII only.
	want, _ := compat.JSONBody(compat.Object{
		{Key: "conversation_id", Value: wantID}, {Key: "reply", Value: rep.Reply}, {Key: "model", Value: DefaultModelID},
		{Key: "stop_reason", Value: "end_turn"}, {Key: "usage", Value: compat.Object{{Key: "input_tokens", Value: rep.Usage.InputTokens}, {Key: "output_tokens", Value: rep.Usage.OutputTokens}}},
	})
	if r.body != string(want) {
		t.Errorf("chat body\n got %q\nwant %q", r.body, want)
	}
	wantHeader(t, r, "Vary", "Cookie")
	cookies := r.header.Values("Set-Cookie")
	if len(cookies) != 1 || !strings.HasSuffix(cookies[0], "; HttpOnly; Path=/") {
		t.Fatalf("Set-Cookie = %q", cookies)
	}
	codec := &compat.SessionCodec{SecretKey: testenv.LegacySecretKey, Now: FixedClock(testClock)}
	value := strings.TrimPrefix(strings.Split(cookies[0], ";")[0], "session=")
	sess, err := codec.Decode(value)
	if err != nil {
		t.Fatalf("decode session %q: %v", value, err)
	}
	if v, _ := sess.Get("conversation_id"); v != wantID {
		t.Errorf("session conversation_id = %v, want %s", v, wantID)
	}

	key := "conversation:" + wantID
	got := h.lrange(t, key)
	wantTurns := []string{storedTurn("user", "Héllo <b>&</b> 😀"), storedTurn("assistant", rep.Reply)}
	if strings.Join(got, "\n") != strings.Join(wantTurns, "\n") {
		t.Errorf("stored turns\n got %q\nwant %q", got, wantTurns)
	}
	bodies, _ := h.rec.calls()
	wantBedrock := `{"anthropic_version": "bedrock-2023-05-31", "system": "` + DefaultSystemPrompt + `", "messages": [{"role": "user", "content": "H\u00e9llo <b>&</b> \ud83d\ude00"}], "max_tokens": 1024, "temperature": 0.7}`
	if len(bodies) != 1 || bodies[0] != wantBedrock {
		t.Errorf("bedrock body\n got %q\nwant %q", bodies, wantBedrock)
	}

	// The second turn comes back with the cookie: same conversation, history
	// sent, no new cookie, still Vary: Cookie.
	r2 := h.do(t, http.MethodPost, "/chat", map[string]string{"Content-Type": "application/json", "Cookie": "session=" + value}, `{"message": "again", "temperature": 0, "max_tokens": 5}`)
	if r2.status != 200 || !strings.Contains(r2.body, `"conversation_id":"`+wantID+`"`) {
		t.Fatalf("second turn: %d %s", r2.status, r2.body)
	}
	wantHeader(t, r2, "Vary", "Cookie")
	wantNoHeader(t, r2, "Set-Cookie")
	bodies, _ = h.rec.calls()
	wantBedrock2 := `{"anthropic_version": "bedrock-2023-05-31", "system": "` + DefaultSystemPrompt + `", "messages": [` +
		`{"role": "user", "content": "H\u00e9llo <b>&</b> \ud83d\ude00"}, {"role": "assistant", "content": ` + string(mustDumps(rep.Reply)) + `}, ` +
		`{"role": "user", "content": "again"}], "max_tokens": 5, "temperature": 0}`
	if len(bodies) != 2 || bodies[1] != wantBedrock2 {
		t.Errorf("second bedrock body\n got %q\nwant %q", bodies[len(bodies)-1], wantBedrock2)
	}
	if n := len(h.lrange(t, key)); n != 4 {
		t.Errorf("stored %d turns after two chats, want 4", n)
	}

	// GET returns them all with created_at; DELETE removes them.
	g := h.do(t, http.MethodGet, "/conversations/"+wantID, nil, "")
	if g.status != 200 || !strings.HasPrefix(g.body, `{"conversation_id":"`+wantID+`","messages":[{"content":"H\u00e9llo <b>&</b> \ud83d\ude00","created_at":"2026-11-26T21:00:00.250000+00:00","role":"user"},`) {
		t.Errorf("get conversation: %d %s", g.status, g.body)
	}
	wantNoHeader(t, g, "Vary")
	head := h.do(t, http.MethodHead, "/conversations/"+wantID, nil, "")
	if head.status != 200 || head.body != "" || head.header.Get("Content-Length") != strconv.Itoa(len(g.body)) {
		t.Errorf("HEAD conversation: %d %q %v", head.status, head.body, head.header)
	}
	d := h.do(t, http.MethodDelete, "/conversations/"+wantID, nil, "")
	wantStatusBody(t, d, 204, "")
	wantHeader(t, d, "Content-Type", "text/html; charset=utf-8")
	wantNoHeader(t, d, "Content-Length")
	notFound := "{\"code\":\"not_found\",\"error\":\"conversation not found\"}\n"
	wantStatusBody(t, h.do(t, http.MethodDelete, "/conversations/"+wantID, nil, ""), 404, notFound)
	wantStatusBody(t, h.do(t, http.MethodGet, "/conversations/"+wantID, nil, ""), 404, notFound)

	// An explicit conversation_id never touches the session.
	r3 := h.postJSON(t, "/chat", `{"message": "x", "conversation_id": "mine"}`)
	if r3.status != 200 || !strings.Contains(r3.body, `"conversation_id":"mine"`) {
		t.Errorf("explicit conversation: %d %s", r3.status, r3.body)
	}
	wantNoHeader(t, r3, "Vary")
	wantNoHeader(t, r3, "Set-Cookie")
}

func mustDumps(v any) []byte {
	b, err := compat.Dumps(v, compat.DumpOptions{})
	if err != nil {
		panic(err)
	}
	return b
}

func TestSessionCookies(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	codec := &compat.SessionCodec{SecretKey: testenv.LegacySecretKey, Now: FixedClock(testClock)}
	valid, err := codec.Encode(compat.Object{{Key: "conversation_id", Value: "from-cookie"}})
	if err != nil {
		t.Fatal(err)
	}
	old := &compat.SessionCodec{SecretKey: testenv.LegacySecretKey, Now: FixedClock(testClock - 32*24*3600)}
	expired, err := old.Encode(compat.Object{{Key: "conversation_id", Value: "from-cookie"}})
	if err != nil {
		t.Fatal(err)
	}
	other := &compat.SessionCodec{SecretKey: "another-secret", Now: FixedClock(testClock)}
	foreign, err := other.Encode(compat.Object{{Key: "conversation_id", Value: "from-cookie"}})
	if err != nil {
		t.Fatal(err)
	}
	tampered := conformance.Tamper(valid)
	body := `{"message": "cookie test"}`
	fresh := HashedID([]byte(body))
	tests := []struct {
		name      string
		cookie    string
		wantID    string
		newCookie bool
	}{
		{"absent", "", fresh, true},
		{"valid", valid, "from-cookie", false},
		{"tampered", tampered, fresh, true},
		{"signed with another key", foreign, fresh, true},
		{"expired", expired, fresh, true},
		{"garbage", "not-a-cookie", fresh, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"Content-Type": "application/json"}
			if tt.cookie != "" {
				hdr["Cookie"] = "session=" + tt.cookie
			}
			r := h.do(t, http.MethodPost, "/chat", hdr, body)
			if r.status != 200 || !strings.Contains(r.body, `"conversation_id":"`+tt.wantID+`"`) {
				t.Fatalf("got %d %s, want conversation %s", r.status, r.body, tt.wantID)
			}
			wantHeader(t, r, "Vary", "Cookie")
			if got := len(r.header.Values("Set-Cookie")) == 1; got != tt.newCookie {
				t.Errorf("Set-Cookie %q, want new cookie: %v", r.header.Values("Set-Cookie"), tt.newCookie)
			}
			// A route that never touches the session ignores the cookie.
			g := h.do(t, http.MethodGet, "/health", map[string]string{"Cookie": "session=" + tt.cookie}, "")
			wantNoHeader(t, g, "Vary")
			wantNoHeader(t, g, "Set-Cookie")
		})
	}
}

func TestRouting(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	page404 := string(compat.ErrorPage(404, compat.DefaultDescription(404)))
	page405 := string(compat.ErrorPage(405, compat.DefaultDescription(405)))
	tests := []struct {
		method, path string
		status       int
		body         string
		allow        string
	}{
		{"GET", "/nope", 404, page404, ""},
		{"GET", "/health/", 404, page404, ""},
		{"GET", "/conversations/", 404, page404, ""},
		{"GET", "/conversations/a/b", 404, page404, ""},
		{"GET", "/static/app.js", 404, page404, ""},
		{"POST", "/health", 405, page405, "GET, HEAD, OPTIONS"},
		{"GET", "/chat", 405, page405, "OPTIONS, POST"},
		{"PUT", "/conversations/x", 405, page405, "DELETE, GET, HEAD, OPTIONS"},
		{"OPTIONS", "/chat/stream", 200, "", "OPTIONS, POST"},
		{"OPTIONS", "/conversations/x", 200, "", "DELETE, GET, HEAD, OPTIONS"},
		{"OPTIONS", "/static/x", 200, "", "GET, HEAD, OPTIONS"},
		{"HEAD", "/health", 200, "", ""},
		{"HEAD", "/nope", 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := h.do(t, tt.method, tt.path, nil, "")
			wantStatusBody(t, r, tt.status, tt.body)
			if tt.allow != "" {
				wantHeader(t, r, "Allow", tt.allow)
			}
			wantHeader(t, r, "Server", "gunicorn")
		})
	}
	head := h.do(t, http.MethodHead, "/health", nil, "")
	wantHeader(t, head, "Content-Length", "16")
	wantHeader(t, head, "Content-Type", "application/json")
}

func TestBedrockErrors(t *testing.T) {
	h := newHarness(t, harnessOpts{cfg: Config{BedrockTimeout: 300 * time.Millisecond}})
	throttled := "{\"code\":\"throttled\",\"error\":\"the model is busy, please retry shortly\"}\n"
	failed := "{\"code\":\"bedrock_error\",\"error\":\"the model could not answer, please retry\"}\n"
	tests := []struct {
		fault  string
		status int
		body   string
	}{
		{bedrockstub.FaultThrottle, 429, throttled},
		{bedrockstub.FaultUnavailable, 502, failed},
		{bedrockstub.FaultModelTimeout, 502, failed},
		{bedrockstub.FaultValidation, 502, failed},
		{bedrockstub.FaultStreamError, 502, failed},
		{bedrockstub.FaultHang, 502, failed},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			r := h.postJSON(t, "/chat", `{"message": "hi [[stub-fault:`+tt.fault+`]]"}`)
			wantStatusBody(t, r, tt.status, tt.body)
			if tt.status == 429 {
				wantHeader(t, r, "Retry-After", "1")
			} else {
				wantNoHeader(t, r, "Retry-After")
			}
			// The session was already set when Bedrock failed: Flask still saves it.
			wantHeader(t, r, "Vary", "Cookie")
			if len(r.header.Values("Set-Cookie")) != 1 {
				t.Errorf("Set-Cookie = %q", r.header.Values("Set-Cookie"))
			}
			if tt.fault != bedrockstub.FaultStreamError {
				s := h.postJSON(t, "/chat/stream", `{"message": "hi [[stub-fault:`+tt.fault+`]]", "conversation_id": "c"}`)
				wantStatusBody(t, s, tt.status, tt.body)
			}
		})
	}
	if keys, _ := h.rdb.Keys(context.Background(), "*").Result(); len(keys) != 0 {
		t.Errorf("failed chats stored %v", keys)
	}
}

// A permanent session (only a cookie signed with the key can carry one) is
// refreshed on every response, whatever the route, as Flask does with
// SESSION_REFRESH_EACH_REQUEST.
func TestPermanentSessionRefreshed(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	codec := &compat.SessionCodec{SecretKey: testenv.LegacySecretKey, Now: FixedClock(testClock)}
	perm, err := codec.Encode(compat.Object{{Key: "_permanent", Value: true}, {Key: "conversation_id", Value: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ method, path string }{{"GET", "/health"}, {"GET", "/nope"}, {"OPTIONS", "/chat"}, {"POST", "/health"}} {
		r := h.do(t, tt.method, tt.path, map[string]string{"Cookie": "session=" + perm}, "")
		wantHeader(t, r, "Vary", "Cookie")
		wantHeader(t, r, "Set-Cookie", "session="+perm+"; Expires="+compat.HTTPDate(FixedClock(testClock)().Add(31*24*time.Hour))+"; HttpOnly; Path=/")
	}
}

// TestBedrockMaxAttempts: BEDROCK_MAX_ATTEMPTS counts every attempt, the
// first included, as botocore's total_max_attempts does.
func TestBedrockMaxAttempts(t *testing.T) {
	log := &conformance.StubLog{}
	stub := bedrockstub.New(bedrockstub.Options{})
	srv := httptest.NewServer(log.Wrap(stub))
	t.Cleanup(func() {
		stub.Close()
		srv.Close()
	})
	for _, attempts := range []int{1, 2} {
		client, err := NewBedrockClient(context.Background(), BedrockOptions{
			EndpointURL: srv.URL,
			MaxAttempts: attempts,
			Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
		})
		if err != nil {
			t.Fatal(err)
		}
		closeIdle(t, client)
		_, err = client.InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{
			ModelId: aws.String(DefaultModelID),
			Body:    []byte(`{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": [{"role": "user", "content": "[[stub-fault:unavailable]]"}]}`),
		})
		if err == nil {
			t.Fatal("the unavailable fault did not fail the call")
		}
		if got := len(log.Take()); got != attempts {
			t.Errorf("MaxAttempts %d: the stub got %d requests", attempts, got)
		}
	}
}
