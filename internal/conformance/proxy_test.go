package conformance_test

// The conformance suite through the proxy: both backends are reached through
// one cutover Server, the legacy app with the override header set to
// "legacy" and the native handlers with it set to "native", as a QA engineer
// would compare them in production. The override only reaches native for
// requests that match a route with a native handler: unknown paths, wrong
// methods and other unmatched requests go to legacy whatever the header says
// (issue 3), so through the proxy those cases must be served by legacy both
// times; their native answers are compared with legacy's directly, without
// the proxy, in handlers/conformance_test.go.

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"go.uber.org/goleak"

	"github.com/cutover/cutover/compat"
	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/handlers"
	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/conformance"
	"github.com/cutover/cutover/internal/testenv"
	"github.com/cutover/cutover/proxy"
)

const (
	servedBy     = "X-Cutover-Served-By"
	clockText    = "1795726800.25"
	overrideName = "X-Cutover-Backend"
	deadRedisURL = "redis://127.0.0.1:1/0"
)

// proxyConfig routes every legacy endpoint at 0 % native: only the override
// header sends a request to the native handlers. Breakers are on, at their
// defaults: the corpus provokes 5xx on purpose, and the served-by check proves
// that an override is absolute (no breaker or fallback answers from the
// backend the override did not name).
func proxyConfig(legacyURL string) string {
	return `
listen:
  served_by_header: ` + servedBy + `
override:
  enabled: true
  allow_without_token: true
  header: ` + overrideName + `
shutdown:
  drain_delay: 1ms
  timeout: 5s
admin:
  token: admin-secret
legacy:
  url: ` + legacyURL + `
  response_header_timeout: 30s
` + testenv.RoutesYAML(nil)
}

// nativeRouted returns whether the proxy may route a case to native: its
// method and path match a route of proxyConfig's table whose endpoint has a
// native handler. It reads the request line as net/http does (absolute form,
// "*"), then matches Werkzeug-style like the proxy.
func nativeRouted(t *testing.T, endpoints []string) func(c *conformance.Case) bool {
	t.Helper()
	cfg, err := config.Parse([]byte(proxyConfig("http://127.0.0.1:1")), nil)
	if err != nil {
		t.Fatal(err)
	}
	rules := make([]compat.Rule, 0, len(cfg.Routes))
	for _, r := range cfg.Routes {
		rules = append(rules, compat.Rule{Endpoint: r.Name, Pattern: r.Path, Methods: r.Methods})
	}
	m, err := compat.NewMap(rules...)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *conformance.Case) bool {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(c.Method + " " + c.Target + " HTTP/1.1\r\nHost: cutover.test\r\n\r\n")))
		if err != nil {
			t.Fatalf("request line %s %s: %v", c.Method, c.Target, err)
		}
		mt, err := m.Match(req.Method, compat.PathInfo(req))
		return err == nil && slices.Contains(endpoints, mt.Endpoint)
	}
}

// startProxy runs a cutover Server in front of legacyURL and app until the test ends.
func startProxy(t *testing.T, legacyURL string, app *handlers.App) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "cutover.yaml")
	if err := os.WriteFile(file, []byte(proxyConfig(legacyURL)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(cfg, proxy.Options{
		Native:          app,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		TrafficListener: tln,
		AdminListener:   aln,
	})
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("proxy run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("proxy did not stop")
		}
	})
	addr := tln.Addr().String()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := hc.Get("http://" + addr + cfg.Listen.HealthPath)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy at %s never became healthy", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformanceThroughProxy(t *testing.T) {
	path, err := conformance.CorpusPath()
	if err != nil {
		t.Fatal(err)
	}
	cases, err := conformance.LoadCorpus(path)
	if err != nil {
		t.Fatal(err)
	}
	clock, err := strconv.ParseFloat(clockText, 64)
	if err != nil {
		t.Fatal(err)
	}
	stubLog := &conformance.StubLog{}
	stub := bedrockstub.New(bedrockstub.Options{})
	stubSrv := httptest.NewServer(stubLog.Wrap(stub))
	t.Cleanup(func() {
		stub.Close()
		stubSrv.Close()
	})
	rs := testenv.StartRedis(t)
	rdb, err := handlers.NewRedisClient(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })

	// both returns the proxy address serving the legacy app and the native
	// App, each with the given Redis.
	var endpoints []string // the native App's
	both := func(redisURL string) string {
		legacy := testenv.StartLegacy(t, map[string]string{
			"REDIS_URL":            redisURL,
			"BEDROCK_ENDPOINT_URL": stubSrv.URL,
			"CUTOVER_TEST_CLOCK":   clockText,
			"CUTOVER_TEST_IDS":     "1",
			"BEDROCK_MAX_ATTEMPTS": "1",
			"BEDROCK_TIMEOUT":      "1",
			"GUNICORN_LOGLEVEL":    "warning",
		})
		client, err := handlers.NewBedrockClient(context.Background(), handlers.BedrockOptions{
			EndpointURL: stubSrv.URL,
			Timeout:     time.Second,
			MaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if c, ok := client.Options().HTTPClient.(interface{ CloseIdleConnections() }); ok {
				c.CloseIdleConnections()
			}
		})
		store, err := handlers.NewRedisClient(redisURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = store.Close() })
		app, err := handlers.New(handlers.Config{SecretKey: testenv.LegacySecretKey, BedrockTimeout: time.Second}, handlers.Deps{
			Bedrock: client,
			Store:   store,
			Now:     handlers.FixedClock(clock),
			NewID:   handlers.HashedID,
			Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		endpoints = app.Endpoints()
		return startProxy(t, legacy.URL(), app)
	}

	via := func(addr, backend string) conformance.Target {
		return conformance.Target{Addr: addr, Header: [][2]string{{overrideName, backend}}}
	}
	addr := both(rs.URL())
	o := conformance.Options{
		Legacy: via(addr, "legacy"),
		Native: via(addr, "native"),
		Redis:  rdb,
		Stub:   stubLog,
		Secret: testenv.LegacySecretKey,
		Clock:  clock,
	}
	if slices.ContainsFunc(cases, func(c conformance.Case) bool { return c.RedisDown }) {
		down := both(deadRedisURL)
		o.LegacyDown, o.NativeDown = via(down, "legacy"), via(down, "native")
	}
	// The override must send every request to the backend it names, except
	// that a request matching no route with a native handler is legacy's
	// whatever the header says. The served-by header is removed before the
	// comparison.
	routed := map[*conformance.Case]bool{}
	isNative := nativeRouted(t, endpoints)
	for i := range cases {
		routed[&cases[i]] = isNative(&cases[i])
	}
	for name, want := range map[string]bool{"unknown/static": false, "unknown/put-chat": false, "unknown/options-asterisk": false,
		"chat/basic": true, "conversation/get": true, "unknown/options-chat": true} {
		i := slices.IndexFunc(cases, func(c conformance.Case) bool { return c.Name == name })
		if i < 0 {
			t.Fatalf("corpus has no case %q", name)
		}
		if got := routed[&cases[i]]; got != want {
			t.Fatalf("case %s: routed to native %v, want %v", name, got, want)
		}
	}
	var toNative, toLegacy int
	o.Check = func(t *testing.T, c *conformance.Case, l, n *conformance.Capture) {
		wantNative := "native"
		if routed[c] {
			toNative++
		} else {
			wantNative = "legacy"
			toLegacy++
		}
		for _, side := range []struct {
			want string
			got  *conformance.Capture
		}{{"legacy", l}, {wantNative, n}} {
			switch got := side.got.Header.Get(servedBy); got {
			case side.want:
			case "":
				// e.g. "OPTIONS *", which net/http answers itself unless
				// http.Server.DisableGeneralOptionsHandler is set.
				t.Errorf("%s request answered by the proxy itself (%d), not by a backend", side.want, side.got.Status)
			default:
				t.Errorf("%s request served by %q", side.want, got)
			}
		}
		l.Header.Del(servedBy)
		n.Header.Del(servedBy)
	}
	conformance.Run(t, cases, o)
	t.Logf("through the proxy: %d cases compared native against legacy, %d unmatched ones served by legacy both times", toNative, toLegacy)
}
