// Package conformance compares two HTTP backends request by request: the legacy
// Flask app and the native handlers, directly or through the proxy. It sends
// every case of a corpus (handlers/testdata/conformance/corpus.json, generated
// by gen_corpus.py beside it) to both, from the same prior state (Redis flushed
// and seeded before each request), and reports every difference in status,
// header fields and values (Allow compared as a set; Date, Connection,
// Transfer-Encoding and Keep-Alive ignored), body bytes, the Redis state
// afterwards and the request bodies the Bedrock stub received.
//
// It is imported by tests only.
package conformance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/redis/go-redis/v9"

	"github.com/cutover/cutover/compat"
	"github.com/cutover/cutover/internal/testenv"
)

// Case is one request of the corpus with the state it starts from; see
// gen_corpus.py for the meaning of each field.
type Case struct {
	Name      string      `json:"name"`
	Method    string      `json:"method"`
	Target    string      `json:"target"`
	Headers   [][2]string `json:"headers"`
	Body      *string     `json:"body"`
	BodyHex   string      `json:"body_hex"`
	BodyParts []BodyPart  `json:"body_parts"`
	Encoding  string      `json:"encoding"`
	Chunked   bool        `json:"chunked"`
	Cookie    string      `json:"cookie"`
	// CookieValue is a session cookie Flask made (gen_corpus.py signs it
	// with the suite's SECRET_KEY at its clock), for session values only
	// Python produces (tuples, UUIDs, datetimes, bytes...). The case fails
	// if it does not verify, so a changed key or clock cannot turn it into
	// a quiet "bad signature" case.
	CookieValue string     `json:"cookie_value"`
	SessionID   string     `json:"session_id"`
	Redis       [][]string `json:"redis"`
	RedisDown   bool       `json:"redis_down"`
}

// BodyPart is Text repeated Count times (JSON: [text, count]).
type BodyPart struct {
	Text  string
	Count int
}

// UnmarshalJSON reads [text, count].
func (p *BodyPart) UnmarshalJSON(b []byte) error {
	var raw [2]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw[0], &p.Text); err != nil {
		return err
	}
	return json.Unmarshal(raw[1], &p.Count)
}

// Payload returns the request body bytes (nil when the case has none).
func (c *Case) Payload() ([]byte, error) {
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
			out = append(out, 0xff, 0xfe) // Python's "utf-16": BOM, then little-endian here
		}
		for _, u := range utf16.Encode([]rune(text)) {
			out = append(out, byte(u), byte(u>>8))
		}
		return out, nil
	}
	return nil, fmt.Errorf("case %s: unknown encoding %q", c.Name, c.Encoding)
}

// CorpusPath is the checked-in corpus, found from the repository root.
func CorpusPath() (string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "handlers", "testdata", "conformance", "corpus.json"), nil
}

// LoadCorpus reads a corpus file.
func LoadCorpus(path string) ([]Case, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Cases []Case `json:"cases"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return doc.Cases, nil
}

// Tamper changes the first character of a cookie value, which breaks its
// signature. (Changing the last character may not: the last base64 digit of
// the signature carries bits the decoder ignores.)
func Tamper(cookie string) string {
	c := byte('A')
	if cookie != "" && cookie[0] == 'A' {
		c = 'B'
	}
	if cookie == "" {
		return string(c)
	}
	return string(c) + cookie[1:]
}

// SessionCookie builds the session cookie value of a kind named in the corpus,
// signed with secret at the Unix time clock (the legacy CUTOVER_TEST_CLOCK).
func SessionCookie(kind, id, secret string, clock float64) (string, error) {
	at := func(sec float64) func() time.Time {
		t := time.Unix(int64(sec), 0)
		return func() time.Time { return t }
	}
	codec := func(key string, sec float64) *compat.SessionCodec {
		return &compat.SessionCodec{SecretKey: key, Now: at(sec)}
	}
	data := compat.Object{{Key: "conversation_id", Value: id}}
	switch kind {
	case "":
		return "", nil
	case "valid":
		return codec(secret, clock).Encode(data)
	case "tampered":
		v, err := codec(secret, clock).Encode(data)
		return Tamper(v), err
	case "expired":
		return codec(secret, clock-32*24*3600).Encode(data)
	case "foreign":
		return codec(secret+"-other", clock).Encode(data)
	case "garbage":
		return "not.a.cookie", nil
	case "empty-session":
		return codec(secret, clock).Encode(compat.Object{})
	case "int-id":
		return codec(secret, clock).Encode(compat.Object{{Key: "conversation_id", Value: int64(7)}})
	case "large-no-id":
		// Big enough that Flask compresses it; saving it again after the app
		// adds a conversation_id compares the zlib bytes too.
		return codec(secret, clock).Encode(compat.Object{{Key: "notes", Value: strings.Repeat("caf\u00e9 <&> ", 40)}, {Key: "n", Value: 1.5}})
	}
	return "", fmt.Errorf("unknown cookie kind %q", kind)
}

// VerifyCookie checks that a session cookie is signed with secret and valid
// at the Unix time clock.
func VerifyCookie(cookie, secret string, clock float64) error {
	now := time.Unix(int64(clock), 0)
	_, err := (&compat.SessionCodec{SecretKey: secret, Now: func() time.Time { return now }}).Decode(cookie)
	return err
}

var cookieToken = regexp.MustCompile(`\{cookie:([a-z-]+)\}`)

// RawRequest builds the HTTP/1.1 request bytes of a case: Host
// cutover.test, the case's headers ({cookie:KIND} tokens replaced by
// makeCookie(KIND)), then extra, a Cookie header for cookie, the body
// (Content-Length, or chunked), and Connection: close.
func RawRequest(c *Case, body []byte, cookie string, extra [][2]string, makeCookie func(kind string) (string, error)) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: cutover.test\r\n", c.Method, c.Target)
	headers := append(append([][2]string(nil), c.Headers...), extra...)
	for _, h := range headers {
		var err error
		v := cookieToken.ReplaceAllStringFunc(h[1], func(tok string) string {
			val, e := makeCookie(cookieToken.FindStringSubmatch(tok)[1])
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

// Capture is one backend's answer to one case.
type Capture struct {
	Status  int
	Header  http.Header
	Body    []byte
	ReadErr string   // error reading the body (an aborted stream), "" if none
	Redis   []string // the Redis state after the request
	Bedrock []string // requests the stub received: escaped path, space, body
}

func (c *Capture) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", c.Status)
	keys := make([]string, 0, len(c.Header))
	for k := range c.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %q\n", k, c.Header[k])
	}
	fmt.Fprintf(&b, "body %q\nredis %q\nbedrock %d request(s)", clip(string(c.Body)), c.Redis, len(c.Bedrock))
	if c.ReadErr != "" {
		fmt.Fprintf(&b, "\nread error %s", c.ReadErr)
	}
	return b.String()
}

// Send sends req over a fresh connection to addr and reads the answer. A
// failed dial is retried twice: it says nothing about the backend's answers.
func Send(addr, method string, req []byte) (*Capture, error) {
	var conn net.Conn
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		if conn, err = net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	// Write concurrently: a server may answer (413) before reading the body.
	go func() { _, _ = conn.Write(req) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	out := &Capture{Status: resp.StatusCode, Header: resp.Header}
	out.Body, err = io.ReadAll(resp.Body)
	if err != nil {
		out.ReadErr = err.Error()
	}
	return out, nil
}

// StubLog records the requests a Bedrock stub receives.
type StubLog struct {
	mu   sync.Mutex
	reqs []string
}

// Wrap returns next recording each request's path and body first.
func (l *StubLog) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		l.mu.Lock()
		l.reqs = append(l.reqs, r.URL.EscapedPath()+" "+string(body))
		l.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// Take returns the requests recorded since the last Take.
func (l *StubLog) Take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.reqs
	l.reqs = nil
	return out
}

// Target is where a backend is reached: an address and headers added to
// every request (for the proxy, its override header).
type Target struct {
	Addr   string
	Header [][2]string
}

// Options configure Run.
type Options struct {
	// Legacy and Native serve the cases; LegacyDown and NativeDown serve the
	// cases marked redis_down (backends whose Redis is not running).
	Legacy, Native, LegacyDown, NativeDown Target
	// Redis is the store Legacy and Native share; it is flushed before each request.
	Redis *redis.Client
	// Stub records what the backends send to Bedrock.
	Stub *StubLog
	// Secret is the Flask SECRET_KEY both backends use.
	Secret string
	// Clock is the CUTOVER_TEST_CLOCK both backends use (Unix seconds).
	Clock float64
	// Show logs every case's legacy answer.
	Show bool
	// Check, when set, is called with both answers of each case before they
	// are compared; it may fail the subtest and remove headers that differ
	// by design (such as the proxy's served-by header).
	Check func(t *testing.T, c *Case, legacy, native *Capture)
}

// Run sends every case to both backends, one subtest per case, and fails the
// subtests whose answers differ, printing each difference.
func Run(t *testing.T, cases []Case, o Options) {
	t.Helper()
	var failed []string
	ran := 0
	for i := range cases {
		c := &cases[i]
		ok := t.Run(c.Name, func(t *testing.T) {
			ran++
			body, err := c.Payload()
			if err != nil {
				t.Fatal(err)
			}
			makeCookie := func(kind string) (string, error) { return SessionCookie(kind, c.SessionID, o.Secret, o.Clock) }
			cookie, err := makeCookie(c.Cookie)
			if err != nil {
				t.Fatal(err)
			}
			if c.CookieValue != "" {
				if c.Cookie != "" {
					t.Fatal("case has both cookie and cookie_value")
				}
				if err := VerifyCookie(c.CookieValue, o.Secret, o.Clock); err != nil {
					t.Fatalf("cookie_value: %v (regenerate the corpus with the suite's SECRET_KEY and clock)", err)
				}
				cookie = c.CookieValue
			}
			legacy, native := o.Legacy, o.Native
			if c.RedisDown {
				legacy, native = o.LegacyDown, o.NativeDown
				if legacy.Addr == "" || native.Addr == "" {
					t.Fatal("redis_down case without LegacyDown/NativeDown targets")
				}
			}
			l, err := runOne(c, legacy, body, cookie, makeCookie, o)
			if err != nil {
				t.Fatalf("legacy: %v", err)
			}
			n, err := runOne(c, native, body, cookie, makeCookie, o)
			if err != nil {
				t.Fatalf("native: %v", err)
			}
			if o.Show {
				t.Logf("legacy answer:\n%s", l)
			}
			if o.Check != nil {
				o.Check(t, c, l, n)
			}
			if !compat.ZlibByteExact {
				// A CGO_ENABLED=0 build: compressed session cookies may
				// differ in their deflate bytes only (README, Known limits).
				accepted, err := relaxCompressedCookies(o.Secret, o.Clock, l, n)
				if err != nil {
					t.Errorf("session cookie differs beyond its deflate stream: %v", err)
				}
				for _, v := range accepted {
					t.Logf("pure-Go zlib: native Set-Cookie %q accepted: same inflated payload, timestamp and attributes, Flask opens it to the same session", v)
				}
			}
			if d := Diff(l, n); len(d) > 0 {
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

func runOne(c *Case, tg Target, body []byte, cookie string, makeCookie func(string) (string, error), o Options) (*Capture, error) {
	req, err := RawRequest(c, body, cookie, tg.Header, makeCookie)
	if err != nil {
		return nil, err
	}
	if !c.RedisDown {
		if err := Prepare(o.Redis, c); err != nil {
			return nil, err
		}
	}
	o.Stub.Take()
	got, err := Send(tg.Addr, c.Method, req)
	if err != nil {
		return nil, err
	}
	// Requests are recorded on arrival: what arrived by now is this backend's.
	got.Bedrock = o.Stub.Take()
	if !c.RedisDown {
		if got.Redis, err = Snapshot(o.Redis); err != nil {
			return nil, err
		}
	}
	return got, nil
}

// Prepare flushes Redis and runs the case's setup commands.
func Prepare(rdb *redis.Client, c *Case) error {
	ctx := context.Background()
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	for _, cmd := range c.Redis {
		args := make([]any, len(cmd))
		for i, a := range cmd {
			args[i] = a
		}
		if err := rdb.Do(ctx, args...).Err(); err != nil {
			return fmt.Errorf("setup %q: %w", cmd, err)
		}
	}
	return nil
}

// Snapshot lists every key of Redis with its value, sorted.
func Snapshot(rdb *redis.Client) ([]string, error) {
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		return nil, err
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			return nil, err
		}
		switch typ {
		case "list":
			items, err := rdb.LRange(ctx, k, 0, -1).Result()
			if err != nil {
				return nil, err
			}
			for i, it := range items {
				out = append(out, fmt.Sprintf("%s[%d] = %s", k, i, it))
			}
		case "string":
			v, err := rdb.Get(ctx, k).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return nil, err
			}
			out = append(out, fmt.Sprintf("%s = %s", k, v))
		default:
			out = append(out, fmt.Sprintf("%s (%s)", k, typ))
		}
	}
	return out, nil
}

// IgnoredHeaders differ by construction: the server's clock and connection framing.
var IgnoredHeaders = map[string]bool{"Date": true, "Connection": true, "Transfer-Encoding": true, "Keep-Alive": true}

// Diff describes every difference between two captures, legacy first.
func Diff(l, n *Capture) []string {
	var d []string
	if l.Status != n.Status {
		d = append(d, fmt.Sprintf("status: legacy %d, native %d", l.Status, n.Status))
	}
	keys := map[string]bool{}
	for k := range l.Header {
		keys[k] = true
	}
	for k := range n.Header {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if IgnoredHeaders[k] {
			continue
		}
		lv, nv := l.Header.Values(k), n.Header.Values(k)
		same := slices.Equal(lv, nv)
		if k == "Allow" && len(lv) == 1 && len(nv) == 1 {
			// Werkzeug builds Allow from a Python set: its order varies per worker.
			same = compat.AllowEqual(lv[0], nv[0])
		}
		if !same {
			d = append(d, fmt.Sprintf("header %s: legacy %q, native %q", k, lv, nv))
		}
	}
	if !bytes.Equal(l.Body, n.Body) {
		d = append(d, "body: "+bodyDiff(l.Body, n.Body))
	}
	if l.ReadErr != n.ReadErr {
		d = append(d, fmt.Sprintf("body read error: legacy %q, native %q", l.ReadErr, n.ReadErr))
	}
	if !slices.Equal(l.Redis, n.Redis) {
		d = append(d, fmt.Sprintf("redis after:\n  legacy %q\n  native %q", l.Redis, n.Redis))
	}
	if !slices.Equal(l.Bedrock, n.Bedrock) {
		d = append(d, fmt.Sprintf("bedrock requests:\n  legacy %q\n  native %q", clip(strings.Join(l.Bedrock, "\n")), clip(strings.Join(n.Bedrock, "\n"))))
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
