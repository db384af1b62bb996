package compat

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// rawRoundTrip sends raw bytes to a real server and returns the response
// head and body, so framing is what a client sees.
func rawRoundTrip(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(strings.Fields(raw)[0], "/", nil)
	res, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestHandlerHEADOverRealServer(t *testing.T) {
	m, err := NewMap(
		Rule{Endpoint: "json", Pattern: "/json"},
		Rule{Endpoint: "plain", Pattern: "/plain"},
		Rule{Endpoint: "stream", Pattern: "/stream"},
	)
	if err != nil {
		t.Fatal(err)
	}
	h := m.Handler(map[string]http.Handler{
		"json": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = WriteJSON(w, 200, map[string]any{"status": "ok"})
		}),
		// A handler that sets no Content-Length: Werkzeug would compute it
		// for a non-streamed body, for GET and HEAD alike.
		"plain": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, strings.Repeat("x", 5000))
		}),
		// A streamed response: no Content-Length on HEAD.
		"stream": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
			for i := 0; i < 3; i++ {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
			}
		}),
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	tests := []struct {
		give          string
		wantStatus    int
		wantLength    string
		wantBody      string
		wantChunked   bool
		wantNoLengthH bool
	}{
		{give: "HEAD /json HTTP/1.1\r\nHost: x\r\n\r\n", wantStatus: 200, wantLength: "16"},
		{give: "GET /json HTTP/1.1\r\nHost: x\r\n\r\n", wantStatus: 200, wantLength: "16", wantBody: "{\"status\":\"ok\"}\n"},
		{give: "HEAD /plain HTTP/1.1\r\nHost: x\r\n\r\n", wantStatus: 200, wantLength: "5000"},
		{give: "HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n", wantStatus: 200, wantNoLengthH: true},
		{give: "HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n", wantStatus: 404, wantLength: "207"},
		{give: "POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", wantStatus: 405, wantLength: "153",
			wantBody: string(ErrorPage(405, DefaultDescription(405)))},
	}
	for _, tt := range tests {
		res, body := rawRoundTrip(t, addr, tt.give)
		line := strings.SplitN(tt.give, "\r\n", 2)[0]
		if res.StatusCode != tt.wantStatus {
			t.Errorf("%s: status %d, want %d", line, res.StatusCode, tt.wantStatus)
		}
		if got := res.Header.Get("Content-Length"); tt.wantLength != "" && got != tt.wantLength {
			t.Errorf("%s: Content-Length %q, want %q", line, got, tt.wantLength)
		}
		if tt.wantNoLengthH && res.Header.Get("Content-Length") != "" {
			t.Errorf("%s: streamed HEAD has Content-Length %q", line, res.Header.Get("Content-Length"))
		}
		if body != tt.wantBody {
			t.Errorf("%s: body %q, want %q", line, body, tt.wantBody)
		}
	}
}

func TestHandlerOptionsAndErrors(t *testing.T) {
	m, err := NewMap(
		Rule{Endpoint: "chat", Pattern: "/chat/", Methods: []string{"POST"}},
		Rule{Endpoint: "own_options", Pattern: "/own", Methods: []string{"GET", "OPTIONS"}},
		Rule{Endpoint: "no_auto", Pattern: "/noauto", Methods: []string{"GET"}, NoAutomaticOptions: true},
		Rule{Endpoint: "missing", Pattern: "/missing"},
	)
	if err != nil {
		t.Fatal(err)
	}
	var seen []error
	h := m.Handler(map[string]http.Handler{
		"chat": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(201) }),
		"own_options": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Method", r.Method)
		}),
		"no_auto": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
	}, WithScheme(func(*http.Request) string { return "https" }), WithErrorHandler(func(w http.ResponseWriter, r *http.Request, err error) {
		seen = append(seen, err)
		WriteError(w, err)
	}))

	tests := []struct {
		method, target string
		wantStatus     int
		wantHeader     map[string]string
		wantErr        func(error) bool
	}{
		{"OPTIONS", "/chat/", 200, map[string]string{"Allow": "OPTIONS, POST", "Content-Length": "0", "Content-Type": "text/html; charset=utf-8"}, nil},
		{"POST", "/chat?q=%C3%A9", 308, map[string]string{"Location": "https://example.com/chat/?q=%C3%A9"},
			func(e error) bool { var re *RedirectError; return errors.As(e, &re) }},
		{"GET", "/chat/", 405, map[string]string{"Allow": "OPTIONS, POST"},
			func(e error) bool { var me *MethodNotAllowedError; return errors.As(e, &me) }},
		{"OPTIONS", "/own", 200, map[string]string{"X-Method": "OPTIONS", "Allow": ""}, nil},
		{"OPTIONS", "/noauto", 405, map[string]string{"Allow": "GET, HEAD"}, nil},
		{"GET", "/missing", 500, nil, func(e error) bool { var he *HTTPError; return errors.As(e, &he) && he.Code == 500 }},
		{"GET", "/elsewhere", 404, nil, func(e error) bool { return errors.Is(e, ErrNotFound) }},
	}
	for _, tt := range tests {
		seen = nil
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, "http://example.com"+tt.target, nil))
		if rec.Code != tt.wantStatus {
			t.Errorf("%s %s: status %d, want %d", tt.method, tt.target, rec.Code, tt.wantStatus)
		}
		for k, v := range tt.wantHeader {
			if got := rec.Header().Get(k); got != v {
				t.Errorf("%s %s: %s = %q, want %q", tt.method, tt.target, k, got, v)
			}
		}
		if tt.wantErr != nil && (len(seen) != 1 || !tt.wantErr(seen[0])) {
			t.Errorf("%s %s: error handler saw %v", tt.method, tt.target, seen)
		}
	}
}

func TestNewMapReportsEveryBadRule(t *testing.T) {
	_, err := NewMap(
		Rule{Endpoint: "a", Pattern: "no-slash"},
		Rule{Endpoint: "b", Pattern: "/x/<nope:y>"},
		Rule{Endpoint: "c", Pattern: "/x/<int(bogus=1):y>"},
		Rule{Endpoint: "d", Pattern: "/x/<y>/<y>"},
		Rule{Endpoint: "ok", Pattern: "/fine/<int:n>"},
	)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{`"no-slash" (a)`, `"/x/<nope:y>" (b)`, `(c)`, `(d)`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "(ok)") {
		t.Errorf("error %q blames a good rule", err)
	}
}

func TestAllowEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"GET, HEAD, OPTIONS", "OPTIONS, GET, HEAD", true},
		{"GET,HEAD", "head, get", true},
		{"GET, HEAD", "GET, HEAD, OPTIONS", false},
		{"", "", true},
	}
	for _, tt := range tests {
		if got := AllowEqual(tt.a, tt.b); got != tt.want {
			t.Errorf("AllowEqual(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

func TestObjectDictSemantics(t *testing.T) {
	o := Object{}
	o.Set("b", 1)
	o.Set("a", 2)
	o.Set("b", 3) // keeps its first position, like a dict
	if got, _ := Dumps(o, DumpOptions{}); string(got) != `{"b": 3, "a": 2}` {
		t.Errorf("Dumps = %s", got)
	}
	if got, _ := Marshal(o); string(got) != `{"a":2,"b":3}` {
		t.Errorf("Marshal = %s", got)
	}
	o.Delete("b")
	if v, ok := o.Get("b"); ok || v != nil || len(o.Keys()) != 1 {
		t.Errorf("after Delete: %v", o)
	}
}

func TestDumpsGoTypes(t *testing.T) {
	type msg struct {
		Role    string `json:"role"`
		Content string `json:"content"`
		Skip    string `json:"-"`
		Tokens  int
	}
	tests := []struct {
		give any
		want string
	}{
		{msg{Role: "user", Content: "é", Skip: "x", Tokens: 3}, `{"Tokens":3,"content":"\u00e9","role":"user"}`},
		{map[int]string{10: "ten", 2: "two", -1: "neg"}, `{"-1":"neg","2":"two","10":"ten"}`},
		{[]string(nil), `[]`},
		{[2]float32{0.1, 1}, `[0.10000000149011612,1.0]`},
		{(*int)(nil), `null`},
		{UUID{0x12, 0x34}, `"12340000-0000-0000-0000-000000000000"`},
		{RawJSON(`{"pre":1}`), `{"pre":1}`},
		{[]json.Number{"1", "1e5", "-0.0", "123456789012345678901234567890"}, `[1,100000.0,-0.0,123456789012345678901234567890]`},
	}
	for _, tt := range tests {
		got, err := Marshal(tt.give)
		if err != nil || string(got) != tt.want {
			t.Errorf("Marshal(%#v) = %s, %v; want %s", tt.give, got, err, tt.want)
		}
	}
	var ute *UnsupportedTypeError
	if _, err := Marshal([]byte("x")); !errors.As(err, &ute) {
		t.Errorf("bytes: %v", err)
	}
	if _, err := Marshal(make(chan int)); !errors.As(err, &ute) {
		t.Errorf("chan: %v", err)
	}
}

func TestWriteJSONUnencodable(t *testing.T) {
	rec := httptest.NewRecorder()
	if err := WriteJSON(rec, 200, map[string]any{"c": make(chan int)}); err == nil {
		t.Fatal("want error")
	}
	if rec.Code != 500 || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("got %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}

func TestPathInfoDropsFragment(t *testing.T) {
	tests := []struct {
		target    string
		wantPath  string
		wantQuery string
	}{
		{"/health", "/health", ""},
		{"/health#x", "/health", ""},
		{"/health?a=1#x?y", "/health", "a=1"},
		{"/#health", "/", ""},
		{"/a%23b", "/a#b", ""}, // an escaped '#' is part of the path
	}
	for _, tt := range tests {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + tt.target + " HTTP/1.1\r\nHost: x\r\n\r\n")))
		if err != nil {
			t.Fatalf("%s: %v", tt.target, err)
		}
		if got := PathInfo(r); got != tt.wantPath {
			t.Errorf("PathInfo(%s) = %q, want %q", tt.target, got, tt.wantPath)
		}
		if _, q := rawTarget(r); q != tt.wantQuery {
			t.Errorf("query of %s = %q, want %q", tt.target, q, tt.wantQuery)
		}
		// A copy of the request without RequestURI (a shadow replay) routes the same.
		u := *r.URL
		c := &http.Request{Method: r.Method, URL: &u, Header: http.Header{}}
		if got := PathInfo(c); got != tt.wantPath {
			t.Errorf("PathInfo(copy of %s) = %q, want %q", tt.target, got, tt.wantPath)
		}
	}
}
