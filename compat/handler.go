package compat

import (
	"context"
	"errors"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

type ctxKey int

const matchKey ctxKey = iota

// WithMatch returns a copy of ctx carrying m, as Map's handler does before
// calling an endpoint handler.
func WithMatch(ctx context.Context, m Match) context.Context {
	return context.WithValue(ctx, matchKey, m)
}

// RouteMatch returns the Match the Map's handler stored in the request.
func RouteMatch(r *http.Request) (Match, bool) {
	m, ok := r.Context().Value(matchKey).(Match)
	return m, ok
}

// Params returns the converted URL variables of the request's route (nil
// outside a Map handler). See Match.Params for the value types.
func Params(r *http.Request) map[string]any {
	m, _ := RouteMatch(r)
	return m.Params
}

// Param returns str(value) of the named URL variable as the Flask view
// would format it ("" if absent): int variables are normalised ("007" is
// "7") and uuids lower-cased.
func Param(r *http.Request, name string) string {
	m, _ := RouteMatch(r)
	return m.Param(name)
}

// PathInfo returns the request path as Werkzeug sees it: the raw path
// percent-decoded to bytes (invalid escapes kept as is, like urllib's
// unquote) and decoded as UTF-8 with errors="replace". A "#fragment" in the
// request-target is dropped, as gunicorn does (GET /health#x is /health).
func PathInfo(r *http.Request) string {
	raw, _ := rawTarget(r)
	if strings.IndexByte(raw, '%') < 0 && utf8.ValidString(raw) {
		return raw // nothing to unquote or replace: the common case, without copies
	}
	return DecodeUTF8Replace(unquoteBytes(raw))
}

// rawTarget returns the request-target's raw path and query as gunicorn
// splits them (urlsplit: the fragment first, then the query). net/http keeps
// a '#' of a request-target in the path or the query, since a client never
// sends one; gunicorn, and so the Flask app, drops what follows it. A '#' in
// the path shows in URL.RawPath (an escaped "%23" does not: Path "/a#b" from
// "/a%23b" has no RawPath), which clones of the request keep too.
func rawTarget(r *http.Request) (path, query string) {
	u := r.URL
	if i := strings.IndexByte(u.RawPath, '#'); i >= 0 && u.Opaque == "" {
		return u.RawPath[:i], "" // the query, if any, was part of the fragment
	}
	path, query = u.EscapedPath(), u.RawQuery
	if u.Opaque != "" {
		path = u.Opaque
	}
	if i := strings.IndexByte(query, '#'); i >= 0 {
		query = query[:i]
	}
	return path, query
}

func unquoteBytes(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return out
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// GunicornScheme is the wsgi.url_scheme gunicorn 20.1 computes for a request
// from a trusted address (the proxy connects from 127.0.0.1, gunicorn's
// default forwarded_allow_ips): "https" if X-Forwarded-Proto is "https",
// X-Forwarded-Protocol "ssl" or X-Forwarded-Ssl "on"; "http" if such a
// header has another value; otherwise "https" only for TLS connections.
// Contradicting headers make gunicorn answer 400 itself; here the first wins.
func GunicornScheme(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	secure := [...][2]string{{"X-Forwarded-Protocol", "ssl"}, {"X-Forwarded-Proto", "https"}, {"X-Forwarded-Ssl", "on"}}
	for _, h := range secure {
		if vs := r.Header.Values(h[0]); len(vs) > 0 {
			if strings.TrimSpace(vs[0]) == h[1] {
				return "https"
			}
			return "http"
		}
	}
	return scheme
}

var hostRe = regexp.MustCompile(`(?i)^(?:[a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(?::[0-9]+)?$`)

// WerkzeugHost is werkzeug.sansio.utils.get_host (3.1.8) as bind_to_environ
// uses it: the Host header (or the server address when there is none),
// lower-cased, without the scheme's default port, "" if it has invalid characters.
func WerkzeugHost(r *http.Request, scheme string) string {
	host := r.Host
	if host == "" {
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if ta, ok := a.(*net.TCPAddr); ok {
				ip := ta.IP.String()
				if strings.Contains(ip, ":") {
					ip = "[" + ip + "]"
				}
				host = ip + ":" + strconv.Itoa(ta.Port)
			}
		}
		if host == "" {
			return ""
		}
	}
	switch scheme {
	case "http", "ws":
		host = strings.TrimSuffix(host, ":80")
	case "https", "wss":
		host = strings.TrimSuffix(host, ":443")
	}
	if !hostRe.MatchString(host) {
		return ""
	}
	return strings.ToLower(host)
}

// MatchRequest is Match for an incoming request, with Werkzeug's redirect
// URL: a *RedirectError's Location is absolute (scheme from scheme, nil
// meaning GunicornScheme; host from WerkzeugHost; the raw query string kept).
func (m *Map) MatchRequest(r *http.Request, scheme func(*http.Request) string) (Match, error) {
	mt, err := m.Match(r.Method, PathInfo(r))
	var re *RedirectError
	if errors.As(err, &re) {
		if scheme == nil {
			scheme = GunicornScheme
		}
		s := scheme(r)
		loc := s + "://" + WerkzeugHost(r, s) + re.Location
		if _, q := rawTarget(r); q != "" {
			loc += "?" + q
		}
		return mt, &RedirectError{Location: loc}
	}
	return mt, err
}

// HandlerOption configures Map.Handler.
type HandlerOption func(*routerHandler)

// WithErrorHandler replaces the default error pages (WriteError) for routing
// errors and unknown endpoints, like a Flask errorhandler. err is
// ErrNotFound, *MethodNotAllowedError, *RedirectError or *HTTPError.
func WithErrorHandler(f func(w http.ResponseWriter, r *http.Request, err error)) HandlerOption {
	return func(h *routerHandler) { h.onError = f }
}

// WithScheme sets how the redirect scheme is computed. Default GunicornScheme.
func WithScheme(f func(*http.Request) string) HandlerOption {
	return func(h *routerHandler) { h.scheme = f }
}

type routerHandler struct {
	m        *Map
	handlers map[string]http.Handler
	onError  func(http.ResponseWriter, *http.Request, error)
	scheme   func(*http.Request) string
}

// Handler returns an http.Handler dispatching requests to handlers by
// endpoint name, answering like Flask behind gunicorn: Werkzeug's 404, 405
// (with Allow) and 308 pages; automatic OPTIONS as an empty 200 with
// "Content-Type: text/html; charset=utf-8", Allow and "Content-Length: 0";
// HEAD served by the GET handler with the body discarded (headers kept, and
// Content-Length computed when the handler set none and did not flush). An
// endpoint without a handler answers 500, as Flask does for a rule without a
// view function. The endpoint handler reads variables with Params/Param.
func (m *Map) Handler(handlers map[string]http.Handler, opts ...HandlerOption) http.Handler {
	h := &routerHandler{m: m, handlers: handlers, onError: func(w http.ResponseWriter, _ *http.Request, err error) { WriteError(w, err) }}
	for _, o := range opts {
		o(h)
	}
	return h
}

func (h *routerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		hw := &headWriter{w: w}
		defer hw.finish()
		w = hw
	}
	mt, err := h.m.MatchRequest(r, h.scheme)
	if err != nil {
		h.onError(w, r, err)
		return
	}
	if mt.AutomaticOptions {
		hd := w.Header()
		hd.Set("Content-Type", "text/html; charset=utf-8")
		if len(mt.Allowed) > 0 {
			// Werkzeug drops an empty HeaderSet: a non-strict-slashes rule
			// matched without its slash reports no methods for OPTIONS.
			hd.Set("Allow", AllowHeader(mt.Allowed))
		}
		hd.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	next, ok := h.handlers[mt.Endpoint]
	if !ok || next == nil {
		h.onError(w, r, &HTTPError{Code: http.StatusInternalServerError, Err: errors.New("no handler for endpoint " + mt.Endpoint)})
		return
	}
	next.ServeHTTP(w, r.WithContext(WithMatch(r.Context(), mt)))
}

// headWriter discards the body of a HEAD response, holding the header back
// until the handler returns or flushes, so that Content-Length can be set
// from the discarded body like Werkzeug does for a non-streamed response.
type headWriter struct {
	w       http.ResponseWriter
	status  int
	n       int64
	flushed bool
}

func (hw *headWriter) Header() http.Header { return hw.w.Header() }

func (hw *headWriter) WriteHeader(code int) {
	if hw.status != 0 || hw.flushed {
		return
	}
	if code >= 100 && code < 200 {
		hw.w.WriteHeader(code)
		return
	}
	hw.status = code
}

func (hw *headWriter) Write(p []byte) (int, error) {
	if hw.status == 0 {
		hw.status = http.StatusOK
	}
	hw.n += int64(len(p))
	return len(p), nil
}

func (hw *headWriter) Flush() {
	if !hw.flushed {
		if hw.status == 0 {
			hw.status = http.StatusOK
		}
		hw.w.WriteHeader(hw.status)
		hw.flushed = true
	}
	if f, ok := hw.w.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (hw *headWriter) Unwrap() http.ResponseWriter { return hw.w }

func (hw *headWriter) finish() {
	if hw.flushed {
		return
	}
	if hw.status == 0 {
		hw.status = http.StatusOK
	}
	h := hw.w.Header()
	if h.Get("Content-Length") == "" && h.Get("Transfer-Encoding") == "" && bodyAllowed(hw.status) {
		h.Set("Content-Length", strconv.FormatInt(hw.n, 10))
	}
	hw.w.WriteHeader(hw.status)
}

func bodyAllowed(code int) bool {
	return !(code >= 100 && code < 200) && code != http.StatusNoContent && code != http.StatusNotModified
}

var (
	_ http.Handler = (*routerHandler)(nil)
	_ http.Flusher = (*headWriter)(nil)
)
