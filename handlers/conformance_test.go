package handlers

// The conformance suite: every request of testdata/conformance/corpus.json is
// sent to the legacy Flask app under gunicorn and to the native App, from the
// same prior state (Redis flushed and seeded before each), against the same
// Bedrock stub, with the same fixed clock and body-hashed conversation ids.
// Status, header fields and values (Allow as a set; Date, Connection,
// Transfer-Encoding and Keep-Alive ignored), body bytes, the Redis state
// after the request and the bodies sent to Bedrock must be identical.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/redis/go-redis/v9"

	"github.com/cutover/cutover/compat"
	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/testenv"
)

// CorpusCase is one request of the conformance corpus with the state it
// starts from; see testdata/conformance/gen_corpus.py for the fields.
type CorpusCase struct {
	Name      string      `json:"name"`
	Method    string      `json:"method"`
	Target    string      `json:"target"`
	Headers   [][2]string `json:"headers"`
	Body      *string     `json:"body"`
	BodyHex   string      `json:"body_hex"`
	BodyParts []bodyPart  `json:"body_parts"`
	Encoding  string      `json:"encoding"`
	Chunked   bool        `json:"chunked"`
	Cookie    string      `json:"cookie"`
	SessionID string      `json:"session_id"`
	Redis     [][]string  `json:"redis"`
	RedisDown bool        `json:"redis_down"`
}

type bodyPart struct {
	Text  string
	Count int
}

func (p *bodyPart) UnmarshalJSON(b []byte) error {
	var raw [2]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw[0], &p.Text); err != nil {
		return err
	}
	return json.Unmarshal(raw[1], &p.Count)
}

// payload returns the request body bytes.
func (c *CorpusCase) payload() ([]byte, error) {
	var text string
	switch {
	case c.BodyHex != "":
		return hex.DecodeString(c.BodyHex)
	case c.Body != nil:
		text = *c.Body
	case c.BodyParts != nil:
		var b strings.Builder
		for _, p := range c.BodyParts {
			b.WriteString(strings.Repeat(p.Text, p.Count))
		}
		text = b.String()
	default:
		return nil, nil
	}
	switch c.Encoding {
	case "":
		return []byte(text), nil
	case "utf-16-le", "utf-16":
		var out []byte
		if c.Encoding == "utf-16" {
			out = append(out, 0xff, 0xfe) // Python's "utf-16": BOM, native (little-endian) order
		}
		for _, u := range utf16.Encode([]rune(text)) {
			out = append(out, byte(u), byte(u>>8))
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown encoding %q", c.Encoding)
}

// LoadCorpus reads the conformance corpus.
func LoadCorpus(path string) ([]CorpusCase, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Cases []CorpusCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return doc.Cases, nil
}

// conformanceClock is CUTOVER_TEST_CLOCK for both backends.
const conformanceClock = "1795726800.25"

// sessionCookie builds the cookie a case asks for, signed as the legacy app would.
func sessionCookie(kind, id string, clock float64) (string, error) {
	codec := func(key string, at float64) *compat.SessionCodec {
		return &compat.SessionCodec{SecretKey: key, Now: FixedClock(at)}
	}
	data := compat.Object{{Key: "conversation_id", Value: id}}
	switch kind {
	case "":
		return "", nil
	case "valid":
		return codec(testenv.LegacySecretKey, clock).Encode(data)
	case "tampered":
		v, err := codec(testenv.LegacySecretKey, clock).Encode(data)
		if err != nil {
			return "", err
		}
		return tamper(v), nil
	case "expired":
		return codec(testenv.LegacySecretKey, clock-32*24*3600).Encode(data)
	case "foreign":
		return codec("some-other-secret", clock).Encode(data)
	case "garbage":
		return "not.a.cookie", nil
	case "empty-session":
		return codec(testenv.LegacySecretKey, clock).Encode(compat.Object{})
	case "int-id":
		return codec(testenv.LegacySecretKey, clock).Encode(compat.Object{{Key: "conversation_id", Value: int64(7)}})
	}
	return "", fmt.Errorf("unknown cookie kind %q", kind)
}

// captured is one backend's answer to one case.
type captured struct {
	status  int
	header  http.Header
	body    []byte
	readErr string
	redis   []string // the Redis state after the request
	bedrock []string // requests the stub received: path and body
}

// stubLog records the requests the Bedrock stub receives.
type stubLog struct {
	mu   sync.Mutex
	reqs []string
}

func (l *stubLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		l.mu.Lock()
		l.reqs = append(l.reqs, r.URL.EscapedPath()+" "+string(body))
		l.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (l *stubLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.reqs
	l.reqs = nil
	return out
}

// conformanceEnv is both backends over one stub and one Redis.
type conformanceEnv struct {
	rdb                  *redis.Client
	stub                 *stubLog
	legacy, native       string // host:port
	legacyDown, nativeDn string // same, with Redis down
}

// deadRedisURL is an address where no Redis listens (port 1 is never bound here).
const deadRedisURL = "redis://127.0.0.1:1/0"

func startConformance(t *testing.T, needDown bool) *conformanceEnv {
	t.Helper()
	env := &conformanceEnv{stub: &stubLog{}}
	stub := bedrockstub.New(bedrockstub.Options{})
	stubSrv := httptest.NewServer(env.stub.wrap(stub))
	t.Cleanup(func() {
		stub.Close()
		stubSrv.Close()
	})
	rdb, err := NewRedisClient(sharedRedis.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	env.rdb = rdb

	legacyEnv := func(redisURL string) map[string]string {
		return map[string]string{
			"REDIS_URL":            redisURL,
			"BEDROCK_ENDPOINT_URL": stubSrv.URL,
			"CUTOVER_TEST_CLOCK":   conformanceClock,
			"CUTOVER_TEST_IDS":     "1",
			"BEDROCK_MAX_ATTEMPTS": "1",
			"BEDROCK_TIMEOUT":      "1",
			"GUNICORN_LOGLEVEL":    "warning",
		}
	}
	clock, _ := strconv.ParseFloat(conformanceClock, 64)
	native := func(redisURL string) string {
		client, err := NewBedrockClient(context.Background(), BedrockOptions{
			EndpointURL: stubSrv.URL,
			Timeout:     time.Second,
			MaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
		})
		if err != nil {
			t.Fatal(err)
		}
		store, err := NewRedisClient(redisURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = store.Close() })
		app, err := New(Config{SecretKey: testenv.LegacySecretKey, BedrockTimeout: time.Second}, Deps{
			Bedrock: client,
			Store:   store,
			Now:     FixedClock(clock),
			NewID:   HashedID,
			Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		// net/http answers "OPTIONS *" itself unless told not to; Flask
		// answers it (404), so a server in front of App must pass it on.
		srv := httptest.NewUnstartedServer(app)
		srv.Config.DisableGeneralOptionsHandler = true
		srv.Start()
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	env.legacy = testenv.StartLegacy(t, legacyEnv(sharedRedis.URL())).Addr()
	env.native = native(sharedRedis.URL())
	if needDown {
		env.legacyDown = testenv.StartLegacy(t, legacyEnv(deadRedisURL)).Addr()
		env.nativeDn = native(deadRedisURL)
	}
	return env
}

// prepare flushes Redis and runs the case's setup commands.
func (e *conformanceEnv) prepare(c *CorpusCase) error {
	ctx := context.Background()
	if err := e.rdb.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	for _, cmd := range c.Redis {
		args := make([]any, len(cmd))
		for i, a := range cmd {
			args[i] = a
		}
		if err := e.rdb.Do(ctx, args...).Err(); err != nil {
			return fmt.Errorf("setup %q: %w", cmd, err)
		}
	}
	e.stub.take()
	return nil
}

// snapshot dumps every key of Redis, sorted.
func (e *conformanceEnv) snapshot() ([]string, error) {
	ctx := context.Background()
	keys, err := e.rdb.Keys(ctx, "*").Result()
	if err != nil {
		return nil, err
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		typ, err := e.rdb.Type(ctx, k).Result()
		if err != nil {
			return nil, err
		}
		switch typ {
		case "list":
			items, err := e.rdb.LRange(ctx, k, 0, -1).Result()
			if err != nil {
				return nil, err
			}
			for i, it := range items {
				out = append(out, fmt.Sprintf("%s[%d] = %s", k, i, it))
			}
		case "string":
			v, err := e.rdb.Get(ctx, k).Result()
			if err != nil {
				return nil, err
			}
			out = append(out, fmt.Sprintf("%s = %s", k, v))
		default:
			out = append(out, fmt.Sprintf("%s (%s)", k, typ))
		}
	}
	return out, nil
}

var cookieToken = regexp.MustCompile(`\{cookie:([a-z-]+)\}`)

// rawRequest builds the request bytes for a case; header values may hold
// {cookie:KIND} tokens, replaced by makeCookie(KIND).
func rawRequest(c *CorpusCase, body []byte, cookie string, makeCookie func(kind string) (string, error)) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: cutover.test\r\n", c.Method, c.Target)
	for _, h := range c.Headers {
		var err error
		v := cookieToken.ReplaceAllStringFunc(h[1], func(tok string) string {
			kind := cookieToken.FindStringSubmatch(tok)[1]
			val, e := makeCookie(kind)
			if e != nil {
				err = e
			}
			return val
		})
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], v)
	}
	if cookie != "" {
		fmt.Fprintf(&b, "Cookie: session=%s\r\n", cookie)
	}
	hasBody := body != nil || c.Method == http.MethodPost || c.Method == http.MethodPut || c.Method == http.MethodPatch
	switch {
	case c.Chunked:
		b.WriteString("Transfer-Encoding: chunked\r\n")
	case hasBody:
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("Connection: close\r\n\r\n")
	if c.Chunked {
		for rest := body; len(rest) > 0; {
			n := min(7, len(rest))
			fmt.Fprintf(&b, "%x\r\n%s\r\n", n, rest[:n])
			rest = rest[n:]
		}
		b.WriteString("0\r\n\r\n")
	} else {
		b.Write(body)
	}
	return b.Bytes(), nil
}

// send sends the case to addr over a fresh connection and reads the answer.
func send(addr string, c *CorpusCase, req []byte) (*captured, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	// Write concurrently: a server may answer (413) before reading the body.
	go func() { _, _ = conn.Write(req) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: c.Method})
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	out := &captured{status: resp.StatusCode, header: resp.Header}
	out.body, err = io.ReadAll(resp.Body)
	if err != nil {
		out.readErr = err.Error()
	}
	return out, nil
}

func (e *conformanceEnv) run(c *CorpusCase, addr string, req []byte) (*captured, error) {
	if !c.RedisDown {
		if err := e.prepare(c); err != nil {
			return nil, err
		}
	} else {
		e.stub.take()
	}
	got, err := send(addr, c, req)
	if err != nil {
		return nil, err
	}
	// The legacy app may still be talking to a hung stub request; requests are
	// recorded on arrival, so what arrived so far is this backend's.
	got.bedrock = e.stub.take()
	if !c.RedisDown {
		if got.redis, err = e.snapshot(); err != nil {
			return nil, err
		}
	}
	return got, nil
}

// ignoredHeaders differ by construction: the server's clock and framing.
var ignoredHeaders = map[string]bool{"Date": true, "Connection": true, "Transfer-Encoding": true, "Keep-Alive": true}

// diffCaptured describes every difference between the legacy and native answers.
func diffCaptured(l, n *captured) []string {
	var d []string
	if l.status != n.status {
		d = append(d, fmt.Sprintf("status: legacy %d, native %d", l.status, n.status))
	}
	keys := map[string]bool{}
	for k := range l.header {
		keys[k] = true
	}
	for k := range n.header {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if ignoredHeaders[k] {
			continue
		}
		lv, nv := l.header.Values(k), n.header.Values(k)
		same := slices.Equal(lv, nv)
		if k == "Allow" && len(lv) == 1 && len(nv) == 1 {
			same = compat.AllowEqual(lv[0], nv[0])
		}
		if !same {
			d = append(d, fmt.Sprintf("header %s: legacy %q, native %q", k, lv, nv))
		}
	}
	if !bytes.Equal(l.body, n.body) {
		d = append(d, "body: "+bodyDiff(l.body, n.body))
	}
	if l.readErr != n.readErr {
		d = append(d, fmt.Sprintf("body read error: legacy %q, native %q", l.readErr, n.readErr))
	}
	if !slices.Equal(l.redis, n.redis) {
		d = append(d, fmt.Sprintf("redis after:\n  legacy %q\n  native %q", l.redis, n.redis))
	}
	if !slices.Equal(l.bedrock, n.bedrock) {
		d = append(d, fmt.Sprintf("bedrock requests:\n  legacy %q\n  native %q", clip(strings.Join(l.bedrock, "\n")), clip(strings.Join(n.bedrock, "\n"))))
	}
	return d
}

func clip(s string) string {
	if len(s) > 2000 {
		return s[:2000] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

// bodyDiff shows where two bodies part, with context.
func bodyDiff(a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-80)
	hiA, hiB := min(len(a), i+120), min(len(b), i+120)
	return fmt.Sprintf("first difference at byte %d (legacy %d bytes, native %d bytes)\n  legacy ...%q\n  native ...%q", i, len(a), len(b), a[lo:hiA], b[lo:hiB])
}

var showConformance = flag.Bool("conformance.show", false, "log every conformance case's legacy answer")

func (c *captured) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", c.status)
	keys := make([]string, 0, len(c.header))
	for k := range c.header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %q\n", k, c.header[k])
	}
	fmt.Fprintf(&b, "body %q\nredis %q\nbedrock %d request(s)", clip(string(c.body)), c.redis, len(c.bedrock))
	if c.readErr != "" {
		fmt.Fprintf(&b, "\nread error %s", c.readErr)
	}
	return b.String()
}

func TestConformance(t *testing.T) {
	cases, err := LoadCorpus("testdata/conformance/corpus.json")
	if err != nil {
		t.Fatal(err)
	}
	needDown := slices.ContainsFunc(cases, func(c CorpusCase) bool { return c.RedisDown })
	env := startConformance(t, needDown)
	clock, _ := strconv.ParseFloat(conformanceClock, 64)

	var failed []string
	ran := 0
	for i := range cases {
		c := &cases[i]
		ok := t.Run(c.Name, func(t *testing.T) {
			body, err := c.payload()
			if err != nil {
				t.Fatal(err)
			}
			cookie, err := sessionCookie(c.Cookie, c.SessionID, clock)
			if err != nil {
				t.Fatal(err)
			}
			req, err := rawRequest(c, body, cookie, func(kind string) (string, error) { return sessionCookie(kind, c.SessionID, clock) })
			if err != nil {
				t.Fatal(err)
			}
			ran++
			legacyAddr, nativeAddr := env.legacy, env.native
			if c.RedisDown {
				legacyAddr, nativeAddr = env.legacyDown, env.nativeDn
			}
			l, err := env.run(c, legacyAddr, req)
			if err != nil {
				t.Fatalf("legacy: %v", err)
			}
			n, err := env.run(c, nativeAddr, req)
			if err != nil {
				t.Fatalf("native: %v", err)
			}
			if *showConformance {
				t.Logf("legacy answer:\n%s", l)
			}
			if d := diffCaptured(l, n); len(d) > 0 {
				t.Errorf("%s %s: %d difference(s):\n%s", c.Method, c.Target, len(d), strings.Join(d, "\n"))
			}
		})
		if !ok {
			failed = append(failed, c.Name)
		}
	}
	t.Logf("conformance: %d of %d cases run, %d differ", ran, len(cases), len(failed))
	if len(failed) > 0 {
		t.Errorf("cases that differ: %s", strings.Join(failed, ", "))
	}
}
