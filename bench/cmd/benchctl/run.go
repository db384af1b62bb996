package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cutover/cutover/bench/harness"
	"github.com/cutover/cutover/bench/report"
)

// env is one harness run: where things are, what it started, what it found.
type env struct {
	ctx   context.Context
	root  string // repository root
	bin   string // make build's output: cutover, bedrock-stub
	self  string // this executable (upstream and load run as its subcommands)
	tmp   string // scratch folder of this run (logs, generated configs)
	out   string // results folder
	quick bool
	// pin is the run's pinning; pinned is it while a pinned scenario runs, else the zero
	// Pinning (nothing pinned). Start processes and run wrk and hey through pinned.
	pin, pinned harness.Pinning
	g           *harness.Group
	res         *report.Results
	start       time.Time
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[bench %5.0fs] %s\n", time.Since(e.start).Seconds(), fmt.Sprintf(format, args...))
}

func (e *env) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.logf("NOTE: %s", msg)
	e.res.Notes = append(e.res.Notes, msg)
}

// pick returns quick in quick mode, else full.
func pick[T any](e *env, full, quick T) T {
	if e.quick {
		return quick
	}
	return full
}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	quick := fs.Bool("quick", os.Getenv("BENCH_QUICK") == "1", "run every scenario briefly (smoke test); env BENCH_QUICK=1")
	out := fs.String("out", os.Getenv("BENCH_OUT"), "results folder (default bench/results, or bench/tmp/results-quick in quick mode)")
	only := fs.String("only", os.Getenv("BENCH_ONLY"), "comma-separated scenarios: passthrough,chat,openloop,memory,shadow (default all)")
	root := fs.String("root", "", "repository root (default: found from the working directory)")
	readme := fs.String("readme", "", "after the run, replace the generated block of this README with the summary (see benchctl readme)")
	pin := fs.Bool("pin", os.Getenv("BENCH_PIN") != "0", "pin the process under test to core 0 and everything else to core 1 in the pinned scenarios (passthrough, chat, openloop); env BENCH_PIN=0 disables")
	if err := fs.Parse(args); err != nil {
		return err
	}
	e := &env{quick: *quick, start: time.Now()}
	var err error
	if e.root, err = findRoot(*root); err != nil {
		return err
	}
	e.bin = os.Getenv("BENCH_BIN") // a folder holding cutover and bedrock-stub; default make build's bin/
	if e.bin == "" {
		e.bin = filepath.Join(e.root, "bin")
	}
	if e.self, err = os.Executable(); err != nil {
		return err
	}
	e.out = *out
	if e.out == "" {
		e.out = filepath.Join(e.root, "bench", "results")
		if e.quick {
			e.out = filepath.Join(e.root, "bench", "tmp", "results-quick")
		}
	}
	if err := os.MkdirAll(filepath.Join(e.root, "bench", "tmp"), 0o755); err != nil {
		return err
	}
	if e.tmp, err = os.MkdirTemp(filepath.Join(e.root, "bench", "tmp"), "run-"); err != nil {
		return err
	}
	e.g, err = harness.NewGroup(filepath.Join(e.tmp, "logs"), filepath.Join(e.root, "bench", "tmp", "pids"))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	e.ctx = ctx
	defer e.g.StopAll()

	removeStaleProfiles(e.out)
	nofile := harness.RaiseNoFile()
	e.res = &report.Results{Started: e.start.UTC(), Quick: e.quick, Tools: toolVersions(e.root)}
	m := &e.res.Machine
	m.Cores, m.CPUModel, m.MemTotalKiB, m.Kernel, _ = harness.MachineInfo()
	m.OpenFiles = nofile
	m.LoadStart = harness.LoadAvg()
	e.logf("machine: %d cores, %d MiB, open files %d; quick=%v; scratch %s", m.Cores, m.MemTotalKiB/1024, nofile, e.quick, e.tmp)
	var why string
	e.pin, why = harness.DefaultPinning(*pin)
	e.res.Settings.Pinning = e.pin
	if *pin && !e.pin.Enabled {
		e.note("processes not pinned: %s", why)
	}

	scenarios := []struct {
		name   string
		run    func() error
		pinned bool // the process under test on one core, the rest on the other
	}{
		{"passthrough", e.passthrough, true},
		{"chat", e.chat, true},
		{"openloop", e.openloop, true},
		{"memory", e.memory, false},
		{"shadow", e.shadow, true},
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			want[s] = true
		}
	}
	var failed []string
	for _, s := range scenarios {
		if len(want) > 0 && !want[s.name] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		e.logf("=== scenario %s", s.name)
		if err := e.runScenario(s.name, s.pinned, s.run); err != nil {
			e.note("scenario %s failed: %v", s.name, err)
			failed = append(failed, s.name)
		}
		e.g.StopAll()
		// Results are written after every scenario, so an interrupted run keeps what it measured.
		if err := e.finish(); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	e.logf("results in %s (%.0fs)", e.out, time.Since(e.start).Seconds())
	if *readme != "" {
		if err := writeReadme(*readme, e.out); err != nil {
			return err
		}
		e.logf("README summary block of %s regenerated", *readme)
	}
	if len(failed) > 0 {
		return fmt.Errorf("scenarios failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// runScenario runs one scenario, pinned if pinned and the run pins: the harness itself moves to
// the rest core for its duration (so the processes it starts inherit that core unless told
// otherwise) and back to every core after it.
func (e *env) runScenario(name string, pinned bool, run func() error) error {
	e.pinned = harness.Pinning{}
	if pinned && e.pin.Enabled {
		if err := e.pin.PinSelf(); err != nil {
			e.note("scenario %s not pinned: %v", name, err)
		} else {
			e.pinned = e.pin
			e.res.Settings.PinnedScenarios = append(e.res.Settings.PinnedScenarios, name)
			defer func() {
				e.pinned = harness.Pinning{}
				if err := harness.Unpin(); err != nil {
					e.note("after scenario %s: %v", name, err)
				}
			}()
		}
	}
	return run()
}

// spawn starts argv as a process of role r (pinned to its core in a pinned scenario).
func (e *env) spawn(name string, r harness.Role, env []string, argv ...string) (*harness.Proc, error) {
	return e.g.Start(name, env, e.pinned.Wrap(r, argv...)...)
}

// gomaxprocs is the GOMAXPROCS setting of a Go process of role r: the cores it may use.
func (e *env) gomaxprocs(r harness.Role) string {
	return "GOMAXPROCS=" + strconv.Itoa(e.pinned.Cores(r))
}

// finish writes results.json, RESULTS.md and the plots.
func (e *env) finish() error {
	e.res.Finished = time.Now().UTC()
	e.res.Machine.LoadEnd = harness.LoadAvg()
	e.res.Instances = report.ComputeInstances(e.res.Chat)
	report.ComputeOpenCapacity(e.res.OpenLoop)
	if err := report.Write(e.out, e.res); err != nil {
		return err
	}
	return report.Render(e.out, e.res)
}

func reportCmd(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	dir := fs.String("dir", "bench/results", "results folder holding results.json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := report.Read(*dir)
	if err != nil {
		return err
	}
	r.Instances = report.ComputeInstances(r.Chat)
	report.ComputeOpenCapacity(r.OpenLoop)
	return report.Render(*dir, r)
}

func readmeCmd(args []string) error {
	fs := flag.NewFlagSet("readme", flag.ContinueOnError)
	dir := fs.String("dir", "bench/results", "results folder holding results.json")
	readme := fs.String("readme", "README.md", "README whose generated benchmark block is replaced")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return writeReadme(*readme, *dir)
}

// writeReadme replaces the generated block of the README at path with the summary of the
// results in dir, plot paths relative to the README.
func writeReadme(path, dir string) error {
	r, err := report.Read(dir)
	if err != nil {
		return err
	}
	r.Instances = report.ComputeInstances(r.Chat)
	report.ComputeOpenCapacity(r.OpenLoop)
	absReadme, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(absReadme), absDir)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := report.ReplaceBlock(string(old), report.ReadmeBlock(r, filepath.ToSlash(rel)+"/"))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

func findRoot(given string) (string, error) {
	dir := given
	if dir == "" {
		var err error
		if dir, err = os.Getwd(); err != nil {
			return "", err
		}
	}
	dir, _ = filepath.Abs(dir)
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "bench")); err == nil {
				return d, nil
			}
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no repository root above %s", dir)
		}
	}
}

// checkLoopback refuses any target that is not on this machine's loopback.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("target %q is not a URL", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("target %q is not a loopback address", raw)
}

func toolVersions(root string) map[string]string {
	t := harness.PackageVersions("wrk", "hey", "nginx", "haproxy", "caddy", "redis-server", "gunicorn", "python3-flask")
	t["go"] = runtime.Version()
	t["python3"] = harness.CommandOutput(nil, "python3", "--version")
	t["flask"] = harness.CommandOutput([]string{"PYTHONPATH=" + filepath.Join(root, ".pydeps")}, "python3", "-c",
		"import flask, werkzeug, boto3; from importlib.metadata import version as v; print('flask', v('flask'), 'werkzeug', v('werkzeug'), 'boto3', v('boto3'))")
	t["cutover_git"] = harness.CommandOutput(nil, "git", "-C", root, "rev-parse", "--short", "HEAD")
	for k, v := range t {
		if v == "" {
			delete(t, k)
		}
	}
	return t
}

// median of xs (NaN-free); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// sleep waits d or until the run is interrupted.
func (e *env) sleep(d time.Duration) error {
	select {
	case <-e.ctx.Done():
		return e.ctx.Err()
	case <-time.After(d):
		return nil
	}
}
