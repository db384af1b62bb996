package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// seen is what a test backend saw of a request.
type seen struct {
	Backend    string              `json:"backend"`
	Method     string              `json:"method"`
	RequestURI string              `json:"request_uri"`
	Host       string              `json:"host"`
	Header     map[string][]string `json:"header"`
	BodySHA    string              `json:"body_sha"`
	BodyLen    int                 `json:"body_len"`
	TE         []string            `json:"te"`
}

// echoHandler answers with a JSON description of the request it saw.
func echoHandler(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(body)
		s := seen{Backend: name, Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Header: r.Header,
			BodySHA: hex.EncodeToString(sum[:]), BodyLen: len(body), TE: r.TransferEncoding}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}
}

// fakeNative is a native app for tests: it echoes like echoHandler.
type fakeNative struct {
	http.Handler
	endpoints []string
}

func (f *fakeNative) Endpoints() []string { return f.endpoints }

func newFakeNative(endpoints ...string) *fakeNative {
	return &fakeNative{Handler: echoHandler("native"), endpoints: endpoints}
}

// testServer is a running Server on loopback listeners.
type testServer struct {
	*Server
	URL      string // traffic base URL
	AdminURL string
	File     string
	Logs     *syncBuffer
	cancel   context.CancelFunc
	done     chan error
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// baseConfig is a config with the legacy app's route table, for legacyURL.
// adminAuth is the header every admin call but /metrics needs under
// baseConfig's token.
var adminAuth = map[string]string{"Authorization": "Bearer admin-secret"}

func baseConfig(legacyURL string) string {
	return `
listen:
  served_by_header: X-Cutover-Served-By
shutdown:
  drain_delay: 1ms
  timeout: 5s
admin:
  token: admin-secret
legacy:
  url: ` + legacyURL + `
  response_header_timeout: 2s
` + testenv.RoutesYAML(nil)
}

// loadConfig writes yaml to a config file in a temporary directory and
// loads it. Diff records go to that directory unless yaml names a file, so
// they stay out of the package directory.
func loadConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "cutover.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	if cfg.Shadow.Store.JSONLPath == config.DefaultJSONLPath {
		cfg.Shadow.Store.JSONLPath = filepath.Join(dir, config.DefaultJSONLPath)
	}
	return cfg
}

// startServer writes yaml to a config file and runs a Server for it.
func startServer(t *testing.T, yaml string, native NativeApp) *testServer {
	t.Helper()
	return startServerClock(t, yaml, native, nil)
}

// startServerClock is startServer with the breakers on the clock now (nil
// means time.Now).
func startServerClock(t *testing.T, yaml string, native NativeApp, now func() time.Time) *testServer {
	t.Helper()
	cfg := loadConfig(t, yaml)
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	tln := listen(t)
	aln := listen(t)
	srv, err := New(cfg, Options{Native: native, Logger: log, TrafficListener: tln, AdminListener: aln, Now: now})
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	srv.watcher.Debounce = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: srv, URL: "http://" + tln.Addr().String(), AdminURL: "http://" + aln.Addr().String(),
		File: cfg.File(), Logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Run(ctx) }()
	waitHealthy(t, ts.URL+cfg.Listen.HealthPath)
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

func (ts *testServer) stop(t *testing.T) {
	ts.cancel()
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("server run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("server did not stop")
	}
	ts.done <- nil // a second stop returns at once
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func waitHealthy(t *testing.T, url string) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never became healthy", url)
}

// newClient is an HTTP client whose idle connections are closed at the end of the test.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func newBackend(t *testing.T, h http.Handler) *httptest.Server {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// do sends a request and returns the response with its body read.
func do(t *testing.T, c *http.Client, method, url string, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, b
}

func decodeSeen(t *testing.T, b []byte) seen {
	t.Helper()
	var s seen
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("decode backend echo %q: %v", b, err)
	}
	return s
}

// testClock is a clock a test moves by hand. Safe for concurrent use.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Unix(1_800_000_000, 0)} }

// Now returns the clock's time.
func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock forward by d.
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
