package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"syscall"
	"time"

	"github.com/cutover/cutover/config"
)

// connTransport is the legacy round tripper of the pass-through hot path: for
// a body-less, replayable HTTP/1.1 request (GET, HEAD, OPTIONS, TRACE) it
// writes the request and reads the response head in the caller's goroutine
// on a pooled keep-alive connection. Everything else (bodies, upgrades,
// Expect, other methods, https, a per-host connection limit) goes to the
// http.Transport it wraps, unchanged.
//
// Why: http.Transport runs two goroutines per connection (persistConn's
// readLoop and writeLoop) and hands every request and response between them
// and the caller over channels, with a timer and a select per round trip.
// Profiled under wrk on 2 cores that machinery costs about as much CPU as
// the rest of the proxy together (bench/README.md, pass-through); doing the
// same exchange inline halves the proxy's CPU per request.
//
// The bytes sent are the same: Request.Write is the code http.Transport
// writes requests with (no compression asked, as DisableCompression).
// Behaviour kept from http.Transport: 1xx responses before the final one are
// reported to httptrace.Got1xxResponse (ReverseProxy forwards them), at most
// maxInformational of them; ResponseHeaderTimeout bounds the wait for the
// response head (a timeout error, so 504); the request context cancels the
// exchange at any point (the connection is closed); a request that fails on
// a reused connection before any response byte arrived is retried once on a
// new one (it is replayable); a connection is reused only when the response
// body was read to the end, neither side asked to close, and nothing
// unexpected follows the response. Safe for concurrent use.
type connTransport struct {
	fallback      *http.Transport
	dial          func(ctx context.Context, network, addr string) (net.Conn, error)
	headerTimeout time.Duration
	idleTimeout   time.Duration
	maxIdle       int

	mu     sync.Mutex
	idle   map[string][]*poolConn // host:port → idle connections, most recent last
	closed bool
}

var (
	_ http.RoundTripper = (*connTransport)(nil)
	_ io.ReadCloser     = (*connBody)(nil)
)

// maxInformational bounds the 1xx responses accepted before the final one
// (http.Transport allows 5).
const maxInformational = 5

// newConnTransport wraps t (built by NewTransport(cfg)) with the inline path.
func newConnTransport(t *http.Transport, cfg config.Legacy) http.RoundTripper {
	if cfg.MaxConnsPerHost > 0 {
		return t // the limit is http.Transport's to keep
	}
	return &connTransport{
		fallback:      t,
		dial:          t.DialContext,
		headerTimeout: t.ResponseHeaderTimeout,
		idleTimeout:   t.IdleConnTimeout,
		maxIdle:       t.MaxIdleConnsPerHost,
		idle:          map[string][]*poolConn{},
	}
}

// poolConn is one connection to the backend.
type poolConn struct {
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
}

// inline reports whether req takes the inline path.
func inline(req *http.Request) bool {
	switch req.Method {
	case "GET", "HEAD", "OPTIONS", "TRACE", "":
	default:
		return false
	}
	return req.URL.Scheme == "http" && (req.Body == nil || req.Body == http.NoBody) && req.ContentLength == 0 &&
		len(req.TransferEncoding) == 0 && len(req.Trailer) == 0 && !req.Close &&
		req.Header["Upgrade"] == nil && req.Header["Expect"] == nil
}

func (t *connTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !inline(req) {
		return t.fallback.RoundTrip(req)
	}
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		pc, reused, err := t.get(ctx, addr)
		if err != nil {
			return nil, err
		}
		resp, gotBytes, err := t.exchange(ctx, pc, req, addr)
		if err == nil {
			return resp, nil
		}
		_ = pc.conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// A kept-alive connection the backend closed while idle fails
		// before answering: try once more on a fresh one.
		if reused && !gotBytes && attempt == 0 && staleConn(err) {
			continue
		}
		return nil, err
	}
}

// exchange sends req on pc and reads the response head. gotBytes reports
// whether any byte of a response arrived (then the request is not retried).
func (t *connTransport) exchange(ctx context.Context, pc *poolConn, req *http.Request, addr string) (resp *http.Response, gotBytes bool, err error) {
	stop := context.AfterFunc(ctx, func() { _ = pc.conn.SetDeadline(aLongTimeAgo) })
	defer func() {
		if err != nil {
			stop()
		}
	}()
	if t.headerTimeout > 0 {
		_ = pc.conn.SetReadDeadline(time.Now().Add(t.headerTimeout))
	}
	if err := req.Write(pc.bw); err != nil {
		return nil, false, fmt.Errorf("write request: %w", err)
	}
	if err := pc.bw.Flush(); err != nil {
		return nil, false, fmt.Errorf("write request: %w", err)
	}
	if _, err := pc.br.Peek(1); err != nil {
		return nil, false, headErr(err)
	}
	trace := httptrace.ContextClientTrace(ctx)
	for n := 0; ; n++ {
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			return nil, true, headErr(err)
		}
		if resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if n >= maxInformational {
			return nil, true, errors.New("too many 1xx informational responses")
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, true, err
			}
		}
	}
	// The head arrived: streams are not cut by the header timeout. Clearing
	// the deadline may race with a cancellation that just set it: re-arm.
	_ = pc.conn.SetReadDeadline(time.Time{})
	if ctx.Err() != nil {
		_ = pc.conn.SetDeadline(aLongTimeAgo)
	}
	resp.Body = &connBody{t: t, pc: pc, addr: addr, body: resp.Body, stop: stop,
		eof: resp.Body == http.NoBody, reusable: !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols}
	return resp, true, nil
}

// headErr maps a failure to read the response head like http.Transport
// does: a timeout stays a net.Error with Timeout() (504); a connection
// closed without an answer is io.ErrUnexpectedEOF (502).
func headErr(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read response: %w", err)
}

// staleConn reports whether err is how a connection the backend closed
// while idle fails (never a timeout: that one is answered 504 at once).
func staleConn(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// aLongTimeAgo is a deadline in the past: it unblocks reads and writes at once.
var aLongTimeAgo = time.Unix(1, 0)

// get returns an idle connection to addr, or dials one.
func (t *connTransport) get(ctx context.Context, addr string) (pc *poolConn, reused bool, err error) {
	now := time.Now()
	t.mu.Lock()
	for list := t.idle[addr]; len(list) > 0; list = t.idle[addr] {
		pc = list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[addr] = list[:len(list)-1]
		if t.idleTimeout > 0 && now.Sub(pc.idleAt) > t.idleTimeout {
			_ = pc.conn.Close()
			continue
		}
		t.mu.Unlock()
		return pc, true, nil
	}
	t.mu.Unlock()
	c, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return &poolConn{conn: c, br: bufio.NewReaderSize(c, 4096), bw: bufio.NewWriterSize(c, 4096)}, false, nil
}

// put returns pc to the pool, or closes it when the pool is full or closed.
func (t *connTransport) put(addr string, pc *poolConn) {
	pc.idleAt = time.Now()
	t.mu.Lock()
	if !t.closed && len(t.idle[addr]) < t.maxIdle {
		t.idle[addr] = append(t.idle[addr], pc)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	_ = pc.conn.Close()
}

// CloseIdleConnections closes every idle connection, of the inline pool and
// of the wrapped transport. Connections in use close when their exchange ends.
func (t *connTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*poolConn{}
	t.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			_ = pc.conn.Close()
		}
	}
	t.fallback.CloseIdleConnections()
}

// connBody is the response body: it returns the connection to the pool once
// the body was read to its end and closed.
type connBody struct {
	t        *connTransport
	pc       *poolConn
	addr     string
	body     io.ReadCloser
	stop     func() bool // stops the cancellation hook; false if it ran
	eof      bool
	reusable bool
	closed   bool
}

func (b *connBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errors.New("read on closed response body")
	}
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// Close releases the connection: pooled after a complete body, else closed
// first, so closing the body never drains an unread (maybe endless) stream.
func (b *connBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	notCancelled := b.stop()
	if !b.eof || !b.reusable || !notCancelled {
		_ = b.pc.conn.Close()
		_ = b.body.Close()
		return nil
	}
	_ = b.body.Close()
	if b.pc.br.Buffered() > 0 { // bytes after the response: the connection is out of step
		_ = b.pc.conn.Close()
		return nil
	}
	b.t.put(b.addr, b.pc)
	return nil
}
