// Package testenv starts the real parts tests run against on free loopback ports: redis-server, the
// Bedrock stub and the legacy Flask app under gunicorn. Every child process runs in its own process
// group, which is killed as a whole when it stops, so no worker outlives a test.
//
// The testing.TB variants (StartRedis, StartLegacy) stop everything on t.Cleanup and fail the test on
// error. The TestMain variants (NewRedis, NewLegacy) return a cleanup function instead, for packages
// that share one Redis and one legacy app across their tests.
package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Redis is a redis-server child process on a loopback port, with persistence off
// (--save ” --appendonly no). Its methods are safe for concurrent use.
type Redis struct {
	port int
	dir  string // working directory and log file

	mu   sync.Mutex
	proc *process
}

// StartRedis starts redis-server on a free loopback port and stops it when the test ends. It fails the
// test if redis-server is missing (run `make setup`) or does not answer PING.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	r, cleanup, err := NewRedis()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(cleanup)
	return r
}

// NewRedis is StartRedis for TestMain: the caller runs cleanup when done with it.
func NewRedis() (r *Redis, cleanup func(), err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, nil, errors.New("redis-server not found in PATH: run `make setup`")
	}
	dir, err := os.MkdirTemp("", "testenv-redis-")
	if err != nil {
		return nil, nil, fmt.Errorf("redis temp dir: %w", err)
	}
	r = &Redis{dir: dir}
	// A free port can be taken between choosing it and redis binding it; try a few.
	for range 3 {
		if r.port, err = freePort(); err != nil {
			break
		}
		if err = r.start(bin); err == nil {
			return r, r.close, nil
		}
	}
	_ = os.RemoveAll(dir)
	return nil, nil, err
}

// Addr is the host:port Redis listens on.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// URL is the redis:// URL of database 0.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Stop stops redis-server (SIGTERM, then SIGKILL after 5s). Data is lost: persistence is off.
// Stopping a stopped Redis does nothing.
func (r *Redis) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil {
		r.proc.stop(5 * time.Second)
		r.proc = nil
	}
}

// Start starts redis-server again on the same port, empty, and waits for PING. Starting a running
// Redis does nothing.
func (r *Redis) Start() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("redis-server not found in PATH: run `make setup`")
	}
	return r.start(bin)
}

func (r *Redis) start(bin string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil && r.proc.running() {
		return nil
	}
	p, err := startProcess(bin, []string{
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--dir", r.dir,
	}, r.dir, os.Environ(), r.dir+"/redis.log")
	if err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	if err := waitFor(startBound, p, func() bool { return ping(r.Addr()) }); err != nil {
		p.stop(time.Second)
		return fmt.Errorf("redis-server on %s: %w\n%s", r.Addr(), err, p.output())
	}
	r.proc = p
	return nil
}

func (r *Redis) close() {
	r.Stop()
	_ = os.RemoveAll(r.dir)
}

func ping(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// process is a child started in its own process group, with its output in a log file.
type process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the child has exited and been reaped
}

func startProcess(bin string, args []string, dir string, env []string, logPath string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Setpgid: one kill reaches every worker. Pdeathsig: the child dies with the test binary even when
	// no cleanup runs (gunicorn workers then exit on their own when their master is gone).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig to the whole process group.
func (p *process) signal(sig syscall.Signal) {
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}

// stop sends SIGTERM to the group, waits up to grace for the leader, then SIGKILLs whatever is left
// of the group and reaps the leader.
func (p *process) stop(grace time.Duration) {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
	}
	p.kill()
}

// kill SIGKILLs the whole group and waits for the leader to be reaped and, for up to 5s, for the
// other members (orphans reaped by init) to vanish.
func (p *process) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if errors.Is(syscall.Kill(-p.cmd.Process.Pid, 0), syscall.ESRCH) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// output is the child's log so far, for error messages.
func (p *process) output() string { return tailFile(p.logPath) }

// tailFile is the last 16 KiB of the file at path, or "" if it cannot be read.
func tailFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	const max = 16 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// startBound bounds how long a child process may take to become ready. It
// only decides how long a broken start takes to be reported: a working start
// ends the wait as soon as the process answers, so the bound is generous for
// machines far slower or busier than a developer's (a gunicorn worker
// importing boto3 took over 30s on 2 cores under `make test-stress`).
const startBound = 2 * time.Minute

// waitFor polls ready until it reports true, the process exits or timeout passes.
func waitFor(timeout time.Duration, p *process, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if ready() {
			return nil
		}
		if !p.running() {
			return errors.New("process exited before it was ready")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
