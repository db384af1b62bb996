package handlers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/testenv"
)

// sharedRedis is one redis-server for the package's tests; each test flushes it.
var sharedRedis *testenv.Redis

func TestMain(m *testing.M) {
	r, cleanup, err := testenv.NewRedis()
	if err != nil {
		fmt.Fprintln(os.Stderr, "handlers tests:", err)
		os.Exit(1)
	}
	sharedRedis = r
	code := m.Run()
	cleanup()
	if code == 0 {
		// Every goroutine the tests started (servers, SDK and Redis
		// connections, stream timers) must be gone.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "handlers tests: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testClock is the fixed clock the tests use: 2026-11-26T21:00:00.25+00:00.
const testClock = 1795726800.25

// harness is one App over the real stub and a real Redis, served by httptest.
type harness struct {
	app     *App
	srv     *httptest.Server
	rdb     *redis.Client
	stubURL string
	rec     *recorder
}

type harnessOpts struct {
	stub   bedrockstub.Options
	cfg    Config
	redis  *testenv.Redis // nil means sharedRedis
	wrap   func(Bedrock) Bedrock
	dryRun bool
	// pool, when set, gives the App its own Redis client with these pool
	// options (URL filled in); the harness's rdb stays a separate client.
	pool *RedisOptions
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	rs := o.redis
	if rs == nil {
		rs = sharedRedis
	}
	rdb, err := NewRedisClient(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	if o.redis == nil {
		if err := rdb.FlushDB(context.Background()).Err(); err != nil {
			t.Fatalf("flush redis: %v", err)
		}
	}
	stubURL := testenv.StartStub(t, o.stub)
	client, err := NewBedrockClient(context.Background(), BedrockOptions{
		EndpointURL: stubURL,
		Timeout:     o.cfg.BedrockTimeout,
		MaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, client)
	rec := &recorder{next: client}
	var br Bedrock = rec
	if o.wrap != nil {
		br = o.wrap(rec)
	}
	var store Store = rdb
	if o.pool != nil {
		po := *o.pool
		po.URL = rs.URL()
		own, err := NewRedis(po)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = own.Close() })
		store = own
	}
	cfg := o.cfg
	if cfg.SecretKey == "" {
		cfg.SecretKey = testenv.LegacySecretKey
	}
	app, err := New(cfg, Deps{
		Bedrock: br,
		Store:   store,
		Now:     FixedClock(testClock),
		NewID:   HashedID,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = app
	if o.dryRun {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			app.ServeHTTP(w, r.WithContext(WithDryRun(r.Context())))
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &harness{app: app, srv: srv, rdb: rdb, stubURL: stubURL, rec: rec}
}

// closeIdle closes the client's pooled connections when the test ends.
func closeIdle(t testing.TB, client *bedrockruntime.Client) {
	t.Cleanup(func() {
		if c, ok := client.Options().HTTPClient.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	})
}

// recorder passes calls to the real stub client and keeps the request bodies.
type recorder struct {
	next *bedrockruntime.Client

	mu     sync.Mutex
	bodies []string
	ctxs   []context.Context
}

func (r *recorder) keep(ctx context.Context, body []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodies = append(r.bodies, string(body))
	r.ctxs = append(r.ctxs, ctx)
}

func (r *recorder) InvokeModel(ctx context.Context, in *bedrockruntime.InvokeModelInput, opts ...func(*bedrockruntime.Options)) (*bedrockruntime.InvokeModelOutput, error) {
	r.keep(ctx, in.Body)
	return r.next.InvokeModel(ctx, in, opts...)
}

func (r *recorder) InvokeModelWithResponseStream(ctx context.Context, in *bedrockruntime.InvokeModelWithResponseStreamInput, opts ...func(*bedrockruntime.Options)) (*bedrockruntime.InvokeModelWithResponseStreamOutput, error) {
	r.keep(ctx, in.Body)
	return r.next.InvokeModelWithResponseStream(ctx, in, opts...)
}

func (r *recorder) calls() ([]string, []context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...), append([]context.Context(nil), r.ctxs...)
}

// response is what a test looks at.
type response struct {
	status int
	header http.Header
	body   string
}

func (h *harness) do(t *testing.T, method, path string, header map[string]string, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

var jsonCT = map[string]string{"Content-Type": "application/json"}

func (h *harness) postJSON(t *testing.T, path, body string) response {
	t.Helper()
	return h.do(t, http.MethodPost, path, jsonCT, body)
}

func (h *harness) lrange(t *testing.T, key string) []string {
	t.Helper()
	items, err := h.rdb.LRange(context.Background(), key, 0, -1).Result()
	if err != nil {
		t.Fatalf("lrange %s: %v", key, err)
	}
	return items
}
