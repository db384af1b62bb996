package shadow

import (
	"bytes"
	"net/http"
)

// Tee wraps the primary's http.ResponseWriter: every byte goes to the client
// unchanged and unbuffered (Flush is forwarded, so a server-sent event stream
// still reaches the client event by event), and a copy of at most Limit body
// bytes is kept for comparison. Anything past Limit is passed through but not
// kept, and Truncated is set.
//
// Tee is used by the one goroutine serving the request, like any
// ResponseWriter; read Captured after the handler returns.
type Tee struct {
	w         http.ResponseWriter
	limit     int
	status    int
	header    http.Header
	buf       bytes.Buffer
	truncated bool
}

var (
	_ http.ResponseWriter = (*Tee)(nil)
	_ http.Flusher        = (*Tee)(nil)
)

// NewTee wraps w and keeps at most limit bytes of the body. limit <= 0 keeps
// nothing (status and headers are still captured).
func NewTee(w http.ResponseWriter, limit int) *Tee {
	return &Tee{w: w, limit: max(limit, 0)}
}

// Header returns the wrapped writer's header map.
func (t *Tee) Header() http.Header { return t.w.Header() }

// WriteHeader records the final status and a copy of the headers, then
// forwards. Informational (1xx) statuses are forwarded but not recorded.
func (t *Tee) WriteHeader(code int) {
	if t.status == 0 && (code < 100 || code > 199 || code == http.StatusSwitchingProtocols) {
		t.status = code
		t.header = t.w.Header().Clone()
	}
	t.w.WriteHeader(code)
}

// Write forwards p and keeps what fits under the limit.
func (t *Tee) Write(p []byte) (int, error) {
	if t.status == 0 {
		t.WriteHeader(http.StatusOK)
	}
	n, err := t.w.Write(p)
	t.keep(p[:n])
	return n, err
}

func (t *Tee) keep(p []byte) {
	room := t.limit - t.buf.Len()
	if len(p) > room {
		p = p[:max(room, 0)]
		t.truncated = true
	}
	t.buf.Write(p)
}

// Flush forwards a flush to the wrapped writer (through any Unwrap chain).
func (t *Tee) Flush() { _ = t.FlushError() }

// FlushError is Flush reporting whether the wrapped writer could flush.
func (t *Tee) FlushError() error {
	if t.status == 0 {
		t.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(t.w).Flush()
}

// Unwrap gives http.ResponseController access to the wrapped writer.
func (t *Tee) Unwrap() http.ResponseWriter { return t.w }

// Captured returns what the client was sent: status (200 if the handler wrote
// nothing), headers at the time the status was written, and the kept body.
// The body slice aliases the Tee's buffer: do not write after calling it.
func (t *Tee) Captured() Response {
	st, h := t.status, t.header
	if st == 0 {
		st, h = http.StatusOK, t.w.Header().Clone()
	}
	return Response{Status: st, Header: sniffed(h, t.buf.Bytes()), Body: t.buf.Bytes(), Truncated: t.truncated}
}

// sniffed adds the Content-Type net/http's server sends for a body written
// without one (a nil-valued key suppresses it, as in net/http), so the
// captured headers are the ones the client saw.
func sniffed(h http.Header, body []byte) http.Header {
	if _, set := h["Content-Type"]; set || len(body) == 0 || h.Get("Transfer-Encoding") != "" {
		return h
	}
	h = h.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", http.DetectContentType(body))
	return h
}
