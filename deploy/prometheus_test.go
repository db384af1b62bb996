package deploy_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/testenv"
)

var record = flag.String("record", "", "write each dashboard panel's data, as the real Prometheus returned it, to this markdown `file`")

// rateInterval stands for Grafana's $__rate_interval: at a 1 s scrape
// interval Grafana would use at least 4 s; 10 s keeps several samples in
// every window on a busy machine.
const rateInterval = "10s"

// dataWait bounds the wait for every query to return data.
const dataWait = 90 * time.Second

// A real Prometheus (Debian's) scrapes a real `cutover serve` in front of
// real gunicorn, Redis and the Bedrock stub, under a little traffic and real
// faults, and every query of the dashboard returns data: no panel is empty
// because of a typo in a name, a label or a value. The faults are the ones
// the panels exist for, triggered for real, not skipped: native failures
// replayed on legacy until both breakers of /chat open and a request is
// refused (fallbacks, breaker states and transitions, 503s, backend errors
// breaker_open), a shadowed route whose
// backends differ in a compared header (semantic mismatches), a diff store
// whose Redis is down (store and summary flush failures), shadow-safe
// writes to the isolated targets (shadow model calls), a share change and a
// SIGHUP reload; shares kept in a fleet store. The alert rules are loaded too: every rule must evaluate
// without error, and those the faults set off must fire.
func TestDashboardQueriesAgainstRealPrometheus(t *testing.T) {
	promBin := tool(t, "prometheus")
	root := repoRoot(t)
	tmp := t.TempDir()
	cutoverBin := buildCutover(t, root, tmp)

	redis := testenv.StartRedis(t)
	isoRedis := testenv.StartRedis(t)
	stub := testenv.StartStub(t, bedrockstub.Options{})
	legacy := testenv.StartLegacy(t, map[string]string{
		"REDIS_URL": redis.URL(), "BEDROCK_ENDPOINT_URL": stub, "BEDROCK_MAX_ATTEMPTS": "1",
	})
	isoLegacy := testenv.StartLegacy(t, map[string]string{
		"REDIS_URL": isoRedis.URL(), "BEDROCK_ENDPOINT_URL": stub, "BEDROCK_MAX_ATTEMPTS": "1",
		"GUNICORN_WORKERS": "1", "BEDROCK_TIMEOUT": "3",
	})

	c := newClient(t)
	cut, base, admin := startCutover(t, tmp, cutoverBin, c, cutoverSetup{
		LegacyURL: legacy.URL(), RedisURL: redis.URL(), StubURL: stub,
		Env: []string{"CUTOVER_ADMIN_TOKEN=deploy-test-token", "CUTOVER_ADMIN_PERSIST=false", "CUTOVER_LOG_ACCESS=false",
			// native's Server header differs from gunicorn's: compared on models, a semantic mismatch
			"CUTOVER_NATIVE_HEADERS_SERVER=cutover-native",
			// a fleet of one: shares in the fleet store, database 1 of the test's Redis
			"CUTOVER_FLEET_REDIS_URL=redis://" + redis.Addr() + "/1"},
		Extra:  shadowYAML(isoLegacy.URL(), isoRedis.URL(), tmp),
		Routes: routeSettings,
	})

	promAddr := freeAddr(t)
	promCfg := filepath.Join(tmp, "prometheus.yml")
	rules, err := filepath.Abs(filepath.Join("prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(promCfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: cutover
    static_configs:
      - targets: [%q]
`, rules, strings.TrimPrefix(admin, "http://"))), 0o600); err != nil {
		t.Fatal(err)
	}
	prom := startProc(t, tmp, "prometheus", promBin, []string{
		"--config.file=" + promCfg, "--storage.tsdb.path=" + filepath.Join(tmp, "tsdb"),
		"--web.listen-address=" + promAddr, "--log.level=warn",
	}, nil)
	promURL := "http://" + promAddr
	waitHTTP(t, c, prom, promURL+"/-/ready", 30*time.Second)

	triggerFaults(t, c, base, admin, cut)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	var wg sync.WaitGroup
	var tally statusTally
	wg.Add(1)
	go func() {
		defer wg.Done()
		driveTraffic(ctx, c, base, &tally)
	}()
	t.Cleanup(func() { cancel(); wg.Wait() }) // before the processes stop (cleanups run last first)

	d := loadDashboard(t)
	pending := map[string]query{}
	for _, q := range d.queries(t) {
		q.expr = substitute(q.expr, "cutover", rateInterval)
		pending[q.where] = q
	}
	for what, expr := range evidence {
		pending["evidence: "+what] = query{where: "evidence: " + what, expr: expr}
	}
	results := map[string][]sample{}
	var last map[string]string
	deadline := time.Now().Add(dataWait)
	for len(pending) > 0 && time.Now().Before(deadline) {
		last = map[string]string{}
		for where, q := range pending {
			got, err := promQuery(c, promURL, q.expr)
			switch {
			case err != nil:
				last[where] = err.Error()
			case !slices.ContainsFunc(got, func(s sample) bool { return !math.IsNaN(s.value) && !math.IsInf(s.value, 0) }):
				last[where] = fmt.Sprintf("%d series, no finite value", len(got))
			default:
				results[where] = got
				delete(pending, where)
			}
		}
		if len(pending) > 0 {
			time.Sleep(time.Second) // the next scrape and evaluation
		}
	}
	for where, q := range pending {
		t.Errorf("%s: no data after %v: %s\n%s", where, dataWait, last[where], q.expr)
	}
	if t.Failed() {
		t.Logf("traffic: %s\ncutover log:\n%s", tally.String(), cut.output())
	}
	checkRules(t, c, promURL)
	if *record != "" && !t.Failed() {
		writeRecord(t, *record, d, results)
	}
}

// evidence are queries that return data only once Prometheus has seen the
// conditions the test creates: proof that each fault happened for real.
var evidence = map[string]string{
	"both backends served":          `count(sum by (backend) (cutover_requests_total{job="cutover"}) > 0) == 2`,
	"chat fell back":                `sum(cutover_fallbacks_total{route="chat", reason="native_5xx"}) > 0`,
	"chat breakers opened":          `count(cutover_breaker_transitions_total{route="chat", to="open"} > 0) == 2`,
	"chat refused with no backend":  `sum(cutover_breaker_rejected_total{route="chat"}) > 0`,
	"models shadows differ":         `sum(cutover_shadow_comparisons_total{route="models", class="semantic"}) > 0`,
	"diff records lost":             `sum(cutover_shadow_store_failures_total{route="models"}) > 0`,
	"summary flushes failed":        `sum(cutover_shadow_fleet_flush_failures_total) > 0`,
	"shadows called the model":      `sum(cutover_shadow_model_calls_total{route="chat", purpose="shadow"}) > 0`,
	"the share change was counted":  `sum(cutover_share_changes_total{route="delete_conversation", action="set"}) > 0`,
	"the SIGHUP reload was counted": `sum(cutover_config_reloads_total{result="success"}) > 0`,
	"the fleet store was applied":   `min(cutover_fleet_synced{job="cutover"}) == 1 and min(cutover_fleet_store_up{job="cutover"}) == 1`,
}

// routeSettings puts every route of the legacy app at a 50 % native share,
// and shadows three of them.
func routeSettings(name string) []string {
	extra := []string{"native_percent: 50"}
	switch name {
	case "models": // with a Server header that differs: semantic mismatches
		extra = append(extra, "shadow: {rate_percent: 100, headers: [Content-Type, Server]}")
	case "get_conversation":
		extra = append(extra, "shadow: {rate_percent: 100}")
	case "chat": // writes are shadowed to the isolated targets; faults trip its breakers quickly
		extra = append(extra, "replayable: true",
			"breaker: {consecutive_failures: 3, open_timeout: 2s}",
			`shadow: {rate_percent: 100, safe: true, compare: json, ignore: ["$.conversation_id"]}`)
	}
	return extra
}

// shadowYAML is the override and shadow sections of the test's config.
func shadowYAML(isoLegacyURL, isoRedisURL, dir string) string {
	return fmt.Sprintf(`override:
  enabled: true
  allow_without_token: true
  fallback: true
shadow:
  workers: 2
  timeout: 5s
  isolated_legacy_url: %s
  isolated_redis_url: %s
  store:
    jsonl_path: %s
    redis_url: redis://127.0.0.1:1/0 # nothing listens: records and summary flushes fail, for real
`, isoLegacyURL, isoRedisURL, filepath.Join(dir, "diffs.jsonl"))
}

// triggerFaults makes the conditions some panels only have data under.
func triggerFaults(t *testing.T, c *http.Client, base, admin string, cut *proc) {
	t.Helper()
	// Native fails on /chat (the stub answers 503), is replayed on legacy,
	// which fails too, until both breakers of the route open and a request
	// is refused with 503 and Retry-After.
	var statuses []int
	refused := false
	for i := 0; i < 10 && !refused; i++ {
		resp, err := request(c, "POST", base+"/chat", `{"message": "[[stub-fault:unavailable]] fault", "conversation_id": "fault-1"}`,
			map[string]string{"X-Cutover-Backend": "native", "Content-Type": "application/json"})
		if err != nil {
			t.Fatalf("faulty chat: %v", err)
		}
		statuses = append(statuses, resp.StatusCode)
		refused = resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != ""
	}
	if !refused {
		t.Fatalf("no request was refused once both breakers of chat should be open: statuses %v\n%s", statuses, cut.output())
	}

	// A share change through the admin API, and a reload.
	resp, err := request(c, "PUT", admin+"/admin/routes/delete_conversation", `{"native_percent": 10}`,
		map[string]string{"Authorization": "Bearer deploy-test-token", "Content-Type": "application/json"})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("share change: %v %v", resp, err)
	}
	if err := cut.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// statusTally counts the traffic's answers, for failure messages.
type statusTally struct {
	mu     sync.Mutex
	counts map[string]int
}

func (s *statusTally) add(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts == nil {
		s.counts = map[string]int{}
	}
	s.counts[what]++
}

func (s *statusTally) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.counts))
	for k := range s.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %d  ", k, s.counts[k])
	}
	return b.String()
}

// maxRounds bounds the traffic: at most this many rounds of six requests.
const maxRounds = 2000

// driveTraffic sends rounds of every route's requests, ten rounds a second
// at most, as twenty users over ten conversations, until ctx is done or
// maxRounds have been sent.
func driveTraffic(ctx context.Context, c *http.Client, base string, tally *statusTally) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < maxRounds; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		user := map[string]string{"X-User-Id": fmt.Sprintf("user-%d", i%20), "Content-Type": "application/json"}
		conv := fmt.Sprintf("conv-%d", i%10)
		for _, r := range []struct{ name, method, path, body string }{
			{"health", "GET", "/health", ""},
			{"models", "GET", "/models", ""},
			{"chat", "POST", "/chat", fmt.Sprintf(`{"message": "hello %d", "conversation_id": %q}`, i, conv)},
			{"chat_stream", "POST", "/chat/stream", fmt.Sprintf(`{"message": "stream %d", "conversation_id": %q}`, i, conv)},
			{"get_conversation", "GET", "/conversations/" + conv, ""},
			{"unmatched", "GET", "/nowhere", ""},
		} {
			req, err := http.NewRequestWithContext(ctx, r.method, base+r.path, strings.NewReader(r.body))
			if err != nil {
				return
			}
			for k, v := range user {
				req.Header.Set(k, v)
			}
			resp, err := c.Do(req)
			if err != nil {
				tally.add(r.name + " error")
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			tally.add(fmt.Sprintf("%s %d", r.name, resp.StatusCode))
		}
	}
}

// sample is one series of an instant query's result.
type sample struct {
	labels map[string]string
	value  float64
}

// promQuery runs an instant query through Prometheus's HTTP API.
func promQuery(c *http.Client, promURL, expr string) ([]sample, error) {
	var body struct {
		Status, Error string
		Data          struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := getJSON(c, promURL+"/api/v1/query?"+url.Values{"query": {expr}}.Encode(), &body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query failed: %s", body.Error)
	}
	if body.Data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, want vector", body.Data.ResultType)
	}
	out := make([]sample, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("value %v: %w", r.Value[1], err)
		}
		out = append(out, sample{labels: r.Metric, value: v})
	}
	return out, nil
}

func getJSON(c *http.Client, u string, v any) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %d %s: %w", u, resp.StatusCode, data, err)
	}
	return nil
}

// mustFire are the alerts the faults set off at once (they have no `for`),
// with the label that tells which: the route whose models shadows differ in
// a header and whose diff records cannot be stored.
var mustFire = map[string]string{
	"CutoverShadowSemanticMismatch": "models",
	"CutoverShadowStoreFailing":     "models",
}

// checkRules waits until Prometheus has evaluated every alert rule, and
// fails on a rule that does not evaluate cleanly, or on an alert of
// mustFire that does not fire.
func checkRules(t *testing.T, c *http.Client, promURL string) {
	t.Helper()
	type rule struct {
		Name, Health, LastError string
		LastEvaluation          time.Time `json:"lastEvaluation"`
	}
	type alert struct {
		Labels map[string]string
		State  string
	}
	deadline := time.Now().Add(dataWait)
	var problems []string
	for {
		var rs struct {
			Data struct{ Groups []struct{ Rules []rule } }
		}
		var as struct{ Data struct{ Alerts []alert } }
		problems = nil
		if err := getJSON(c, promURL+"/api/v1/rules", &rs); err != nil {
			problems = append(problems, err.Error())
		}
		if err := getJSON(c, promURL+"/api/v1/alerts", &as); err != nil {
			problems = append(problems, err.Error())
		}
		n := 0
		for _, g := range rs.Data.Groups {
			for _, r := range g.Rules {
				n++
				if r.Health != "ok" || r.LastEvaluation.IsZero() {
					problems = append(problems, fmt.Sprintf("rule %s: health %q %s", r.Name, r.Health, r.LastError))
				}
			}
		}
		if n == 0 {
			problems = append(problems, "no rule loaded")
		}
		for name, route := range mustFire {
			if !slices.ContainsFunc(as.Data.Alerts, func(a alert) bool {
				return a.Labels["alertname"] == name && a.Labels["route"] == route && a.State == "firing"
			}) {
				problems = append(problems, fmt.Sprintf("alert %s{route=%q} is not firing", name, route))
			}
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second) // the next evaluation
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// writeRecord writes each panel's series as Prometheus returned them.
func writeRecord(t *testing.T, path string, d dashboard, results map[string][]sample) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: every panel's data from a real Prometheus\n\n", d.Title)
	b.WriteString("Written by `go test ./deploy -run TestDashboardQueriesAgainstRealPrometheus -record FILE`: Debian's Prometheus\n" +
		"scraping `cutover serve` (real gunicorn, Redis, the Bedrock stub) every second under the test's traffic and faults;\n" +
		"each query instant, at the moment every query first had data; `$route` = All, `$__rate_interval` = " + rateInterval +
		".\nAt most 8 series per query, largest first.\n")
	for _, p := range d.allPanels() {
		if p.Type == "row" {
			fmt.Fprintf(&b, "\n## %s\n", p.Title)
			continue
		}
		fmt.Fprintf(&b, "\n### %s\n\n| series | value |\n|---|---|\n", p.Title)
		for _, tg := range p.Targets {
			got := results["panel "+p.Title+" "+tg.RefID]
			sort.Slice(got, func(i, j int) bool { // largest first, NaN last
				if vi, vj := got[i].value, got[j].value; vi != vj && !(math.IsNaN(vi) && math.IsNaN(vj)) {
					return vi > vj || math.IsNaN(vj)
				}
				return legend(tg.LegendFormat, got[i]) < legend(tg.LegendFormat, got[j])
			})
			for i, s := range got {
				if i == 8 {
					fmt.Fprintf(&b, "| … %d more | |\n", len(got)-8)
					break
				}
				fmt.Fprintf(&b, "| %s | %.4g |\n", legend(tg.LegendFormat, s), s.value)
			}
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func legend(format string, s sample) string {
	return legendLabel.ReplaceAllStringFunc(format, func(m string) string {
		return s.labels[legendLabel.FindStringSubmatch(m)[1]]
	})
}

// buildCutover builds ./cmd/cutover into dir.
func buildCutover(t *testing.T, root, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go not found in PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := filepath.Join(dir, "cutover")
	cmd := exec.CommandContext(ctx, goBin, "build", "-buildvcs=false", "-o", out, "./cmd/cutover")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/cutover: %v\n%s", err, b)
	}
	return out
}

// proc is a child process in its own process group, with its output in a
// file; it is stopped (SIGTERM, then SIGKILL after 10 s) when the test ends.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProc(t *testing.T, dir, name, bin string, args, env []string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
	return p
}

// output is the end of the process's log.
func (p *proc) output() string {
	data, _ := os.ReadFile(p.log)
	if len(data) > 8<<10 {
		data = data[len(data)-8<<10:]
	}
	return string(data)
}

// waitHTTP waits until url answers 200, failing if p exits first or the
// bound passes.
func waitHTTP(t *testing.T, c *http.Client, p *proc, url string, bound time.Duration) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("%s exited before %s answered:\n%s", p.cmd.Path, url, p.output())
		default:
		}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not answer 200 within %v:\n%s", url, bound, p.output())
}

func request(c *http.Client, method, url, body string, header map[string]string) (*http.Response, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

func newClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
