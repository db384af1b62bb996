package proxy

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// gatedStream sends one event, waits for release, then sends the last.
func gatedStream(started chan<- struct{}, release <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/chat/stream" {
			w.Write([]byte("plain"))
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("event: delta\ndata: one\n\n"))
		w.(http.Flusher).Flush()
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write([]byte("event: done\ndata: two\n\n"))
	}
}

func TestDrainOnShutdown(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	legacy := newBackend(t, gatedStream(started, release))
	yaml := strings.Replace(baseConfig(legacy.URL), "drain_delay: 1ms", "drain_delay: 2500ms", 1)
	// A generous shutdown timeout: this test is about waiting for the stream
	// (TestDrainTimeoutCutsStreams covers the cut), and a loaded machine is slow.
	yaml = strings.Replace(yaml, "timeout: 5s", "timeout: 60s", 1)
	ts := startServer(t, yaml, nil)
	c := newClient(t)
	health := ts.URL + "/_cutover/health"

	// A stream is in flight when the drain starts.
	resp, err := c.Post(ts.URL+"/chat/stream", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if ev := readEvent(t, br); ev != "event: delta\ndata: one\n" {
		t.Fatalf("first event %q", ev)
	}
	<-started

	ts.cancel() // what SIGTERM does in cmd/cutover
	// The health check fails first...
	waitFor(t, func() bool {
		r, err := c.Get(health)
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 503
	})
	// ...while traffic is still served during the drain delay.
	r, body := do(t, c, "GET", ts.URL+"/models", "", nil)
	if r.StatusCode != 200 || string(body) != "plain" {
		t.Fatalf("request during the drain delay: %d %q", r.StatusCode, body)
	}
	// After the delay the listener closes but the stream keeps going.
	waitFor(t, func() bool {
		rr, err := (&http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Get(health)
		if err == nil {
			rr.Body.Close()
		}
		return err != nil
	})
	select {
	case err := <-ts.done:
		ts.done <- err
		t.Fatalf("server stopped with a stream in flight (run: %v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if ev := readEvent(t, br); ev != "event: done\ndata: two\n" {
		t.Fatalf("last event %q", ev)
	}
	select {
	case err := <-ts.done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		ts.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop after the last stream ended")
	}
}

func TestDrainTimeoutCutsStreams(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	legacy := newBackend(t, gatedStream(started, release))
	yaml := strings.Replace(baseConfig(legacy.URL), "timeout: 5s", "timeout: 300ms", 1)
	ts := startServer(t, yaml, nil)
	c := newClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/chat/stream", strings.NewReader(`{}`))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-started
	ts.cancel()
	select {
	case err := <-ts.done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		ts.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop after shutdown.timeout")
	}
	// The cut stream ends without its last event.
	br := bufio.NewReader(resp.Body)
	readEvent(t, br)
	if _, err := br.ReadString('\n'); err == nil {
		t.Error("stream continued past the shutdown timeout")
	}
}
