package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sseBackend sends event i+1 only after the test confirms the client
// received event i, so the stream cannot finish unless every event reached
// the client while the stream was still open.
func sseBackend(n int, received <-chan int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		for i := range n {
			fmt.Fprintf(w, "event: delta\ndata: {\"i\": %d, \"text\": \"tok%d\"}\n\n", i, i)
			w.(http.Flusher).Flush()
			select {
			case got := <-received:
				if got != i {
					fmt.Fprintf(w, "event: error\ndata: out of order %d\n\n", got)
					return
				}
			case <-time.After(5 * time.Second):
				fmt.Fprintf(w, "event: error\ndata: client never saw event %d\n\n", i)
				return
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprint(w, "event: done\ndata: {}\n\n")
	}
}

func TestSSEArrivesEventByEvent(t *testing.T) {
	received := make(chan int)
	const n = 5
	legacy := newBackend(t, sseBackend(n, received))
	ts := startServer(t, baseConfig(legacy.URL), nil)
	c := newClient(t)
	resp, err := c.Post(ts.URL+"/chat/stream", "application/json", strings.NewReader(`{"message":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	for i := range n {
		ev := readEvent(t, br)
		want := fmt.Sprintf("event: delta\ndata: {\"i\": %d, \"text\": \"tok%d\"}\n", i, i)
		if ev != want {
			t.Fatalf("event %d = %q, want %q", i, ev, want)
		}
		received <- i // lets the backend send the next one
	}
	if ev := readEvent(t, br); ev != "event: done\ndata: {}\n" {
		t.Fatalf("last event %q", ev)
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Fatalf("trailing bytes %q", rest)
	}
}

func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read event: %v (got %q)", err, b.String())
		}
		if line == "\n" {
			return b.String()
		}
		b.WriteString(line)
	}
}

func metricValue(t *testing.T, c *http.Client, adminURL, series string) string {
	t.Helper()
	_, body := do(t, c, "GET", adminURL+"/metrics", "", nil)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, series+" ") {
			return strings.TrimPrefix(line, series+" ")
		}
	}
	return ""
}

func TestBackendFailuresMapToStatus(t *testing.T) {
	t.Run("unreachable is 502", func(t *testing.T) {
		ln := listen(t)
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		ts := startServer(t, baseConfig("http://"+addr), nil)
		c := newClient(t)
		resp, body := do(t, c, "GET", ts.URL+"/health", "", nil)
		if resp.StatusCode != 502 || !strings.Contains(string(body), "502 Bad Gateway") {
			t.Errorf("got %d %q, want 502", resp.StatusCode, body)
		}
		if v := metricValue(t, c, ts.AdminURL, `cutover_backend_errors_total{backend="legacy",reason="unreachable",route="health"}`); v != "1" {
			t.Errorf("unreachable errors counted %q, want 1", v)
		}
		if v := metricValue(t, c, ts.AdminURL, `cutover_requests_total{backend="legacy",code="5xx",route="health"}`); v != "1" {
			t.Errorf("5xx requests counted %q, want 1", v)
		}
	})
	t.Run("timeout is 504", func(t *testing.T) {
		release := make(chan struct{})
		legacy := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer close(release)
		yaml := strings.Replace(baseConfig(legacy.URL), "response_header_timeout: 2s", "response_header_timeout: 200ms", 1)
		ts := startServer(t, yaml, nil)
		c := newClient(t)
		resp, body := do(t, c, "GET", ts.URL+"/models", "", nil)
		if resp.StatusCode != 504 || !strings.Contains(string(body), "504 Gateway Timeout") {
			t.Errorf("got %d %q, want 504", resp.StatusCode, body)
		}
		if v := metricValue(t, c, ts.AdminURL, `cutover_backend_errors_total{backend="legacy",reason="timeout",route="models"}`); v != "1" {
			t.Errorf("timeouts counted %q, want 1", v)
		}
	})
	t.Run("client gone is 499 in logs and metrics", func(t *testing.T) {
		started := make(chan struct{})
		cancelled := make(chan struct{})
		legacy := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(started)
			<-r.Context().Done() // the proxy cancels the backend call when the client goes
			close(cancelled)
		}))
		ts := startServer(t, baseConfig(legacy.URL), nil)
		c := newClient(t)
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/conversations/abc", nil)
		errc := make(chan error, 1)
		go func() {
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		<-started
		cancel()
		if err := <-errc; err == nil {
			t.Fatal("request succeeded after cancel")
		}
		select {
		case <-cancelled:
		case <-time.After(5 * time.Second):
			t.Fatal("backend call not cancelled when the client went away")
		}
		waitFor(t, func() bool {
			return metricValue(t, c, ts.AdminURL, `cutover_requests_total{backend="legacy",code="499",route="get_conversation"}`) == "1"
		})
		if !strings.Contains(ts.Logs.String(), `"status":499`) {
			t.Errorf("no 499 access log line in %s", ts.Logs.String())
		}
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
