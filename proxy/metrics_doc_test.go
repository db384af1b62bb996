package proxy

import (
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// readmeMetrics returns the metric table of README.md: name -> label names.
func readmeMetrics(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `(cutover_[a-z_]+)` \\| ([^|]*) \\|")
	label := regexp.MustCompile("`([a-z_]+)`")
	out := map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		labels := []string{}
		for _, l := range label.FindAllStringSubmatch(m[2], -1) {
			labels = append(labels, l[1])
		}
		sort.Strings(labels)
		out[m[1]] = labels
	}
	return out
}

// scrapedMetrics returns the cutover_* families of an exposition: name ->
// label names (histogram series folded into their family, le dropped).
func scrapedMetrics(text string) map[string][]string {
	out := map[string][]string{}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "cutover_") {
			continue
		}
		series, _, _ := strings.Cut(line, " ")
		name, rest, _ := strings.Cut(series, "{")
		if strings.HasSuffix(name, "_bucket") || strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count") {
			if base := name[:strings.LastIndexByte(name, '_')]; strings.HasSuffix(base, "_seconds") {
				name = base
			}
		}
		labels := []string{}
		for _, kv := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
			if k, _, ok := strings.Cut(kv, "="); ok && k != "le" {
				labels = append(labels, k)
			}
		}
		sort.Strings(labels)
		out[name] = labels
	}
	return out
}

// The README's metric table names every cutover_* family the proxy exports,
// with its real labels. The traffic below makes the families appear (a
// vector without series is not exported): requests, decisions, a shadowed
// request, a tripped native breaker with fallbacks, a share change, failed
// legacy round trips and a request refused by the open legacy breaker.
func TestREADMEListsEveryMetric(t *testing.T) {
	e := &breakerEnv{legacy: &failingLegacy{}, native: &modeNative{}, c: newClient(t)}
	ls := newBackend(t, e.legacy)
	yaml := breakerConfig(ls.URL, "") + "    shadow:\n      rate_percent: 100\n" // get_conversation, the last route
	e.ts = startServer(t, yaml, e.native)

	e.do(t, "GET", "/conversations/c1", "", "")
	waitFor(t, func() bool {
		return metricValue(t, e.c, e.ts.AdminURL, `cutover_shadow_duration_seconds_count{route="get_conversation"}`) == "1"
	})
	for range 3 {
		e.do(t, "GET", "/models", "", "500")
	}
	do(t, e.c, "PUT", e.ts.AdminURL+"/admin/routes/chat", `{"native_percent": 50}`,
		map[string]string{"Authorization": "Bearer admin-secret", "Content-Type": "application/json"})
	ls.Close()
	refused := false
	for i := 0; i < 20 && !refused; i++ { // 502s until the legacy-wide breaker opens, then a 503
		resp, _ := e.do(t, "GET", "/nowhere", "", "")
		refused = resp.StatusCode == 503
	}
	if !refused {
		t.Fatal("the legacy-wide breaker never refused a request")
	}

	_, body := do(t, e.c, "GET", e.ts.AdminURL+"/metrics", "", nil)
	scraped := scrapedMetrics(string(body))
	documented := readmeMetrics(t)
	for _, name := range []string{"cutover_requests_total", "cutover_breaker_transitions_total", "cutover_fallbacks_total",
		"cutover_breaker_rejected_total", "cutover_shadow_comparisons_total", "cutover_share_changes_total", "cutover_backend_errors_total"} {
		if _, ok := scraped[name]; !ok {
			t.Errorf("the traffic did not make %s appear", name)
		}
	}
	for name, labels := range scraped {
		doc, ok := documented[name]
		switch {
		case !ok:
			t.Errorf("README's metric table lacks %s{%s}", name, strings.Join(labels, ","))
		case !slices.Equal(doc, labels):
			t.Errorf("README gives %s labels %v; exported: %v", name, doc, labels)
		}
	}
	if len(documented) < len(scraped) {
		t.Errorf("README lists %d metrics, %d exported", len(documented), len(scraped))
	}
}
