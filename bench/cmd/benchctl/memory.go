package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cutover/cutover/bench/harness"
	"github.com/cutover/cutover/bench/load"
	"github.com/cutover/cutover/bench/report"
	"github.com/cutover/cutover/internal/testenv"
)

// memory measures cutover's resident memory per in-flight native request: each user keeps one
// request open against a slow stub, and the RSS growth is divided by the number open.
func (e *env) memory() error {
	if !e.haveCutover() {
		e.note("memory per in-flight request not measured: bin/cutover is missing")
		return nil
	}
	redisP, redisURL, err := e.startRedis("redis-memory")
	if err != nil {
		return err
	}
	defer e.g.Stop(redisP, 2*time.Second)
	const ttft = 300 * time.Millisecond
	tps := 1.0 // replies of 14-46 tokens take 14-46 s: every request stays open through the window
	stub, stubURL, err := e.startStub("stub-slow", ttft, tps)
	if err != nil {
		return err
	}
	defer e.g.Stop(stub, 2*time.Second)
	deadPort, err := harness.FreePort() // legacy is never reached at 100 % native
	if err != nil {
		return err
	}
	opens := pick(e, []int{1000, 5000}, []int{100, 300})
	e.res.Settings.MemoryOpen, e.res.Settings.MemoryStubTPS = opens, tps
	mem := &report.Memory{Target: "cutover, 100 % native"}
	e.res.Memory = mem

	for _, kind := range []string{"stream", "chat"} {
		for _, n := range opens {
			if err := e.ctx.Err(); err != nil {
				return err
			}
			mp := report.MemPoint{Kind: kind, Open: n}
			err := e.memoryPoint(&mp, redisURL, stubURL, "http://"+harness.Addr(deadPort), ttft, tps)
			if err != nil {
				mp.Error = firstLine(err.Error())
				e.note("memory %s at %d: %v", kind, n, err)
			}
			e.logf("memory %-6s n=%-5d idle %d KiB loaded %d KiB (%d conns, client open %d): %.1f KiB per request",
				kind, n, mp.IdleRSSKiB, mp.LoadedRSSKiB, mp.Established, mp.ClientOpen, mp.PerRequestKiB)
			mem.Points = append(mem.Points, mp)
		}
	}
	return nil
}

func (e *env) memoryPoint(mp *report.MemPoint, redisURL, stubURL, legacyURL string, ttft time.Duration, tps float64) error {
	all := map[string]routeShare{}
	for _, r := range testenv.LegacyRoutes {
		all[r.Name] = routeShare{NativePct: 100}
	}
	cut, err := e.startCutover(cutoverOpts{Name: fmt.Sprintf("cutover-memory-%s-%d", mp.Kind, mp.Open),
		LegacyURL: legacyURL, RedisURL: redisURL, StubURL: stubURL, Routes: all})
	if err != nil {
		return err
	}
	defer e.g.Stop(cut.Proc, 10*time.Second)
	// Warm the native paths that need no model call, then let the process settle.
	client := &http.Client{Timeout: 5 * time.Second}
	for i := range 50 {
		resp, err := client.Get(fmt.Sprintf("%s/conversations/warm-%d", cut.URL, i))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	client.CloseIdleConnections()
	if err := e.sleep(time.Second); err != nil {
		return err
	}
	mp.IdleRSSKiB = medianRSS(e, cut.Pid(), 5)
	mp.Idle = runtimeMem(cut.AdminURL)

	mode := load.ModeHoldStream
	if mp.Kind == "chat" {
		mode = load.ModeHoldChat
	}
	ramp := time.Duration(max(1, mp.Open/1000)) * time.Second
	lc := load.Config{BaseURL: cut.URL, Users: mp.Open, Mode: mode, Ramp: ramp, Duration: 9 * time.Second,
		Timeout: 60 * time.Second, TTFT: ttft, TPS: tps, Salt: fmt.Sprintf("memory-%s-%d", mp.Kind, mp.Open)}
	run, err := e.runLoad(fmt.Sprintf("memory-%s-%d", mp.Kind, mp.Open), lc, map[string]int{"cutover": cut.Pid()}, func() {
		// Give the last users time to get their request accepted (and, for streams, their first event).
		_ = e.sleep(ttft + 1500*time.Millisecond)
		mp.Established = harness.EstablishedConns(cut.Port)
		mp.LoadedRSSKiB = medianRSS(e, cut.Pid(), 5)
		mp.Loaded = runtimeMem(cut.AdminURL)
		// After the RSS samples (a heap profile forces a GC): where the memory of the open
		// requests is (heap in use, goroutine stacks), and what little CPU holding them costs.
		scenario := fmt.Sprintf("memory-%s-%d", mp.Kind, mp.Open)
		e.profile(cut, scenario, "heap", 0)
		e.profile(cut, scenario, "goroutine", 0)
		e.profile(cut, scenario, "cpu", 2)
	})
	mp.Load = run.res
	mp.ClientOpen = run.res.MaxOpen
	if err != nil {
		return err
	}
	if mp.Established < mp.Open*95/100 {
		return fmt.Errorf("only %d of %d connections established while sampling", mp.Established, mp.Open)
	}
	mp.PerRequestKiB = float64(mp.LoadedRSSKiB-mp.IdleRSSKiB) / float64(mp.Open)
	return nil
}

// medianRSS samples a process tree's RSS n times, 200 ms apart, and returns the median.
func medianRSS(e *env, pid, n int) int64 {
	var xs []int64
	for i := range n {
		if i > 0 && e.sleep(200*time.Millisecond) != nil {
			break
		}
		xs = append(xs, harness.RSSKiB(pid))
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// runtimeMem reads cutover's Go runtime memory figures from its /metrics (served without the admin
// token); zero fields when they cannot be read.
func runtimeMem(adminURL string) report.RuntimeMem {
	var m report.RuntimeMem
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(adminURL + "/metrics")
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_memstats_heap_inuse_bytes":
			m.HeapInuseBytes = int64(v)
		case "go_memstats_stack_inuse_bytes":
			m.StackInuseBytes = int64(v)
		case "go_goroutines":
			m.Goroutines = int64(v)
		}
	}
	return m
}
