package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cutover/cutover/handlers"
	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/testenv"
)

// serve refuses to start without a session secret of its own: none at all,
// or the legacy app's public development key.
func TestServeRequiresSecretKey(t *testing.T) {
	tests := []struct {
		name, give string
	}{
		{"missing", ""},
		{"development key", "  secret_key: " + handlers.DevSecretKey + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeYAML(t, fmt.Sprintf("listen: {addr: %s}\nadmin: {addr: %s}\nlegacy: {url: http://127.0.0.1:1}\nnative:\n  redis_url: redis://127.0.0.1:1/0\n%s",
				freeAddr(t), freeAddr(t), tt.give))
			if code, out := serveRefused(t, path); code != 1 || !strings.Contains(out, "native.secret_key is required") {
				t.Errorf("serve exited %d, want 1 naming native.secret_key:\n%s", code, out)
			}
		})
	}
}

// serve never applies the legacy test hooks, whatever the environment says:
// a native /chat gets the real clock and a random conversation id.
func TestServeIgnoresTestHooks(t *testing.T) {
	rs := testenv.StartRedis(t)
	stub := testenv.StartStub(t, bedrockstub.Options{})
	const clock = "1700000000.25"
	t.Setenv("CUTOVER_TEST_CLOCK", clock)
	t.Setenv("CUTOVER_TEST_IDS", "1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	traffic, admin := freeAddr(t), freeAddr(t)
	path := writeYAML(t, fmt.Sprintf(`listen: {addr: %s}
admin: {addr: %s}
shutdown: {drain_delay: 1ms}
legacy: {url: http://127.0.0.1:1}
native:
  secret_key: hooks-test-secret
  aws_region: us-east-1
  bedrock_endpoint_url: %s
  redis_url: %s
routes:
  - name: chat
    path: /chat
    methods: [POST]
    native_percent: 100
`, traffic, admin, stub, rs.URL()))
	out := serveUntilEnd(t, path)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	waitStatus(t, c, "http://"+traffic+"/_cutover/health", 200)

	body := `{"message":"hello"}`
	resp, err := c.Post("http://"+traffic+"/chat", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var reply struct {
		ConversationID string `json:"conversation_id"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(data, &reply) != nil {
		t.Fatalf("POST /chat: %d %s\n%s", resp.StatusCode, data, out)
	}
	if hashed := handlers.HashedID([]byte(body)); reply.ConversationID == hashed {
		t.Errorf("conversation id %s is CUTOVER_TEST_IDS's hash of the body", reply.ConversationID)
	}
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	turns, err := rdb.LRange(context.Background(), "conversation:"+reply.ConversationID, 0, -1).Result()
	if err != nil || len(turns) != 2 {
		t.Fatalf("stored turns %q, %v", turns, err)
	}
	frozen := time.Unix(1700000000, 250_000_000).UTC().Format("2006-01-02T15:04:05")
	if strings.Contains(turns[0], frozen) {
		t.Errorf("turn stored at CUTOVER_TEST_CLOCK's time: %s", turns[0])
	}
}

// writeYAML writes a config file for a serve test and returns its path.
func writeYAML(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cutover.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// serveRefused runs cutover serve on the config at path, which must refuse
// to start: it returns the exit code and the output (bounded by 30s, after
// which a serve that did start is stopped).
func serveRefused(t *testing.T, path string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, []string{"serve", "-config", path}, &out, &out)
	return code, out.String()
}

// serveUntilEnd runs cutover serve on the config at path until the test
// ends, then checks it exited 0; it returns serve's log.
func serveUntilEnd(t *testing.T, path string) *lockedBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{}
	code := make(chan int, 1)
	go func() { code <- run(ctx, []string{"serve", "-config", path}, out, out) }()
	t.Cleanup(func() {
		cancel()
		if c := <-code; c != 0 {
			t.Errorf("serve exited %d:\n%s", c, out)
		}
	})
	return out
}
