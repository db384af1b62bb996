package shadow

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestWrapDecisionsAreCounted(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	m := newMirror(t, Options{MaxBodyBytes: 64})
	var (
		mu         sync.Mutex
		primaryGot []int
	)
	primary := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		primaryGot = append(primaryGot, len(b))
		mu.Unlock()
		w.Write([]byte("ok"))
	})
	shadow := HandlerTarget{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("ok"))
	})}
	plans := map[string]Plan{
		"/off":    {Route: "off", RateBP: 0, Target: shadow},
		"/half":   {Route: "half", RateBP: 5000, Target: shadow},
		"/all":    {Route: "all", RateBP: 10000, Target: shadow},
		"/unsafe": {Route: "unsafe", RateBP: 10000, Target: shadow},
		"/safe":   {Route: "safe", RateBP: 10000, Target: shadow, ShadowSafe: true},
		"/only":   {Route: "only", RateBP: 10000, Target: shadow, ShadowSafe: true, Methods: []string{"POST"}},
	}
	srv := httptest.NewServer(m.Wrap(primary, func(r *http.Request) (Plan, bool) {
		p, ok := plans[r.URL.Path]
		p.Key = r.Header.Get("X-Key")
		return p, ok
	}))
	defer srv.Close()
	do := func(method, path, body, key string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("X-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" {
			t.Fatalf("%s %s: client got %q", method, path, b)
		}
	}
	for i := range 40 {
		do("GET", "/half", "", fmt.Sprint("user-", i))
	}
	do("GET", "/off", "", "k")
	do("POST", "/unsafe", "{}", "k")
	do("POST", "/safe", "{}", "k")
	do("POST", "/all", "{}", "k")
	do("GET", "/all", strings.Repeat("b", 65), "k")
	do("GET", "/all", strings.Repeat("b", 64), "k")
	do("GET", "/only", "", "k")
	do("POST", "/only", "{}", "k")
	drain(t, m)

	mu.Lock()
	defer mu.Unlock()
	if got := primaryGot[len(primaryGot)-4]; got != 65 {
		t.Errorf("primary read %d bytes of an oversized body, want 65", got)
	}
	half := summaryOf(m, "half")
	want := 0
	for i := range 40 {
		if Sample("half", fmt.Sprint("user-", i), 5000) {
			want++
		}
	}
	if half.Compared != int64(want) || half.Skipped[SkipNotSampled] != int64(40-want) || want == 0 || want == 40 {
		t.Errorf("half: %+v, want %d compared", half, want)
	}
	if s := summaryOf(m, "off"); s.Route != "" {
		t.Errorf("off: %+v, want nothing counted", s)
	}
	if s := summaryOf(m, "unsafe"); s.Skipped[SkipUnsafeMethod] != 1 || s.Compared != 0 {
		t.Errorf("unsafe: %+v", s)
	}
	if s := summaryOf(m, "safe"); s.Compared != 1 || s.Matched != 1 {
		t.Errorf("safe: %+v", s)
	}
	if s := summaryOf(m, "only"); s.Skipped[SkipMethodExcluded] != 1 || s.Matched != 1 {
		t.Errorf("only: %+v", s)
	}
	if s := summaryOf(m, "all"); s.Skipped[SkipUnsafeMethod] != 1 || s.Skipped[SkipBodyTooLarge] != 1 || s.Matched != 1 {
		t.Errorf("all: %+v", s)
	}
}

// A streaming route: the client reads each event before the primary writes
// the next one (so nothing is held back by shadowing), and the shadow's
// stream is compared event by event.
func TestWrapStreamComparedEventByEvent(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	events := []string{`{"text":"Bon"}`, `{"text":"jour é"}`, `{"text":"!"}`}
	ack := make(chan struct{})
	primary := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		for _, e := range events {
			fmt.Fprintf(w, "data: %s\n\n", e)
			w.(http.Flusher).Flush()
			select {
			case <-ack:
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprint(w, "event: done\ndata: {\"stop_reason\":\"end_turn\"}\n\n")
	})
	shadow := serverTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		fmt.Fprint(w, "data: {\"text\":\"Bon\"}\n\ndata: {\"text\":\"jour \\u00e9\"}\n\ndata: {\"text\":\"?\"}\n\n")
		fmt.Fprint(w, "event: done\ndata: {\"stop_reason\":\"end_turn\"}\n\n")
	}))
	cmp := mustComparator(t, ComparatorConfig{Default: Rules{JSON: true, SSEText: "$.text"}})
	m := newMirror(t, Options{Comparator: cmp})
	srv := httptest.NewServer(m.Wrap(primary, func(*http.Request) (Plan, bool) {
		return Plan{Route: "chat_stream", RateBP: 10000, Target: shadow, ShadowSafe: true, PrimarySide: SideLegacy}, true
	}))
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/api/chat/stream", "application/json", strings.NewReader(`{"message":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for i, e := range events {
		line, err := br.ReadString('\n')
		if err != nil || line != "data: "+e+"\n" {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		br.ReadString('\n')
		ack <- struct{}{}
	}
	rest, _ := io.ReadAll(br)
	resp.Body.Close()
	if !strings.Contains(string(rest), "event: done") {
		t.Fatalf("terminal event not received: %q", rest)
	}
	drain(t, m)
	page, _ := m.Store().List(context.Background(), Query{Route: "chat_stream"})
	if len(page.Records) != 1 {
		t.Fatalf("%d records", len(page.Records))
	}
	got := strings.Join(paths(Result{Mismatches: page.Records[0].Mismatches}), "; ")
	want := "encoding_only events[1].data$; semantic events[2].data$.text; semantic sse.text"
	if page.Records[0].Class != ClassSemantic || got != want {
		t.Errorf("class %s mismatches %q, want %q", page.Records[0].Class, got, want)
	}
}

// However many large jobs arrive while the shadow is stuck, the mirror holds
// at most queue + workers of them.
func TestMirrorMemoryBoundedWithStuckShadow(t *testing.T) {
	stuck := &blockingTarget{release: make(chan struct{})}
	const workers, queue, n, size = 2, 8, 2000, 64 << 10
	m := newMirror(t, Options{Workers: workers, QueueSize: queue})
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	accepted := 0
	for i := range n {
		body := make([]byte, size) // a fresh 64 KiB per job: 125 MiB in total
		body[0] = byte(i)
		if m.Submit(Job{Route: "r", Request: Request{Method: "POST", URL: &url.URL{Path: "/"}, Body: body},
			Primary: Response{Status: 200, Body: body}, Target: stuck}) {
			accepted++
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if accepted > queue+workers {
		t.Errorf("accepted %d jobs, bound is %d", accepted, queue+workers)
	}
	if s := summaryOf(m, "r"); s.Skipped[SkipQueueFull] != int64(n-accepted) {
		t.Errorf("drops counted %d, want %d", s.Skipped[SkipQueueFull], n-accepted)
	}
	// Retained: at most (queue+workers) bodies plus slack, far below the 125 MiB submitted.
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 16<<20 {
		t.Errorf("heap grew %d MiB with a stuck shadow", grew>>20)
	}
	close(stuck.release)
	drain(t, m)
}
