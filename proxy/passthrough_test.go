package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// wireBackend serves the pass-through cases of the issue.
func wireBackend() http.Handler {
	big := bytes.Repeat([]byte("0123456789abcdef"), (8<<20)/16) // 8 MiB
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat([]byte(`{"hello":"world"}`), 200))
	zw.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", echoHandler("legacy"))
	mux.HandleFunc("/echo/", echoHandler("legacy"))
	mux.HandleFunc("/early-hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("after hints"))
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(body)
		w.Header().Set("X-Body-Sha", hex.EncodeToString(sum[:]))
		w.Header().Set("X-Body-Len", strconv.Itoa(len(body)))
		w.Header().Set("X-Transfer-Encoding", strings.Join(r.TransferEncoding, ","))
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte("stored"))
	})
	mux.HandleFunc("/no-content", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Deleted", "yes")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/etag", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Cache-Control", "max-age=60")
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write([]byte("fresh"))
	})
	mux.HandleFunc("/sized", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "17")
		w.Write([]byte(`{"size":"known"}` + "\n"))
	})
	mux.HandleFunc("/large", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		w.Write(big)
	})
	mux.HandleFunc("/large-chunked", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(big); i += 100000 {
			w.Write(big[i:min(i+100000, len(big))])
		}
	})
	mux.HandleFunc("/cookies", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "session=abc.def.ghi; HttpOnly; Path=/")
		w.Header().Add("Set-Cookie", "theme=dark; Path=/; Max-Age=60")
		w.Header().Add("Set-Cookie", "b=2; Secure; SameSite=Lax")
		w.Header().Set("Vary", "Cookie")
		w.Write([]byte("ok"))
	})
	mux.HandleFunc("/gzip", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Vary", "Accept-Encoding")
		w.Header().Set("Content-Length", strconv.Itoa(gz.Len()))
		w.Write(gz.Bytes())
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.Write([]byte("part one, "))
		w.(http.Flusher).Flush()
		w.Write([]byte("part two"))
		w.Header().Set("X-Checksum", "abc123")
	})
	mux.HandleFunc("/teapot", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusTeapot)
		w.Write([]byte(`{"error":"short and stout"}`))
	})
	return mux
}

// wireResponse is one response read off the wire.
type wireResponse struct {
	Status   string
	Code     int
	Header   http.Header
	Body     []byte
	Trailer  http.Header
	Length   int64
	Encoding []string
}

// roundTripRaw writes raw request bytes to addr (body sent after a 100
// Continue when expectBody is set) and reads every response, 1xx included.
func roundTripRaw(t *testing.T, addr, head string, body []byte, chunked bool, method string) []wireResponse {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var out []wireResponse
	expect := strings.Contains(strings.ToLower(head), "expect: 100-continue")
	sent := !expect
	send := func() {
		if chunked {
			for i := 0; i < len(body); i += 1000 {
				chunk := body[i:min(i+1000, len(body))]
				fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk)
			}
			conn.Write([]byte("0\r\n\r\n"))
		} else {
			conn.Write(body)
		}
		sent = true
	}
	if !expect {
		send()
	}
	for {
		req := &http.Request{Method: method}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("read response from %s: %v (so far %d)", addr, err, len(out))
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("read body from %s: %v", addr, err)
		}
		resp.Body.Close()
		out = append(out, wireResponse{Status: resp.Status, Code: resp.StatusCode, Header: resp.Header, Body: b,
			Trailer: resp.Trailer, Length: resp.ContentLength, Encoding: resp.TransferEncoding})
		if resp.StatusCode >= 200 {
			return out
		}
		if resp.StatusCode == 100 && !sent {
			send()
		}
	}
}

// comparable drops what legitimately differs between two calls or hops:
// Date (two separate responses) and the connection-scoped headers.
func comparableHeader(h http.Header) http.Header {
	c := h.Clone()
	for _, k := range []string{"Date", "Connection", "Keep-Alive", "X-Cutover-Served-By"} {
		delete(c, k)
	}
	return c
}

func TestPassThroughByteIdentical(t *testing.T) {
	backend := newBackend(t, wireBackend())
	ts := startServer(t, strings.Replace(baseConfig(backend.URL), "  served_by_header: X-Cutover-Served-By\n", "", 1), nil)
	direct := backend.Listener.Addr().String()
	proxied := strings.TrimPrefix(ts.URL, "http://")
	upload := bytes.Repeat([]byte("upload-bytes-"), 400000) // ~5 MiB

	tests := []struct {
		name    string
		method  string
		head    string // request line and headers, without the final CRLF
		body    []byte
		chunked bool
	}{
		{name: "early hints (103)", method: "GET", head: "GET /early-hints HTTP/1.1"},
		{name: "100-continue upload", method: "POST", head: "POST /upload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 11", body: []byte("hello world")},
		{name: "204", method: "DELETE", head: "DELETE /no-content HTTP/1.1"},
		{name: "304", method: "GET", head: "GET /etag HTTP/1.1\r\nIf-None-Match: \"v1\""},
		{name: "200 with etag", method: "GET", head: "GET /etag HTTP/1.1"},
		{name: "HEAD keeps Content-Length", method: "HEAD", head: "HEAD /sized HTTP/1.1"},
		{name: "chunked upload", method: "POST", head: "POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream", body: upload, chunked: true},
		{name: "large upload", method: "PUT", head: "PUT /upload HTTP/1.1\r\nContent-Length: " + strconv.Itoa(len(upload)), body: upload},
		{name: "large download", method: "GET", head: "GET /large HTTP/1.1"},
		{name: "large chunked download", method: "GET", head: "GET /large-chunked HTTP/1.1"},
		{name: "multiple Set-Cookie", method: "GET", head: "GET /cookies HTTP/1.1\r\nCookie: a=1; b=2"},
		{name: "gzip untouched", method: "GET", head: "GET /gzip HTTP/1.1\r\nAccept-Encoding: gzip"},
		{name: "gzip not asked for, still untouched", method: "GET", head: "GET /gzip HTTP/1.1"},
		{name: "trailers", method: "GET", head: "GET /trailers HTTP/1.1\r\nTE: trailers"},
		{name: "418 with body", method: "GET", head: "GET /teapot HTTP/1.1"},
		{name: "404 from the backend", method: "GET", head: "GET /missing/%7Efile?x=1 HTTP/1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head := tt.head + "\r\nHost: app.example.com\r\nConnection: close\r\n\r\n"
			want := roundTripRaw(t, direct, head, tt.body, tt.chunked, tt.method)
			got := roundTripRaw(t, proxied, head, tt.body, tt.chunked, tt.method)
			if len(got) != len(want) {
				t.Fatalf("proxy sent %d responses (%v), backend %d (%v)", len(got), statuses(got), len(want), statuses(want))
			}
			for i := range want {
				w, g := want[i], got[i]
				if g.Code != w.Code {
					t.Errorf("response %d: status %d, want %d", i, g.Code, w.Code)
				}
				if !reflect.DeepEqual(comparableHeader(g.Header), comparableHeader(w.Header)) {
					t.Errorf("response %d headers differ:\nproxy:   %v\nbackend: %v", i, comparableHeader(g.Header), comparableHeader(w.Header))
				}
				if _, ok := g.Header["Date"]; ok != (w.Header.Get("Date") != "") {
					t.Errorf("response %d: Date present %v through the proxy, %v direct", i, ok, !ok)
				}
				if !bytes.Equal(g.Body, w.Body) {
					t.Errorf("response %d body differs: %d bytes through the proxy, %d direct", i, len(g.Body), len(w.Body))
				}
				if !reflect.DeepEqual(g.Trailer, w.Trailer) {
					t.Errorf("response %d trailers %v, want %v", i, g.Trailer, w.Trailer)
				}
				if g.Length != w.Length || !slices.Equal(g.Encoding, w.Encoding) {
					t.Errorf("response %d framing: length %d %v through the proxy, %d %v direct", i, g.Length, g.Encoding, w.Length, w.Encoding)
				}
			}
		})
	}
}

func statuses(rs []wireResponse) []int {
	var out []int
	for _, r := range rs {
		out = append(out, r.Code)
	}
	return out
}

// The request a backend receives through the proxy is the client's: same
// method, raw target (no re-encoding), Host, headers and body; only the
// forwarding headers are appended.
func TestPassThroughRequestFaithful(t *testing.T) {
	backend := newBackend(t, wireBackend())
	ts := startServer(t, baseConfig(backend.URL), nil)
	direct := backend.Listener.Addr().String()
	proxied := strings.TrimPrefix(ts.URL, "http://")
	tests := []struct {
		name       string
		head       string
		body       string
		wantXFF    string
		wantProto  string
		wantPort   string
		wantFwdFor bool
	}{
		{name: "odd query and path bytes kept", head: "GET /echo/x%2Fy/%7e%41?a=%41&b=1;c=2&d=%zz&e=%20+x&&f HTTP/1.1"},
		{name: "encoded path kept", head: "POST /echo?q=%E2%9C%93 HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 15", body: `{"message":"é"}`},
		{name: "behind an ALB", head: "GET /echo HTTP/1.1\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\n" +
			"X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nAuthorization: Bearer user-token",
			wantXFF: "203.0.113.7, 127.0.0.1", wantProto: "https", wantPort: "443"},
		{name: "no ALB in front", head: "GET /echo HTTP/1.1", wantXFF: "127.0.0.1", wantProto: "http", wantPort: "self"},
		{name: "hop-by-hop headers dropped", head: "GET /echo HTTP/1.1\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\nConnection: X-Hop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head := tt.head + "\r\nHost: app.example.com\r\nConnection: close\r\n\r\n"
			if strings.Contains(tt.head, "Connection: X-Hop") {
				head = tt.head + "\r\nHost: app.example.com\r\n\r\n"
			}
			want := decodeSeen(t, roundTripRawClose(t, direct, head, tt.body))
			got := decodeSeen(t, roundTripRawClose(t, proxied, head, tt.body))
			if got.Method != want.Method || got.RequestURI != want.RequestURI || got.Host != want.Host || got.BodySHA != want.BodySHA {
				t.Errorf("proxy delivered %s %q host %q body %s; client sent %s %q host %q body %s",
					got.Method, got.RequestURI, got.Host, got.BodySHA, want.Method, want.RequestURI, want.Host, want.BodySHA)
			}
			if u, _ := url.ParseRequestURI(got.RequestURI); u == nil {
				t.Errorf("request URI %q does not parse", got.RequestURI)
			}
			gh, wh := http.Header(got.Header).Clone(), http.Header(want.Header).Clone()
			if tt.wantXFF != "" {
				if v := gh.Get("X-Forwarded-For"); v != tt.wantXFF {
					t.Errorf("X-Forwarded-For = %q, want %q", v, tt.wantXFF)
				}
				if v := gh.Get("X-Forwarded-Proto"); v != tt.wantProto {
					t.Errorf("X-Forwarded-Proto = %q, want %q", v, tt.wantProto)
				}
				wantPort := tt.wantPort
				if wantPort == "self" {
					_, wantPort, _ = net.SplitHostPort(proxied)
				}
				if v := gh.Get("X-Forwarded-Port"); v != wantPort {
					t.Errorf("X-Forwarded-Port = %q, want %q", v, wantPort)
				}
			}
			for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port", "Connection"} {
				delete(gh, k)
				delete(wh, k)
			}
			delete(wh, "Keep-Alive")
			delete(wh, "X-Hop")
			if !reflect.DeepEqual(gh, wh) {
				t.Errorf("headers differ:\nproxy:  %v\nclient: %v", gh, wh)
			}
			if strings.Contains(tt.head, "X-Hop") {
				if _, ok := got.Header["X-Hop"]; ok {
					t.Error("a header named in Connection reached the backend")
				}
				if _, ok := got.Header["Keep-Alive"]; ok {
					t.Error("Keep-Alive reached the backend")
				}
			}
		})
	}
}

func roundTripRawClose(t *testing.T, addr, head, body string) []byte {
	t.Helper()
	rs := roundTripRaw(t, addr, head, []byte(body), false, "GET")
	return rs[len(rs)-1].Body
}
