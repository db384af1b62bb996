package proxy

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cutover/cutover/handlers"
	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/testenv"
)

// stallAfterSave is the real Redis client whose RPUSH (saving a turn) is
// applied, then holds its caller until released or its context ends: a
// native handler slow between saving the turn and answering.
type stallAfterSave struct {
	*redis.Client
	release chan struct{}
}

func (s *stallAfterSave) RPush(ctx context.Context, key string, values ...any) *redis.IntCmd {
	cmd := s.Client.RPush(ctx, key, values...)
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	return cmd
}

// native_timeout firing after the native side saved the turn neither cuts
// the answer (504) nor replays the request on legacy (which would save the
// turn again): the native answer is sent once it comes.
func TestNativeTimeoutAfterCommitNotReplayed(t *testing.T) {
	var legacyCalls atomic.Int64
	legacy := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		legacyCalls.Add(1)
		echoHandler("legacy")(w, r)
	}))
	rs := testenv.StartRedis(t)
	rc, err := handlers.NewRedisClient(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	store := &stallAfterSave{Client: rc, release: make(chan struct{})}
	app, err := handlers.New(handlers.Config{SecretKey: testenv.LegacySecretKey},
		handlers.Deps{Bedrock: testenv.BedrockClient(t, testenv.StartStub(t, bedrockstub.Options{})), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	yaml := `
listen:
  served_by_header: X-Cutover-Served-By
shutdown: {drain_delay: 1ms, timeout: 5s}
admin: {token: admin-secret}
legacy: {url: ` + legacy.URL + `}
routes:
  - name: chat
    path: /chat
    methods: [POST]
    native_percent: 100
    replayable: true
    breaker:
      native_timeout: 100ms
`
	ts := startServer(t, yaml, app)
	c := newClient(t)
	type result struct {
		resp *http.Response
		body []byte
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", ts.URL+"/chat", strings.NewReader(`{"message":"hello","conversation_id":"c1"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			done <- result{}
			return
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		done <- result{resp, []byte(b.String())}
	}()
	// The timer fires while the handler holds after saving; then it may go on.
	waitFor(t, func() bool { return strings.Contains(ts.Logs.String(), "native_timeout after the native side wrote") })
	close(store.release)
	got := <-done
	if got.resp == nil || got.resp.StatusCode != 200 || got.resp.Header.Get("X-Cutover-Served-By") != "native" ||
		!strings.Contains(string(got.body), `"conversation_id":"c1"`) {
		t.Fatalf("client got %+v %s, want native's 200", got.resp, got.body)
	}
	if n := legacyCalls.Load(); n != 0 {
		t.Errorf("legacy was asked %d times: the saved turn was replayed", n)
	}
	turns, err := rc.LRange(context.Background(), "conversation:c1", 0, -1).Result()
	if err != nil || len(turns) != 2 {
		t.Errorf("conversation holds %d turns (%v), want 2 (one question, one answer)", len(turns), err)
	}
}
