package shadow

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// HandlerTarget runs an in-process handler (the native app) as a shadow
// target. The handler runs on the calling worker goroutine with a recorder
// that keeps at most Limit body bytes; a panic becomes an error.
type HandlerTarget struct {
	Handler http.Handler
	// Limit caps the body kept. Zero means 1 MiB.
	Limit int
	// Context, when set, derives the handler's context, e.g. handlers.WithDryRun
	// so a shadow of a write route writes nowhere.
	Context func(context.Context) context.Context
}

var _ Target = HandlerTarget{}

// RoundTrip implements Target.
func (t HandlerTarget) RoundTrip(r *http.Request) (resp *http.Response, err error) {
	limit := t.Limit
	if limit <= 0 {
		limit = 1 << 20
	}
	if t.Context != nil {
		r = r.WithContext(t.Context(r.Context()))
	}
	if r.RequestURI == "" {
		r.RequestURI = r.URL.RequestURI()
	}
	rec := &recorder{header: http.Header{}, limit: limit}
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, fmt.Errorf("shadow handler panic: %v", p)
		}
	}()
	t.Handler.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
		rec.final = rec.header.Clone()
	}
	resp = &http.Response{
		StatusCode:    rec.status,
		Status:        strconv.Itoa(rec.status) + " " + http.StatusText(rec.status),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        sniffed(rec.final, rec.body.Bytes()),
		Body:          io.NopCloser(bytes.NewReader(rec.body.Bytes())),
		ContentLength: -1,
		Request:       r,
	}
	if rec.over {
		// Signal truncation the same way a long network body would: one byte
		// past the limit.
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(rec.body.Bytes()), bytes.NewReader([]byte{0})))
	}
	return resp, nil
}

// recorder is a bounded http.ResponseWriter for HandlerTarget.
type recorder struct {
	header http.Header
	final  http.Header
	status int
	body   bytes.Buffer
	limit  int
	over   bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status != 0 || (code >= 100 && code <= 199) {
		return
	}
	r.status, r.final = code, r.header.Clone()
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	room := r.limit - r.body.Len()
	if len(p) > room {
		r.body.Write(p[:max(room, 0)])
		r.over = true
		return len(p), nil
	}
	r.body.Write(p)
	return len(p), nil
}

func (r *recorder) Flush() {}
