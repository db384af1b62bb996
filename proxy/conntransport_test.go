package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/cutover/config"
)

// connCounter counts the connections a test backend accepted.
type connCounter struct{ n atomic.Int64 }

func (c *connCounter) state(_ net.Conn, s http.ConnState) {
	if s == http.StateNew {
		c.n.Add(1)
	}
}

func newCountedBackend(t *testing.T, h http.Handler) (*httptest.Server, *connCounter) {
	cc := &connCounter{}
	s := httptest.NewUnstartedServer(h)
	s.Config.ConnState = cc.state
	s.Start()
	t.Cleanup(s.Close)
	return s, cc
}

func newTestConnTransport(t *testing.T, cfg config.Legacy) *connTransport {
	t.Helper()
	if cfg.MaxIdleConnsPerHost == 0 {
		cfg.MaxIdleConnsPerHost = 16
	}
	ct, ok := newConnTransport(NewTransport(cfg), cfg).(*connTransport)
	if !ok {
		t.Fatal("newConnTransport did not build the inline transport")
	}
	t.Cleanup(ct.CloseIdleConnections)
	return ct
}

func get(t *testing.T, rt http.RoundTripper, ctx context.Context, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rt.RoundTrip(req)
}

func TestConnTransportReusesConnections(t *testing.T) {
	backend, cc := newCountedBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	ct := newTestConnTransport(t, config.Legacy{})
	for i := range 20 {
		resp, err := get(t, ct, context.Background(), backend.URL+"/x")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "hello" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
	}
	if n := cc.n.Load(); n != 1 {
		t.Errorf("20 sequential requests used %d connections, want 1", n)
	}
}

// TestConnTransportStaleConnection: a pooled connection the backend closed
// while idle is replaced transparently (the request is replayable).
func TestConnTransportStaleConnection(t *testing.T) {
	backend, cc := newCountedBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	ct := newTestConnTransport(t, config.Legacy{})
	for i := range 3 {
		resp, err := get(t, ct, context.Background(), backend.URL+"/")
		if err != nil {
			t.Fatalf("request %d after the backend closed idle connections: %v", i, err)
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		backend.CloseClientConnections()
		time.Sleep(20 * time.Millisecond) // let the close reach our side
	}
	if n := cc.n.Load(); n != 3 {
		t.Errorf("%d connections, want 3 (one per request, each pooled one gone stale)", n)
	}
}

// TestConnTransportHeaderTimeout: past response_header_timeout the round
// trip fails with a timeout (504 through StatusFor) and is not retried.
func TestConnTransportHeaderTimeout(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	backend, _ := newCountedBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) > 1 {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer close(release)
	ct := newTestConnTransport(t, config.Legacy{ResponseHeaderTimeout: 100 * time.Millisecond})
	resp, err := get(t, ct, context.Background(), backend.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close() // pooled: the next request reuses it
	_, err = get(t, ct, context.Background(), backend.URL+"/")
	if err == nil {
		t.Fatal("no error past the header timeout")
	}
	r := httptest.NewRequest("GET", "/", nil)
	if got := StatusFor(r, err); got != http.StatusGatewayTimeout {
		t.Errorf("StatusFor(%v) = %d, want 504", err, got)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("backend saw %d requests, want 2 (a timeout is not retried)", n)
	}
}

// TestConnTransportCancelAndPartialBody: cancelling the request context
// unblocks a body read at once; closing a body read only in part closes the
// connection instead of draining an endless stream, and it is not reused.
func TestConnTransportCancelAndPartialBody(t *testing.T) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	backend, cc := newCountedBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		w.Header().Set("Content-Type", "text/event-stream")
		for {
			if _, err := io.WriteString(w, "data: x\n\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}))
	defer func() { close(stop); wg.Wait() }()
	ct := newTestConnTransport(t, config.Legacy{})

	ctx, cancel := context.WithCancel(context.Background())
	resp, err := get(t, ct, ctx, backend.URL+"/stream")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 9)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, resp.Body); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("body read ended without error after cancellation")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("body read not unblocked by cancellation")
	}
	resp.Body.Close()

	resp, err = get(t, ct, context.Background(), backend.URL+"/stream")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { resp.Body.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("closing a partly read body blocked (drained an endless stream)")
	}
	resp, err = get(t, ct, context.Background(), backend.URL+"/stream")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := cc.n.Load(); n != 3 {
		t.Errorf("%d connections, want 3 (no connection with an unfinished body is reused)", n)
	}
}

// TestConnTransportDelegates: requests with a body, other methods and
// upgrades go through the wrapped http.Transport; their answers are the same.
func TestConnTransportDelegates(t *testing.T) {
	backend := newBackend(t, echoHandler("legacy"))
	ct := newTestConnTransport(t, config.Legacy{})
	tests := []struct {
		give *http.Request
		want bool
	}{
		{httptest.NewRequest("GET", backend.URL+"/", nil), true},
		{httptest.NewRequest("HEAD", backend.URL+"/", nil), true},
		{httptest.NewRequest("POST", backend.URL+"/", nil), false},
		{httptest.NewRequest("DELETE", backend.URL+"/", nil), false},
		{func() *http.Request {
			r, _ := http.NewRequest("GET", backend.URL+"/", nil)
			r.Header.Set("Upgrade", "websocket")
			return r
		}(), false},
		{func() *http.Request {
			r, _ := http.NewRequest("PUT", backend.URL+"/", nil)
			return r
		}(), false},
	}
	for _, tt := range tests {
		tt.give.RequestURI = ""
		if tt.give.Method == "GET" || tt.give.Method == "HEAD" {
			tt.give.Body = nil
		}
		if got := inline(tt.give); got != tt.want {
			t.Errorf("inline(%s %v) = %v, want %v", tt.give.Method, tt.give.Header, got, tt.want)
		}
		resp, err := ct.RoundTrip(tt.give)
		if err != nil {
			t.Errorf("%s: %v", tt.give.Method, err)
			continue
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: status %d", tt.give.Method, resp.StatusCode)
		}
	}
}
