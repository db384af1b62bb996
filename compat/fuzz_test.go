package compat

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// oracle is a python3 co-process running testdata/pyjson_oracle.py: the
// installed CPython json, itsdangerous/Flask sessions and Werkzeug routing
// answer one JSON request per line. One is started per fuzz (worker) process.
type oracle struct {
	mu   sync.Mutex
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	dead error
}

func startOracle(f testing.TB) *oracle {
	f.Helper()
	cmd := exec.Command("python3", "testdata/pyjson_oracle.py")
	in, err := cmd.StdinPipe()
	if err != nil {
		f.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		f.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		f.Fatalf("start python3 oracle: %v", err)
	}
	o := &oracle{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}
	f.Cleanup(func() {
		_ = in.Close() // the oracle exits at EOF
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if o.dead != nil {
			f.Logf("oracle stderr: %s", stderr.String())
		}
	})
	return o
}

func (o *oracle) ask(t testing.TB, req, resp any) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dead != nil {
		t.Fatalf("oracle is dead: %v", o.dead)
	}
	line, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.in.Write(append(line, '\n')); err != nil {
		o.dead = err
		t.Fatalf("oracle write: %v", err)
	}
	reply, err := o.out.ReadBytes('\n')
	if err != nil {
		o.dead = err
		t.Fatalf("oracle read: %v", err)
	}
	if err := json.Unmarshal(reply, resp); err != nil {
		t.Fatalf("oracle reply %q: %v", reply, err)
	}
}

// toTyped encodes a Go value in gen_vectors.py's typed form for the oracle.
func toTyped(v any) any {
	switch x := v.(type) {
	case nil:
		return []any{"n"}
	case bool:
		return []any{"b", x}
	case int64:
		return []any{"i", strconv.FormatInt(x, 10)}
	case *big.Int:
		return []any{"i", x.String()}
	case float64:
		switch {
		case math.IsNaN(x):
			return []any{"f", "nan"}
		case math.IsInf(x, 1):
			return []any{"f", "inf"}
		case math.IsInf(x, -1):
			return []any{"f", "-inf"}
		}
		return []any{"f", strconv.FormatFloat(x, 'x', -1, 64)}
	case string:
		return []any{"s", codePoints(x)}
	case []any:
		items := make([]any, len(x))
		for i, it := range x {
			items[i] = toTyped(it)
		}
		return []any{"l", items}
	case Object:
		pairs := make([]any, len(x))
		for i, m := range x {
			pairs[i] = []any{codePoints(m.Key), toTyped(m.Value)}
		}
		return []any{"o", pairs}
	}
	panic(fmt.Sprintf("toTyped: %T", v))
}

func codePoints(s string) []rune {
	out := []rune{}
	for i := 0; i < len(s); {
		r, n := decodeWTF8(s[i:])
		out = append(out, r)
		i += n
	}
	return out
}

// valueBuilder turns fuzz bytes into a JSON-able Go value.
type valueBuilder struct {
	b []byte
}

func (vb *valueBuilder) byte() byte {
	if len(vb.b) == 0 {
		return 0
	}
	c := vb.b[0]
	vb.b = vb.b[1:]
	return c
}

func (vb *valueBuilder) bytesN(n int) []byte {
	if n > len(vb.b) {
		n = len(vb.b)
	}
	out := vb.b[:n]
	vb.b = vb.b[n:]
	return out
}

func (vb *valueBuilder) str() string {
	raw := vb.bytesN(int(vb.byte() % 24))
	// Python strings are code points: keep valid UTF-8 and WTF-8 surrogates,
	// map other bytes to U+FFFD (what Dumps would write for them).
	var out []byte
	for i := 0; i < len(raw); {
		r, n := decodeWTF8(string(raw[i:]))
		out = appendWTF8(out, r)
		i += n
	}
	return string(out)
}

func (vb *valueBuilder) value(depth int) any {
	op := vb.byte()
	if depth > 12 && op%9 >= 7 {
		op = 6
	}
	switch op % 9 {
	case 0:
		return nil
	case 1:
		return vb.byte()%2 == 1
	case 2:
		return int64(int8(vb.byte()))
	case 3:
		var b [8]byte
		copy(b[:], vb.bytesN(8))
		return int64(binary.LittleEndian.Uint64(b[:]))
	case 4:
		n := new(big.Int).SetBytes(vb.bytesN(int(vb.byte() % 24)))
		if vb.byte()%2 == 1 {
			n.Neg(n)
		}
		if n.IsInt64() {
			return n.Int64()
		}
		return n
	case 5:
		var b [8]byte
		copy(b[:], vb.bytesN(8))
		return math.Float64frombits(binary.LittleEndian.Uint64(b[:]))
	case 6:
		return vb.str()
	case 7:
		n := int(vb.byte() % 5)
		l := []any{}
		for i := 0; i < n; i++ {
			l = append(l, vb.value(depth+1))
		}
		return l
	default:
		n := int(vb.byte() % 5)
		o := Object{}
		for i := 0; i < n; i++ {
			o.Set(vb.str(), vb.value(depth+1))
		}
		return o
	}
}

// FuzzDumps compares Marshal and Dumps with CPython's json.dumps (Flask's
// settings and the defaults) on values built from the fuzz input.
func FuzzDumps(f *testing.F) {
	o := startOracle(f)
	for _, seed := range [][]byte{
		{8, 3, 1, 'a', 5, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 1, 'b', 6, 4, 0xed, 0xa0, 0x80, 'x'},
		{7, 4, 4, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8, 6, 8, 0xf0, 0x9f, 0x98, 0x80, '<', '>', '&', 0x7f},
		{5, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f},
		{6, 5, 0xc3, 0xa9, 0xe2, 0x80, 0xa8},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v := (&valueBuilder{b: data}).value(0)
		var want struct {
			SortedCompact *string `json:"sorted_compact"`
			Default       *string `json:"default"`
			Error         string  `json:"error"`
		}
		o.ask(t, map[string]any{"op": "dumps", "value": toTyped(v)}, &want)
		got, err := Marshal(v)
		gotDefault, errDefault := Dumps(v, DumpOptions{})
		if want.Error != "" {
			if err == nil || errDefault == nil {
				t.Fatalf("Python raised %s for %#v; Go gave %s / %s", want.Error, v, got, gotDefault)
			}
			return
		}
		if err != nil || string(got) != *want.SortedCompact {
			t.Fatalf("Marshal(%#v)\n got %s (%v)\nwant %s", v, got, err, *want.SortedCompact)
		}
		if errDefault != nil || string(gotDefault) != *want.Default {
			t.Fatalf("Dumps(%#v)\n got %s (%v)\nwant %s", v, gotDefault, errDefault, *want.Default)
		}
	})
}

// FuzzLoads compares Unmarshal with CPython's json.loads(bytes) as Flask's
// get_json runs it: acceptance, the decoded value, its re-encoding with
// json.dumps defaults, and the error class and message.
func FuzzLoads(f *testing.F) {
	o := startOracle(f)
	for _, seed := range []string{
		`{"message": "hi \u00e9", "n": [1, 2.5, -3e2, true, null], "o": {"k": "v"}}`,
		`[NaN, Infinity, -Infinity, 1e400, 123456789012345678901234567890]`,
		`{"a":1,"a":2,"b":{"a":3}}`, `"\ud800\udc00\ud800"`, "\xef\xbb\xbf[1]", "[1,]", `{"a" 1}`,
		"\"\xff\"", "\"\xed\xa0\x80\"", "[\"\x01\"]", " \t\r\n1 \n",
	} {
		f.Add([]byte(seed))
	}
	f.Add([]byte("\xff\xfe{\x00}\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var want struct {
			OK      bool            `json:"ok"`
			Value   json.RawMessage `json:"value"`
			Default *string         `json:"default"`
			Error   string          `json:"error"`
			Message string          `json:"message"`
		}
		o.ask(t, map[string]any{"op": "loads", "input": base64.StdEncoding.EncodeToString(data)}, &want)
		checkLoadsOutcome(t, data, want.OK, want.Value, want.Default, want.Error, want.Message)
	})
}

// FuzzSessionDecode signs fuzzed payloads with the test key (so the
// payload decoding is reached), optionally compresses and corrupts the
// cookie, and compares SessionCodec.Decode with itsdangerous + Flask's
// tagged JSON: outcome class and decoded value.
func FuzzSessionDecode(f *testing.F) {
	o := startOracle(f)
	f.Add([]byte(`{"conversation_id":"abc"}`), false, "")
	f.Add([]byte(`{"t":{" t":[1,2]},"b":{" b":"AAE="},"m":{" m":"<b>"},"u":{" u":"12345678123456781234567812345678"},"d":{" d":"Tue, 02 Jan 2024 03:04:05 GMT"}}`), true, "")
	f.Add([]byte(`{"k":{" di":{" t__":[1]}}}`), false, "")
	f.Add([]byte(`{"a":1}`), false, "!x")
	f.Add([]byte(`[1]`), true, ".")
	const clock = 1700000000
	codec := &SessionCodec{SecretKey: "test-secret", Now: func() time.Time { return time.Unix(clock, 0) }}
	f.Fuzz(func(t *testing.T, payload []byte, compressed bool, tail string) {
		body := base64.RawURLEncoding.EncodeToString(payload)
		if compressed {
			z, err := zlibCompress(payload)
			if err != nil {
				t.Fatal(err)
			}
			body = "." + base64.RawURLEncoding.EncodeToString(z)
		}
		value := body + "." + FormatTimestamp(clock)
		cookie := value + "." + base64.RawURLEncoding.EncodeToString(sign(deriveKey("test-secret"), value))
		if tail != "" {
			pos := int(tail[0]) % (len(cookie) + 1)
			cookie = cookie[:pos] + tail[1:] + cookie[pos:]
		}
		cookie = strings.ToValidUTF8(cookie, "\uFFFD")
		var want struct {
			OK    bool            `json:"ok"`
			Value json.RawMessage `json:"value"`
			Error string          `json:"error"`
		}
		o.ask(t, map[string]any{"op": "session", "cookie": cookie, "now": clock}, &want)
		got, err := codec.Decode(cookie)
		if want.OK && nonStrKeySession(want.Value) {
			if !errors.Is(err, ErrBadPayload) {
				t.Fatalf("Decode(%q) = %#v, %v; want ErrBadPayload (non-string keys)", cookie, got, err)
			}
			return
		}
		if want.OK {
			w := mustTyped(t, want.Value, false)
			if err != nil || !pyEqual(got, w) {
				t.Fatalf("Decode(%q) = %#v, %v; want %#v", cookie, got, err, w)
			}
			return
		}
		wantErr := ErrBadPayload
		switch want.Error {
		case "BadSignature":
			wantErr = ErrBadSignature
		case "SignatureExpired":
			wantErr = ErrSignatureExpired
		}
		if !errors.Is(err, wantErr) {
			t.Fatalf("Decode(%q) = %#v, %v; want %v (%s)", cookie, got, err, wantErr, want.Error)
		}
	})
}

// FuzzMatch compares Map.Match with werkzeug.routing.Map.match (Flask's
// defaults) over vector_app.py's rules, for fuzzed paths and methods.
func FuzzMatch(f *testing.F) {
	o := startOracle(f)
	rules := vectorRules()
	var spec []map[string]any
	for _, r := range rules {
		spec = append(spec, map[string]any{"endpoint": r.Endpoint, "pattern": r.Pattern, "methods": r.Methods,
			"strict": !r.NonStrictSlashes, "auto_options": !r.NoAutomaticOptions})
	}
	var ok struct{ OK bool }
	o.ask(f, map[string]any{"op": "rules", "rules": spec}, &ok)
	if !ok.OK {
		f.Fatal("oracle refused the rules")
	}
	m, err := NewMap(rules...)
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range []string{"/health", "//api//conversations/x", "/chat", "/dirs/a/b", "/dirs/a//", "/api/items/٣",
		"/files/a/b/edit", "/u/12345678-1234-5678-1234-567812345678", "/lang/abc/x", "/any/c d", "/multi/a/1/b/c/", "/nonstrict"} {
		f.Add(byte(0), p)
		f.Add(byte(5), p)
	}
	methods := []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"}
	f.Fuzz(func(t *testing.T, mi byte, path string) {
		method := methods[int(mi)%len(methods)]
		path = strings.ToValidUTF8(path, "\uFFFD")
		var want struct {
			Kind     string              `json:"kind"`
			Endpoint string              `json:"endpoint"`
			Args     map[string][]string `json:"args"`
			Allowed  []string            `json:"allowed"`
			Location string              `json:"location"`
			Type     string              `json:"type"`
		}
		o.ask(t, map[string]any{"op": "route", "method": method, "path": []rune(path)}, &want)
		got, err := m.Match(method, path)
		var (
			re  *RedirectError
			mna *MethodNotAllowedError
			he  *HTTPError
		)
		switch want.Kind {
		case "match":
			if err != nil || got.Endpoint != want.Endpoint {
				t.Fatalf("%s %q: got %q %v, want endpoint %q", method, path, got.Endpoint, err, want.Endpoint)
			}
			if len(got.Params) != len(want.Args) {
				t.Fatalf("%s %q: params %v, want %v", method, path, got.Params, want.Args)
			}
			for name, a := range want.Args {
				typ := map[string]string{"string": "str", "int64": "int", "*big.Int": "int", "float64": "float"}[typeName(got.Params[name])]
				if got.Endpoint == "by_uuid" {
					typ = "UUID"
				}
				if typ != a[0] || got.Param(name) != a[1] {
					t.Fatalf("%s %q: param %s = %s %q, want %s %q", method, path, name, typ, got.Param(name), a[0], a[1])
				}
			}
			if method == "OPTIONS" && got.AutomaticOptions && !slices.Equal(got.Allowed, want.Allowed) {
				t.Fatalf("%s %q: allowed %v, want %v", method, path, got.Allowed, want.Allowed)
			}
		case "redirect":
			if !errors.As(err, &re) || "http://localhost"+re.Location != want.Location {
				t.Fatalf("%s %q: got %v, want redirect to %s", method, path, err, want.Location)
			}
		case "405":
			if !errors.As(err, &mna) || !slices.Equal(mna.Allowed, want.Allowed) {
				t.Fatalf("%s %q: got %v, want 405 allowing %v", method, path, err, want.Allowed)
			}
		case "404":
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s %q: got %+v %v, want 404", method, path, got, err)
			}
		default:
			if !errors.As(err, &he) || he.Code != 500 {
				t.Fatalf("%s %q: got %v, want a 500 (Python raised %s)", method, path, err, want.Type)
			}
		}
	})
}
