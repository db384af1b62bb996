package shadow

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/cutover/cutover/internal/testenv"
)

// submitN submits n GET jobs on route whose primary answered "same"; the
// shadow answers body ("same" matches, anything else is semantic) or, with
// body "", fails (an error).
func submitN(t *testing.T, m *Mirror, route, body string, n int) {
	t.Helper()
	hdr := http.Header{"Content-Type": {"text/plain"}}
	var target Target = HandlerTarget{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(body))
	})}
	if body == "" {
		target = TargetFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("shadow side down") })
	}
	for range n {
		ok := m.Submit(Job{Route: route, Request: Request{Method: "GET", URL: &url.URL{Path: "/" + route}, Header: http.Header{}},
			Primary: Response{Status: 200, Header: hdr, Body: []byte("same")}, PrimarySide: SideLegacy, Target: target})
		if !ok {
			t.Fatalf("job on %s not queued", route)
		}
	}
}

// eventually polls cond every 10ms until it holds, failing after 10s with
// what last() says.
func eventually(t *testing.T, cond func() bool, last func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not reached in 10s: %s", last())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fleetOf(t *testing.T, m *Mirror) []RouteSummary {
	t.Helper()
	s, err := m.FleetSummary(context.Background())
	if err != nil {
		t.Fatalf("fleet summary: %v", err)
	}
	return s
}

func redisFor(t *testing.T, srv *testenv.Redis) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { c.Close() }) // after the mirrors' Close (cleanups run last first)
	return c
}

// Two Mirrors sharing one Redis: the summary from either is the sum of both;
// it survives one of them restarting, and a reset starts it from zero.
func TestFleetSummary(t *testing.T) {
	c := redisFor(t, testenv.StartRedis(t))
	const key = "qa:diffs:summary"
	// A flushes on its own every 20ms; B (an hour) only when it serves a
	// fleet summary or closes.
	a := newMirror(t, Options{Fleet: &FleetTally{Client: c, Key: key, Interval: 20 * time.Millisecond}})
	b := newMirror(t, Options{Fleet: &FleetTally{Client: c, Key: key, Interval: time.Hour}})

	submitN(t, a, "chat", "same", 3)
	submitN(t, a, "chat", "other", 1)
	a.Skip("chat", SkipNotSampled)
	a.Skip("chat", SkipNotSampled)
	submitN(t, b, "chat", "other", 2)
	submitN(t, b, "models", "", 1)
	b.Skip("chat", SkipNotSampled)
	eventually(t, func() bool {
		return summaryOf(a, "chat").Compared == 4 && summaryOf(b, "chat").Compared == 2 && summaryOf(b, "models").Errors == 1
	}, func() string { return "local tallies never complete" })

	want := []RouteSummary{
		{Route: "chat", Compared: 6, Matched: 3, Semantic: 3, Skipped: map[string]int64{SkipNotSampled: 3}},
		{Route: "models", Errors: 1, Skipped: map[string]int64{}},
	}
	// B's read flushes B's counts; A's arrive with A's own flusher.
	var got []RouteSummary
	eventually(t, func() bool { got = fleetOf(t, b); return reflect.DeepEqual(got, want) },
		func() string { return "fleet summary from B " + jsonString(got) })

	// A's admin endpoint: scope fleet, the fleet's totals, and A's own figures.
	srv := httptest.NewServer(a.Admin())
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()
	var sum struct {
		Scope      string         `json:"scope"`
		FleetError string         `json:"fleet_error"`
		Routes     []RouteSummary `json:"routes"`
		Process    []RouteSummary `json:"process"`
	}
	getJSON(t, srv.URL+"/admin/shadow/summary", &sum)
	if sum.Scope != ScopeFleet || sum.FleetError != "" || !reflect.DeepEqual(sum.Routes, want) || !reflect.DeepEqual(sum.Process, a.Summary()) {
		t.Errorf("A's summary: %s\nwant routes %s, process %s", jsonString(sum), jsonString(want), jsonString(a.Summary()))
	}
	if p := summaryOf(a, "chat"); p.Compared != 4 || p.Skipped[SkipNotSampled] != 2 {
		t.Errorf("A's process figures changed: %+v", p)
	}

	// B counts one more and stops: Close flushes it. A new B starts at zero
	// locally; the fleet keeps everything.
	submitN(t, b, "models", "", 1)
	drain(t, b)
	want[1].Errors = 2
	if got := fleetOf(t, a); !reflect.DeepEqual(got, want) {
		t.Errorf("after B stopped, fleet %s, want %s", jsonString(got), jsonString(want))
	}
	b2 := newMirror(t, Options{Fleet: &FleetTally{Client: c, Key: key, Interval: time.Hour}})
	if got := fleetOf(t, b2); len(b2.Summary()) != 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("restarted B: process %s, fleet %s; want none and %s", jsonString(b2.Summary()), jsonString(got), jsonString(want))
	}

	// Reset (from B, holding a count not flushed yet): the fleet starts from
	// zero, counts made before the reset are not flushed to it, and process
	// figures are untouched.
	submitN(t, b2, "models", "other", 1)
	eventually(t, func() bool { return summaryOf(b2, "models").Semantic == 1 }, func() string { return jsonString(b2.Summary()) })
	if err := b2.ResetFleet(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := fleetOf(t, a); len(got) != 0 {
		t.Errorf("fleet after reset: %s", jsonString(got))
	}
	submitN(t, a, "chat", "other", 1)
	eventually(t, func() bool { return summaryOf(a, "chat").Compared == 5 }, func() string { return jsonString(a.Summary()) })
	// A's comparison reaches the hash with A's next flush (its own 20ms
	// ticker), so B2 waits for it rather than reading once.
	want = []RouteSummary{{Route: "chat", Compared: 1, Semantic: 1, Skipped: map[string]int64{}}}
	eventually(t, func() bool { got = fleetOf(t, b2); return reflect.DeepEqual(got, want) },
		func() string {
			return "fleet after reset and one comparison " + jsonString(got) + ", want " + jsonString(want)
		})
	if p := summaryOf(b2, "models"); p.Compared != 1 || p.Semantic != 1 {
		t.Errorf("B's process figures after the reset: %+v", p)
	}
	if n, err := c.HLen(context.Background(), key).Result(); err != nil || n != 2 {
		t.Errorf("hash %s has %d fields (%v), want 2: chat|compared, chat|semantic", key, n, err)
	}
}

// With Redis down, comparisons go on; the failed flushes are counted and
// retried, and the summary says it is the process's until Redis is back.
func TestFleetSummaryRedisDown(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := redisFor(t, rs)
	reg := prometheus.NewRegistry()
	m := newMirror(t, Options{Registerer: reg,
		Fleet: &FleetTally{Client: c, Key: "k", Interval: 20 * time.Millisecond, Timeout: time.Second}})
	rs.Stop()
	submitN(t, m, "chat", "same", 2)
	eventually(t, func() bool { return summaryOf(m, "chat").Matched == 2 }, func() string { return jsonString(m.Summary()) })
	eventually(t, func() bool { return counterValue(m.mt.fleetFails) >= 1 },
		func() string { return "no failed flush counted" })

	srv := httptest.NewServer(m.Admin())
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()
	var sum struct {
		Scope      string         `json:"scope"`
		FleetError string         `json:"fleet_error"`
		Routes     []RouteSummary `json:"routes"`
		Process    []RouteSummary `json:"process"`
	}
	getJSON(t, srv.URL+"/admin/shadow/summary", &sum)
	if sum.Scope != ScopeProcess || sum.FleetError == "" || sum.Process != nil || !reflect.DeepEqual(sum.Routes, m.Summary()) {
		t.Errorf("summary with Redis down: %s", jsonString(sum))
	}

	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	want := []RouteSummary{{Route: "chat", Compared: 2, Matched: 2, Skipped: map[string]int64{}}}
	var got []RouteSummary
	eventually(t, func() bool {
		s, err := m.FleetSummary(context.Background())
		got = s
		return err == nil && reflect.DeepEqual(s, want)
	}, func() string { return "fleet summary after Redis came back " + jsonString(got) })
}

func TestFleetSummaryNeedsFleet(t *testing.T) {
	m := newMirror(t, Options{})
	if _, err := m.FleetSummary(context.Background()); !errors.Is(err, ErrNoFleet) {
		t.Errorf("FleetSummary: %v, want ErrNoFleet", err)
	}
	if err := m.ResetFleet(context.Background()); !errors.Is(err, ErrNoFleet) {
		t.Errorf("ResetFleet: %v, want ErrNoFleet", err)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
