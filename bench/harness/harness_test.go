package harness

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	out := []byte("Running 1s test @ http://127.0.0.1:1/\n" +
		`WRKJSON {"requests":2000,"duration_us":2000000,"bytes":32000,"err_connect":1,"err_read":2,"err_write":3,"err_status":4,"err_timeout":5,"lat_mean_us":812.5,"lat_max_us":9000,"p50_us":700,"p90_us":1200,"p99_us":4000,"p999_us":8000}` + "\n")
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.RPS != 1000 || r.P50US != 700 || r.P99US != 4000 || r.Errors() != 15 {
		t.Errorf("parseWrk = %+v (rps %v, errors %d), want rps 1000, p50 700, p99 4000, errors 15", r, r.RPS, r.Errors())
	}
	if _, err := parseWrk([]byte("unable to connect\n")); err == nil {
		t.Error("parseWrk accepted output without a report")
	}
}

func TestParseHey(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "hey-small.txt"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseHey(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 40 || r.Non200 != 40 || r.P50MS != 1.8 || r.P90MS != 2.3 || r.P95MS != 8 || r.RPS < 39 || r.RPS > 40 {
		t.Errorf("parseHey = %+v", r)
	}
	refused := []byte("Summary:\n  Requests/sec:\t19.9\n\nLatency distribution:\n\nError distribution:\n  [20]\tGet \"http://127.0.0.1:1/\": dial tcp 127.0.0.1:1: connect: connection refused\n")
	r, err = parseHey(refused)
	if err == nil {
		t.Errorf("parseHey accepted a run without latencies: %+v", r)
	}
	if r.Errors != 20 {
		t.Errorf("errors = %d, want 20", r.Errors)
	}
}

func TestGroupStopKillsWholeProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pids")
	g, err := NewGroup(dir, pidFile)
	if err != nil {
		t.Fatal(err)
	}
	// The shell ignores SIGTERM and leaves a grandchild behind: Stop must still clear both.
	p, err := g.Start("sleeper", nil, "sh", "-c", `trap "" TERM; sleep 60 & echo "grand""child=$!"; wait`)
	if err != nil {
		t.Fatal(err)
	}
	if err := WaitLog(context.Background(), p, "grandchild=", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p.Log)
	after := string(b)[strings.LastIndex(string(b), "grandchild=")+len("grandchild="):]
	child, err := strconv.Atoi(strings.TrimSpace(after))
	if err != nil {
		t.Fatalf("child pid in %q: %v", b, err)
	}
	if pids, _ := os.ReadFile(pidFile); strings.TrimSpace(string(pids)) != strconv.Itoa(p.Pid()) {
		t.Errorf("pid file = %q, want %d", pids, p.Pid())
	}
	g.Stop(p, 200*time.Millisecond)
	if exited, _ := p.Exited(); !exited {
		t.Error("leader still running after Stop")
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(child, 0) == nil {
		// The grandchild was killed; it disappears once init reaps it.
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(child) + "/stat"); err != nil || strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d survived Stop", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pids, _ := os.ReadFile(pidFile); strings.TrimSpace(string(pids)) != "" {
		t.Errorf("pid file still lists %q", pids)
	}
}

func TestWaitReportsEarlyExit(t *testing.T) {
	g, err := NewGroup(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := g.Start("fails", nil, "sh", "-c", "echo boom; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	defer g.StopAll()
	err = WaitTCP(context.Background(), p, "127.0.0.1:1", 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exited before ready") || !strings.Contains(err.Error(), "boom") {
		t.Errorf("WaitTCP error = %v, want early exit with the log tail", err)
	}
}

func TestSamplerAndEstablishedConns(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c, s)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if n := EstablishedConns(port); n != 3 {
		t.Errorf("EstablishedConns = %d, want 3", n)
	}

	s := StartSampler(map[string]int{"self": os.Getpid()}, 10*time.Millisecond)
	// Burn a little CPU so the window has something to count.
	end := time.Now().Add(150 * time.Millisecond)
	x := 0
	for time.Now().Before(end) {
		x++
	}
	u := s.Stop()["self"]
	if u.PeakRSSKiB <= 0 || u.Procs < 1 || u.CPUSeconds <= 0 {
		t.Errorf("usage of this process = %+v (loop %d), want RSS, a process and CPU time", u, x)
	}
}

func TestFreePortIsNotReused(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}

func TestProxyConfigs(t *testing.T) {
	dir := t.TempDir()
	argv, err := NginxConfig(dir, "127.0.0.1:1111", "127.0.0.1:2222", 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(argv[4])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"listen 127.0.0.1:1111", "server 127.0.0.1:2222", "keepalive 1024", "proxy_http_version 1.1", `proxy_set_header Connection ""`, "daemon off", "worker_processes 1;"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("nginx config lacks %q", want)
		}
	}
	argv, err = HAProxyConfig(dir, "127.0.0.1:1111", "127.0.0.1:2222", 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile(argv[len(argv)-1])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bind 127.0.0.1:1111", "server up 127.0.0.1:2222", "http-reuse always", "option http-keep-alive", "nbthread 1\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("haproxy config lacks %q", want)
		}
	}
	env, argv, err := CaddyConfig(dir, "127.0.0.1:1111", "127.0.0.1:2222")
	if err != nil {
		t.Fatal(err)
	}
	if len(argv) != 4 || argv[0] != "caddy" || argv[1] != "run" {
		t.Fatalf("caddy argv = %q", argv)
	}
	for _, kv := range env {
		if _, v, _ := strings.Cut(kv, "="); !strings.HasPrefix(v, dir) {
			t.Errorf("caddy env %q points outside the scratch folder %s", kv, dir)
		}
	}
	b, err = os.ReadFile(argv[3])
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Admin struct {
			Disabled bool `json:"disabled"`
		} `json:"admin"`
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string `json:"listen"`
					Logs   any      `json:"logs"`
					Routes []struct {
						Handle []struct {
							Handler   string              `json:"handler"`
							Upstreams []map[string]string `json:"upstreams"`
							Transport struct {
								KeepAlive struct {
									Enabled bool `json:"enabled"`
								} `json:"keep_alive"`
							} `json:"transport"`
						} `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatalf("caddy config is not JSON: %v", err)
	}
	srv, ok := conf.Apps.HTTP.Servers["bench"]
	if !conf.Admin.Disabled || !ok || len(srv.Listen) != 1 || srv.Listen[0] != "127.0.0.1:1111" || srv.Logs != nil || len(srv.Routes) != 1 {
		t.Fatalf("caddy config = %s", b)
	}
	h := srv.Routes[0].Handle[0]
	if h.Handler != "reverse_proxy" || h.Upstreams[0]["dial"] != "127.0.0.1:2222" || !h.Transport.KeepAlive.Enabled {
		t.Errorf("caddy handler = %+v, want a keep-alive reverse_proxy to 127.0.0.1:2222", h)
	}
}

func TestPinningWrap(t *testing.T) {
	tests := []struct {
		name string
		give Pinning
		role Role
		want string
	}{
		{"zero value pins nothing", Pinning{}, RoleServer, "wrk -c 1"},
		{"server core", Pinning{Enabled: true, ServerCPU: 0, RestCPU: 1}, RoleServer, "taskset -c 0 wrk -c 1"},
		{"rest core", Pinning{Enabled: true, ServerCPU: 0, RestCPU: 1}, RoleRest, "taskset -c 1 wrk -c 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(tt.give.Wrap(tt.role, "wrk", "-c", "1"), " "); got != tt.want {
				t.Errorf("Wrap = %q, want %q", got, tt.want)
			}
		})
	}
	if p, why := DefaultPinning(false); p.Enabled || why == "" {
		t.Errorf("DefaultPinning(false) = %+v, %q; want disabled with a reason", p, why)
	}
}

// TestSamplerAttributesChildCPU runs two real children: one burns CPU in a subshell of its own (a
// child that exits and is reaped inside the window, so its time reaches the root through cstime and
// cutime), the other only sleeps. The burner's tree must show CPU time; the sleeper's must not.
func TestSamplerAttributesChildCPU(t *testing.T) {
	dir := t.TempDir()
	g, err := NewGroup(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer g.StopAll()
	gate := filepath.Join(dir, "go")
	burner, err := g.Start("burner", nil, "sh", "-c",
		`echo "rea""dy"; while [ ! -e "$0" ]; do sleep 0.01; done; (i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done); echo "bur""ned"; sleep 60`, gate)
	if err != nil {
		t.Fatal(err)
	}
	sleeper, err := g.Start("sleeper", nil, "sh", "-c", `echo "rea""dy"; exec sleep 60`)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Proc{burner, sleeper} {
		if err := WaitLog(context.Background(), p, "ready", 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// (The markers are split in the scripts because the log starts with the command line.)
	// The sleeper's exec of sleep may still be under way: wait until it is sleep that runs.
	if err := eventually(10*time.Second, func() bool {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(sleeper.Pid()) + "/comm")
		return strings.TrimSpace(string(b)) == "sleep"
	}); err != nil {
		t.Fatal("sleeper never became sleep")
	}
	s := StartSampler(map[string]int{"burner": burner.Pid(), "sleeper": sleeper.Pid()}, 10*time.Millisecond)
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WaitLog(context.Background(), burner, "burned", 60*time.Second); err != nil {
		s.Stop()
		t.Fatal(err)
	}
	u := s.Stop()
	if b := u["burner"]; b.CPUSeconds <= 0 || b.MicrosPer(1000) <= 0 {
		t.Errorf("burner usage = %+v, want CPU time attributed to the tree that burned it", b)
	}
	if sl := u["sleeper"]; sl.CPUSeconds != 0 {
		t.Errorf("sleeper usage = %+v, want no CPU time: the burn belongs to the other tree", sl)
	}
}

// eventually polls ok every 10 ms until it holds or bound passes.
func eventually(bound time.Duration, ok func() bool) error {
	deadline := time.Now().Add(bound)
	for !ok() {
		if time.Now().After(deadline) {
			return errors.New("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

func TestUsageMicrosPer(t *testing.T) {
	tests := []struct {
		give Usage
		n    int64
		want float64
	}{
		{Usage{CPUSeconds: 0.5}, 10000, 50},
		{Usage{CPUSeconds: 0.5}, 0, 0},
		{Usage{}, 100, 0},
	}
	for _, tt := range tests {
		if got := tt.give.MicrosPer(tt.n); got != tt.want {
			t.Errorf("%+v.MicrosPer(%d) = %v, want %v", tt.give, tt.n, got, tt.want)
		}
	}
}
