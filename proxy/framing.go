package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Request smuggling defence.
//
// net/http normalises two ambiguous framings instead of rejecting them: a
// request with both Transfer-Encoding: chunked and Content-Length is read as
// chunked (Content-Length dropped), and repeated identical Content-Length
// headers are folded into one. Forwarded, such a request is re-framed
// unambiguously, but a front end that framed it differently (the classic
// CL.TE / TE.CL desync) and gunicorn itself disagree: gunicorn rejects both
// with its own 400 page. So the proxy rejects them too, before any backend
// sees them, and closes the connection. Everything else (conflicting
// Content-Length values, invalid Content-Length, unknown transfer codings,
// invalid header bytes, oversized headers) net/http already rejects with
// 400/501/431.
//
// The raw header block is gone by the time a handler runs, so the check
// scans the connection's bytes as the server reads them: framingConn
// follows HTTP/1.1 message framing (header block, then a Content-Length or
// chunked body) and queues one verdict per request header block, in order;
// the traffic handler takes the verdict of its request first thing.
//
// The scan fails closed: whenever it loses track of the framing (a line or
// a header block past its bounds, a chunk it cannot parse, a request with no
// verdict queued), the connection is poisoned and every later request on it
// is rejected and the connection closed, instead of passing unchecked.

// framingListener wraps accepted connections in framingConns.
type framingListener struct {
	net.Listener
	// asteriskHandled: net/http answers "OPTIONS *" itself, without calling
	// the handler (http.Server.DisableGeneralOptionsHandler is false).
	asteriskHandled bool
	// maxHead is the server's http.Server.MaxHeaderBytes; zero means
	// http.DefaultMaxHeaderBytes. A longer header block is one net/http
	// answers 431 to.
	maxHead int
}

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newFramingConn(c, l.asteriskHandled, l.maxHead), nil
}

func newFramingConn(c net.Conn, asteriskHandled bool, maxHead int) *framingConn {
	if maxHead <= 0 {
		maxHead = http.DefaultMaxHeaderBytes
	}
	// net/http reads up to MaxHeaderBytes plus 4096 bytes of slack.
	return &framingConn{Conn: c, firstLine: true, asteriskHandled: asteriskHandled, maxHead: maxHead + 4096}
}

type framingConnKey struct{}

// framingConnContext is the traffic server's ConnContext: it makes the
// connection's framingConn reachable from its requests.
func framingConnContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framingConn); ok {
		return context.WithValue(ctx, framingConnKey{}, fc)
	}
	return ctx
}

// Scanner states.
const (
	scanHead       = iota // in a request header block
	scanBody              // in a Content-Length body
	scanChunkSize         // in a chunk-size line
	scanChunkData         // in chunk data
	scanChunkCRLF         // after chunk data
	scanTrailer           // in the trailer section
	scanStopped           // framing no longer followed: the connection is poisoned
	maxScannedLine = 4096
)

// framingConn scans what the server reads from the client.
type framingConn struct {
	net.Conn

	mu       sync.Mutex
	verdicts []bool // per header block, in order: true = ambiguous framing
	// poisoned: an ambiguous framing was seen or the scan lost track, so no
	// later request on the connection can be trusted.
	poisoned bool
	// asterisk: the request is "OPTIONS *"; when asteriskHandled, net/http
	// answers it itself without calling the handler, so it gets no verdict.
	asterisk        bool
	asteriskHandled bool

	state     int
	line      []byte // current line (head, chunk size, trailer), bounded
	headBytes int
	maxHead   int // header block bytes net/http reads before answering 431
	firstLine bool
	http10    bool  // the request line says HTTP/1.0
	cl        int   // Content-Length fields seen in this head
	clValue   int64 // the last one's value (-1 when invalid)
	te        bool  // Transfer-Encoding seen
	remaining int64 // body or chunk bytes left

	halfClosed bool // CloseWrite was called: Close lingers (under mu)
}

func (c *framingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.scan(p[:n])
	}
	return n, err
}

// takeVerdict pops the verdict of the oldest unhandled request: true when
// its framing was ambiguous, or when it cannot be known (no verdict queued:
// the scan lost track), which fails closed.
func (c *framingConn) takeVerdict() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.verdicts) == 0 {
		c.poisoned = true
		return true
	}
	v := c.verdicts[0]
	c.verdicts = c.verdicts[1:]
	return v
}

func (c *framingConn) scan(b []byte) {
	for len(b) > 0 {
		switch c.state {
		case scanStopped:
			return
		case scanBody, scanChunkData:
			k := int64(len(b))
			if k > c.remaining {
				k = c.remaining
			}
			c.remaining -= k
			b = b[k:]
			if c.remaining == 0 {
				if c.state == scanBody {
					c.startHead()
				} else {
					c.state = scanChunkCRLF
					c.line = c.line[:0]
				}
			}
		default:
			i := bytes.IndexByte(b, '\n')
			chunk := b
			if i >= 0 {
				chunk = b[:i]
			}
			if c.state == scanHead {
				c.headBytes += len(chunk)
				if i >= 0 {
					c.headBytes++ // the line feed, counted once however the line was read
				}
				if c.headBytes > c.maxHead {
					c.lose() // net/http answers 431 and closes
					return
				}
			}
			if len(c.line)+len(chunk) <= maxScannedLine {
				c.line = append(c.line, chunk...)
			} else if c.state != scanHead {
				c.lose()
				return
			}
			if i < 0 {
				return
			}
			b = b[i+1:]
			line := bytes.TrimSuffix(c.line, []byte{'\r'})
			c.endLine(line)
			c.line = c.line[:0]
		}
	}
}

func (c *framingConn) startHead() {
	c.state = scanHead
	c.firstLine, c.cl, c.clValue, c.te, c.headBytes, c.asterisk, c.http10 = true, 0, 0, false, 0, false, false
	c.line = c.line[:0]
}

// lose stops the scan and poisons the connection: framing is no longer
// followed, so no later request on it is trusted.
func (c *framingConn) lose() {
	c.state = scanStopped
	c.mu.Lock()
	c.poisoned = true
	c.mu.Unlock()
}

// endLine handles one complete line (without its line ending).
func (c *framingConn) endLine(line []byte) {
	switch c.state {
	case scanHead:
		if c.firstLine {
			if len(line) == 0 {
				return // net/http skips empty lines before a request line
			}
			c.firstLine = false
			c.asterisk = c.asteriskHandled && bytes.HasPrefix(line, []byte("OPTIONS * "))
			c.http10 = bytes.HasSuffix(line, []byte(" HTTP/1.0"))
			return
		}
		if len(line) > 0 {
			c.headerLine(line)
			return
		}
		c.endHead()
	case scanChunkSize:
		size, ok := parseChunkSize(line)
		switch {
		case !ok:
			c.lose() // net/http rejects the body
		case size == 0:
			c.state = scanTrailer
		default:
			c.state, c.remaining = scanChunkData, size
		}
	case scanChunkCRLF:
		if len(line) != 0 {
			c.lose()
			return
		}
		c.state = scanChunkSize
	case scanTrailer:
		if len(line) == 0 {
			c.startHead()
		}
	}
}

func (c *framingConn) headerLine(line []byte) {
	name, value, ok := bytes.Cut(line, []byte{':'})
	if !ok {
		return // net/http rejects it
	}
	switch {
	case bytes.EqualFold(name, []byte("Content-Length")):
		c.cl++
		v, err := strconv.ParseInt(string(bytes.TrimSpace(value)), 10, 64)
		if err != nil || v < 0 {
			v = -1
		}
		c.clValue = v
	case bytes.EqualFold(name, []byte("Transfer-Encoding")):
		c.te = true
	}
}

func (c *framingConn) endHead() {
	// HTTP/1.0 with Transfer-Encoding: net/http ignores the coding and
	// frames the body by Content-Length (or none), where another hop may
	// read it as chunked; no HTTP/1.0 client sends it, so it is rejected.
	bad := c.cl > 1 || (c.cl > 0 && c.te) || (c.te && c.http10)
	c.mu.Lock()
	switch {
	case bad && c.asterisk:
		c.poisoned = true
	case c.asterisk:
	case len(c.verdicts) < 64:
		c.verdicts = append(c.verdicts, bad)
	default: // a client pipelining that far ahead is not served faithfully
		c.poisoned = true
	}
	if bad {
		c.poisoned = true
	}
	c.mu.Unlock()
	switch {
	case bad:
		c.state = scanStopped // the request is rejected and the connection closed
	case c.te:
		c.state = scanChunkSize // anything but exactly "chunked" is rejected by net/http
		c.line = c.line[:0]
	case c.cl == 1 && c.clValue > 0:
		c.state, c.remaining = scanBody, c.clValue
	case c.cl == 1 && c.clValue < 0:
		c.lose() // invalid Content-Length: net/http answers 400
	default:
		c.startHead()
	}
}

func parseChunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(line), 16, 63)
	if err != nil {
		return 0, false
	}
	return int64(v), true
}

// gunicornBadFraming is gunicorn's answer to an ambiguous Content-Length
// (InvalidHeader("CONTENT-LENGTH")), byte for byte.
var gunicornBadFraming = []byte("<html>\n  <head>\n    <title>Bad Request</title>\n  </head>\n  <body>\n    <h1><p>Bad Request</p></h1>\n    Invalid HTTP Header: &#x27;CONTENT-LENGTH&#x27;\n  </body>\n</html>\n")

// rejectAmbiguousFraming answers gunicorn's 400, byte for byte, and closes
// the connection when r's framing was ambiguous (see framingConn). It
// reports whether it did.
func rejectAmbiguousFraming(w http.ResponseWriter, r *http.Request) bool {
	fc, ok := r.Context().Value(framingConnKey{}).(*framingConn)
	if !ok || !fc.takeVerdict() {
		return false
	}
	if conn, bw, err := http.NewResponseController(w).Hijack(); err == nil {
		_, _ = bw.WriteString("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/html\r\nContent-Length: " +
			strconv.Itoa(len(gunicornBadFraming)) + "\r\n\r\n")
		_, _ = bw.Write(gunicornBadFraming)
		_ = bw.Flush()
		_ = conn.Close()
		return true
	}
	h := w.Header()
	h["Date"] = nil
	h.Set("Connection", "close")
	h.Set("Content-Type", "text/html")
	h.Set("Content-Length", strconv.Itoa(len(gunicornBadFraming)))
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write(gunicornBadFraming)
	return true
}

// ErrClientTimeout wraps request body reads that ran past
// listen.body_read_timeout: the client, not a backend, was too slow (408).
var ErrClientTimeout = errors.New("client too slow sending the request body")

// limitBodyRead bounds the time the client may take to send r's body: the
// connection's read deadline is set to now+timeout and cleared once the body
// has been read to its end (net/http clears it too when it starts its
// background read), so a long streamed response is never cut. Reads past
// the deadline fail with ErrClientTimeout, and the returned request (whose
// context net/http cancels on that read error, which alone would look like
// a client that went away and get no answer) remembers it, so the failure
// maps to 408.
func limitBodyRead(w http.ResponseWriter, r *http.Request, timeout time.Duration) *http.Request {
	if timeout <= 0 || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return r
	}
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(timeout)) != nil {
		return r
	}
	db := &deadlineBody{ReadCloser: r.Body, rc: rc}
	r = r.WithContext(context.WithValue(r.Context(), bodyTimeoutKey{}, &db.timedOut))
	r.Body = db
	return r
}

type bodyTimeoutKey struct{}

// bodyTimedOut reports whether reading r's body ran past body_read_timeout.
func bodyTimedOut(r *http.Request) bool {
	if r == nil {
		return false
	}
	f, ok := r.Context().Value(bodyTimeoutKey{}).(*atomic.Bool)
	return ok && f.Load()
}

type deadlineBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	done     bool
	timedOut atomic.Bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done {
		b.done = true
		var ne net.Error
		switch {
		case err == io.EOF:
			_ = b.rc.SetReadDeadline(time.Time{})
		case errors.As(err, &ne) && ne.Timeout():
			b.timedOut.Store(true)
			err = fmt.Errorf("%w: %w", ErrClientTimeout, err)
		}
	}
	return n, err
}

// Lingering close bounds: how long and how much a half-closed connection is
// drained before it is closed (nginx's lingering_close does the same).
const (
	lingerFor   = 10 * time.Second
	lingerBytes = 8 << 20
)

// CloseWrite half-closes the connection. net/http calls it after an error
// answer it writes itself (431 for a header block over max_header_bytes, 400
// for an unparsable request) while the client may still be sending: the
// client then reads the answer and an end of stream.
func (c *framingConn) CloseWrite() error {
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok {
		return nil
	}
	c.mu.Lock()
	c.halfClosed = true
	c.mu.Unlock()
	return cw.CloseWrite()
}

// Close closes the connection. After CloseWrite it first reads and discards
// what the client is still sending (up to lingerBytes, for up to lingerFor):
// closing a socket with unread input sends a reset, and a reset makes the
// client's kernel drop the answer it has not read yet, so a client that is
// slow to read (a busy machine) would see "connection reset" instead of the
// 431. net/http's own 500 ms wait before Close covers only a fast client.
func (c *framingConn) Close() error {
	c.mu.Lock()
	linger := c.halfClosed
	c.halfClosed = false
	c.mu.Unlock()
	if linger {
		_ = c.Conn.SetReadDeadline(time.Now().Add(lingerFor))
		_, _ = io.CopyN(io.Discard, c.Conn, lingerBytes)
	}
	return c.Conn.Close()
}
