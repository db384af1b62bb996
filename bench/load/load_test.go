package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeApp answers like the chatbot: /chat with usage, /chat/stream as SSE, GET /conversations/<id>.
type fakeApp struct {
	mu      sync.Mutex
	counts  map[string]int
	ids     map[string]bool
	users   map[string]bool
	latency time.Duration
	stream  string // body of every stream answer
	status  int    // non-zero: every /chat answers this
}

func (a *fakeApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Message        string `json:"message"`
		ConversationID string `json:"conversation_id"`
	}
	if r.Method == http.MethodPost {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Message == "" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
	}
	a.mu.Lock()
	a.counts[r.Method+" "+strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)[0]+pathTail(r.URL.Path)]++
	a.users[r.Header.Get("X-User-Id")] = true
	if body.ConversationID != "" {
		a.ids[body.ConversationID] = true
	}
	a.mu.Unlock()
	time.Sleep(a.latency)
	switch {
	case r.URL.Path == "/chat":
		if a.status != 0 {
			w.WriteHeader(a.status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"conversation_id":%q,"model":"m","reply":"hi","stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":5}}`+"\n", body.ConversationID)
	case r.URL.Path == "/chat/stream":
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, a.stream)
	case strings.HasPrefix(r.URL.Path, "/conversations/"):
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"conversation_id":"x","messages":[]}`+"\n")
	default:
		http.NotFound(w, r)
	}
}

func pathTail(p string) string {
	if p == "/chat/stream" {
		return "/stream"
	}
	return ""
}

const goodStream = "event: delta\ndata: {\"text\": \"hi\"}\n\nevent: delta\ndata: {\"text\": \" there\"}\n\n" +
	"event: done\ndata: {\"conversation_id\": \"c\", \"usage\": {\"input_tokens\": 3, \"output_tokens\": 5}, \"stop_reason\": \"end_turn\"}\n\n"

func newFake(latency time.Duration, stream string) *fakeApp {
	return &fakeApp{counts: map[string]int{}, ids: map[string]bool{}, users: map[string]bool{}, latency: latency, stream: stream}
}

func TestRunMixAndModelLatency(t *testing.T) {
	app := newFake(20*time.Millisecond, goodStream)
	srv := httptest.NewServer(app)
	defer srv.Close()
	res, err := Run(context.Background(), Config{
		BaseURL: srv.URL, Users: 8, Ramp: 100 * time.Millisecond, Duration: 1500 * time.Millisecond,
		TTFT: 10 * time.Millisecond, TPS: 1000, Salt: "t",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.OK < 100 {
		t.Fatalf("ok %d errors %d (%v), want >= 100 ok and no errors", res.OK, res.Errors, res.Kinds)
	}
	if res.Chat.Count+res.StreamLast.Count+res.Get.Count != res.OK || res.All.Count != res.OK {
		t.Errorf("per-op counts %d+%d+%d, all %d, ok %d: they must agree", res.Chat.Count, res.StreamLast.Count, res.Get.Count, res.All.Count, res.OK)
	}
	// 70/20/10 within a loose statistical bound (hundreds of draws).
	chatShare := float64(res.Chat.Count) / float64(res.OK)
	getShare := float64(res.Get.Count) / float64(res.OK)
	if chatShare < 0.55 || chatShare > 0.85 || getShare < 0.02 || getShare > 0.2 {
		t.Errorf("mix: chat %.2f get %.2f of %d, want about 0.7 and 0.1", chatShare, getShare, res.OK)
	}
	// Model latency of a chat = 10 ms + 5 tokens / 1000 tps = 15 ms; the fake takes 20 ms.
	if res.ChatOverModel.P50MS < 3 || res.ChatOverModel.P50MS > res.Chat.P50MS-14 {
		t.Errorf("chat p50 %.1f ms, over model %.1f ms: want latency minus 15 ms", res.Chat.P50MS, res.ChatOverModel.P50MS)
	}
	if res.StreamFirst.Count != res.StreamLast.Count || res.StreamFirst.Count == 0 {
		t.Errorf("stream first/last counts %d/%d", res.StreamFirst.Count, res.StreamLast.Count)
	}
	if res.RPS <= 0 || res.TheoreticalRPS <= 0 || res.ModelMeanMS <= 0 || res.ModelMeanMS > 15 {
		t.Errorf("rps %.0f theoretical %.0f model mean %.2f ms", res.RPS, res.TheoreticalRPS, res.ModelMeanMS)
	}
	app.mu.Lock()
	users, ids := len(app.users), len(app.ids)
	app.mu.Unlock()
	if users != 8 || ids != 8 {
		t.Errorf("saw %d identities and %d conversation ids, want 8 each (one per user)", users, ids)
	}
	if res.Unfinished > 8 {
		t.Errorf("unfinished %d: at most one per user", res.Unfinished)
	}
}

func TestRunCountsFailures(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		stream   string
		wantKind string
	}{
		{"status", http.StatusServiceUnavailable, goodStream, "status_503"},
		{"truncated stream", 0, "event: delta\ndata: {\"text\": \"hi\"}\n\n", "stream_truncated"},
		{"error event", 0, "event: error\ndata: {\"error\": \"x\", \"code\": \"bedrock_error\"}\n\n", "stream_error_event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := newFake(time.Millisecond, tt.stream)
			app.status = tt.status
			srv := httptest.NewServer(app)
			defer srv.Close()
			mode := ModeHoldStream
			if tt.status != 0 {
				mode = ModeHoldChat
			}
			res, err := Run(context.Background(), Config{BaseURL: srv.URL, Users: 2, Mode: mode, Duration: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if res.OK != 0 || res.Errors == 0 || res.Kinds[tt.wantKind] != res.Errors {
				t.Errorf("ok %d errors %d kinds %v, want only %s", res.OK, res.Errors, res.Kinds, tt.wantKind)
			}
			if res.ErrorRate != 1 {
				t.Errorf("error rate %v, want 1", res.ErrorRate)
			}
		})
	}
}

func TestRunTimeoutIsAnErrorButWindowEndIsNot(t *testing.T) {
	app := newFake(400*time.Millisecond, goodStream)
	srv := httptest.NewServer(app)
	defer srv.Close()
	res, err := Run(context.Background(), Config{BaseURL: srv.URL, Users: 3, Mode: ModeHoldChat, Duration: 900 * time.Millisecond, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Kinds["timeout"] == 0 {
		t.Errorf("ok %d kinds %v, want timeouts only", res.OK, res.Kinds)
	}
	res, err = Run(context.Background(), Config{BaseURL: srv.URL, Users: 3, Mode: ModeHoldChat, Duration: 200 * time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Unfinished != 3 || res.MaxOpen != 3 || res.OpenAtEnd != 3 {
		t.Errorf("errors %d unfinished %d max open %d open at end %d, want 0, 3, 3, 3", res.Errors, res.Unfinished, res.MaxOpen, res.OpenAtEnd)
	}
}

func TestConfigRejectsNonsense(t *testing.T) {
	for _, c := range []Config{
		{BaseURL: "http://127.0.0.1:1", Users: 0, Duration: time.Second},
		{BaseURL: "http://127.0.0.1:1", Users: 1},
		{BaseURL: "http://127.0.0.1:1", Users: 1, Duration: time.Second, ChatPct: 90, StreamPct: 20},
	} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("Run(%+v) accepted it", c)
		}
	}
}

func TestConversationIDIsValidForTheApp(t *testing.T) {
	id := conversationID("salt", 7)
	if len(id) != 36 || id != conversationID("salt", 7) || id == conversationID("salt", 8) {
		t.Errorf("conversationID = %q: want a stable, per-user uuid shape", id)
	}
	for _, r := range id {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			t.Fatalf("conversationID %q has %q, outside the app's [A-Za-z0-9_-]", id, r)
		}
	}
}
