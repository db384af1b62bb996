// Command soak runs the whole stack as real processes (redis-server, the
// Bedrock stub, the legacy app under gunicorn, cutover serve) under several
// minutes of mixed load, with faults injected on a schedule, and reports:
// requests by outcome, unintended errors (must be zero), fallbacks and
// breaker transitions counted by the proxy, and the proxy's memory over time
// (must stay flat).
//
//	go run ./bench/soak -duration 5m            (bench/soak.sh builds bin/ first)
//
// Schedule, repeating every -period (default 30s): legacy SIGKILLed and
// restarted after -fault; Redis stopped and restarted after -fault; shares
// flipped through the admin API and the config file rewritten (hot reload)
// every second for -fault. Throughout, 2% of the chat requests carry a stub
// fault marker (throttle, unavailable, stream-error) and expect the app's
// documented error answer.
//
// Outcome classes: "ok" (the healthy answer), "intended" (the documented
// answer to a fault marker), "degraded" (a fault answer the design promises
// for this route and this fault, see classify), "unintended" (anything else).
// Every route the soak drives has a native handler, so while only legacy is
// down the breakers' fallback must serve it: the legacy failures a client may
// see are bounded by the breakers' settings (legacyBudget), not by time.
// Exit status 1 if any request was unintended or the proxy's RSS grew by more
// than -maxgrowth between the second and the last sixth of the run.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cutover/cutover/bench/harness"
	"github.com/cutover/cutover/internal/testenv"
)

type options struct {
	root, bin, out     string
	duration, period   time.Duration
	fault, grace       time.Duration
	conc               int
	maxGrowth          float64
	gunicornWorkers    int
	stubTTFT, stubRate string
}

func main() {
	var o options
	flag.StringVar(&o.root, "root", ".", "repository root")
	flag.StringVar(&o.bin, "bin", "bin", "folder holding cutover and bedrock-stub")
	flag.StringVar(&o.out, "out", "bench/tmp/soak", "results folder")
	flag.DurationVar(&o.duration, "duration", 3*time.Minute, "load duration")
	flag.DurationVar(&o.period, "period", 90*time.Second, "fault schedule period (a third each: legacy kill, Redis stop, share flips)")
	flag.DurationVar(&o.fault, "fault", 8*time.Second, "how long each fault lasts")
	flag.DurationVar(&o.grace, "grace", 4*time.Second, "degraded answers still expected this long after a fault cleared")
	flag.IntVar(&o.conc, "conc", 16, "concurrent clients")
	flag.Float64Var(&o.maxGrowth, "maxgrowth", 0.25, "largest RSS growth accepted (fraction)")
	flag.IntVar(&o.gunicornWorkers, "workers", 4, "gunicorn workers")
	flag.StringVar(&o.stubTTFT, "ttft", "20ms", "stub time to first token")
	flag.StringVar(&o.stubRate, "tps", "400", "stub tokens per second")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := run(ctx, o)
	if sum != nil {
		b, _ := json.MarshalIndent(sum, "", "  ")
		fmt.Println(string(b))
		_ = os.WriteFile(filepath.Join(o.out, "summary.json"), append(b, '\n'), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// Summary is the soak's result.
type Summary struct {
	Duration string           `json:"duration"`
	Requests int64            `json:"requests"`
	Outcomes map[string]int64 `json:"outcomes"`
	// ByRule splits each class by the classifier rule that decided it.
	ByRule map[string]map[string]int64 `json:"by_rule"`
	// LegacyBudget is the legacy failures allowed per legacy fault window of
	// -fault seconds (see legacyBudget), for reference.
	LegacyBudget int `json:"legacy_failure_budget_per_window"`
	// ByPhase splits the outcomes into requests that overlapped a fault
	// window (plus grace) and steady-state ones.
	ByPhase     map[string]map[string]int64 `json:"by_phase"`
	ByStatus    map[string]int64            `json:"by_status"`
	Unintended  []string                    `json:"unintended_samples,omitempty"`
	Faults      []string                    `json:"faults"`
	Fallbacks   map[string]float64          `json:"fallbacks"`
	Transitions map[string]float64          `json:"breaker_transitions"`
	Rejected503 float64                     `json:"rejected_503"`
	// BreakersNotClosed counts breakers not closed at the end (after the
	// last fault cleared): 0 means every breaker recovered.
	BreakersNotClosed float64   `json:"breakers_not_closed_at_end"`
	RSSKiB            []int64   `json:"proxy_rss_kib_every_5s"`
	RSSEarlyKiB       int64     `json:"proxy_rss_early_avg_kib"`
	RSSLateKiB        int64     `json:"proxy_rss_late_avg_kib"`
	RSSGrowth         float64   `json:"proxy_rss_growth"`
	Goroutines        []float64 `json:"proxy_goroutines_every_5s"`
	ConnsAfter        int       `json:"client_conns_open_after"`
	ThroughputRPS     float64   `json:"throughput_rps"`
	MemoryFlat        bool      `json:"memory_flat"`
	ZeroUnintended    bool      `json:"zero_unintended"`
}

type stack struct {
	g                                     *harness.Group
	o                                     options
	redisPort, stubPort, legacyPort, port int
	adminPort                             int
	redis, stub, legacy, proxy            *harness.Proc
	cfgPath, cfgYAML                      string
	legacyEnv                             []string
	mu                                    sync.Mutex
}

func run(ctx context.Context, o options) (*Summary, error) {
	root, err := filepath.Abs(o.root)
	if err != nil {
		return nil, err
	}
	o.root = root
	if !filepath.IsAbs(o.bin) {
		o.bin = filepath.Join(root, o.bin)
	}
	if !filepath.IsAbs(o.out) {
		o.out = filepath.Join(root, o.out)
	}
	g, err := harness.NewGroup(filepath.Join(o.out, "logs"), filepath.Join(root, "bench/tmp/pids"))
	if err != nil {
		return nil, err
	}
	defer g.StopAll()
	s := &stack{g: g, o: o}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s.soak(ctx)
}

func freePorts(n int) ([]int, error) {
	out := make([]int, n)
	for i := range out {
		p, err := harness.FreePort()
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

func (s *stack) start(ctx context.Context) error {
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	s.redisPort, s.stubPort, s.legacyPort, s.port, s.adminPort = ports[0], ports[1], ports[2], ports[3], ports[4]
	if err := s.startRedis(ctx); err != nil {
		return err
	}
	s.stub, err = s.g.Start("stub", nil, filepath.Join(s.o.bin, "bedrock-stub"), "-addr", harness.Addr(s.stubPort),
		"-ttft", s.o.stubTTFT, "-tps", s.o.stubRate)
	if err != nil {
		return err
	}
	if err := harness.WaitTCP(ctx, s.stub, harness.Addr(s.stubPort), 10*time.Second); err != nil {
		return err
	}
	aws := []string{"AWS_ACCESS_KEY_ID=AKIDSOAK", "AWS_SECRET_ACCESS_KEY=soak-secret", "AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}
	s.legacyEnv = append([]string{
		"PYTHONPATH=" + filepath.Join(s.o.root, ".pydeps"), "PYTHONDONTWRITEBYTECODE=1",
		"BIND=" + harness.Addr(s.legacyPort), "GUNICORN_WORKERS=" + strconv.Itoa(s.o.gunicornWorkers),
		"SECRET_KEY=soak-secret-key", "REDIS_URL=redis://" + harness.Addr(s.redisPort) + "/0",
		"BEDROCK_ENDPOINT_URL=http://" + harness.Addr(s.stubPort), "BEDROCK_TIMEOUT=5", "BEDROCK_MAX_ATTEMPTS=2",
		"GUNICORN_LOGLEVEL=warning",
	}, aws...)
	if err := s.startLegacy(ctx); err != nil {
		return err
	}
	s.cfgPath = filepath.Join(s.o.out, "cutover.yaml")
	s.cfgYAML = s.config()
	if err := os.WriteFile(s.cfgPath, []byte(s.cfgYAML), 0o644); err != nil {
		return err
	}
	env := append([]string{"CUTOVER_NATIVE_SECRET_KEY=soak-secret-key"}, aws...)
	s.proxy, err = s.g.Start("cutover", env, filepath.Join(s.o.bin, "cutover"), "serve", "-config", s.cfgPath)
	if err != nil {
		return err
	}
	return harness.WaitHTTP(ctx, s.proxy, "http://"+harness.Addr(s.port)+"/_cutover/health", 20*time.Second)
}

func (s *stack) startRedis(ctx context.Context) error {
	p, err := s.g.Start("redis", nil, "redis-server", "--port", strconv.Itoa(s.redisPort), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no")
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.redis = p
	s.mu.Unlock()
	return harness.WaitTCP(ctx, p, harness.Addr(s.redisPort), 10*time.Second)
}

func (s *stack) startLegacy(ctx context.Context) error {
	p, err := s.g.Start("gunicorn", s.legacyEnv, "python3", "-m", "gunicorn", "--chdir", filepath.Join(s.o.root, "legacy"),
		"-c", filepath.Join(s.o.root, "legacy/gunicorn.conf.py"), "app:app")
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.legacy = p
	s.mu.Unlock()
	return harness.WaitHTTP(ctx, p, "http://"+harness.Addr(s.legacyPort)+"/health", 30*time.Second)
}

// The soak config's breaker settings. The classifier derives from them how
// many legacy failures a client may see while legacy is down (legacyBudget).
const (
	consecutiveFailures = 5               // route and legacy-wide breakers trip after this many failures in a row
	openTimeout         = 2 * time.Second // then half-open after this long
	halfOpenRequests    = 1               // probes let through per half-open period (the default)
)

func (s *stack) config() string {
	return fmt.Sprintf(`listen:
  addr: %s
  served_by_header: X-Cutover-Served-By
admin:
  addr: %s
  token: soak-admin-token
legacy:
  url: http://%s
  response_header_timeout: 10s
legacy_breaker: {consecutive_failures: %d, open_timeout: %s, half_open_requests: %d}
native:
  redis_url: redis://%s/0
  bedrock_endpoint_url: http://%s
  bedrock_timeout: 5s
  bedrock_max_attempts: 2
override:
  enabled: true
  allow_without_token: true
log:
  access: false
stickiness: [header:X-User-Id]
`, harness.Addr(s.port), harness.Addr(s.adminPort), harness.Addr(s.legacyPort), consecutiveFailures, openTimeout, halfOpenRequests,
		harness.Addr(s.redisPort), harness.Addr(s.stubPort)) +
		testenv.RoutesYAML(func(name string) []string {
			// Every route half native but the delete (never shadowed or
			// flipped by the soak); the stream is replayable on legacy.
			share := 50
			if name == "delete_conversation" {
				share = 0
			}
			extra := []string{fmt.Sprintf("native_percent: %d", share),
				fmt.Sprintf("breaker: {consecutive_failures: %d, open_timeout: %s, half_open_requests: %d, interval: 10s}",
					consecutiveFailures, openTimeout, halfOpenRequests)}
			if name == "chat_stream" {
				extra = append(extra, "replayable: true")
			}
			return extra
		})
}

type tally struct {
	mu         sync.Mutex
	outcomes   map[string]int64
	rules      map[string]map[string]int64 // class → rule → count
	phases     map[string]map[string]int64
	statuses   map[string]int64
	unintended []string
	total      atomic.Int64
}

func (t *tally) add(class, rule, status, sample string, inWindow bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.outcomes[class]++
	if t.rules[class] == nil {
		t.rules[class] = map[string]int64{}
	}
	t.rules[class][rule]++
	phase := "steady"
	if inWindow {
		phase = "fault_window"
	}
	if t.phases[phase] == nil {
		t.phases[phase] = map[string]int64{}
	}
	t.phases[phase][class]++
	t.statuses[status]++
	if class == "unintended" && len(t.unintended) < 20 {
		t.unintended = append(t.unintended, sample)
	}
}

func (s *stack) soak(ctx context.Context) (*Summary, error) {
	base := "http://" + harness.Addr(s.port)
	admin := "http://" + harness.Addr(s.adminPort)
	tr := &http.Transport{MaxIdleConnsPerHost: s.o.conc * 2, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	defer tr.CloseIdleConnections()
	w := newWindow(s.o.grace, s.o.conc)
	t := &tally{outcomes: map[string]int64{}, phases: map[string]map[string]int64{}, statuses: map[string]int64{}, rules: map[string]map[string]int64{}}
	lctx, cancel := context.WithTimeout(ctx, s.o.duration)
	defer cancel()
	var wg sync.WaitGroup
	var seq atomic.Int64
	began := time.Now()
	for c := range s.o.conc {
		wg.Go(func() {
			for lctx.Err() == nil {
				i := seq.Add(1)
				s.one(client, base, c, i, w, t)
			}
		})
	}
	var rss []int64
	var gor []float64
	wg.Go(func() { s.schedule(lctx, admin, client, w) })
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-tick.C:
				rss = append(rss, harness.RSSKiB(s.proxy.Pid()))
				gor = append(gor, metricSum(client, admin, "go_goroutines"))
			}
		}
	})
	wg.Wait()
	elapsed := time.Since(began)
	tr.CloseIdleConnections()
	time.Sleep(500 * time.Millisecond)
	sum := &Summary{
		Duration: elapsed.Round(time.Second).String(), Requests: t.total.Load(), Outcomes: t.outcomes, ByRule: t.rules, ByPhase: t.phases, ByStatus: t.statuses,
		LegacyBudget: w.legacyBudget(s.o.fault),
		Unintended:   t.unintended, Faults: w.log, RSSKiB: rss, Goroutines: gor,
		ThroughputRPS:     float64(t.total.Load()) / elapsed.Seconds(),
		Fallbacks:         metricsBy(client, admin, "cutover_fallbacks_total", "reason"),
		Transitions:       metricsBy(client, admin, "cutover_breaker_transitions_total", "to"),
		Rejected503:       metricSum(client, admin, "cutover_breaker_rejected_total"),
		ConnsAfter:        harness.EstablishedConns(s.port),
		BreakersNotClosed: notClosed(client, admin),
	}
	if n := len(rss); n >= 6 {
		early, late := avg(rss[1:1+n/6]), avg(rss[n-n/6:])
		sum.RSSEarlyKiB, sum.RSSLateKiB = early, late
		sum.RSSGrowth = float64(late-early) / float64(early)
	}
	sum.MemoryFlat = sum.RSSGrowth <= s.o.maxGrowth
	sum.ZeroUnintended = t.outcomes["unintended"] == 0
	var errs []error
	if !sum.ZeroUnintended {
		errs = append(errs, fmt.Errorf("%d unintended errors", t.outcomes["unintended"]))
	}
	if sum.BreakersNotClosed != 0 {
		errs = append(errs, fmt.Errorf("%v breakers not closed at the end", sum.BreakersNotClosed))
	}
	if !sum.MemoryFlat {
		errs = append(errs, fmt.Errorf("proxy RSS grew %.0f%%", 100*sum.RSSGrowth))
	}
	return sum, errors.Join(errs...)
}

// notClosed counts the breakers whose state gauge is not 0 (closed).
func notClosed(c *http.Client, admin string) float64 {
	resp, err := c.Get(admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "cutover_breaker_state{") && !strings.HasSuffix(line, " 0") {
			n++
		}
	}
	return n
}

func avg(v []int64) int64 {
	var s int64
	for _, x := range v {
		s += x
	}
	return s / int64(max(len(v), 1))
}

// schedule injects the faults, one per third of each period.
func (s *stack) schedule(ctx context.Context, admin string, client *http.Client, w *window) {
	sleep := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	third := s.o.period / 3
	for k := 0; ; k++ {
		if !sleep(time.Second) {
			return
		}
		switch k % 3 {
		case 0:
			i := w.begin(faultLegacy, "legacy SIGKILL")
			s.mu.Lock()
			p := s.legacy
			s.mu.Unlock()
			s.g.Stop(p, 0)
			w.injected(i)
			sleep(s.o.fault)
			if err := s.startLegacy(context.Background()); err != nil {
				w.note("legacy restart failed: " + err.Error())
			}
			w.end(i)
		case 1:
			i := w.begin(faultRedis, "redis stop")
			s.mu.Lock()
			p := s.redis
			s.mu.Unlock()
			s.g.Stop(p, time.Second)
			w.injected(i)
			sleep(s.o.fault)
			if err := s.startRedis(context.Background()); err != nil {
				w.note("redis restart failed: " + err.Error())
			}
			w.end(i)
		case 2:
			// Share flips and reloads change who serves, never the answer:
			// no window is opened for them.
			w.note("share flips + config reloads")
			for j := 0; j < int(s.o.fault/time.Second) && ctx.Err() == nil; j++ {
				for _, route := range []string{"models", "chat", "chat_stream", "get_conversation"} {
					req, _ := http.NewRequest("PUT", admin+"/admin/routes/"+route, strings.NewReader(fmt.Sprintf(`{"native_bp": %d}`, (j*3700+len(route)*900)%10001)))
					req.Header.Set("Authorization", "Bearer soak-admin-token")
					if resp, err := client.Do(req); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
				if j%2 == 1 {
					_ = os.WriteFile(s.cfgPath, []byte(s.cfgYAML), 0o644) // reload to the configured split
				}
				sleep(time.Second)
			}
			_ = os.WriteFile(s.cfgPath, []byte(s.cfgYAML), 0o644)
		}
		if !sleep(third - s.o.fault - time.Second) {
			return
		}
	}
}

var markers = []string{"throttle", "unavailable", "stream-error"}

// one sends request i for client c and classifies the answer.
func (s *stack) one(client *http.Client, base string, c int, i int64, w *window, t *tally) {
	user := "soak-u" + strconv.Itoa(int(i%97))
	kind := i % 6
	marker := ""
	if (kind == 2 || kind == 3) && (i/6)%50 == 3 { // 2% of the chat requests
		marker = markers[(i/300)%int64(len(markers))]
	}
	var req *http.Request
	switch kind {
	case 0:
		req, _ = http.NewRequest("GET", base+"/health", nil)
	case 1:
		req, _ = http.NewRequest("GET", base+"/models", nil)
	case 2, 3:
		msg := "question " + strconv.FormatInt(i, 10)
		if marker != "" {
			msg = "[[stub-fault:" + marker + "]] " + msg
		}
		path := "/chat"
		if kind == 3 {
			path = "/chat/stream"
		}
		req, _ = http.NewRequest("POST", base+path, strings.NewReader(`{"message":"`+msg+`","conversation_id":"`+user+`"}`))
		req.Header.Set("Content-Type", "application/json")
	case 4:
		req, _ = http.NewRequest("GET", base+"/conversations/"+user, nil)
	default:
		req, _ = http.NewRequest("GET", base+"/conversations/none-"+strconv.FormatInt(i, 10), nil)
	}
	req.Header.Set("X-User-Id", user)
	a := answer{kind: kind, marker: marker, start: time.Now()}
	resp, err := client.Do(req)
	var body []byte
	status := "conn_error"
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		status = strconv.Itoa(resp.StatusCode)
		a.status, a.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After") != ""
		if err != nil {
			status, a.cut = "cut", true
		}
	}
	a.end, a.body = time.Now(), string(body)
	t.total.Add(1)
	class, rule := w.classify(a)
	sample := fmt.Sprintf("%s %s marker=%q -> %s %v (%s) %.160s", req.Method, req.URL.Path, marker, status, err, rule, body)
	t.add(class, rule, status, sample, w.inWindow(a.start, a.end))
}

func metricSum(c *http.Client, admin, name string) float64 {
	var sum float64
	for _, v := range metricsBy(c, admin, name, "") {
		sum += v
	}
	return sum
}

// metricsBy sums the series of a metric by one label ("" = all together).
func metricsBy(c *http.Client, admin, name, label string) map[string]float64 {
	out := map[string]float64{}
	resp, err := c.Get(admin + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			continue
		}
		key := "all"
		if label != "" {
			key = "?"
			if i := strings.Index(line, label+`="`); i >= 0 {
				rest := line[i+len(label)+2:]
				key = rest[:strings.IndexByte(rest, '"')]
			}
		}
		out[key] += v
	}
	return out
}
