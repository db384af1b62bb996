// Package harness starts, watches and stops the processes a benchmark measures: each child runs in
// its own process group on loopback, its output goes to a log file, and every group still alive is
// killed when the harness stops (and, as a backstop, by bench/run.sh from the pid file).
package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one started child process (and its descendants, which share its process group).
type Proc struct {
	Name string
	Log  string // path of the file holding its stdout and stderr
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid after done is closed
}

// Pid is the child's process id, also the id of its process group.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Group owns the processes it started. It is safe for concurrent use.
type Group struct {
	dir     string // log files go here
	pidFile string // one process-group id per line, for run.sh's cleanup trap; "" = none
	mu      sync.Mutex
	procs   []*Proc
}

// NewGroup returns a Group writing logs under dir and recording process-group ids in pidFile.
func NewGroup(dir, pidFile string) (*Group, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	return &Group{dir: dir, pidFile: pidFile}, nil
}

// Start runs argv with env added to the harness's own environment. The child gets its own process
// group and is killed if the harness dies (Pdeathsig).
func (g *Group) Start(name string, env []string, argv ...string) (*Proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("start: empty command")
	}
	logPath := filepath.Join(g.dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(f, "### %s %s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(argv, " "))
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	g.mu.Lock()
	g.procs = append(g.procs, p)
	g.writePIDs()
	g.mu.Unlock()
	return p, nil
}

// writePIDs rewrites the pid file with the groups still owned; g.mu must be held.
func (g *Group) writePIDs() {
	if g.pidFile == "" {
		return
	}
	var b strings.Builder
	for _, p := range g.procs {
		fmt.Fprintln(&b, p.Pid())
	}
	_ = os.WriteFile(g.pidFile, []byte(b.String()), 0o644)
}

// Stop sends SIGTERM to p's process group, waits up to grace, then SIGKILLs the group.
func (g *Group) Stop(p *Proc, grace time.Duration) {
	if p == nil {
		return
	}
	pg := -p.Pid()
	_ = syscall.Kill(pg, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
	}
	// Descendants (nginx or gunicorn workers) may outlive the leader: clear the whole group.
	_ = syscall.Kill(pg, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	g.mu.Lock()
	for i, q := range g.procs {
		if q == p {
			g.procs = append(g.procs[:i], g.procs[i+1:]...)
			break
		}
	}
	g.writePIDs()
	g.mu.Unlock()
}

// StopAll stops every process still owned, newest first.
func (g *Group) StopAll() {
	g.mu.Lock()
	procs := append([]*Proc(nil), g.procs...)
	g.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		g.Stop(procs[i], 3*time.Second)
	}
}

// Exited reports the process's exit error if it has already exited.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Tail returns the last n lines of the process's log, for error messages.
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var (
	portMu   sync.Mutex
	portSeen = map[int]bool{}
)

// FreePort returns a loopback TCP port that was free a moment ago and was not handed out before
// by this process.
func FreePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !portSeen[port] {
			portSeen[port] = true
			return port, nil
		}
	}
	return 0, errors.New("free port: no unused port found")
}

// Addr returns "127.0.0.1:port".
func Addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// WaitHTTP polls url until it answers with a status below 500, p exits, or timeout passes.
func WaitHTTP(ctx context.Context, p *Proc, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	return waitFor(ctx, p, timeout, "GET "+url, func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode < 500
	})
}

// WaitTCP polls addr until it accepts a connection, p exits, or timeout passes.
func WaitTCP(ctx context.Context, p *Proc, addr string, timeout time.Duration) error {
	return waitFor(ctx, p, timeout, "connect "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// WaitLog polls p's log until it contains substr, p exits, or timeout passes.
func WaitLog(ctx context.Context, p *Proc, substr string, timeout time.Duration) error {
	return waitFor(ctx, p, timeout, fmt.Sprintf("log line %q", substr), func() bool {
		f, err := os.Open(p.Log)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if strings.Contains(sc.Text(), substr) {
				return true
			}
		}
		return false
	})
}

func waitFor(ctx context.Context, p *Proc, timeout time.Duration, what string, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if ok() {
			return nil
		}
		if p != nil {
			if exited, err := p.Exited(); exited {
				return fmt.Errorf("%s exited before ready (%v); log tail:\n%s", p.Name, err, p.Tail(20))
			}
		}
		if time.Now().After(deadline) {
			name := "process"
			tail := ""
			if p != nil {
				name, tail = p.Name, p.Tail(20)
			}
			return fmt.Errorf("%s not ready after %v (%s); log tail:\n%s", name, timeout, what, tail)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
