package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/shadow"
)

// A route's comparison rules (compare, ignore, normalize, headers) hot-reload:
// each rewrite of the config file is picked up by the watcher, and the next
// request is compared under the new rules. A rule that does not compile
// rejects the whole reload and the rules in force stay. A reload that
// changes the process-wide shadow section (built once, at start) logs a
// WARN naming those keys.
func TestShadowRulesHotReload(t *testing.T) {
	answer := func(side string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Side", side)
			_, _ = w.Write([]byte(`{"conversation_id":"` + side + `-1","models":[]}`))
		})
	}
	legacy := newBackend(t, answer("legacy"))
	native := &fakeNative{Handler: answer("native"), endpoints: []string{"models"}}
	// global is the shadow section; "" means records in the ring only.
	yaml := func(global, rules string) string {
		if global == "" {
			global = "  store: {jsonl_path: \"-\"}\n"
		}
		return `shutdown: {drain_delay: 1ms, timeout: 5s}
legacy: {url: ` + legacy.URL + `}
shadow:
` + global + `routes:
  - name: models
    path: /models
    shadow:
      rate_bp: 10000
` + rules
	}
	const (
		jsonMode  = "      compare: json\n"
		ignoreID  = "      ignore: [\"$.conversation_id\"]\n"
		normalize = "      normalize: [{path: \"$.conversation_id\", regex: \"^(legacy|native)-\", replace: \"\"}]\n"
		xSide     = "      headers: [Content-Type, X-Side]\n"
		restart   = "  queue_size: 17\n  isolated_legacy_url: http://127.0.0.1:1\n  isolated_redis_url: redis://127.0.0.1:1/0\n" +
			"  store: {jsonl_path: \"-\", ring_size: 99}\n"
	)
	ts := startShadowServer(t, yaml("", ""), native, nil)
	m := ts.Mirror()
	c := newClient(t)

	reloads := func(result string) int {
		v, _ := strconv.Atoi(metricValue(t, c, ts.AdminURL, `cutover_config_reloads_total{result="`+result+`"}`))
		return v
	}
	var sent int64
	// compare sends one request and returns the class of its comparison and
	// the paths of its record's mismatches.
	compare := func(t *testing.T) (shadow.Class, []string) {
		t.Helper()
		before := routeSummary(m, "models")
		if resp, b := do(t, c, http.MethodGet, ts.URL+"/models", "", nil); resp.StatusCode != 200 || !strings.Contains(string(b), `"legacy-1"`) {
			t.Fatalf("client got %d %s, want legacy's answer", resp.StatusCode, b)
		}
		sent++
		waitOutcomes(t, m, sent)
		after := routeSummary(m, "models")
		switch {
		case after.Matched == before.Matched+1:
			return shadow.ClassMatch, nil
		case after.Semantic != before.Semantic+1:
			t.Fatalf("summary went from %+v to %+v, want one match or one semantic", before, after)
		}
		recs := records(t, m, shadow.Query{Limit: 1})
		var paths []string
		for _, mm := range recs[0].Mismatches {
			paths = append(paths, mm.Path)
		}
		return shadow.ClassSemantic, paths
	}

	if class, paths := compare(t); class != shadow.ClassSemantic || !slices.Equal(paths, []string{"$"}) {
		t.Fatalf("at start (compare: bytes): %s %q, want semantic at $", class, paths)
	}
	steps := []struct {
		name          string
		global, rules string
		valid         bool
		wantClass     shadow.Class
		wantPaths     []string
		wantIgnore    []string // the route's ignore list in force after the step
	}{
		{"compare: json", "", jsonMode, true, shadow.ClassSemantic, []string{"$.conversation_id"}, nil},
		{"ignore the differing field", "", jsonMode + ignoreID, true, shadow.ClassMatch, nil, []string{"$.conversation_id"}},
		// Valid for config (a JSONPath starts with $), not for the comparator:
		// the whole file is rejected, so the ignore rule it drops stays.
		{"invalid: an ignore path that does not compile", "", jsonMode + "      ignore: [\"$.models[\"]\n", false, shadow.ClassMatch, nil, []string{"$.conversation_id"}},
		{"normalize the differing value, bytes mode", "", normalize, true, shadow.ClassMatch, nil, nil},
		{"headers: X-Side compared too", "", normalize + xSide, true, shadow.ClassSemantic, []string{"header.X-Side"}, nil},
		{"restart-only shadow settings, rules back to json + ignore", restart, jsonMode + ignoreID, true, shadow.ClassMatch, nil, []string{"$.conversation_id"}},
	}
	for _, st := range steps {
		ok, fail := reloads("success"), reloads("failure")
		writeConfigAtomic(t, ts.File, yaml(st.global, st.rules))
		deadline := time.Now().Add(20 * time.Second) // a hang detector: the watcher debounces, the machine is shared
		for reloads("success") == ok && reloads("failure") == fail {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the rewrite was never reloaded", st.name)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got := reloads("success") > ok; got != st.valid {
			t.Fatalf("%s: reload succeeded %v, want %v; logs:\n%s", st.name, got, st.valid, ts.Logs.String())
		}
		if got := ts.Router.Config().Route("models").Shadow.Ignore; !slices.Equal(got, st.wantIgnore) {
			t.Errorf("%s: ignore in force %q, want %q", st.name, got, st.wantIgnore)
		}
		class, paths := compare(t)
		if class != st.wantClass || !slices.Equal(paths, st.wantPaths) {
			t.Errorf("%s: compared as %s %q, want %s %q", st.name, class, paths, st.wantClass, st.wantPaths)
		}
	}

	// The rejection was logged naming the route and the bad path; only the
	// reload that changed the process-wide section warned, naming its keys.
	var rejected []string
	var warned [][]string
	for _, line := range strings.Split(strings.TrimSpace(ts.Logs.String()), "\n") {
		var e struct {
			Level, Msg, Error string
			Keys              []string
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch {
		case strings.HasPrefix(e.Msg, "config reload rejected"):
			rejected = append(rejected, e.Error)
		case e.Level == "WARN" && strings.Contains(e.Msg, "shadow settings take effect on restart"):
			warned = append(warned, e.Keys)
		}
	}
	if len(rejected) != 1 || !strings.Contains(rejected[0], `route "models": ignore: path "$.models["`) {
		t.Errorf("rejections logged: %q, want one naming route models and its ignore path", rejected)
	}
	want := []string{"shadow.queue_size", "shadow.isolated_legacy_url", "shadow.isolated_redis_url", "shadow.store.ring_size"}
	if len(warned) != 1 || !slices.Equal(warned[0], want) {
		t.Errorf("restart warnings %q, want one naming %q", warned, want)
	}
}

// Shadow sampling reads the identity the Router computed under the config in
// force, so a reloaded identity: section changes which requests are
// shadowed, as it changes which are routed to native. Here the route keys on
// client_ip and the request's X-Forwarded-For has two entries: with
// trusted_hops 1 the key is the right one, chosen (by the route's salt) to
// be outside the 50 % sample; after a reload to trusted_hops 2 it is the
// left one, chosen inside it.
func TestShadowSamplingFollowsReloadedIdentity(t *testing.T) {
	const rate = 5000
	const near, far = "198.51.100.9", "203.0.113.7"
	salt := ""
	for i := 0; salt == ""; i++ {
		s := fmt.Sprint("reload-", i)
		if !sampled(shadowSeed(s), near, rate) && sampled(shadowSeed(s), far, rate) {
			salt = s
		}
	}
	legacy := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"models":[]}`))
	}))
	native := &fakeNative{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"models":[]}`))
	}), endpoints: []string{"models"}}
	yaml := func(hops int) string {
		return fmt.Sprintf(`shutdown: {drain_delay: 1ms, timeout: 5s}
legacy: {url: %s}
identity: {trusted_hops: %d}
shadow:
  store: {jsonl_path: "-"}
routes:
  - name: models
    path: /models
    salt: %s
    stickiness: [client_ip]
    shadow: {rate_bp: %d}
`, legacy.URL, hops, salt, rate)
	}
	ts := startShadowServer(t, yaml(1), native, nil)
	m := ts.Mirror()
	c := newClient(t)
	var sent int64
	send := func(t *testing.T) shadow.RouteSummary {
		t.Helper()
		resp, b := do(t, c, http.MethodGet, ts.URL+"/models", "", map[string]string{"X-Forwarded-For": far + ", " + near})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		sent++
		waitOutcomes(t, m, sent)
		return routeSummary(m, "models")
	}
	if s := send(t); s.Skipped[shadow.SkipNotSampled] != 1 || s.Compared != 0 {
		t.Fatalf("trusted_hops 1 (key %s): %+v, want not sampled", near, s)
	}

	ok := metricValue(t, c, ts.AdminURL, `cutover_config_reloads_total{result="success"}`)
	writeConfigAtomic(t, ts.File, yaml(2))
	deadline := time.Now().Add(20 * time.Second) // a hang detector: the watcher debounces, the machine is shared
	for metricValue(t, c, ts.AdminURL, `cutover_config_reloads_total{result="success"}`) == ok {
		if time.Now().After(deadline) {
			t.Fatalf("the rewrite was never reloaded; logs:\n%s", ts.Logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := send(t); s.Skipped[shadow.SkipNotSampled] != 1 || s.Compared != 1 {
		t.Fatalf("trusted_hops 2 (key %s): %+v, want shadowed", far, s)
	}
}
