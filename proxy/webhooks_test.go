package proxy

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/internal/rollout"
)

func counterOf(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// A webhook that hangs or fails does not hold the others back, its retries
// are bounded and counted, and a full queue drops (counted) without
// blocking the sender.
func TestWebhooks(t *testing.T) {
	var mu sync.Mutex
	var got []RolloutEvent
	var slack []string
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/slack" {
			var m map[string]string
			_ = json.Unmarshal(b, &m)
			slack = append(slack, m["text"])
			return
		}
		var ev RolloutEvent
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Errorf("event: %v", err)
		}
		got = append(got, ev)
	}))
	defer good.Close()
	release, arrived := make(chan struct{}), make(chan struct{}, 10)
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)
	var badCalls atomic.Int64
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		badCalls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer bad.Close()

	hooks := []config.Webhook{
		{URL: hung.URL, Format: "json", Timeout: time.Minute, Retries: 0},
		{URL: bad.URL, Format: "json", Timeout: time.Second, Retries: 2},
		{URL: good.URL + "/json", Format: "json", Timeout: time.Second, Retries: 1},
		{URL: good.URL + "/slack", Format: "slack", Timeout: time.Second, Retries: 1},
	}
	w := newWebhooks(hooks, 2, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.pause = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()
	defer func() { cancel(); <-done }()

	st, err := rollout.Start("chat", rollout.Plan{Steps: []rollout.Step{{Share: 100}, {Share: rollout.MaxShare}}}, "ops", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e := st.History[0]
	e.Gates = []rollout.GateValue{{Gate: "error_rate", Result: rollout.ResultPass, Detail: "native 0 errors in 50 requests"}}
	w.send(st, e)
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1 && len(slack) == 1
	})
	if got[0].Event != rollout.EventStart || got[0].Route != "chat" || got[0].ShareBP != 100 || got[0].Who != "ops" || len(got[0].Gates) != 1 {
		t.Errorf("event %+v", got[0])
	}
	if !strings.Contains(slack[0], "cutover rollout of *chat*: start") || !strings.Contains(slack[0], "error_rate: pass (native 0 errors in 50 requests)") {
		t.Errorf("slack text %q", slack[0])
	}
	waitFor(t, func() bool { return counterOf(t, w.failed) == 1 })
	if n := badCalls.Load(); n != 3 {
		t.Errorf("the failing hook was called %d times, want 1 + 2 retries", n)
	}
	<-arrived
	// The hung hook holds its first event: two more fill its queue of 2,
	// the next is dropped there (and delivered to the others).
	for range 3 {
		w.send(st, e)
	}
	if n := counterOf(t, w.dropped); n != 1 {
		t.Errorf("dropped %v, want 1", n)
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 4 })
}
