package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/rollout"
	"github.com/cutover/cutover/internal/testenv"
	"github.com/cutover/cutover/proxy"
)

// rolloutBound bounds a whole rollout in the process tests (several steps
// of 300ms at least, each waiting for its samples, on a loaded machine).
const rolloutBound = 60 * time.Second

// rolloutProc writes the config of one `cutover serve` of the rollout
// tests: redisURL "" runs it alone, hooks is the rollout.webhooks list.
func rolloutProc(t *testing.T, name, legacyURL, redisURL, hooks string) *fleetProc {
	t.Helper()
	p := &fleetProc{name: name, traffic: freeAddr(t), admin: freeAddr(t)}
	p.config = filepath.Join(t.TempDir(), name+".yaml")
	fleetYAML := ""
	if redisURL != "" {
		fleetYAML = fmt.Sprintf("fleet:\n  redis_url: %s\n  instance: %s\n  heartbeat_ttl: 2s\n", redisURL, name)
	}
	yaml := p.configHead(legacyURL) + fmt.Sprintf(`shadow:
  store: {jsonl_path: "-"}
log: {access: false}
%s
rollout:
  interval: 50ms
  flush_interval: 50ms
  lease_ttl: 1s
  webhooks: %s
stickiness: [header:X-User-Id]
routes:
  - name: health
    path: /health
    shadow: {rate_percent: 100, compare: json}
    rollout: {steps: [shadow, 10, 50, 100], interval: 300ms, min_requests: 20, gates: {p99_floor: 100ms}}
  - name: models
    path: /models
    rollout: {steps: [10, 25, 50, 75, 100], interval: 300ms, min_requests: 20, gates: {p99_floor: 100ms}}
  - name: get_conversation
    path: /conversations/<conversation_id>
    breaker: {disabled: true}
    rollout: {steps: [10, 50, 100], interval: 300ms, min_requests: 20}
  - name: static
    path: /static/<path:filename>
`, fleetYAML, hooks)
	if err := os.WriteFile(p.config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// rolloutLegacy is the legacy app of the rollout tests: it answers what the
// native handlers answer, so the shadow comparisons match.
func rolloutLegacy(t *testing.T) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/health":
			_, _ = w.Write([]byte(`{"status": "ok"}`))
		default:
			_, _ = w.Write([]byte(`{"ok": true}`))
		}
	}))
	t.Cleanup(ts.Close)
	return ts
}

// rollout is GET /admin/routes/{route}/rollout on p; a 404 (the instance
// has not applied the rollout's start yet) is the zero status.
func (p *fleetProc) rollout(t *testing.T, c *http.Client, route string) proxy.RolloutStatus {
	t.Helper()
	code, body := p.adminCall(t, c, http.MethodGet, "/admin/routes/"+route+"/rollout", nil)
	var st proxy.RolloutStatus
	if code == http.StatusNotFound {
		return st
	}
	if code != 200 || json.Unmarshal(body, &st) != nil {
		t.Fatalf("GET rollout of %s on %s: %d %s", route, p.name, code, body)
	}
	return st
}

// load sends GET path (with {user} replaced by a user id) to the
// instances alive() returns, round robin over 1000 users, until stop is
// closed; it returns when it has stopped.
type load struct {
	stop chan struct{}
	done chan struct{}
	n    int64
	mu   sync.Mutex
}

func startLoad(c *http.Client, path string, alive func() []*fleetProc) *load {
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			procs := alive()
			if len(procs) == 0 {
				return
			}
			p := procs[i%len(procs)]
			user := "u" + strconv.Itoa(i%1000)
			req, _ := http.NewRequest(http.MethodGet, "http://"+p.traffic+strings.ReplaceAll(path, "{user}", user), nil)
			req.Header.Set("X-User-Id", user)
			if resp, err := c.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			l.mu.Lock()
			l.n++
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *load) end() {
	close(l.stop)
	<-l.done
}

// hookSink is a webhook receiver: every JSON event and Slack text in order.
type hookSink struct {
	mu     sync.Mutex
	events []proxy.RolloutEvent
	slack  []string
}

func (h *hookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.URL.Path == "/slack" {
		var m struct {
			Text string `json:"text"`
		}
		if json.Unmarshal(body, &m) != nil || m.Text == "" {
			http.Error(w, "not a slack message", http.StatusBadRequest)
			return
		}
		h.slack = append(h.slack, m.Text)
		return
	}
	var ev proxy.RolloutEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.events = append(h.events, ev)
}

func (h *hookSink) got() ([]proxy.RolloutEvent, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]proxy.RolloutEvent(nil), h.events...), append([]string(nil), h.slack...)
}

// events are the events of hist, holds left out: a step may hold while
// its samples come in (a loaded machine serves fewer requests per
// interval), which changes nothing else.
func events(hist []rollout.Entry) []rollout.Event {
	var out []rollout.Event
	for _, e := range hist {
		if e.Event != rollout.EventHold {
			out = append(out, e.Event)
		}
	}
	return out
}

// stepsInOrder checks that the steps of hist were taken one by one: each
// step or completion entry is at the step after the previous one.
func stepsInOrder(t *testing.T, hist []rollout.Entry) {
	t.Helper()
	next := 1
	for i, e := range hist {
		if e.Event != rollout.EventStep && e.Event != rollout.EventComplete {
			continue
		}
		if e.Step != next {
			t.Errorf("history entry %d (%s) at step %d, want %d", i, e.Event, e.Step, next)
		}
		if len(e.Gates) == 0 {
			t.Errorf("history entry %d (%s) without gate values", i, e.Event)
		}
		next++
	}
}

// Real `cutover serve` processes, a real redis-server and real webhook
// receivers (issue 14).
func TestRolloutProcesses(t *testing.T) {
	r := testenv.StartRedis(t)
	bin := buildCutover(t)
	legacy := rolloutLegacy(t)
	sink := &hookSink{}
	hooks := httptest.NewServer(sink)
	defer hooks.Close()
	dead := "http://" + freeAddr(t) + "/hook" // nothing listens there
	hookList := fmt.Sprintf("[{url: %q}, {url: %q, format: slack}, {url: %q, retries: 1, timeout: 200ms}]", hooks.URL+"/json", hooks.URL+"/slack", dead)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	a := rolloutProc(t, "a", legacy.URL, r.URL(), hookList)
	b := rolloutProc(t, "b", legacy.URL, r.URL(), hookList)
	solo := rolloutProc(t, "solo", legacy.URL, "", "[]")
	for _, p := range []*fleetProc{a, b, solo} {
		p.start(t, bin)
	}
	for _, p := range []*fleetProc{a, b, solo} {
		waitStatus(t, c, "http://"+p.traffic+"/_cutover/health", 200)
	}
	var aliveMu sync.Mutex
	procs := []*fleetProc{a, b}
	alive := func() []*fleetProc {
		aliveMu.Lock()
		defer aliveMu.Unlock()
		return append([]*fleetProc(nil), procs...)
	}

	t.Run("bad calls", func(t *testing.T) {
		tests := []struct {
			method, path string
			want         int
		}{
			{http.MethodPost, "/admin/routes/static/rollout", http.StatusConflict}, // no native handler
			{http.MethodPost, "/admin/routes/nope/rollout", http.StatusNotFound},
			{http.MethodPost, "/admin/routes/health/rollout/jump", http.StatusNotFound},
			{http.MethodPost, "/admin/routes/models/rollout/pause", http.StatusNotFound}, // no rollout yet
			{http.MethodGet, "/admin/routes/models/rollout", http.StatusNotFound},
		}
		for _, tt := range tests {
			if code, body := a.adminCall(t, c, tt.method, tt.path, nil); code != tt.want {
				t.Errorf("%s %s: %d %s, want %d", tt.method, tt.path, code, body, tt.want)
			}
		}
		if code, body := a.adminCall(t, c, http.MethodPost, "/admin/routes/health/rollout", map[string]any{"steps": []any{5, 1}}); code != 400 ||
			!strings.Contains(string(body), "does not grow") {
			t.Errorf("bad plan: %d %s", code, body)
		}
	})

	t.Run("healthy rollout reaches 100% through every step", func(t *testing.T) {
		l := startLoad(c, "/health", alive)
		defer l.end()
		code, out, errOut := a.cli("rollout", "start", "health")
		if code != 0 {
			t.Fatalf("rollout start: %d %s %s", code, out, errOut)
		}
		t.Logf("$ cutover rollout start health\n%s", out)
		eventuallyBound(t, rolloutBound, "health rollout completed", func() bool {
			st := b.rollout(t, c, "health")
			if st.Status == rollout.StatusRolledBack || st.Status == rollout.StatusPaused {
				t.Fatalf("rollout %s: %s", st.Status, st.Why)
			}
			return st.Status == rollout.StatusCompleted
		})
		st := b.rollout(t, c, "health")
		if want := []rollout.Event{rollout.EventStart, rollout.EventStep, rollout.EventStep, rollout.EventComplete}; !slices.Equal(events(st.History), want) {
			t.Fatalf("history %v, want %v", events(st.History), want)
		}
		stepsInOrder(t, st.History)
		for _, p := range alive() {
			eventuallyFleet(t, p.name+" serves health at 100%", func() bool { return p.served(t, c, "/health", "u1") == "native" })
		}
		_, out, _ = b.cli("rollout", "status", "health")
		t.Logf("$ cutover rollout status health\n%s", out)
		if !strings.Contains(out, "route health: completed at step 4/4 (100%), native 100%") {
			t.Errorf("status output:\n%s", out)
		}
		// The receiver got every event, in order, in both forms; the dead one changed nothing.
		eventuallyFleet(t, "every event delivered", func() bool {
			evs, sl := sink.got()
			return len(evs) >= len(st.History) && len(sl) >= len(st.History)
		})
		evs, sl := sink.got()
		// Two instances sent them (the start from a, the rest from the
		// driver): their order is the events' own times.
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
		var got, want []rollout.Event
		for _, e := range evs {
			got = append(got, e.Event)
		}
		for _, e := range st.History {
			want = append(want, e.Event)
		}
		if !slices.Equal(got, want) {
			t.Errorf("webhook events %v, want the history's %v", got, want)
		}
		if last := evs[len(evs)-1]; last.ShareBP != 10000 || last.Route != "health" || len(last.Gates) == 0 {
			t.Errorf("completion event %+v", last)
		}
		stepMsg := ""
		for _, m := range sl {
			if strings.Contains(m, "cutover rollout of *health*: step") {
				stepMsg = m
				break
			}
		}
		if !strings.Contains(stepMsg, "mismatch_rate: pass") {
			t.Errorf("slack step message %q in %q", stepMsg, sl)
		}
		// Each instance told of the events it made (start on a, steps on the
		// driver): the dead receiver failed each of them.
		eventuallyFleet(t, "dead webhook failures counted", func() bool {
			return metric(t, c, a, "cutover_rollout_webhook_failures_total")+metric(t, c, b, "cutover_rollout_webhook_failures_total") == float64(len(st.History))
		})
	})

	t.Run("failing native rolls back within one evaluation", func(t *testing.T) {
		l := startLoad(c, "/conversations/c-{user}", alive)
		defer l.end()
		if code, body := a.adminCall(t, c, http.MethodPost, "/admin/routes/get_conversation/rollout", nil); code != 200 {
			t.Fatalf("start: %d %s", code, body)
		}
		eventuallyBound(t, rolloutBound, "get_conversation rolled back", func() bool {
			return b.rollout(t, c, "get_conversation").Status == rollout.StatusRolledBack
		})
		st := b.rollout(t, c, "get_conversation")
		if want := []rollout.Event{rollout.EventStart, rollout.EventRollback}; !slices.Equal(events(st.History), want) {
			t.Fatalf("history %v, want %v", events(st.History), want)
		}
		rb := st.History[len(st.History)-1]
		if !strings.Contains(rb.Reason, "gate error_rate failed") || rb.Share != 0 || rb.Step != 0 {
			t.Errorf("rollback entry %+v", rb)
		}
		var gate *rollout.GateValue
		for i := range rb.Gates {
			if rb.Gates[i].Gate == "error_rate" {
				gate = &rb.Gates[i]
			}
		}
		if gate == nil || gate.Result != rollout.ResultFail || gate.Value <= 0.05 || gate.Samples < 20 || gate.Threshold != 0.05 {
			t.Fatalf("error_rate gate %+v", gate)
		}
		for _, p := range alive() {
			eventuallyFleet(t, p.name+" back to 0%", func() bool { return p.served(t, c, "/conversations/x", "u1") == "legacy" })
		}
		_, out, _ := a.cli("rollout", "status", "get_conversation")
		t.Logf("$ cutover rollout status get_conversation\n%s", out)
		if !strings.Contains(out, "rolled_back") || !regexp.MustCompile(`error_rate +fail +1 +0.05 +\d+/20`).MatchString(out) {
			t.Errorf("status output:\n%s", out)
		}
	})

	t.Run("no traffic holds then pauses (single instance)", func(t *testing.T) {
		code, body := solo.adminCall(t, c, http.MethodPost, "/admin/routes/models/rollout",
			map[string]any{"steps": []any{10, 100}, "interval": "100ms", "max_hold": "1s"})
		if code != 200 {
			t.Fatalf("start: %d %s", code, body)
		}
		eventuallyBound(t, rolloutBound, "models paused", func() bool { return solo.rollout(t, c, "models").Status == rollout.StatusPaused })
		st := solo.rollout(t, c, "models")
		var got []rollout.Event
		for _, e := range st.History {
			got = append(got, e.Event)
		}
		if want := []rollout.Event{rollout.EventStart, rollout.EventHold, rollout.EventPause}; !slices.Equal(got, want) {
			t.Fatalf("history %v, want %v", got, want)
		}
		if !strings.Contains(st.Why, "max_hold 1s") || !strings.Contains(st.Why, "error_rate has 0 of 20 samples") {
			t.Errorf("why %q", st.Why)
		}
		_, out, _ := solo.cli("rollout", "status", "models")
		t.Logf("$ cutover rollout status models\n%s", out)
		if st.AppliedBP != 1000 {
			t.Errorf("paused at %d bp applied, want the step's 1000", st.AppliedBP)
		}
		// A share set by hand does not fight a paused rollout; resume runs the step again.
		if code, out, errOut := solo.cli("rollout", "resume", "models"); code != 0 || !strings.Contains(out, "running at step 1/2") {
			t.Fatalf("resume: %d %s %s", code, out, errOut)
		}
		if code, out, errOut := solo.cli("weights", "set", "models", "3"); code != 0 {
			t.Fatalf("weights set: %d %s %s", code, out, errOut)
		}
		st = solo.rollout(t, c, "models")
		last := st.History[len(st.History)-1]
		if st.Status != rollout.StatusPaused || last.Event != rollout.EventPause || !strings.Contains(last.Reason, "share set to 3% by hand") ||
			st.AppliedBP != 300 {
			t.Errorf("after weights set: %s, applied %d, last %+v", st.Status, st.AppliedBP, last)
		}
	})

	t.Run("a share set by hand pauses the fleet's rollout in the same change; abort", func(t *testing.T) {
		// The completed rollout of health is replaced by a new one that stays
		// at its first step (its interval is long).
		if code, body := a.adminCall(t, c, http.MethodPost, "/admin/routes/health/rollout",
			map[string]any{"steps": []any{10, 100}, "interval": "1h", "reason": "second wave"}); code != 200 {
			t.Fatalf("start: %d %s", code, body)
		}
		if code, _, errOut := a.cli("rollout", "start", "health"); code == 0 || !strings.Contains(errOut, "409") {
			t.Errorf("second start: %d %s, want a 409", code, errOut)
		}
		eventuallyFleet(t, "b applies the new rollout", func() bool {
			st := b.rollout(t, c, "health")
			return st.Status == rollout.StatusRunning && time.Duration(st.Plan.Interval) == time.Hour
		})
		if code, out, errOut := b.cli("weights", "-reason", "hotfix", "set", "health", "20"); code != 0 {
			t.Fatalf("weights set: %d %s %s", code, out, errOut)
		}
		st := b.rollout(t, c, "health")
		last := st.History[len(st.History)-1]
		if st.Status != rollout.StatusPaused || !strings.Contains(last.Reason, "share set to 20% by hand (set)") || last.Who != actorName() {
			t.Fatalf("after weights set: %s, last %+v", st.Status, last)
		}
		eventuallyFleet(t, "a applies 20%", func() bool { return a.rollout(t, c, "health").AppliedBP == 2000 })
		// One audited change holds both the share and the paused rollout.
		code, body := a.adminCall(t, c, http.MethodGet, "/admin/audit?limit=1", nil)
		if code != 200 || !strings.Contains(string(body), `"action":"set"`) || !strings.Contains(string(body), `"status":"paused"`) {
			t.Errorf("audit of the manual change: %d %s", code, body)
		}
		if code, out, errOut := a.cli("rollout", "-reason", "enough", "abort", "health"); code != 0 || !strings.Contains(out, "aborted") {
			t.Fatalf("abort: %d %s %s", code, out, errOut)
		}
		eventuallyFleet(t, "b back to 0% after the abort", func() bool { return b.served(t, c, "/health", "u1") == "legacy" })
	})

	t.Run("the leader killed mid-rollout, another continues from the same step", func(t *testing.T) {
		l := startLoad(c, "/models", alive)
		defer l.end()
		if code, body := b.adminCall(t, c, http.MethodPost, "/admin/routes/models/rollout", nil); code != 200 {
			t.Fatalf("start: %d %s", code, body)
		}
		eventuallyBound(t, rolloutBound, "models at step 2", func() bool { return a.rollout(t, c, "models").Step >= 1 })
		driver := a.rollout(t, c, "models").Driver
		var killed, survivor *fleetProc
		switch driver {
		case "a":
			killed, survivor = a, b
		case "b":
			killed, survivor = b, a
		default:
			t.Fatalf("driver %q", driver)
		}
		aliveMu.Lock()
		procs = []*fleetProc{survivor}
		aliveMu.Unlock()
		killed.kill()
		eventuallyBound(t, rolloutBound, "models completed by "+survivor.name, func() bool {
			st := survivor.rollout(t, c, "models")
			if st.Status == rollout.StatusRolledBack || st.Status == rollout.StatusPaused {
				t.Fatalf("rollout %s: %s", st.Status, st.Why)
			}
			return st.Status == rollout.StatusCompleted
		})
		st := survivor.rollout(t, c, "models")
		if st.Driver != survivor.name {
			t.Errorf("driver %q, want %s", st.Driver, survivor.name)
		}
		want := []rollout.Event{rollout.EventStart, rollout.EventStep, rollout.EventStep, rollout.EventStep, rollout.EventComplete}
		if !slices.Equal(events(st.History), want) {
			t.Fatalf("history %v, want %v (a step repeated or skipped)", events(st.History), want)
		}
		stepsInOrder(t, st.History)
		// The audit says who drove which step: both instances did.
		code, body := survivor.adminCall(t, c, http.MethodGet, "/admin/audit?limit=100", nil)
		var audit struct {
			Records []struct {
				Instance string `json:"instance"`
				Action   string `json:"action"`
				Changes  []struct {
					Route string `json:"route"`
				} `json:"changes"`
			} `json:"records"`
		}
		if code != 200 || json.Unmarshal(body, &audit) != nil {
			t.Fatalf("audit: %d %s", code, body)
		}
		by := map[string]int{}
		for _, rec := range audit.Records {
			if (rec.Action == "rollout_step" || rec.Action == "rollout_complete") && len(rec.Changes) == 1 && rec.Changes[0].Route == "models" {
				by[rec.Instance]++
			}
		}
		if by[killed.name] < 1 || by[survivor.name] < 1 || by[killed.name]+by[survivor.name] != 4 {
			t.Errorf("steps audited by instance %v, want 4 from both %s and %s", by, killed.name, survivor.name)
		}
	})
}

// metric scrapes one unlabelled metric of p's admin /metrics.
func metric(t *testing.T, c *http.Client, p *fleetProc, name string) float64 {
	t.Helper()
	resp, err := c.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("%s not in the metrics of %s", name, p.name)
	return 0
}
