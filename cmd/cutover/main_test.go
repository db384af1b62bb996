package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func writeConfig(t *testing.T, legacyURL, traffic, admin string, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cutover.yaml")
	yaml := fmt.Sprintf(`listen:
  addr: %s
  served_by_header: X-Cutover-Served-By
admin:
  addr: %s
shutdown:
  drain_delay: 1500ms
  timeout: 30s # generous: a loaded CI machine must not turn a slow test into a cut stream
legacy:
  url: %s
native:
  secret_key: main-test-secret
  aws_region: us-east-1
  bedrock_endpoint_url: http://127.0.0.1:1
  redis_url: redis://127.0.0.1:1/0
routes:
  - name: health
    path: /health
  - name: models
    path: /models
    native_percent: 0
  - name: chat_stream
    path: /chat/stream
    methods: [POST]
%s`, traffic, admin, legacyURL, extra)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A real SIGTERM, delivered to this process and caught by the same
// signal.NotifyContext main uses, drains cutover serve: the health check
// fails first, traffic is still served for the drain delay, the in-flight
// stream finishes, then serve returns 0.
func TestServeDrainsOnSIGTERM(t *testing.T) {
	release := make(chan struct{})
	legacy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chat/stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write([]byte("event: delta\ndata: a\n\n"))
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			w.Write([]byte("event: done\ndata: b\n\n"))
			return
		}
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer legacy.Close()
	traffic, admin := freeAddr(t), freeAddr(t)
	cfg := writeConfig(t, legacy.URL, traffic, admin, "")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	out := &lockedBuffer{}
	code := make(chan int, 1)
	go func() { code <- run(ctx, []string{"serve", "-config", cfg}, out, out) }()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	health := "http://" + traffic + "/_cutover/health"
	waitStatus(t, c, health, 200)

	resp, err := c.Post("http://"+traffic+"/chat/stream", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, _ := br.ReadString('\n'); line != "event: delta\n" {
		t.Fatalf("first line %q", line)
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, health, 503)
	r, err := c.Get("http://" + traffic + "/health")
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("traffic during the drain delay: %v %v", r, err)
	}
	r.Body.Close()
	select {
	case n := <-code:
		t.Fatalf("serve exited (%d) with a stream in flight\n%s", n, out.String())
	case <-time.After(1800 * time.Millisecond): // past the drain delay
	}
	close(release)
	rest := new(strings.Builder)
	for {
		line, err := br.ReadString('\n')
		rest.WriteString(line)
		if err != nil {
			break
		}
	}
	if !strings.Contains(rest.String(), "event: done\ndata: b\n") {
		t.Errorf("stream cut during the drain: %q", rest.String())
	}
	select {
	case n := <-code:
		if n != 0 {
			t.Errorf("serve exited %d\n%s", n, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not exit")
	}
	logs := out.String()
	for _, want := range []string{"draining: health check failing", "draining: finishing in-flight requests", "drained", `"route":"chat_stream"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func waitStatus(t *testing.T, c *http.Client, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r, err := c.Get(url)
		if err == nil {
			r.Body.Close()
			if r.StatusCode == want {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never answered %d", url, want)
}

func TestCheckConfig(t *testing.T) {
	good := writeConfig(t, "http://127.0.0.1:8000", "127.0.0.1:0", "127.0.0.1:0", "")
	bad := writeConfig(t, "ftp://x", "127.0.0.1:0", "127.0.0.1:0", "  - name: nohandler\n    path: /x\n    native_percent: 5\n  - name: chat\n    path: /health\n")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"check-config", good}, &out, &errb); code != 0 {
		t.Fatalf("good config: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "ok (3 routes") {
		t.Errorf("output %q", out.String())
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"check-config", bad}, &out, &errb); code != 1 {
		t.Fatalf("bad config: exit %d", code)
	}
	// The native-handler check runs even though the file has other problems.
	for _, want := range []string{`legacy: url "ftp://x" must be http or https`, `route "nohandler": native share 5% but no native handler`} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if code := run(context.Background(), []string{"check-config"}, &out, &errb); code != 2 {
		t.Errorf("no file: exit %d, want 2", code)
	}
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errb); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

// check-config lists every problem of a file in one run: decode errors
// (bad values, unknown keys), validation and the native-handler check.
func TestCheckConfigReportsEverything(t *testing.T) {
	tests := []struct {
		name  string
		extra string // appended to the route table of writeConfig
		want  []string
	}{
		{
			name:  "bad duration",
			extra: "    breaker:\n      open_timeout: soon\n",
			want:  []string{`route "chat_stream": breaker.open_timeout: time: invalid duration`},
		},
		{
			name:  "unknown key",
			extra: "    natve_percent: 5\n",
			want:  []string{`route "chat_stream": has invalid keys: natve_percent`},
		},
		{
			name:  "share out of range",
			extra: "    native_bp: 20000\n",
			want:  []string{`route "chat_stream": native_bp 20000 is not in [0, 10000]`},
		},
		{
			name:  "share without a native handler",
			extra: "  - name: static\n    path: /static/<path:filename>\n    native_percent: 5\n",
			want:  []string{`route "static": native share 5% but no native handler is registered for it`},
		},
		{
			name: "all of them in one run",
			extra: "    native_bp: 20000\n    natve_percent: 5\n    breaker:\n      open_timeout: soon\n" +
				"  - name: static\n    path: /static/<path:filename>\n    native_percent: 5\n" +
				"log:\n  levle: debug\n",
			want: []string{
				`route "chat_stream": breaker.open_timeout: time: invalid duration`,
				`route "chat_stream": has invalid keys: natve_percent`,
				`route "chat_stream": native_bp 20000 is not in [0, 10000]`,
				`route "static": native share 5% but no native handler is registered for it`,
				`log: has invalid keys: levle`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeConfig(t, "http://127.0.0.1:8000", "127.0.0.1:0", "127.0.0.1:0", tt.extra)
			var out, errb bytes.Buffer
			if code := run(context.Background(), []string{"check-config", file}, &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1; stdout %q", code, out.String())
			}
			for _, want := range tt.want {
				if !strings.Contains(errb.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, errb.String())
				}
			}
			if n := strings.Count(strings.TrimSpace(errb.String()), "\n") + 1; n != len(tt.want) {
				t.Errorf("%d problems reported, want %d:\n%s", n, len(tt.want), errb.String())
			}
		})
	}
}

// cutover weights drives a running cutover serve through the admin API.
func TestWeightsCommand(t *testing.T) {
	legacy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Fail") != "" {
			w.WriteHeader(http.StatusInternalServerError)
		}
		w.Write([]byte("legacy"))
	}))
	defer legacy.Close()
	traffic, admin := freeAddr(t), freeAddr(t)
	// get_conversation's legacy breaker trips on the first 5xx; delete_conversation
	// has its breakers off and a shadow rate.
	cfg := writeConfig(t, legacy.URL, traffic, admin, `  - name: get_conversation
    path: /conversations/<conversation_id>
    breaker:
      consecutive_failures: 1
      open_timeout: 1h
  - name: delete_conversation
    path: /conversations/<conversation_id>
    methods: [DELETE]
    breaker:
      disabled: true
    shadow:
      rate_percent: 2.5
`)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("CUTOVER_ADMIN_TOKEN", "tok")
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{}
	code := make(chan int, 1)
	go func() { code <- run(ctx, []string{"serve", "-config", cfg}, out, out) }()
	defer func() {
		cancel()
		<-code
	}()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	waitStatus(t, &http.Client{Transport: tr}, "http://"+traffic+"/_cutover/health", 200)

	weights := func(args ...string) (int, string) {
		var b bytes.Buffer
		n := run(context.Background(), append([]string{"weights", "-admin", "http://" + admin}, args...), &b, &b)
		return n, b.String()
	}
	if n, s := weights("set", "models", "12.5%"); n != 0 || !strings.Contains(s, "models: 0% -> 12.5% native") {
		t.Errorf("set: %d %q", n, s)
	}
	req, _ := http.NewRequest("GET", "http://"+traffic+"/conversations/c1", nil)
	req.Header.Set("X-Fail", "1")
	if resp, err := (&http.Client{Transport: tr}).Do(req); err != nil || resp.StatusCode != 500 {
		t.Fatalf("failing legacy request: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	n, got := weights("get")
	if n != 0 {
		t.Fatalf("get: %d %q", n, got)
	}
	rows := map[string][]string{}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	for _, l := range lines[1 : len(lines)-1] {
		f := strings.Fields(l)
		rows[f[0]] = f[1:]
	}
	if h := strings.Join(strings.Fields(lines[0]), " "); h != "ROUTE NATIVE % HANDLER BREAKER (NATIVE/LEGACY) SHADOW % PATH METHODS" {
		t.Errorf("header %q", lines[0])
	}
	for _, tt := range []struct{ route, want string }{
		{"health", "0% yes closed/closed 0% /health GET"},
		{"models", "12.5% yes closed/closed 0% /models GET"},
		{"get_conversation", "0% yes closed/open 0% /conversations/<conversation_id> GET"},
		{"delete_conversation", "0% yes off/off 2.5% /conversations/<conversation_id> DELETE"},
	} {
		if r := strings.Join(rows[tt.route], " "); r != tt.want {
			t.Errorf("get: %s row %q, want %q\n%s", tt.route, r, tt.want, got)
		}
	}
	if last := lines[len(lines)-1]; last != "legacy as a whole: breaker closed" {
		t.Errorf("get: last line %q", last)
	}
	if n, s := weights("get", "delete_conversation"); n != 0 || strings.Count(s, "\n") != 3 || !strings.Contains(s, "off/off") {
		t.Errorf("get one route: %d %q", n, s)
	}
	if n, s := weights("-actor", "ci-bot", "set", "health", "5"); n != 0 || !strings.Contains(s, "health: 0% -> 5% native") {
		t.Errorf("set health (the native handlers serve it): %d %q", n, s)
	}
	// With no admin.audit_log the audit goes to the process log; who is the
	// OS user as user@host unless -actor says otherwise.
	me := actorName()
	if !strings.Contains(me, "@") || strings.HasPrefix(me, "@") {
		t.Errorf("actorName() = %q, want user@host", me)
	}
	for _, want := range []string{
		`"msg":"audit: share changed","who":"` + me + `","remote":"127.0.0.1:`,
		`"msg":"audit: share changed","who":"ci-bot","remote":"127.0.0.1:`,
	} {
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(out.String(), want) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("process log lacks %s:\n%s", want, out.String())
		}
	}
	if n, s := weights("set", "models", "250bp"); n != 0 || !strings.Contains(s, "12.5% -> 2.5%") {
		t.Errorf("set bp: %d %q", n, s)
	}
	if n, s := weights("set", "models", "101"); n != 1 || !strings.Contains(s, "not in [0, 100]") {
		t.Errorf("bad share: %d %q", n, s)
	}
	if n, s := weights("-token", "wrong", "rollback"); n != 1 || !strings.Contains(s, "401") {
		t.Errorf("wrong token: %d %q", n, s)
	}
	if n, s := weights("rollback"); n != 0 || !strings.Contains(s, "models: 2.5% -> 0% native") || !strings.Contains(s, "health: 5% -> 0% native") {
		t.Errorf("rollback: %d %q", n, s)
	}
	if n, _ := weights("bogus"); n != 2 {
		t.Errorf("bad subcommand: exit %d", n)
	}
	data, _ := os.ReadFile(cfg)
	if !strings.Contains(string(data), "native_percent: 0") {
		t.Errorf("rollback not persisted:\n%s", data)
	}
}
