package testenv

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// LegacySecretKey is the Flask SECRET_KEY StartLegacy and NewLegacy use unless env sets one, so tests
// can sign and verify the legacy app's session cookies.
const LegacySecretKey = "cutover-testenv-secret"

// Legacy is the legacy Flask app (legacy/app.py) under real gunicorn sync workers
// (`python3 -m gunicorn -c gunicorn.conf.py app:app`, cwd legacy/) on a loopback port.
// Its methods are safe for concurrent use.
type Legacy struct {
	port int
	dir  string // repository root
	tmp  string // log files
	env  []string

	mu   sync.Mutex
	proc *process
	runs int
}

// StartLegacy starts the legacy app and waits until GET /health answers 200; it stops when the test
// ends. env is applied on top of these defaults:
//
//	BIND                  127.0.0.1:<free port> (do not override)
//	GUNICORN_WORKERS      2
//	SECRET_KEY            LegacySecretKey
//	REDIS_URL             redis://127.0.0.1:1/0 (nothing listens: pass a Redis URL to use the store)
//	BEDROCK_ENDPOINT_URL  http://127.0.0.1:1 (nothing listens: never real AWS; pass a stub URL)
//	AWS_*                 static test credentials, region us-east-1, no shared config, no IMDS
//	PYTHONPATH            <repo>/.pydeps
func StartLegacy(t testing.TB, env map[string]string) *Legacy {
	t.Helper()
	l, cleanup, err := NewLegacy(env)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(cleanup)
	return l
}

// NewLegacy is StartLegacy for TestMain: the caller runs cleanup when done with it.
func NewLegacy(env map[string]string) (l *Legacy, cleanup func(), err error) {
	if _, ok := env["BIND"]; ok {
		return nil, nil, errors.New("legacy env: BIND is chosen by testenv")
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(filepath.Join(root, ".pydeps")); err != nil {
		return nil, nil, fmt.Errorf("%s/.pydeps is missing: run `make setup`", root)
	}
	tmp, err := os.MkdirTemp("", "testenv-legacy-")
	if err != nil {
		return nil, nil, fmt.Errorf("legacy temp dir: %w", err)
	}
	l = &Legacy{dir: root, tmp: tmp}
	// A free port can be taken between choosing it and gunicorn binding it; try a few.
	for range 3 {
		if l.port, err = freePort(); err != nil {
			break
		}
		l.env = legacyEnv(root, l.port, env)
		if err = l.Start(); err == nil {
			return l, l.close, nil
		}
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	_ = os.RemoveAll(tmp)
	return nil, nil, err
}

func legacyEnv(root string, port int, env map[string]string) []string {
	vars := map[string]string{
		"PATH":                        os.Getenv("PATH"),
		"HOME":                        os.Getenv("HOME"),
		"PYTHONPATH":                  filepath.Join(root, ".pydeps"),
		"PYTHONDONTWRITEBYTECODE":     "1",
		"BIND":                        "127.0.0.1:" + strconv.Itoa(port),
		"GUNICORN_WORKERS":            "2",
		"SECRET_KEY":                  LegacySecretKey,
		"REDIS_URL":                   "redis://127.0.0.1:1/0",
		"BEDROCK_ENDPOINT_URL":        "http://127.0.0.1:1",
		"AWS_ACCESS_KEY_ID":           "AKIDTESTENV",
		"AWS_SECRET_ACCESS_KEY":       "testenv-secret",
		"AWS_REGION":                  "us-east-1",
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             "/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
	}
	for k, v := range env {
		vars[k] = v
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// URL is the app's base URL, http://127.0.0.1:PORT.
func (l *Legacy) URL() string { return "http://" + l.Addr() }

// Addr is the host:port gunicorn listens on.
func (l *Legacy) Addr() string { return "127.0.0.1:" + strconv.Itoa(l.port) }

// Start starts gunicorn (again) on the same port and waits for GET /health to answer 200.
// Starting a running app does nothing.
func (l *Legacy) Start() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.proc != nil && l.proc.running() {
		return nil
	}
	l.runs++
	logPath := filepath.Join(l.tmp, fmt.Sprintf("gunicorn-%d.log", l.runs))
	p, err := startProcess("python3", []string{"-m", "gunicorn", "-c", "gunicorn.conf.py", "app:app"},
		filepath.Join(l.dir, "legacy"), l.env, logPath)
	if err != nil {
		return fmt.Errorf("start gunicorn: %w", err)
	}
	client := &http.Client{Timeout: time.Second}
	healthy := func() bool {
		resp, err := client.Get(l.URL() + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	err = waitFor(startBound, p, healthy)
	client.CloseIdleConnections()
	if err != nil {
		p.stop(time.Second)
		return fmt.Errorf("legacy app on %s: %w\n%s", l.Addr(), err, p.output())
	}
	l.proc = p
	return nil
}

// Stop stops gunicorn gracefully (SIGTERM to the process group; SIGKILL after 10s) and waits for it.
// Stopping a stopped app does nothing.
func (l *Legacy) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.proc != nil {
		l.proc.stop(10 * time.Second)
		l.proc = nil
	}
}

// Kill SIGKILLs the master and every worker at once, as a crash would, and waits for the master.
func (l *Legacy) Kill() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.proc != nil {
		l.proc.kill()
		l.proc = nil
	}
}

// Output is gunicorn's log (access log and errors) of the current or last run, at most its last 16 KiB.
func (l *Legacy) Output() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.runs == 0 {
		return ""
	}
	return tailFile(filepath.Join(l.tmp, fmt.Sprintf("gunicorn-%d.log", l.runs)))
}

func (l *Legacy) close() {
	l.Stop()
	_ = os.RemoveAll(l.tmp)
}

// RepoRoot finds the repository root by walking up from the working directory to go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("repo root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repo root: no go.mod above the working directory")
		}
		dir = parent
	}
}
