package proxy

// Shadowing end to end, over the real stack: the legacy Flask app under
// gunicorn (a production one and an isolated one, each with its own real
// Redis), the native handlers (a production App and an isolated App), the
// Bedrock stub, and the proxy. Each subtest proves one "Done when" of the
// shadow traffic issue.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/redis/go-redis/v9"

	"github.com/cutover/cutover/compat"
	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/handlers"
	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/conformance"
	"github.com/cutover/cutover/internal/testenv"
	"github.com/cutover/cutover/shadow"
)

// shadowClock is CUTOVER_TEST_CLOCK for every backend.
const shadowClock = "1795726800.25"

// shadowEnv is the whole real stack, started once for the shadow tests.
type shadowEnv struct {
	prod, iso           *testenv.Redis
	prodRDB, isoRDB     *redis.Client
	stub                string
	legacy, isoLegacy   *testenv.Legacy
	native, isoNative   *handlers.App
	nativeRDB, isoNaRDB *redis.Client
}

func startShadowEnv(t *testing.T) *shadowEnv {
	t.Helper()
	e := &shadowEnv{prod: testenv.StartRedis(t), iso: testenv.StartRedis(t), stub: testenv.StartStub(t, bedrockstub.Options{})}
	e.prodRDB, e.isoRDB = redisClient(t, e.prod.URL()), redisClient(t, e.iso.URL())
	legacyEnv := func(redisURL string) map[string]string {
		return map[string]string{
			"REDIS_URL": redisURL, "BEDROCK_ENDPOINT_URL": e.stub, "CUTOVER_TEST_CLOCK": shadowClock,
			"CUTOVER_TEST_IDS": "1", "BEDROCK_MAX_ATTEMPTS": "1", "BEDROCK_TIMEOUT": "5", "GUNICORN_LOGLEVEL": "warning",
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); e.legacy = testenv.StartLegacy(t, legacyEnv(e.prod.URL())) }()
	go func() { defer wg.Done(); e.isoLegacy = testenv.StartLegacy(t, legacyEnv(e.iso.URL())) }()
	e.native = e.nativeApp(t, e.prod.URL())
	e.isoNative = e.nativeApp(t, e.iso.URL())
	wg.Wait()
	if e.legacy == nil || e.isoLegacy == nil {
		t.FailNow()
	}
	return e
}

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	c, err := handlers.NewRedisClient(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// nativeApp is a native App over the stub and the Redis at redisURL, with
// the same test clock and id hooks as the legacy app.
func (e *shadowEnv) nativeApp(t *testing.T, redisURL string) *handlers.App {
	t.Helper()
	br, err := handlers.NewBedrockClient(context.Background(), handlers.BedrockOptions{
		EndpointURL: e.stub, Timeout: 5 * time.Second, MaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	clock, _ := strconv.ParseFloat(shadowClock, 64)
	app, err := handlers.New(handlers.Config{SecretKey: testenv.LegacySecretKey, BedrockTimeout: 5 * time.Second}, handlers.Deps{
		Bedrock: br, Store: redisClient(t, redisURL), Now: handlers.FixedClock(clock), NewID: handlers.HashedID,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return app
}

// reset empties both Redis servers.
func (e *shadowEnv) reset(t *testing.T) {
	t.Helper()
	for _, c := range []*redis.Client{e.prodRDB, e.isoRDB} {
		if err := c.FlushAll(context.Background()).Err(); err != nil {
			t.Fatalf("flush: %v", err)
		}
	}
}

// dump lists every key of a Redis with its full contents, sorted.
func dump(t *testing.T, c *redis.Client) []string {
	t.Helper()
	out, err := conformance.Snapshot(c)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// shadowYAML is a proxy config over env: every route at nativeBP, shadowed
// at rateBP, the write routes shadow-safe. shadowKeys ("key: value") are
// added to every route's shadow block.
func (e *shadowEnv) shadowYAML(legacyURL string, nativeBP, rateBP int, global string, shadowKeys ...string) string {
	return `listen:
  served_by_header: X-Cutover-Served-By
shutdown:
  drain_delay: 1ms
  timeout: 5s
admin:
  token: admin-secret
legacy:
  url: ` + legacyURL + `
  response_header_timeout: 10s
native:
  redis_url: ` + e.prod.URL() + `
shadow:
  isolated_legacy_url: ` + e.isoLegacy.URL() + `
  isolated_redis_url: ` + e.iso.URL() + `
  max_body_bytes: 4194304
  model_calls_per_minute: 100000
` + global + testenv.RoutesYAML(func(name string) []string {
		safe := name == "chat" || name == "chat_stream" || name == "delete_conversation"
		lines := []string{fmt.Sprintf("native_bp: %d", nativeBP), "shadow:", fmt.Sprintf("  rate_bp: %d", rateBP), fmt.Sprintf("  safe: %v", safe)}
		for _, k := range shadowKeys {
			lines = append(lines, "  "+k)
		}
		return lines
	})
}

// startShadowServer runs a proxy for yaml with the given native apps. Diff
// records go to a JSONL file in the test's temporary directory unless yaml
// names one.
func startShadowServer(t *testing.T, yaml string, native NativeApp, iso http.Handler) *testServer {
	t.Helper()
	return startShadowConfig(t, loadConfig(t, yaml), native, iso)
}

func startShadowConfig(t *testing.T, cfg *config.Config, native NativeApp, iso http.Handler) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	tln, aln := listen(t), listen(t)
	srv, err := New(cfg, Options{Native: native, Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		TrafficListener: tln, AdminListener: aln, Shadow: ShadowOptions{IsolatedNative: iso}})
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: srv, URL: "http://" + tln.Addr().String(), AdminURL: "http://" + aln.Addr().String(),
		File: cfg.File(), Logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Run(ctx) }()
	waitHealthy(t, ts.URL+cfg.Listen.HealthPath)
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// outcomes counts what the mirror did with the requests of every route:
// comparisons (errors included) plus skips. Each request to a shadowed route
// yields exactly one.
func outcomes(m *shadow.Mirror) int64 {
	var n int64
	for _, s := range m.Summary() {
		n += s.Compared + s.Errors
		for _, v := range s.Skipped {
			n += v
		}
	}
	return n
}

// waitOutcomes waits until the mirror has dealt with want requests.
func waitOutcomes(t *testing.T, m *shadow.Mirror, want int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for outcomes(m) < want {
		if time.Now().After(deadline) {
			t.Fatalf("shadow outcomes: %d, want %d; summary %+v", outcomes(m), want, m.Summary())
		}
		time.Sleep(2 * time.Millisecond)
	}
	if got := outcomes(m); got != want {
		t.Fatalf("shadow outcomes: %d, want exactly %d; summary %+v", got, want, m.Summary())
	}
}

func skipsByReason(m *shadow.Mirror) map[string]int64 {
	out := map[string]int64{}
	for _, s := range m.Summary() {
		for k, v := range s.Skipped {
			out[k] += v
		}
	}
	return out
}

func routeSummary(m *shadow.Mirror, route string) shadow.RouteSummary {
	for _, s := range m.Summary() {
		if s.Route == route {
			return s
		}
	}
	return shadow.RouteSummary{Route: route}
}

func records(t *testing.T, m *shadow.Mirror, q shadow.Query) []shadow.Record {
	t.Helper()
	p, err := m.Store().List(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return p.Records
}

// appWithEndpoints lets a plain handler (a test double) stand for the native app.
type appWithEndpoints struct {
	http.Handler
	app *handlers.App
}

func (a appWithEndpoints) Endpoints() []string { return a.app.Endpoints() }

func TestShadow(t *testing.T) {
	env := startShadowEnv(t)
	t.Run("corpus", func(t *testing.T) { testShadowCorpus(t, env) })
	t.Run("classification", func(t *testing.T) { testShadowClassification(t, env) })
	t.Run("writes", func(t *testing.T) { testShadowWrites(t, env) })
	t.Run("slow and dead shadow", func(t *testing.T) { testShadowSlowDead(t, env) })
	t.Run("stream", func(t *testing.T) { testShadowStream(t, env) })
}

// --- (1) the conformance corpus, 100 % shadowed both ways: no semantic diff.

// corpusRequest builds a case's request bytes as the conformance suite does.
func corpusRequest(c *conformance.Case, clock float64) ([]byte, error) {
	body, err := c.Payload()
	if err != nil {
		return nil, err
	}
	cookie := func(kind string) (string, error) {
		return conformance.SessionCookie(kind, c.SessionID, testenv.LegacySecretKey, clock)
	}
	v, err := cookie(c.Cookie)
	if err != nil {
		return nil, err
	}
	return conformance.RawRequest(c, body, v, nil, cookie)
}

func testShadowCorpus(t *testing.T, env *shadowEnv) {
	path, err := conformance.CorpusPath()
	if err != nil {
		t.Fatal(err)
	}
	cases, err := conformance.LoadCorpus(path)
	if err != nil {
		t.Fatal(err)
	}
	clock, _ := strconv.ParseFloat(shadowClock, 64)
	for _, dir := range []struct {
		name     string
		nativeBP int
	}{{"legacy primary, native shadow", 0}, {"native primary, legacy shadow", 10000}} {
		t.Run(dir.name, func(t *testing.T) {
			ts := startShadowServer(t, env.shadowYAML(env.legacy.URL(), dir.nativeBP, 10000, ""), env.native, env.isoNative)
			m := ts.Mirror()
			rules := ts.Router.snap.Load().rules
			addr := strings.TrimPrefix(ts.URL, "http://")
			var want int64
			side := "legacy"
			if dir.nativeBP > 0 {
				side = "native"
			}
			ran, downSkipped := 0, 0
			skipped := map[string][]string{}
			for i := range cases {
				c := &cases[i]
				if c.RedisDown {
					// Needs the production Redis down, where the isolated one is up:
					// the two sides cannot see the same state (TestConformance covers these).
					downSkipped++
					continue
				}
				raw, err := corpusRequest(c, clock)
				if err != nil {
					t.Fatalf("%s: %v", c.Name, err)
				}
				env.reset(t)
				if err := conformance.Prepare(env.prodRDB, c); err != nil {
					t.Fatalf("%s: %v", c.Name, err)
				}
				before := skipsByReason(m)
				got, err := conformance.Send(addr, c.Method, raw)
				if err != nil {
					t.Fatalf("%s: %v", c.Name, err)
				}
				ran++
				// A request that matches a route is shadowed (100 %) and has one outcome.
				if r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw))); err == nil {
					if _, err := rules.Match(r.Method, compat.PathInfo(r)); err == nil {
						want++
					}
				}
				waitOutcomes(t, m, want)
				for reason, n := range skipsByReason(m) {
					if n == before[reason] {
						continue
					}
					skipped[reason] = append(skipped[reason], c.Name)
					// The only skips allowed: a primary replaced by a fallback (the
					// corpus's fault cases trip breakers; nothing to compare then),
					// and state the copier cannot copy (a key of another type than list).
					switch {
					case reason == shadow.SkipPrimaryError && got.Header.Get("X-Cutover-Served-By") != side:
					case reason == shadow.SkipSnapshot && slices.ContainsFunc(c.Redis, func(cmd []string) bool { return !strings.EqualFold(cmd[0], "RPUSH") }):
					default:
						t.Errorf("%s: skipped as %s (primary answered %d, served by %s)", c.Name, reason, got.Status, got.Header.Get("X-Cutover-Served-By"))
					}
				}
			}
			var compared, matched int64
			for _, s := range m.Summary() {
				compared += s.Compared
				matched += s.Matched
				if s.Semantic != 0 || s.Errors != 0 || s.EncodingOnly != 0 || s.Noise != 0 {
					t.Errorf("route %s: %+v", s.Route, s)
				}
			}
			for _, rec := range records(t, m, shadow.Query{Limit: 500}) {
				t.Errorf("diff %s %s %s: %s: %+v", rec.Route, rec.Request.Method, rec.Request.Path, rec.Class, rec.Mismatches)
			}
			nskip := 0
			for _, names := range skipped {
				nskip += len(names)
			}
			if compared+int64(nskip) != want || matched != compared || compared < 170 {
				t.Errorf("compared %d, matched %d, skipped %d, want %d of %d cases run", compared, matched, nskip, want, ran)
			}
			t.Logf("skipped: %v", skipped)
			t.Logf("%d corpus cases sent (%d need Redis down: not shadowable), %d shadowed and compared, %d matched", ran, downSkipped, compared, matched)
		})
	}
}

// --- (2) a broken native handler is caught as semantic, a re-encoding as encoding-only.

// doubleApp wraps a real native App; the X-Test-Break request header makes
// it misbehave: "semantic" changes the model field, "encoding" re-encodes
// the JSON body with encoding/json (same values, other bytes), "stream"
// changes the text of the first streamed delta.
func doubleApp(app *handlers.App) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mode := r.Header.Get("X-Test-Break")
		if mode == "" {
			app.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		app.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		switch mode {
		case "semantic":
			body = bytes.Replace(body, []byte("claude-3-5-sonnet-20240620"), []byte("claude-3-5-sonnet-20991231"), 1)
		case "encoding":
			var v any
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			if err := dec.Decode(&v); err == nil {
				body, _ = json.Marshal(v)
			}
		case "stream":
			body = bytes.Replace(body, []byte(`data: {"text": "`), []byte(`data: {"text": "[broken] `), 1)
		}
		for k, v := range rec.Header() {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	})
}

func postJSON(t *testing.T, c *http.Client, url, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	for k, v := range header {
		h[k] = v
	}
	return do(t, c, http.MethodPost, url, body, h)
}

func testShadowClassification(t *testing.T, env *shadowEnv) {
	env.reset(t)
	native := appWithEndpoints{doubleApp(env.native), env.native}
	iso := doubleApp(env.isoNative)
	// Records go to a capped Redis stream (a fleet's shared store) and to the
	// local ring + JSONL file.
	streamRedis := testenv.StartRedis(t)
	jsonl := filepath.Join(t.TempDir(), "diffs.jsonl")
	store := fmt.Sprintf("  store:\n    redis_url: %s\n    redis_stream: qa:diffs\n    jsonl_path: %s\n", streamRedis.URL(), jsonl)
	ts := startShadowServer(t, env.shadowYAML(env.legacy.URL(), 0, 10000, store, "compare: json"), native, iso)
	m := ts.Mirror()
	c := newClient(t)

	// The same three chats, each on a fresh conversation so their answers
	// are alike; only the shadow's behaviour differs.
	cases := []struct{ mode, id string }{{"", "cls-ok"}, {"semantic", "cls-sem"}, {"encoding", "cls-enc"}}
	for i, tc := range cases {
		body := `{"message":"Tell me about <b>&</b> \"quotes\" caf\u00e9 😀","conversation_id":"` + tc.id + `"}`
		resp, got := postJSON(t, c, ts.URL+"/chat", body, map[string]string{"X-Test-Break": tc.mode})
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", tc.id, resp.StatusCode, got)
		}
		// The client gets the primary's (legacy's) answer, untouched.
		if !bytes.Contains(got, []byte(`"model":"anthropic.claude-3-5-sonnet-20240620-v1:0"`)) || !bytes.Contains(got, []byte(`\u00e9`)) {
			t.Errorf("%s: client answer is not legacy's: %s", tc.id, got)
		}
		waitOutcomes(t, m, int64(i+1))
	}
	s := routeSummary(m, "chat")
	if s.Compared != 3 || s.Matched != 1 || s.Semantic != 1 || s.EncodingOnly != 1 {
		t.Errorf("chat summary %+v, want 3 compared: 1 matched, 1 semantic, 1 encoding-only", s)
	}
	sem := records(t, m, shadow.Query{Route: "chat", Class: shadow.ClassSemantic})
	if len(sem) != 1 {
		t.Fatalf("semantic records: %+v", sem)
	}
	var found bool
	for _, mm := range sem[0].Mismatches {
		if mm.Path == "$.model" && mm.Class == shadow.ClassSemantic {
			found = true
		}
	}
	if !found || sem[0].PrimarySide != "legacy" {
		t.Errorf("semantic record: side %s, mismatches %+v; want $.model semantic", sem[0].PrimarySide, sem[0].Mismatches)
	}
	enc := records(t, m, shadow.Query{Route: "chat", Class: shadow.ClassEncoding})
	if len(enc) != 1 || len(enc[0].Mismatches) == 0 {
		t.Fatalf("encoding-only records: %+v", enc)
	}
	for _, mm := range enc[0].Mismatches {
		if mm.Class != shadow.ClassEncoding {
			t.Errorf("encoding record has a %s mismatch: %+v", mm.Class, mm)
		}
	}

	if n, err := redisClient(t, streamRedis.URL()).XLen(context.Background(), "qa:diffs").Result(); err != nil || n != 2 {
		t.Errorf("redis stream holds %d records (%v), want the 2 mismatches", n, err)
	}
	if b, err := os.ReadFile(jsonl); err != nil || bytes.Count(b, []byte("\n")) != 2 || !bytes.Contains(b, []byte(`"class":"semantic"`)) {
		t.Errorf("jsonl file (%v):\n%s", err, b)
	}

	// The admin API serves the same records and the summary.
	resp, b := do(t, c, http.MethodGet, ts.AdminURL+"/admin/diffs?route=chat&class=semantic", "", adminAuth)
	var page struct {
		Records []shadow.DiffSummary `json:"records"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &page) != nil || len(page.Records) != 1 || page.Records[0].ID != sem[0].ID {
		t.Fatalf("GET /admin/diffs: %d %s", resp.StatusCode, b)
	}
	resp, b = do(t, c, http.MethodGet, ts.AdminURL+"/admin/diffs/"+sem[0].ID, "", adminAuth)
	var rec shadow.Record
	if resp.StatusCode != 200 || json.Unmarshal(b, &rec) != nil || rec.Class != shadow.ClassSemantic || rec.Request.Path != "/chat" {
		t.Fatalf("GET /admin/diffs/{id}: %d %s", resp.StatusCode, b)
	}
	if resp, _ := do(t, c, http.MethodGet, ts.AdminURL+"/admin/diffs/0-999", "", adminAuth); resp.StatusCode != 404 {
		t.Errorf("unknown diff id: %d", resp.StatusCode)
	}
	resp, b = do(t, c, http.MethodGet, ts.AdminURL+"/admin/shadow/summary", "", adminAuth)
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"semantic": 1`)) {
		t.Errorf("GET /admin/shadow/summary: %d %s", resp.StatusCode, b)
	}
	// Prometheus: comparisons by route and class.
	resp, b = do(t, c, http.MethodGet, ts.AdminURL+"/metrics", "", nil)
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`cutover_shadow_comparisons_total{class="semantic",route="chat"} 1`)) ||
		!bytes.Contains(b, []byte(`cutover_shadow_model_calls_total{purpose="shadow",route="chat"} 3`)) {
		t.Errorf("metrics lack the shadow comparisons:\n%s", grepLines(b, "cutover_shadow"))
	}
}

func grepLines(b []byte, sub string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// --- (3) a shadow-safe write route leaves production Redis as an unshadowed run.

func testShadowWrites(t *testing.T, env *shadowEnv) {
	seed := func(t *testing.T) {
		ctx := context.Background()
		for _, id := range []string{"w-1", "w-del"} {
			err := env.prodRDB.RPush(ctx, "conversation:"+id,
				`{"role": "user", "content": "earlier question", "created_at": "2026-11-26T20:00:00+00:00"}`,
				`{"role": "assistant", "content": "earlier answer", "created_at": "2026-11-26T20:00:00+00:00"}`).Err()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// run sends the write sequence through a proxy and returns production
	// Redis afterwards, and the requests it sent to shadowed routes.
	run := func(t *testing.T, nativeBP, rateBP int) ([]string, []string, *shadow.Mirror) {
		env.reset(t)
		seed(t)
		ts := startShadowServer(t, env.shadowYAML(env.legacy.URL(), nativeBP, rateBP, ""), env.native, env.isoNative)
		c := newClient(t)
		var answers []string
		sent := int64(0)
		send := func(method, path, body string, header map[string]string) *http.Response {
			h := map[string]string{"Content-Type": "application/json"}
			for k, v := range header {
				h[k] = v
			}
			resp, b := do(t, c, method, ts.URL+path, body, h)
			answers = append(answers, fmt.Sprintf("%s %s -> %d %s", method, path, resp.StatusCode, b))
			if sent++; rateBP > 0 {
				// One request at a time, as the ids are body hashes here (see
				// CUTOVER_TEST_IDS): in production a shadow's new conversation
				// gets a random id of its own and cannot meet the next turn's.
				waitOutcomes(t, ts.Mirror(), sent)
			}
			return resp
		}
		send("POST", "/chat", `{"message":"continue please","conversation_id":"w-1"}`, nil)
		send("POST", "/chat/stream", `{"message":"and stream it","conversation_id":"w-1"}`, nil)
		resp := send("POST", "/chat", `{"message":"a new conversation"}`, nil)
		var cookie string
		for _, ck := range resp.Cookies() {
			if ck.Name == "session" {
				cookie = ck.Value
			}
		}
		if cookie == "" {
			t.Fatalf("no session cookie on a new conversation")
		}
		send("POST", "/chat", `{"message":"second turn by cookie"}`, map[string]string{"Cookie": "session=" + cookie})
		send("DELETE", "/conversations/w-del", "", nil)
		send("DELETE", "/conversations/never", "", nil)
		send("GET", "/conversations/w-1", "", nil)
		return dump(t, env.prodRDB), answers, ts.Mirror()
	}
	for _, dir := range []struct {
		name     string
		nativeBP int
	}{{"legacy primary", 0}, {"native primary", 10000}} {
		t.Run(dir.name, func(t *testing.T) {
			plain, plainAnswers, _ := run(t, dir.nativeBP, 0)
			shadowed, shadowedAnswers, m := run(t, dir.nativeBP, 10000)
			if !slices.Equal(plain, shadowed) {
				t.Errorf("production Redis differs with shadowing:\nunshadowed %q\nshadowed   %q", plain, shadowed)
			}
			if !slices.Equal(plainAnswers, shadowedAnswers) {
				t.Errorf("client answers differ with shadowing:\nunshadowed %q\nshadowed   %q", plainAnswers, shadowedAnswers)
			}
			if len(plain) < 8 {
				t.Errorf("production Redis after the writes: %q", plain)
			}
			// Every write was shadowed and matched: the shadow saw the state as
			// it was before the primary's own write (else its model request,
			// and so its reply, would differ).
			var compared, matched int64
			for _, s := range m.Summary() {
				compared += s.Compared
				matched += s.Matched
				if len(s.Skipped) != 0 {
					t.Errorf("route %s skipped: %v", s.Route, s.Skipped)
				}
			}
			if compared != 7 || matched != 7 {
				t.Errorf("compared %d, matched %d, want 7; diffs %+v", compared, matched, records(t, m, shadow.Query{}))
			}
			// The copies staged in the isolated Redis were released, and a new
			// conversation the isolated legacy app saved was deleted.
			if left := dump(t, env.isoRDB); len(left) != 0 {
				t.Errorf("isolated Redis not left empty: %q", left)
			}
		})
	}
}

// --- (4) a slow or dead shadow side: the primary is untouched, memory bounded, drops counted.

func testShadowSlowDead(t *testing.T, env *shadowEnv) {
	const n = 40
	const workers, queue = 2, 4
	global := fmt.Sprintf("  workers: %d\n  queue_size: %d\n  timeout: 30s\n", workers, queue)
	want := func(t *testing.T) []byte {
		rec := httptest.NewRecorder()
		env.native.ServeHTTP(rec, httptest.NewRequest("GET", "/models", nil))
		return rec.Body.Bytes()
	}(t)

	t.Run("slow", func(t *testing.T) {
		release := make(chan struct{})
		var arrived, maxBusy, busy atomic.Int64
		slow := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			arrived.Add(1)
			b := busy.Add(1)
			for {
				if old := maxBusy.Load(); b <= old || maxBusy.CompareAndSwap(old, b) {
					break
				}
			}
			defer busy.Add(-1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"slow": true}`))
		}))
		ts := startShadowServer(t, env.shadowYAML(slow.URL, 10000, 10000, global), env.native, env.isoNative)
		m := ts.Mirror()
		c := newClient(t)
		for i := range n {
			resp, b := do(t, c, http.MethodGet, ts.URL+"/models", "", nil)
			if resp.StatusCode != 200 || !bytes.Equal(b, want) {
				t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
			}
			if d := m.QueueDepth(); d > queue {
				t.Fatalf("queue depth %d above its bound %d", d, queue)
			}
		}
		// Every request was answered while the shadow side held its calls:
		// nothing on the primary path waited for it. What did not fit was
		// dropped and counted.
		waitOutcomesAtLeast(t, m, func() int64 { return routeSummary(m, "models").Skipped[shadow.SkipQueueFull] }, n-workers-queue)
		s := routeSummary(m, "models")
		if q := s.Skipped[shadow.SkipQueueFull]; q < n-workers-queue || q > n-queue {
			t.Errorf("queue_full drops %d, want in [%d, %d]", q, n-workers-queue, n-queue)
		}
		if a := arrived.Load(); a > workers {
			t.Errorf("%d shadow calls reached the slow side at once, above the %d workers", a, workers)
		}
		close(release)
		waitOutcomes(t, m, n)
		if mb := maxBusy.Load(); mb > workers {
			t.Errorf("slow side saw %d calls at once, above %d workers", mb, workers)
		}
		// Primary error rate: no 5xx, no backend errors on the route.
		resp, b := do(t, c, http.MethodGet, ts.AdminURL+"/metrics", "", nil)
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte(fmt.Sprintf(`cutover_requests_total{backend="native",code="2xx",route="models"} %d`, n))) ||
			regexp.MustCompile(`cutover_requests_total\{backend="\w+",code="(5xx|499|other)",route="models"\} [1-9]`).Match(b) {
			t.Errorf("primary metrics:\n%s", grepLines(b, `route="models"`))
		}
	})

	t.Run("dead", func(t *testing.T) {
		ln := listen(t)
		dead := "http://" + ln.Addr().String()
		ln.Close()
		ts := startShadowServer(t, env.shadowYAML(dead, 10000, 10000, global), env.native, env.isoNative)
		m := ts.Mirror()
		c := newClient(t)
		for i := range n {
			resp, b := do(t, c, http.MethodGet, ts.URL+"/models", "", nil)
			if resp.StatusCode != 200 || !bytes.Equal(b, want) {
				t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
			}
		}
		waitOutcomes(t, m, n)
		s := routeSummary(m, "models")
		if s.Errors == 0 || s.Errors+s.Skipped[shadow.SkipQueueFull] != n || s.Compared != 0 {
			t.Errorf("dead shadow side: %+v, want %d errors or queue_full drops", s, n)
		}
		errs := records(t, m, shadow.Query{Route: "models", Class: shadow.ClassError})
		if len(errs) == 0 || errs[0].Shadow.Error == "" || errs[0].Primary.Status != 200 {
			t.Errorf("error records: %+v", errs)
		}
	})
}

func waitOutcomesAtLeast(t *testing.T, m *shadow.Mirror, f func() int64, want int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for f() < want {
		if time.Now().After(deadline) {
			t.Fatalf("waited for %d, got %d; summary %+v", want, f(), m.Summary())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// --- (5) a stream is compared event by event while the client gets each event as produced.

// gatedApp holds the native stream after its first delta event has been
// flushed, until the test says the client received it: if anything between
// the handler and the client buffered the stream, the client would never
// see that event before the stream ends, and the gate would time out.
type gatedApp struct {
	app      *handlers.App
	opened   chan struct{}
	timedOut atomic.Bool
}

func (g *gatedApp) Endpoints() []string { return g.app.Endpoints() }

func (g *gatedApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Test-Gate") == "" || r.Header.Get("X-Cutover-Shadow") != "" {
		g.app.ServeHTTP(w, r)
		return
	}
	g.app.ServeHTTP(&gateWriter{ResponseWriter: w, g: g}, r)
}

type gateWriter struct {
	http.ResponseWriter
	g      *gatedApp
	deltas int
	waited bool
}

func (w *gateWriter) Write(p []byte) (int, error) {
	w.deltas += bytes.Count(p, []byte("event: delta"))
	return w.ResponseWriter.Write(p)
}

func (w *gateWriter) Flush() { _ = w.FlushError() }

func (w *gateWriter) FlushError() error {
	err := http.NewResponseController(w.ResponseWriter).Flush()
	if w.deltas > 0 && !w.waited {
		w.waited = true
		select {
		case <-w.g.opened:
		case <-time.After(10 * time.Second):
			w.g.timedOut.Store(true)
		}
	}
	return err
}

func (w *gateWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func testShadowStream(t *testing.T, env *shadowEnv) {
	t.Run("native primary gated, legacy shadow", func(t *testing.T) {
		env.reset(t)
		g := &gatedApp{app: env.native, opened: make(chan struct{})}
		ts := startShadowServer(t, env.shadowYAML(env.legacy.URL(), 10000, 10000, ""), g, env.isoNative)
		m := ts.Mirror()
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/chat/stream", strings.NewReader(`{"message":"stream me a story with <tags> & caf\u00e9","conversation_id":"st-1"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Test-Gate", "1")
		resp, err := newClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		var events []string
		var ev strings.Builder
		for {
			line, err := br.ReadString('\n')
			if line == "\n" {
				events = append(events, ev.String())
				if len(events) == 1 {
					if !strings.HasPrefix(ev.String(), "event: delta") {
						t.Fatalf("first event %q", ev.String())
					}
					close(g.opened) // the client has the first delta: let the stream go on
				}
				ev.Reset()
			} else {
				ev.WriteString(line)
			}
			if err != nil {
				break
			}
		}
		if g.timedOut.Load() {
			t.Fatal("the first delta did not reach the client while the handler was still streaming: the stream was buffered")
		}
		if len(events) < 3 || !strings.HasPrefix(events[len(events)-1], "event: done") {
			t.Fatalf("client events: %q", events)
		}
		waitOutcomes(t, m, 1)
		s := routeSummary(m, "chat_stream")
		if s.Compared != 1 || s.Matched != 1 {
			t.Errorf("stream summary %+v; diffs %+v", s, records(t, m, shadow.Query{}))
		}
	})

	t.Run("legacy primary, broken native stream", func(t *testing.T) {
		env.reset(t)
		ts := startShadowServer(t, env.shadowYAML(env.legacy.URL(), 0, 10000, ""), appWithEndpoints{env.native, env.native}, doubleApp(env.isoNative))
		m := ts.Mirror()
		c := newClient(t)
		resp, b := postJSON(t, c, ts.URL+"/chat/stream", `{"message":"stream again","conversation_id":"st-2"}`, map[string]string{"X-Test-Break": "stream"})
		if resp.StatusCode != 200 || bytes.Contains(b, []byte("[broken]")) || !bytes.Contains(b, []byte("event: done")) {
			t.Fatalf("client stream: %d %s", resp.StatusCode, b)
		}
		waitOutcomes(t, m, 1)
		recs := records(t, m, shadow.Query{Route: "chat_stream"})
		if len(recs) != 1 || recs[0].Class != shadow.ClassSemantic {
			t.Fatalf("stream records: %+v", recs)
		}
		var paths []string
		for _, mm := range recs[0].Mismatches {
			paths = append(paths, mm.Path)
		}
		// Event by event: the first delta's data differs, so does the assembled text.
		if !slices.ContainsFunc(paths, func(p string) bool { return strings.HasPrefix(p, "events[0].data") }) || !slices.Contains(paths, "sse.text") {
			t.Errorf("stream mismatch paths %q, want events[0].data... and sse.text", paths)
		}
	})
}

// Skips are counted by reason and the primary is served whole whatever the
// reason; sampling is a pure function of the identity; noise sampling learns
// a field that differs between two runs of the primary and reports it as
// noise. Test backends on loopback, no real stack needed.
func TestShadowSkipsSamplingNoise(t *testing.T) {
	var counter atomic.Int64
	legacy := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/counter" {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"n":%d,"v":1}`, counter.Add(1))
			return
		}
		echoHandler("legacy")(w, r)
	}))
	native := &fakeNative{endpoints: []string{"counter", "echo", "chat", "narrow", "sampled", "isolated", "model"},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/counter" {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"n":0,"v":1}`))
				return
			}
			echoHandler("legacy")(w, r) // answers like legacy, so only the request matters
		})}
	yaml := `shutdown:
  drain_delay: 1ms
legacy:
  url: ` + legacy.URL + `
stickiness: ["header:X-User-Id"]
shadow:
  max_body_bytes: 100
  model_calls_per_minute: 2
  isolated_legacy_url: http://127.0.0.1:1
  isolated_redis_url: redis://127.0.0.1:1/0
routes:
  - name: counter
    path: /counter
    shadow: {rate_bp: 10000, compare: json, noise_rate_bp: 10000}
  - name: echo
    path: /echo
    methods: [GET, POST]
    shadow: {rate_bp: 10000, compare: json, ignore: ["$.backend", "$.header", "$.host"]}
  - name: narrow
    path: /narrow
    methods: [GET, POST]
    shadow: {rate_bp: 10000, methods: [POST]}
  - name: isolated
    path: /isolated
    methods: [POST]
    shadow: {rate_bp: 10000, safe: true}
  - name: sampled
    path: /sampled
    shadow: {rate_bp: 5000}
  - name: model
    path: /model
    shadow: {rate_bp: 10000, model_call: true}
`
	ts := startShadowServer(t, yaml, native, native.Handler)
	m := ts.Mirror()
	c := newClient(t)
	sent := int64(0)
	get := func(path, body string, header map[string]string) (*http.Response, []byte) {
		t.Helper()
		method := http.MethodGet
		if body != "" && path != "/echo" {
			method = http.MethodPost
		}
		resp, b := do(t, c, method, ts.URL+path, body, header)
		sent++
		waitOutcomes(t, m, sent)
		return resp, b
	}

	// Skips, each counted, the primary served whole.
	big := strings.Repeat("x", 300)
	if _, b := get("/echo", big, nil); decodeSeen(t, b).BodyLen != 300 {
		t.Errorf("primary did not get the whole body: %s", b)
	}
	get("/echo", "small", nil)
	get("/narrow", "", nil)                            // GET, but only POST is shadowed here
	get("/narrow", "not safe", nil)                    // POST, not shadow-safe
	get("/isolated", `{"conversation_id":"abc"}`, nil) // the isolated Redis is down: no snapshot
	tests := []struct {
		route, reason string
	}{
		{"echo", shadow.SkipBodyTooLarge},
		{"narrow", shadow.SkipMethodExcluded},
		{"narrow", shadow.SkipUnsafeMethod},
		{"isolated", shadow.SkipSnapshot},
	}
	for _, tt := range tests {
		if n := routeSummary(m, tt.route).Skipped[tt.reason]; n != 1 {
			t.Errorf("route %s: %s skips %d, want 1 (%+v)", tt.route, tt.reason, n, routeSummary(m, tt.route))
		}
	}
	if s := routeSummary(m, "echo"); s.Compared != 1 || s.Matched != 1 {
		t.Errorf("echo: %+v", s)
	}

	// Cost guard: shadows that call the model are capped per minute (a
	// bucket of 2 that refills 2 a minute: the test runs well within it).
	for range 4 {
		get("/model", "", nil)
	}
	if s := routeSummary(m, "model"); s.Compared != 2 || s.Skipped[shadow.SkipRateLimited] != 2 {
		t.Errorf("model: %+v, want 2 compared and 2 rate_limited", s)
	}

	// Sampling: the same identity always gets the same decision.
	sampled := map[string]bool{}
	for i := range 200 {
		user := "user-" + strconv.Itoa(i)
		get("/sampled", "", map[string]string{"X-User-Id": user})
		sampled[user] = routeSummary(m, "sampled").Compared > int64(len(filter(sampled, true)))
	}
	n := len(filter(sampled, true))
	if n < 70 || n > 130 {
		t.Errorf("%d of 200 identities sampled at 50 %%", n)
	}
	for i := range 50 {
		user := "user-" + strconv.Itoa(i)
		before := routeSummary(m, "sampled").Compared
		get("/sampled", "", map[string]string{"X-User-Id": user})
		if got := routeSummary(m, "sampled").Compared > before; got != sampled[user] {
			t.Fatalf("%s sampled %v, then %v", user, sampled[user], got)
		}
	}

	// Noise: $.n differs between legacy and native, and between two runs of
	// legacy too, so once learnt it is reported as noise, not a failure.
	for range 12 {
		get("/counter", "", nil)
	}
	s := routeSummary(m, "counter")
	if s.Compared != 12 || s.Noise == 0 || s.Semantic+s.Noise != 12 {
		t.Errorf("counter: %+v, want semantic until learnt, then noise", s)
	}
	fields := m.Noise().Fields("counter")
	if len(fields) != 1 || fields[0].Path != "$.n" || !fields[0].Noise {
		t.Errorf("learnt fields %+v", fields)
	}
	resp, b := do(t, c, http.MethodGet, ts.AdminURL+"/metrics", "", nil)
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`cutover_shadow_skips_total{reason="body_too_large",route="echo"} 1`)) ||
		!bytes.Contains(b, []byte(`cutover_shadow_comparisons_total{class="noise",route="counter"}`)) {
		t.Errorf("metrics:\n%s", grepLines(b, "cutover_shadow"))
	}
}

func filter(m map[string]bool, v bool) []string {
	var out []string
	for k, x := range m {
		if x == v {
			out = append(out, k)
		}
	}
	return out
}
