package shadow

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Target is the side a shadow request is sent to. *http.Transport and any
// http.RoundTripper satisfy it; HandlerTarget adapts an in-process handler.
// The request's URL has the client's path and query; a RoundTripper target is
// expected to fill in scheme and host (as a reverse proxy's director would).
type Target interface {
	RoundTrip(*http.Request) (*http.Response, error)
}

// TargetFunc adapts a function to Target.
type TargetFunc func(*http.Request) (*http.Response, error)

// RoundTrip calls f(r).
func (f TargetFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Side names a backend.
const (
	SideLegacy = "legacy"
	SideNative = "native"
)

// Request is the immutable copy of a client request that a shadow replays.
type Request struct {
	Method string
	URL    *url.URL // path and query as the client sent them
	Host   string
	Header http.Header
	Body   []byte
}

// NewRequest copies r (method, URL, host, headers) with its body, read
// whole by the caller before the primary runs. Hop-by-hop headers are dropped, and so is a "#fragment" in the
// request-target: net/http keeps it in the path, gunicorn (and compat, for
// the native app) drops it, so the primary answered the path without it.
func NewRequest(r *http.Request, body []byte) Request {
	u := *r.URL
	if i := strings.IndexByte(r.RequestURI, '#'); i >= 0 {
		if v, err := url.ParseRequestURI(r.RequestURI[:i]); err == nil {
			u = *v
		}
	}
	h := r.Header.Clone()
	for _, k := range hopHeaders {
		h.Del(k)
	}
	return Request{Method: r.Method, URL: &u, Host: r.Host, Header: h, Body: body}
}

var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// HTTP builds a fresh *http.Request for one replay of r on ctx. It is safe to
// call many times (each call gets its own body reader and header map).
func (r Request) HTTP(ctx context.Context) *http.Request {
	u := url.URL{Path: "/"}
	if r.URL != nil {
		u = *r.URL
	}
	req := (&http.Request{
		Method:     r.Method,
		URL:        &u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Host:       r.Host,
		Header:     r.Header.Clone(),
	}).WithContext(ctx)
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if len(r.Body) > 0 {
		body := r.Body
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.ContentLength = int64(len(body))
	} else {
		req.Body = http.NoBody
	}
	req.RequestURI = ""
	return req
}

// Response is one side's answer as captured for comparison. Body holds at
// most the capture limit; Truncated says more was sent. Err is set when the
// side failed at the transport level (then Status is 0).
type Response struct {
	Status    int         `json:"status"`
	Header    http.Header `json:"header,omitempty"`
	Body      []byte      `json:"-"`
	Truncated bool        `json:"truncated,omitempty"`
	Err       string      `json:"error,omitempty"`
}

// Job is one shadow comparison handed to Mirror.Submit. The proxy fills it in
// on the request path: Request and Primary are copies it no longer touches.
type Job struct {
	// Route is the route name (metric label and store key).
	Route string
	// Request is the client's request, body already buffered.
	Request Request
	// Primary is what the client received (see Tee).
	Primary Response
	// PrimarySide is SideLegacy or SideNative: the side that served the client.
	PrimarySide string
	// Target is the other side. Required.
	Target Target
	// Replay, when set, is the primary side again, used to learn noise (fields
	// that differ between two runs of the same backend). It must be side
	// effect free for this request (a dry-run native handler or the isolated
	// legacy target for writes); nil means no noise sample for this job.
	Replay Target
	// Snapshot, when set, is state captured before the primary ran; it is
	// staged into the isolated store right before the shadow call (and the
	// replay) and released after, serialised per Snapshot.Key.
	Snapshot Snapshot
	// ModelCall marks a shadow that invokes the model; it is subject to the
	// guard's per-minute budget and counted as shadow model usage.
	ModelCall bool
	// Context, when set, supplies values (not cancellation or deadline) for
	// the shadow call; nil means context.Background.
	Context context.Context

	cmp *Comparator // the rules in force at Submit
}
