package proxy

import (
	"bufio"
	"net"
	"net/http"
	"sync"
)

// recorder wraps the client's ResponseWriter to learn the status and size
// for the access log and metrics, and to add the served-by header. It is
// pooled; Unwrap lets http.ResponseController reach the connection (flush,
// hijack for upgrades, deadlines).
type recorder struct {
	w        http.ResponseWriter
	d        *Decision
	servedBy string // header name, "" when off
	status   int
	bytes    int64
	wrote    bool
}

var recorders = sync.Pool{New: func() any { return new(recorder) }}

func getRecorder(w http.ResponseWriter, d *Decision, servedBy string) *recorder {
	rec := recorders.Get().(*recorder)
	*rec = recorder{w: w, d: d, servedBy: servedBy}
	return rec
}

func putRecorder(rec *recorder) {
	*rec = recorder{}
	recorders.Put(rec)
}

var (
	_ http.ResponseWriter = (*recorder)(nil)
	_ http.Flusher        = (*recorder)(nil)
	_ http.Hijacker       = (*recorder)(nil)
)

func (rec *recorder) Header() http.Header { return rec.w.Header() }

func (rec *recorder) WriteHeader(code int) {
	if rec.wrote {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		rec.w.WriteHeader(code) // informational: pass through, the final status follows
		return
	}
	rec.wrote = true
	if rec.status == 0 {
		rec.status = code
	}
	if rec.servedBy != "" {
		rec.w.Header()[rec.servedBy] = servedByValue[rec.d.Served]
	}
	rec.w.WriteHeader(code)
}

var servedByValue = [...][]string{Legacy: {"legacy"}, Native: {"native"}}

func (rec *recorder) Write(p []byte) (int, error) {
	if !rec.wrote {
		rec.WriteHeader(http.StatusOK)
	}
	n, err := rec.w.Write(p)
	rec.bytes += int64(n)
	return n, err
}

func (rec *recorder) Flush() {
	if !rec.wrote {
		rec.WriteHeader(http.StatusOK)
	}
	if f, ok := rec.w.(http.Flusher); ok {
		f.Flush()
		return
	}
	_ = http.NewResponseController(rec.w).Flush()
}

func (rec *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(rec.w).Hijack()
}

// Unwrap returns the client's ResponseWriter.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.w }

// Status is the final status written, 200 if the handler wrote nothing.
func (rec *recorder) Status() int {
	if rec.status == 0 {
		return http.StatusOK
	}
	return rec.status
}
