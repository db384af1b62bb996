package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/cutover/cutover/internal/bedrockstub"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// groupGone reports whether no process is left in the process group led by pid.
func groupGone(pid int) bool {
	return errors.Is(syscall.Kill(-pid, 0), syscall.ESRCH)
}

func TestRedisStopStart(t *testing.T) {
	r := StartRedis(t)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	opts, err := redis.ParseURL(r.URL())
	if err != nil || opts.Addr != r.Addr() || opts.DB != 0 {
		t.Fatalf("URL() = %q: parsed %+v, %v", r.URL(), opts, err)
	}

	pid := r.proc.cmd.Process.Pid
	r.Stop()
	if !groupGone(pid) {
		t.Errorf("redis process group %d still has members after Stop", pid)
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping succeeded after Stop")
	}

	addr := r.Addr()
	if err := r.Start(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if r.Addr() != addr {
		t.Fatalf("restart moved Redis from %s to %s", addr, r.Addr())
	}
	got, err := c.Get(ctx, "k").Result()
	if !errors.Is(err, redis.Nil) {
		t.Fatalf("after restart get k = %q, %v; want an empty store (persistence is off)", got, err)
	}
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("POST %s: status %d, body %q is not JSON: %v", url, resp.StatusCode, raw, err)
	}
	return resp.StatusCode, got
}

func TestLegacyAgainstStubAndRedis(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	r := StartRedis(t)
	stubURL := StartStub(t, bedrockstub.Options{})
	l := StartLegacy(t, map[string]string{
		"REDIS_URL":            r.URL(),
		"BEDROCK_ENDPOINT_URL": stubURL,
		"GUNICORN_WORKERS":     "1",
	})

	status, got := post(t, l.URL()+"/chat", `{"message": "hello", "conversation_id": "testenv-1"}`)
	if status != http.StatusOK || got["conversation_id"] != "testenv-1" || got["reply"] == "" {
		t.Fatalf("chat: %d %v", status, got)
	}
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rc.Close()
	n, err := rc.LLen(context.Background(), "conversation:testenv-1").Result()
	if err != nil || n != 2 {
		t.Fatalf("stored turns = %d, %v; want 2", n, err)
	}

	// Graceful stop: the whole group goes away, then a restart serves on the same port.
	pid := l.proc.cmd.Process.Pid
	l.Stop()
	if !groupGone(pid) {
		t.Errorf("gunicorn process group %d still has members after Stop", pid)
	}
	if _, err := http.Get(l.URL() + "/health"); err == nil {
		t.Fatal("health answered after Stop")
	}
	if err := l.Start(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	status, got = post(t, l.URL()+"/chat", `{"message": "again", "conversation_id": "testenv-1"}`)
	if status != http.StatusOK {
		t.Fatalf("chat after restart: %d %v", status, got)
	}

	// Kill leaves no worker behind either.
	pid = l.proc.cmd.Process.Pid
	l.Kill()
	if !groupGone(pid) {
		t.Errorf("gunicorn process group %d still has members after Kill", pid)
	}
	if !strings.Contains(l.Output(), "Booting worker") {
		t.Errorf("Output() lacks gunicorn's log:\n%s", l.Output())
	}
}

func TestLegacyDefaultsNeverReachAnything(t *testing.T) {
	l := StartLegacy(t, map[string]string{"GUNICORN_WORKERS": "1", "BEDROCK_MAX_ATTEMPTS": "1"})
	status, got := post(t, l.URL()+"/chat", `{"message": "hi", "conversation_id": "x"}`)
	if status != http.StatusServiceUnavailable || got["code"] != "store_unavailable" {
		t.Fatalf("chat with the default REDIS_URL: %d %v; want 503 store_unavailable", status, got)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestLegacyRejectsBind(t *testing.T) {
	if _, _, err := NewLegacy(map[string]string{"BIND": "127.0.0.1:1"}); err == nil {
		t.Fatal("NewLegacy accepted BIND")
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "legacy", "app.py")); err != nil {
		t.Fatalf("RepoRoot() = %q, which has no legacy/app.py: %v", root, err)
	}
}
