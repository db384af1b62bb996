package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cutover/cutover/bench/harness"
	"github.com/cutover/cutover/bench/load"
	"github.com/cutover/cutover/bench/report"
)

// stack is Redis, a stub and the legacy app, shared by the chat, memory and shadow scenarios.
type stack struct {
	redis     *harness.Proc
	redisURL  string
	stub      *harness.Proc
	stubURL   string
	legacy    *harness.Proc
	legacyURL string
	// legacyRole is the core legacy runs on: the server's when it is measured directly, the
	// rest's when it is a backend behind cutover.
	legacyRole harness.Role
	workers    int
	ttft       time.Duration
	tps        float64
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v := os.Getenv(name); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return def
}

// startRedis starts a throwaway redis-server with no persistence.
func (e *env) startRedis(name string) (*harness.Proc, string, error) {
	port, err := harness.FreePort()
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(e.tmp, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	p, err := e.spawn(name, harness.RoleRest, nil, "redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--dir", dir, "--maxclients", "10000", "--tcp-backlog", "4096")
	if err != nil {
		return nil, "", err
	}
	if err := harness.WaitTCP(e.ctx, p, harness.Addr(port), 10*time.Second); err != nil {
		return nil, "", err
	}
	return p, fmt.Sprintf("redis://%s/0", harness.Addr(port)), nil
}

// startStub starts the Bedrock stub with the given latency model.
func (e *env) startStub(name string, ttft time.Duration, tps float64) (*harness.Proc, string, error) {
	port, err := harness.FreePort()
	if err != nil {
		return nil, "", err
	}
	p, err := e.spawn(name, harness.RoleRest, []string{e.gomaxprocs(harness.RoleRest)}, filepath.Join(e.bin, "bedrock-stub"), "-addr", harness.Addr(port),
		"-ttft", ttft.String(), "-tps", strconv.FormatFloat(tps, 'f', -1, 64))
	if err != nil {
		return nil, "", err
	}
	if err := harness.WaitLog(e.ctx, p, "bedrock-stub listening on", 15*time.Second); err != nil {
		return nil, "", err
	}
	return p, "http://" + harness.Addr(port), nil
}

// startLegacy starts the Flask app under gunicorn (sync workers, as deployed) against redisURL and
// stubURL, as a process of role r.
func (e *env) startLegacy(name string, r harness.Role, redisURL, stubURL string, workers int) (*harness.Proc, string, error) {
	port, err := harness.FreePort()
	if err != nil {
		return nil, "", err
	}
	env := []string{
		"PYTHONPATH=" + filepath.Join(e.root, ".pydeps"),
		"BIND=" + harness.Addr(port),
		"GUNICORN_WORKERS=" + strconv.Itoa(workers),
		"GUNICORN_LOGLEVEL=warning",
		"BEDROCK_ENDPOINT_URL=" + stubURL,
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench",
		"REDIS_URL=" + redisURL,
		"SECRET_KEY=" + benchSecret,
	}
	p, err := e.spawn(name, r, env, "python3", "-m", "gunicorn", "--chdir", filepath.Join(e.root, "legacy"),
		"-c", filepath.Join(e.root, "legacy", "gunicorn.conf.py"), "--access-logfile", "/dev/null", "app:app")
	if err != nil {
		return nil, "", err
	}
	u := "http://" + harness.Addr(port)
	if err := harness.WaitHTTP(e.ctx, p, u+"/health", 60*time.Second); err != nil {
		return nil, "", err
	}
	return p, u, nil
}

// restartLegacy replaces the legacy app with a fresh one. Gunicorn's sync workers go on serving
// requests their clients abandoned (they sit in the accept queue), which would slow the next point
// down for a while: each point that uses legacy gets a fresh one instead, on role r's core.
func (e *env) restartLegacy(s *stack, r harness.Role) error {
	e.g.Stop(s.legacy, 10*time.Second)
	var err error
	s.legacyRole = r
	s.legacy, s.legacyURL, err = e.startLegacy("legacy", r, s.redisURL, s.stubURL, s.workers)
	return err
}

// startModelStack starts the stack with the stub's latency model of BENCH_TTFT (default 300ms) and
// BENCH_TPS (default 60 tokens/s), the chat workloads' model.
func (e *env) startModelStack() (*stack, error) {
	return e.startStack(envDuration("BENCH_TTFT", 300*time.Millisecond), envFloat("BENCH_TPS", 60))
}

// startStack starts Redis, the stub and the legacy app (as a backend: on the rest core). Legacy
// gets 2 × cores + 1 sync workers, as deployed, where cores are those of the server under test:
// one when pinned.
func (e *env) startStack(ttft time.Duration, tps float64) (*stack, error) {
	s := &stack{ttft: ttft, tps: tps, workers: 2*e.pinned.Cores(harness.RoleServer) + 1, legacyRole: harness.RoleRest}
	if w, err := strconv.Atoi(os.Getenv("BENCH_GUNICORN_WORKERS")); err == nil && w > 0 {
		s.workers = w
	}
	var err error
	if s.redis, s.redisURL, err = e.startRedis("redis"); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	if s.stub, s.stubURL, err = e.startStub("stub", ttft, tps); err != nil {
		return nil, fmt.Errorf("stub: %w", err)
	}
	if s.legacy, s.legacyURL, err = e.startLegacy("legacy", s.legacyRole, s.redisURL, s.stubURL, s.workers); err != nil {
		return nil, fmt.Errorf("legacy: %w", err)
	}
	return s, nil
}

func flushRedis(ctx context.Context, url string) error {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	c := redis.NewClient(opt)
	defer c.Close()
	return c.FlushAll(ctx).Err()
}

// loadRun is one load generator process and the samples taken while it ran.
type loadRun struct {
	res   load.Result
	procs map[string]harness.Usage
}

// runLoad runs the load generator as its own process (so its CPU is accounted apart), samples
// roots (plus the generator) during the measurement window, and returns both.
func (e *env) runLoad(name string, c load.Config, roots map[string]int, during func()) (loadRun, error) {
	outFile := filepath.Join(e.tmp, name+".json")
	args := []string{"load", "-url", c.BaseURL, "-users", strconv.Itoa(c.Users), "-mode", string(c.Mode),
		"-ramp", c.Ramp.String(), "-duration", c.Duration.String(), "-timeout", c.Timeout.String(),
		"-ttft", c.TTFT.String(), "-tps", strconv.FormatFloat(c.TPS, 'f', -1, 64), "-salt", c.Salt, "-out", outFile}
	if c.Mode == load.ModeOpen {
		args = append(args, "-rate", strconv.FormatFloat(c.Rate, 'f', -1, 64), "-pool", strconv.Itoa(c.Pool), "-arrivals", c.Arrivals)
	}
	if c.ChatPct != 0 || c.StreamPct != 0 {
		args = append(args, "-chat", strconv.Itoa(c.ChatPct), "-stream", strconv.Itoa(c.StreamPct))
	}
	p, err := e.spawn("load-"+name, harness.RoleRest, []string{e.gomaxprocs(harness.RoleRest)}, append([]string{e.self}, args...)...)
	if err != nil {
		return loadRun{}, err
	}
	defer e.g.Stop(p, 5*time.Second)
	if err := e.sleep(c.Ramp); err != nil {
		return loadRun{}, err
	}
	all := map[string]int{"loadgen": p.Pid()}
	for k, v := range roots {
		all[k] = v
	}
	s := harness.StartSampler(all, 250*time.Millisecond)
	if during != nil {
		during()
	}
	limit := time.After(c.Duration + c.Timeout + 60*time.Second)
	select {
	case <-p.Done():
	case <-limit:
		s.Stop()
		return loadRun{}, fmt.Errorf("load generator did not finish; log tail:\n%s", p.Tail(10))
	case <-e.ctx.Done():
		s.Stop()
		return loadRun{}, e.ctx.Err()
	}
	usage := s.Stop()
	if _, werr := p.Exited(); werr != nil {
		return loadRun{procs: usage}, fmt.Errorf("load generator failed: %v: %s", werr, p.Tail(10))
	}
	b, err := os.ReadFile(outFile)
	if err != nil {
		return loadRun{procs: usage}, err
	}
	var res load.Result
	if err := json.Unmarshal(b, &res); err != nil {
		return loadRun{procs: usage}, err
	}
	if res.ElapsedS > 0 {
		// The generator has exited before the sampler's last read: use its own account.
		// Its CPU inside the window, as it measured it itself (getrusage at the window's edges).
		usage["loadgen"] = harness.Usage{CPUSeconds: res.WindowCPUSeconds, CPUCores: res.WindowCPUSeconds / max(res.WindowS, 1e-9),
			PeakRSSKiB: res.MaxRSSKiB, Procs: 1}
	}
	return loadRun{res: res, procs: usage}, nil
}

// chatConfigs are the chat matrix's configurations; the number is cutover's native share.
var chatConfigs = []struct {
	name  string
	share float64 // -1 = legacy direct, no cutover
}{{"legacy", -1}, {"cutover-0", 0}, {"cutover-50", 50}, {"cutover-100", 100}}

// envInts parses a comma-separated list of positive integers; ok is false when the variable is unset.
func envInts(name string) (out []int, ok bool) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return nil, false
	}
	for _, f := range strings.Split(v, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out, true
}

// chatLevels returns the user levels of each configuration and every level in ascending order.
// Every configuration runs the seed's levels (main); the configurations that send traffic to the
// legacy app also run low levels (below and around its saturation: 2 × cores + 1 sync workers),
// so its capacity is measured rather than read off a collapsed app.
func chatLevels(configs []string, main, low []int) (map[string][]int, []int) {
	levels := map[string][]int{}
	var all []int
	for _, cfg := range configs {
		l := slices.Clone(main)
		if cfg != "cutover-100" {
			l = append(l, low...)
		}
		slices.Sort(l)
		l = slices.Compact(l)
		levels[cfg] = l
		all = append(all, l...)
	}
	slices.Sort(all)
	return levels, slices.Compact(all)
}

// chat runs the chatbot workload at each user level for every configuration, side by side.
func (e *env) chat() error {
	st, err := e.startModelStack()
	if err != nil {
		return err
	}
	ttft, tps := st.ttft, st.tps
	users := pick(e, []int{175, 700, 2000, 5000}, []int{20, 175})
	if v, ok := envInts("BENCH_USERS"); ok {
		users = v
	}
	low := pick(e, []int{5, 10, 25, 50}, []int{5})
	if v, ok := envInts("BENCH_LOW_USERS"); ok {
		low = v
	}
	configs := chatConfigs
	if v := os.Getenv("BENCH_CONFIGS"); v != "" {
		configs = nil
		for _, c := range chatConfigs {
			if slices.Contains(strings.Split(v, ","), c.name) {
				configs = append(configs, c)
			}
		}
	}
	ramp := pick(e, 5*time.Second, time.Second)
	window := envDuration("BENCH_WINDOW", pick(e, 20*time.Second, 3*time.Second))
	timeout := pick(e, 10*time.Second, 3*time.Second)
	set := &e.res.Settings
	set.StubTTFTMS, set.StubTPS, set.GunicornWorkers = float64(ttft.Milliseconds()), tps, st.workers
	set.ChatUsers, set.ChatLowUsers, set.ChatRampS, set.ChatWindowS, set.ChatTimeoutS = users, low, ramp.Seconds(), window.Seconds(), timeout.Seconds()

	c := &report.Chat{}
	haveCut := e.haveCutover()
	for _, cfg := range configs {
		if cfg.share >= 0 && !haveCut {
			continue
		}
		c.Configs = append(c.Configs, cfg.name)
	}
	if !haveCut {
		e.note("bin/cutover with a serve command is missing: chat workload measured on legacy only")
	}
	c.Levels, c.Users = chatLevels(c.Configs, users, low)
	e.res.Chat = c
	topNative := 0
	if l := c.Levels["cutover-100"]; len(l) > 0 {
		topNative = l[len(l)-1]
	}

	legacyDirty := false
	for _, u := range c.Users {
		var legacyRPS float64
		for _, cfg := range configs {
			if cfg.share >= 0 && !haveCut || !slices.Contains(c.Levels[cfg.name], u) {
				continue
			}
			if err := e.ctx.Err(); err != nil {
				return err
			}
			if err := flushRedis(e.ctx, st.redisURL); err != nil {
				return fmt.Errorf("flush redis: %w", err)
			}
			point := report.ChatPoint{Config: cfg.name, Users: u}
			if cfg.share < 100 {
				// Measured directly, legacy is the server under test; behind cutover, a backend.
				role := harness.RoleRest
				if cfg.share < 0 {
					role = harness.RoleServer
				}
				if legacyDirty || role != st.legacyRole && e.pinned.Enabled {
					if err := e.restartLegacy(st, role); err != nil {
						return fmt.Errorf("restart legacy: %w", err)
					}
				}
				legacyDirty = true
			}
			roots := map[string]int{"legacy": st.legacy.Pid(), "stub": st.stub.Pid(), "redis": st.redis.Pid()}
			target := st.legacyURL
			var cut *cutoverProc
			if cfg.share >= 0 {
				// At 0 % and 50 % the breakers are off: legacy's own failures must reach the client
				// (pure pass-through at 0 %), not be answered natively once a breaker opens.
				fallback := cfg.share == 100
				point.Fallback = &fallback
				cut, err = e.startCutover(cutoverOpts{
					Name: fmt.Sprintf("cutover-chat-%s-u%d", cfg.name, u), LegacyURL: st.legacyURL,
					RedisURL: st.redisURL, StubURL: st.stubURL, NoFallback: !fallback,
					Routes: map[string]routeShare{
						"chat": {NativePct: cfg.share}, "chat_stream": {NativePct: cfg.share}, "get_conversation": {NativePct: cfg.share},
						"delete_conversation": {NativePct: cfg.share}, "health": {NativePct: cfg.share}, "models": {NativePct: cfg.share},
					},
				})
				if err != nil {
					point.Error = "cutover did not start: " + firstLine(err.Error())
					e.note("chat %s at %d users: %v", cfg.name, u, err)
					c.Points = append(c.Points, point)
					continue
				}
				roots["cutover"] = cut.Pid()
				target = cut.URL
			}
			// Native's goals are at 2,000 and 5,000 users: profile those points (the top level in a
			// quick run), CPU over part of the window, then the heap.
			var during func()
			if cut != nil && cfg.share == 100 && (u == 2000 || u == 5000 || e.quick && u == topNative) {
				during = func() {
					scenario := fmt.Sprintf("chat-native-u%d", u)
					e.profile(cut, scenario, "cpu", int(min(5, window.Seconds()-1)))
					e.profile(cut, scenario, "heap", 0)
				}
			}
			lc := load.Config{BaseURL: target, Users: u, Ramp: ramp, Duration: window, Timeout: timeout,
				TTFT: ttft, TPS: tps, Salt: fmt.Sprintf("%s-u%d", cfg.name, u)}
			run, err := e.runLoad(fmt.Sprintf("chat-%s-u%d", cfg.name, u), lc, roots, during)
			if cut != nil {
				e.g.Stop(cut.Proc, 10*time.Second)
			}
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return err
				}
				point.Error = firstLine(err.Error())
			}
			point.Load, point.Procs = run.res, run.procs
			if run.res.TheoreticalRPS > 0 {
				point.Efficiency = run.res.RPS / run.res.TheoreticalRPS
			}
			if cfg.name == "legacy" {
				legacyRPS = run.res.RPS
			}
			if legacyRPS > 0 {
				point.RatioLegacy = run.res.RPS / legacyRPS
			}
			l := run.res
			e.logf("chat %-11s u=%-4d %7.0f rps (theory %6.0f) p50 %7.1f p95 %7.1f p99 %7.1f ms, over-model p95 %7.1f, errors %d %v, unfinished %d",
				cfg.name, u, l.RPS, l.TheoreticalRPS, l.All.P50MS, l.All.P95MS, l.All.P99MS, l.OverModel.P95MS, l.Errors, l.Kinds, l.Unfinished)
			c.Points = append(c.Points, point)
			_ = e.sleep(pick(e, 2*time.Second, 500*time.Millisecond)) // let closed sockets and workers settle
		}
	}
	return nil
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}
