package shadow

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// The client receives each event while the handler is still blocked waiting
// for the client to acknowledge it: the Tee never holds a byte back.
func TestTeeStreamsEventByEvent(t *testing.T) {
	const events = 5
	ack := make(chan struct{})
	captured := make(chan Response, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tee := NewTee(w, 40)
		tee.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		tee.WriteHeader(200)
		for i := range events {
			fmt.Fprintf(tee, "data: {\"text\":\"chunk %d\"}\n\n", i)
			tee.Flush()
			select {
			case <-ack:
			case <-r.Context().Done():
				return
			}
		}
		captured <- tee.Captured()
	}))
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range events {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if want := fmt.Sprintf("data: {\"text\":\"chunk %d\"}\n", i); line != want {
			t.Fatalf("event %d = %q, want %q", i, line, want)
		}
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		ack <- struct{}{}
	}
	got := <-captured
	if got.Status != 200 || !got.Truncated || len(got.Body) != 40 {
		t.Errorf("captured status %d truncated %v len %d; want 200, true, 40", got.Status, got.Truncated, len(got.Body))
	}
	if !strings.HasPrefix(string(got.Body), "data: {\"text\":\"chunk 0\"}\n\n") {
		t.Errorf("captured %q", got.Body)
	}
	if !IsEventStream(got.Header) {
		t.Errorf("captured header %v", got.Header)
	}
}

func TestTeeCapturesSmallBody(t *testing.T) {
	rec := httptest.NewRecorder()
	tee := NewTee(rec, 1024)
	tee.Header().Set("Content-Type", "application/json")
	tee.Write([]byte(`{"ok":`))
	tee.Write([]byte(`true}`))
	tee.Header().Set("X-Late", "ignored") // after the status: not part of what the client got
	got := tee.Captured()
	if got.Status != 200 || got.Truncated || string(got.Body) != `{"ok":true}` || got.Header.Get("X-Late") != "" {
		t.Errorf("captured %+v", got)
	}
	if rec.Body.String() != `{"ok":true}` {
		t.Errorf("client got %q", rec.Body.String())
	}
	if http.NewResponseController(tee).Flush() != nil {
		t.Error("Flush through ResponseController failed")
	}
}

// A handler that sets no Content-Type: the client gets a sniffed one, and the
// capture must say so too, or every comparison would report it absent.
func TestTeeCapturesSniffedContentType(t *testing.T) {
	rec := httptest.NewRecorder()
	tee := NewTee(rec, 1024)
	tee.Write([]byte("<!doctype html><p>hi"))
	if got := tee.Captured().Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("captured Content-Type %q", got)
	}
	resp, err := HandlerTarget{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<!doctype html><p>hi"))
	})}.RoundTrip(httptest.NewRequest("GET", "/", nil))
	if err != nil || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("handler target Content-Type %q %v", resp.Header.Get("Content-Type"), err)
	}
}

func TestHandlerTargetPanicAndLimit(t *testing.T) {
	_, err := HandlerTarget{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })}.
		RoundTrip(httptest.NewRequest("GET", "/", nil))
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("panic not turned into an error: %v", err)
	}
	m := newMirror(t, Options{MaxResponseBytes: 10})
	m.Submit(Job{Route: "big", Request: Request{Method: "GET", URL: &url.URL{Path: "/"}}, Primary: Response{Status: 200},
		Target: HandlerTarget{Limit: 10, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(strings.Repeat("x", 100)))
		})}})
	drain(t, m)
	if s := summaryOf(m, "big"); s.Skipped[SkipResponseTooLarge] != 1 || s.Compared != 0 {
		t.Errorf("oversized shadow response: %+v", s)
	}
}

func TestMirrorSurvivesPanickingTarget(t *testing.T) {
	m := newMirror(t, Options{})
	m.Submit(Job{Route: "p", Primary: Response{Status: 200},
		Target: TargetFunc(func(*http.Request) (*http.Response, error) { panic("transport bug") })})
	m.Submit(Job{Route: "p", Primary: Response{Status: 200}})
	drain(t, m)
	if s := summaryOf(m, "p"); s.Errors != 1 || s.Skipped[SkipNoTarget] != 1 {
		t.Errorf("summary %+v", s)
	}
}
