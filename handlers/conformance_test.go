package handlers

// The conformance suite, direct variant: every request of
// testdata/conformance/corpus.json goes to the legacy Flask app under
// gunicorn and to the native App (each on its own loopback server), from the
// same prior state, against the same Bedrock stub, with the same fixed clock
// and body-hashed conversation ids; internal/conformance compares status,
// headers, body bytes, the Redis state afterwards and the Bedrock requests.
// The proxy variant reuses the corpus and internal/conformance.

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/conformance"
	"github.com/cutover/cutover/internal/testenv"
)

var showConformance = flag.Bool("conformance.show", false, "log every conformance case's legacy answer")

// conformanceClock is CUTOVER_TEST_CLOCK for both backends.
const conformanceClock = "1795726800.25"

// deadRedisURL is an address where no Redis listens (port 1 is never bound here).
const deadRedisURL = "redis://127.0.0.1:1/0"

func TestConformance(t *testing.T) {
	runConformance(t, "testdata/conformance/corpus.json", bedrockstub.Options{}, time.Second)
}

// TestConformanceSlowBedrock runs the cases whose Bedrock answers slower than
// the backends' read timeout: /chat gives up (502), /chat/stream reports the
// stalled stream in-band.
func TestConformanceSlowBedrock(t *testing.T) {
	runConformance(t, "testdata/conformance/slow.json", bedrockstub.Options{TokensPerSecond: 1}, 500*time.Millisecond)
}

// runConformance starts the legacy app and the native App over one stub
// (with stubOpts) and sharedRedis, both with Bedrock read timeout timeout,
// and compares them over the corpus file.
func runConformance(t *testing.T, corpus string, stubOpts bedrockstub.Options, timeout time.Duration) {
	cases, err := conformance.LoadCorpus(corpus)
	if err != nil {
		t.Fatal(err)
	}
	clock, err := strconv.ParseFloat(conformanceClock, 64)
	if err != nil {
		t.Fatal(err)
	}
	stubLog := &conformance.StubLog{}
	stub := bedrockstub.New(stubOpts)
	stubSrv := httptest.NewServer(stubLog.Wrap(stub))
	t.Cleanup(func() {
		stub.Close()
		stubSrv.Close()
	})
	rdb, err := NewRedisClient(sharedRedis.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })

	legacyEnv := func(redisURL string) map[string]string {
		return map[string]string{
			"REDIS_URL":            redisURL,
			"BEDROCK_ENDPOINT_URL": stubSrv.URL,
			"CUTOVER_TEST_CLOCK":   conformanceClock,
			"CUTOVER_TEST_IDS":     "1",
			"BEDROCK_MAX_ATTEMPTS": "1",
			"BEDROCK_TIMEOUT":      strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64),
			"GUNICORN_LOGLEVEL":    "warning",
		}
	}
	native := func(redisURL string) string {
		client, err := NewBedrockClient(context.Background(), BedrockOptions{
			EndpointURL: stubSrv.URL,
			Timeout:     timeout,
			MaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
		})
		if err != nil {
			t.Fatal(err)
		}
		closeIdle(t, client)
		store, err := NewRedisClient(redisURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = store.Close() })
		app, err := New(Config{SecretKey: testenv.LegacySecretKey, BedrockTimeout: timeout}, Deps{
			Bedrock: client,
			Store:   store,
			Now:     FixedClock(clock),
			NewID:   HashedID,
			Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		// net/http answers "OPTIONS *" itself unless told not to, while
		// Flask answers it (404): a server in front of App must pass it on.
		srv := httptest.NewUnstartedServer(app)
		srv.Config.DisableGeneralOptionsHandler = true
		srv.Start()
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}

	o := conformance.Options{
		Legacy: conformance.Target{Addr: testenv.StartLegacy(t, legacyEnv(sharedRedis.URL())).Addr()},
		Native: conformance.Target{Addr: native(sharedRedis.URL())},
		Redis:  rdb,
		Stub:   stubLog,
		Secret: testenv.LegacySecretKey,
		Clock:  clock,
		Show:   *showConformance,
	}
	if slices.ContainsFunc(cases, func(c conformance.Case) bool { return c.RedisDown }) {
		o.LegacyDown = conformance.Target{Addr: testenv.StartLegacy(t, legacyEnv(deadRedisURL)).Addr()}
		o.NativeDown = conformance.Target{Addr: native(deadRedisURL)}
	}
	conformance.Run(t, cases, o)
}
