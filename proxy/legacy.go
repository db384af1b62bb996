package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cutover/cutover/compat"
	"github.com/cutover/cutover/config"
)

// LegacyOptions configures the legacy pass-through.
type LegacyOptions struct {
	// Transport overrides the round tripper (tests use their own). Nil
	// means NewTransport(cfg).
	Transport http.RoundTripper
	// Logger receives proxy errors. Nil means slog.Default().
	Logger *slog.Logger
}

// NewTransport builds the transport to legacy once, at start: cloned from
// http.DefaultTransport with connection reuse and timeouts from cfg.
func NewTransport(cfg config.Legacy) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil // never an environment proxy between cutover and legacy
	t.DialContext = earlyResponseDialer((&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext)
	t.ResponseHeaderTimeout = cfg.ResponseHeaderTimeout
	t.IdleConnTimeout = cfg.IdleConnTimeout
	t.MaxIdleConns = 0 // bounded per host below
	t.MaxIdleConnsPerHost = cfg.MaxIdleConnsPerHost
	t.MaxConnsPerHost = cfg.MaxConnsPerHost
	// Pass Content-Encoding through untouched: never ask for gzip ourselves.
	t.DisableCompression = true
	t.ForceAttemptHTTP2 = false
	return t
}

// Passthrough is the legacy backend: one httputil.ReverseProxy, built once,
// forwarding byte-faithfully (method, raw path and query, body, every
// end-to-end header, X-Forwarded-* appended as behind an ALB), streaming
// responses (SSE and unknown-length bodies are flushed on every write), and
// answering a failed round trip with the Werkzeug page of the status
// StatusFor picks (nothing when the client went away). Safe for concurrent
// use.
type Passthrough struct {
	rp *httputil.ReverseProxy
}

var _ http.Handler = (*Passthrough)(nil)

// NewLegacy builds the legacy backend for cfg.
func NewLegacy(cfg config.Legacy, opts LegacyOptions) (*Passthrough, error) {
	target, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("legacy url: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	rt := opts.Transport
	if rt == nil {
		rt = NewTransport(cfg)
	}
	rewriteHost := cfg.RewriteHost
	rp := &httputil.ReverseProxy{
		Transport:     rt,
		FlushInterval: cfg.FlushInterval,
		BufferPool:    bufferPool{},
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		Rewrite: func(pr *httputil.ProxyRequest) {
			rewrite(pr, target, rewriteHost)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// w is always the trip writer serve passed to the reverse proxy.
			tw := w.(*legacyTrip)
			tw.fail(r, err)
			if tw.holdUnsent && !tw.wroteHeaders.Load() {
				tw.unsent = true // nothing reached legacy: the caller sends it elsewhere
				return
			}
			if status := StatusFor(r, err); status != StatusClientClosed {
				writeErrorPage(tw.ResponseWriter, status)
			}
		},
	}
	return &Passthrough{rp: rp}, nil
}

// ServeHTTP proxies r to legacy.
func (l *Passthrough) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = l.serve(w, r, nil, false)
}

// errNotSent wraps a legacy round trip that failed before the request
// reached legacy: its header block was never written to a connection
// (dial refused or timed out, no connection). Legacy cannot have acted on
// it, so any method may be sent to the other side.
var errNotSent = errors.New("request never reached legacy")

// serve proxies r to legacy and returns the round trip's error (nil when a
// response came back). The trip is reported to t (nil: none) once, when the
// response header arrives or the round trip fails. With holdUnsent, a trip
// that failed before the request reached legacy writes nothing and returns
// an error wrapping errNotSent.
func (l *Passthrough) serve(w http.ResponseWriter, r *http.Request, t *legacyTicket, holdUnsent bool) error {
	tw := legacyTrips.Get().(*legacyTrip)
	tw.ResponseWriter, tw.ticket, tw.req, tw.holdUnsent = w, t, r, holdUnsent
	if holdUnsent {
		r = r.WithContext(httptrace.WithClientTrace(r.Context(), tw.trace()))
	}
	l.rp.ServeHTTP(tw, r)
	err := tw.err
	if tw.unsent {
		err = fmt.Errorf("%w: %w", errNotSent, err)
	}
	tw.reset()
	legacyTrips.Put(tw)
	return err
}

// legacyTrip is the ResponseWriter of one legacy round trip: it learns the
// trip's outcome (the error the reverse proxy reports, else the status of
// the response header) and reports it to the breakers' ticket.
type legacyTrip struct {
	http.ResponseWriter
	ticket *legacyTicket
	req    *http.Request
	err    error
	// holdUnsent: a trip that fails before its header block was written
	// (wroteHeaders) answers nothing and is marked unsent.
	holdUnsent   bool
	wroteHeaders atomic.Bool
	unsent       bool
	// markWrote sets wroteHeaders. It is made once per pooled trip (bound
	// to this trip), not per request; trace puts it in a fresh clientTrace
	// for each request (WithClientTrace may compose other hooks into that).
	markWrote   func()
	clientTrace httptrace.ClientTrace
}

var legacyTrips = sync.Pool{New: func() any {
	tw := new(legacyTrip)
	tw.markWrote = func() { tw.wroteHeaders.Store(true) }
	return tw
}}

// trace is the trip's client trace, fresh for one request.
func (tw *legacyTrip) trace() *httptrace.ClientTrace {
	tw.clientTrace = httptrace.ClientTrace{WroteHeaders: tw.markWrote}
	return &tw.clientTrace
}

// reset clears the trip for its next use, keeping its markWrote hook.
func (tw *legacyTrip) reset() {
	hook := tw.markWrote
	*tw = legacyTrip{}
	tw.markWrote = hook
}

var (
	_ http.ResponseWriter = (*legacyTrip)(nil)
	_ http.Flusher        = (*legacyTrip)(nil)
)

func (tw *legacyTrip) fail(r *http.Request, err error) {
	tw.err = err
	tw.ticket.finish(r, 0, err)
}

func (tw *legacyTrip) WriteHeader(code int) {
	if code >= http.StatusOK || code == http.StatusSwitchingProtocols {
		tw.ticket.finish(tw.req, code, nil)
	}
	tw.ResponseWriter.WriteHeader(code)
}

func (tw *legacyTrip) Write(p []byte) (int, error) {
	tw.ticket.finish(tw.req, http.StatusOK, nil) // no-op once the header was reported
	return tw.ResponseWriter.Write(p)
}

// Flush streams what was written (the reverse proxy flushes SSE).
func (tw *legacyTrip) Flush() { _ = http.NewResponseController(tw.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the client's writer
// (hijacking for upgrades, deadlines).
func (tw *legacyTrip) Unwrap() http.ResponseWriter { return tw.ResponseWriter }

// rewrite sends the request to target keeping it as the client sent it.
func rewrite(pr *httputil.ProxyRequest, target *url.URL, rewriteHost bool) {
	in, out := pr.In, pr.Out
	out.URL.Scheme = target.Scheme
	out.URL.Host = target.Host
	if !rewriteHost {
		out.Host = in.Host
	} else {
		out.Host = ""
	}
	// The raw request target, not a re-encoding of the decoded path: send
	// the client's bytes (Opaque is written verbatim in the request line).
	ruri := in.RequestURI
	path, _, _ := strings.Cut(ruri, "?")
	if strings.HasPrefix(path, "/") && !strings.HasPrefix(path, "//") {
		if target.Path != "" && target.Path != "/" {
			path = strings.TrimSuffix(target.Path, "/") + path
		}
		out.URL.Opaque = path
		out.URL.RawPath = ""
	} else if target.Path != "" && target.Path != "/" {
		out.URL.Path = strings.TrimSuffix(target.Path, "/") + in.URL.Path
		out.URL.RawPath = ""
	}
	// Rewrite mode strips unparsable query parameters and forwarding
	// headers before calling us; restore the client's bytes.
	out.URL.RawQuery = in.URL.RawQuery
	for _, h := range [...]string{"Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		if v, ok := in.Header[h]; ok {
			out.Header[h] = v
		}
	}
	// X-Forwarded-For: append our peer to what the ALB sent.
	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		if prior := in.Header["X-Forwarded-For"]; len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		out.Header["X-Forwarded-For"] = []string{ip}
	}
	// Proto and port describe the client's connection: the ALB's values
	// stand; set them only when nobody in front did.
	if _, ok := in.Header["X-Forwarded-Proto"]; !ok {
		if in.TLS != nil {
			out.Header["X-Forwarded-Proto"] = protoHTTPS
		} else {
			out.Header["X-Forwarded-Proto"] = protoHTTP
		}
	}
	if _, ok := in.Header["X-Forwarded-Port"]; !ok {
		if la, ok := in.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if tcp, ok := la.(*net.TCPAddr); ok {
				out.Header["X-Forwarded-Port"] = portValue(tcp.Port)
			}
		}
	}
}

// X-Forwarded-Proto values, shared by every request: header value slices
// are only read once set (Header.Add appends to a copy when cap is full).
var (
	protoHTTP  = []string{"http"}[:1:1]
	protoHTTPS = []string{"https"}[:1:1]
)

// portValues caches X-Forwarded-Port values: a process listens on few ports,
// and the shared slices are only read.
var portValues sync.Map // int -> []string

func portValue(port int) []string {
	if v, ok := portValues.Load(port); ok {
		return v.([]string)
	}
	v := []string{strconv.Itoa(port)}
	portValues.Store(port, v)
	return v
}

// writeErrorPage answers a failed round trip like Werkzeug would for the code.
func writeErrorPage(w http.ResponseWriter, status int) {
	body := compat.ErrorPage(status, compat.DefaultDescription(status))
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// bufferPool pools the 32 KiB copy buffers of the reverse proxy.
type bufferPool struct{}

const copyBufferSize = 32 << 10

var copyBuffers = sync.Pool{New: func() any { return new([copyBufferSize]byte) }}

func (bufferPool) Get() []byte { return copyBuffers.Get().(*[copyBufferSize]byte)[:] }

func (bufferPool) Put(b []byte) {
	if cap(b) == copyBufferSize {
		copyBuffers.Put((*[copyBufferSize]byte)(b[:copyBufferSize]))
	}
}

var _ httputil.BufferPool = bufferPool{}
