package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/testenv"
	"github.com/cutover/cutover/proxy"
)

const fleetToken = "fleet-token"

// fleetBound bounds every wait of the fleet test except the propagation
// bound the issue sets (1s).
const fleetBound = 20 * time.Second

// fleetProc is one `cutover serve` process of the fleet test.
type fleetProc struct {
	name, traffic, admin, config string
	cmd                          *exec.Cmd
	log                          string
	done                         chan struct{}
}

// buildCutover builds this command into a temporary directory.
func buildCutover(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cutover")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func fleetConfig(t *testing.T, name, legacyURL, redisURL string) *fleetProc {
	t.Helper()
	p := &fleetProc{name: name, traffic: freeAddr(t), admin: freeAddr(t)}
	p.config = filepath.Join(t.TempDir(), name+".yaml")
	yaml := p.configHead(legacyURL) + fmt.Sprintf(`fleet:
  redis_url: %s
  instance: %s
  heartbeat_ttl: 2s
stickiness: [header:X-User-Id]
routes:
  - name: health
    path: /health
    native_percent: 0
  - name: get_conversation
    path: /conversations/<conversation_id>
    breaker: {consecutive_failures: 2, auto_rollback: true}
`, redisURL, name)
	if err := os.WriteFile(p.config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// configHead is the start of p's config file: its listeners with the
// test's admin token, a short drain, legacy at legacyURL, and a native app
// whose Bedrock and Redis are unreachable.
func (p *fleetProc) configHead(legacyURL string) string {
	return fmt.Sprintf(`listen:
  addr: %s
  served_by_header: X-Cutover-Served-By
admin:
  addr: %s
  token: %s
shutdown:
  drain_delay: 10ms
  timeout: 5s
legacy:
  url: %s
native:
  secret_key: fleet-test-secret
  aws_region: us-east-1
  bedrock_endpoint_url: http://127.0.0.1:1
  redis_url: redis://127.0.0.1:1/0
  redis_pool_timeout: 500ms
`, p.traffic, p.admin, fleetToken, legacyURL)
}

// start runs the process; it is stopped (SIGTERM, then SIGKILL) when the test ends.
func (p *fleetProc) start(t *testing.T, bin string) {
	t.Helper()
	p.log = filepath.Join(t.TempDir(), p.name+".log")
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p.cmd = exec.Command(bin, "serve", "-config", p.config)
	p.cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true")
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan struct{})
	cmd, done := p.cmd, p.done
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
}

func (p *fleetProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *fleetProc) output() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	return string(b)
}

// served asks the instance for path as user and returns who served it.
func (p *fleetProc) served(t *testing.T, c *http.Client, path, user string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.traffic+path, nil)
	req.Header.Set("X-User-Id", user)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get("X-Cutover-Served-By")
}

// admin calls the instance's admin API and returns the status and body.
func (p *fleetProc) adminCall(t *testing.T, c *http.Client, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+p.admin+path, rd)
	req.Header.Set("Authorization", "Bearer "+fleetToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(proxy.ActorHeader, "test@"+p.name)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, p.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (p *fleetProc) fleet(t *testing.T, c *http.Client) proxy.FleetResponse {
	t.Helper()
	code, body := p.adminCall(t, c, http.MethodGet, "/admin/fleet", nil)
	var out proxy.FleetResponse
	if code != 200 || json.Unmarshal(body, &out) != nil {
		t.Fatalf("GET /admin/fleet on %s: %d %s", p.name, code, body)
	}
	return out
}

// cli runs `cutover ARGS` against the instance's admin API, in process.
func (p *fleetProc) cli(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	full := append([]string{args[0], "-admin", "http://" + p.admin, "-token", fleetToken}, args[1:]...)
	code = run(context.Background(), full, &out, &errb)
	return code, out.String(), errb.String()
}

func eventuallyFleet(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventuallyBound(t, fleetBound, what, cond)
}

// eventuallyBound polls cond until it holds, failing the test after bound.
func eventuallyBound(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", bound, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantServed is who serves user on route health at share bp, as the
// proxy's bucketing decides.
func wantServed(user string, bp int) string {
	if proxy.Bucket(proxy.Seed("health"), user) < bp {
		return "native"
	}
	return "legacy"
}

// userBetween returns a user whose bucket on route health is in [lo, hi).
func userBetween(t *testing.T, lo, hi int) string {
	t.Helper()
	for i := range 100000 {
		u := "user-" + strconv.Itoa(i)
		if b := proxy.Bucket(proxy.Seed("health"), u); b >= lo && b < hi {
			return u
		}
	}
	t.Fatalf("no user with a bucket in [%d, %d)", lo, hi)
	return ""
}

var fleetUsers = func() []string {
	out := make([]string, 40)
	for i := range out {
		out[i] = "u" + strconv.Itoa(i)
	}
	return out
}()

// routesLike checks that every user is served on health as share bp says,
// on every instance given.
func routesLike(t *testing.T, c *http.Client, bp int, procs ...*fleetProc) {
	t.Helper()
	for _, p := range procs {
		for _, u := range fleetUsers {
			if got, want := p.served(t, c, "/health", u), wantServed(u, bp); got != want {
				t.Fatalf("%s serves %s from %s, want %s (share %d bp)", p.name, u, got, want, bp)
			}
		}
	}
}

// Three real `cutover serve` processes and a real redis-server (issue 13).
func TestFleetOfThreeProcesses(t *testing.T) {
	r := testenv.StartRedis(t)
	bin := buildCutover(t)
	legacy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok": true}`))
	}))
	defer legacy.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	a := fleetConfig(t, "a", legacy.URL, r.URL())
	b := fleetConfig(t, "b", legacy.URL, r.URL())
	cc := fleetConfig(t, "c", legacy.URL, r.URL())
	all := []*fleetProc{a, b, cc}
	for _, p := range all {
		p.start(t, bin)
	}
	for _, p := range all {
		waitStatus(t, c, "http://"+p.traffic+"/_cutover/health", 200)
	}
	defer func() {
		if t.Failed() {
			for _, p := range all {
				t.Logf("%s log:\n%s", p.name, p.output())
			}
		}
	}()
	routesLike(t, c, 0, all...)

	// A change on one instance routes the same users the same way on all
	// three within a second, seen through requests.
	probe := userBetween(t, 0, 5000) // native at 50 %
	code, out, errOut := a.cli("weights", "-reason", "ramp", "set", "health", "50")
	changed := time.Now()
	if code != 0 || !strings.Contains(out, "health: 0% -> 50% native") || !strings.Contains(out, "fleet generation") {
		t.Fatalf("weights set: exit %d\n%s%s", code, out, errOut)
	}
	for _, p := range all {
		for p.served(t, c, "/health", probe) != "native" {
			if time.Since(changed) > time.Second {
				t.Fatalf("%s still serves %s from legacy %s after the change", p.name, probe, time.Since(changed))
			}
		}
	}
	t.Logf("the change reached all three instances' routing %s after the CLI returned", time.Since(changed))
	routesLike(t, c, 5000, all...)

	// Concurrent changes on two instances, both decided on the same
	// generation: one wins, the other gets 409, and the fleet follows the winner.
	code, body := a.adminCall(t, c, http.MethodGet, "/admin/routes", nil)
	var routes struct {
		Generation uint64 `json:"generation"`
	}
	if code != 200 || json.Unmarshal(body, &routes) != nil || routes.Generation == 0 {
		t.Fatalf("GET /admin/routes: %d %s", code, body)
	}
	gen := routes.Generation
	var wg sync.WaitGroup
	codes := make([]int, 2)
	bodies := make([][]byte, 2)
	for i, p := range []*fleetProc{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bp := 2000 + 1000*i
			codes[i], bodies[i] = p.adminCall(t, c, http.MethodPut, "/admin/routes/health", proxy.ShareRequest{NativeBP: &bp, Generation: &gen})
		}()
	}
	wg.Wait()
	winner := -1
	switch {
	case codes[0] == 200 && codes[1] == 409:
		winner = 0
	case codes[0] == 409 && codes[1] == 200:
		winner = 1
	default:
		t.Fatalf("concurrent changes: %d %s / %d %s; want one 200 and one 409", codes[0], bodies[0], codes[1], bodies[1])
	}
	if !strings.Contains(string(bodies[1-winner]), "generation") {
		t.Errorf("409 body does not explain the conflict: %s", bodies[1-winner])
	}
	share := 2000 + 1000*winner
	eventuallyFleet(t, "every instance routes by the winner's share", func() bool {
		u := userBetween(t, 2000, 3000) // native only at 30 %
		want := wantServed(u, share)
		for _, p := range all {
			if p.served(t, c, "/health", u) != want {
				return false
			}
		}
		return true
	})
	routesLike(t, c, share, all...)

	// SIGKILL of one instance while it makes a change: the others agree with
	// the store, whichever way the change went, and the dead one leaves the view.
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		bp := 4000
		var rd bytes.Buffer
		_ = json.NewEncoder(&rd).Encode(proxy.ShareRequest{NativeBP: &bp})
		req, _ := http.NewRequest(http.MethodPut, "http://"+cc.admin+"/admin/routes/health", &rd)
		req.Header.Set("Authorization", "Bearer "+fleetToken)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	cc.kill()
	<-killed
	var storeShare int
	eventuallyFleet(t, "a and b at the store's generation", func() bool {
		fa, fb := a.fleet(t, c), b.fleet(t, c)
		return fa.Fleet != nil && fb.Fleet != nil && fa.Status.Generation == fa.Fleet.Generation &&
			fb.Status.Generation == fa.Fleet.Generation
	})
	code, body = a.adminCall(t, c, http.MethodGet, "/admin/routes/health", nil)
	var info proxy.RouteInfo
	if code != 200 || json.Unmarshal(body, &info) != nil {
		t.Fatalf("GET /admin/routes/health: %d %s", code, body)
	}
	storeShare = info.NativeBP
	if storeShare != share && storeShare != 4000 {
		t.Fatalf("share %d after the kill, want %d or 4000", storeShare, share)
	}
	routesLike(t, c, storeShare, a, b)
	eventuallyFleet(t, "the killed instance leaves the fleet view", func() bool {
		v := a.fleet(t, c).Fleet
		return v != nil && len(v.Instances) == 2
	})

	// A new instance joins mid-ramp and routes like the others from its
	// first request: its health check fails until it applied the fleet's state.
	d := fleetConfig(t, "d", legacy.URL, r.URL())
	d.start(t, bin)
	waitStatus(t, c, "http://"+d.traffic+"/_cutover/health", 200)
	routesLike(t, c, storeShare, d)
	all = []*fleetProc{a, b, d}
	if code, out, _ := b.cli("weights", "get", "health"); code != 0 || !strings.Contains(out, "shares of fleet generation") {
		t.Fatalf("cutover weights get: exit %d\n%s", code, out)
	}
	// d heartbeats right after applying the state, not necessarily before
	// its health check passes.
	eventuallyFleet(t, "cutover fleet lists a, b and d, none behind", func() bool {
		code, out, _ = a.cli("fleet")
		return code == 0 && !strings.Contains(out, "BEHIND") && strings.Count(out, " ok") == 3 &&
			strings.Contains(out, "\nd ") && strings.Contains(out, "\na ") && strings.Contains(out, "\nb ")
	})

	// An edit of a share in one instance's file is written to the store and
	// followed by the whole fleet.
	data, err := os.ReadFile(a.config)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), "path: /health\n    native_percent: 0", "path: /health\n    native_percent: 35", 1)
	if edited == string(data) {
		t.Fatal("the health route's share is not in a's file")
	}
	if err := os.WriteFile(a.config, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	// u and v tell 35 % from the share before, whichever it was: u is
	// legacy at 35 % and native at 40 %; v is native at 35 % and legacy
	// at any share up to its bucket (the share before, when it was below).
	u := userBetween(t, 3500, 4000)
	v := userBetween(t, min(storeShare, 3000), 3500)
	eventuallyFleet(t, "every instance routes by the file's 35 %", func() bool {
		for _, p := range all {
			if p.served(t, c, "/health", u) != "legacy" || p.served(t, c, "/health", v) != "native" {
				return false
			}
		}
		return true
	})
	storeShare = 3500
	routesLike(t, c, storeShare, all...)
	code, out, _ = b.cli("audit", "-n", "1")
	if code != 0 || !strings.Contains(out, "config_file") || !strings.Contains(out, "config file") || !strings.Contains(out, "health") {
		t.Fatalf("the file edit's audit record: exit %d\n%s", code, out)
	}

	// Redis stops: traffic goes on at the last shares, changes are refused
	// with 503 naming the store, and an instance starting now fails its
	// health check; Redis starts again (empty): changes work and every
	// instance, the new one included, converges.
	r.Stop()
	routesLike(t, c, storeShare, all...)
	code, _, errOut = b.cli("weights", "set", "health", "10")
	if code != 1 || !strings.Contains(errOut, "503") || !strings.Contains(errOut, r.Addr()) {
		t.Fatalf("weights set with Redis down: exit %d, stderr %q; want a 503 naming %s", code, errOut, r.Addr())
	}
	eventuallyFleet(t, "a reports the store down", func() bool { return !a.fleet(t, c).Status.Healthy })
	e := fleetConfig(t, "e", legacy.URL, r.URL())
	e.start(t, bin)
	eventuallyFleet(t, "e's admin API answers, not ready", func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+e.admin+"/admin/fleet", nil)
		req.Header.Set("Authorization", "Bearer "+fleetToken)
		resp, err := c.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var f proxy.FleetResponse
		return json.NewDecoder(resp.Body).Decode(&f) == nil && !f.Status.Ready && f.Status.Error != ""
	})
	if resp, err := c.Get("http://" + e.traffic + "/_cutover/health"); err != nil || resp.StatusCode != 503 {
		t.Fatalf("e's health check before it reached the store: %v %v, want 503", resp, err)
	} else {
		resp.Body.Close()
	}
	all = append(all, e)
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, "http://"+e.traffic+"/_cutover/health", 200)
	eventuallyFleet(t, "a change works once Redis is back", func() bool {
		code, _, _ := b.cli("weights", "set", "health", "10")
		return code == 0
	})
	// u tells 10 % from the 35 % before; v tells it from 0 % (a late file
	// seed or edit overwriting the change would show as 0 %).
	u = userBetween(t, 1000, 2000) // native at 20 % or more, legacy at 10 %
	v = userBetween(t, 0, 1000)    // native at 10 %, legacy at 0 %
	eventuallyFleet(t, "every instance routes by 10 %", func() bool {
		for _, p := range all {
			if p.served(t, c, "/health", u) != "legacy" || p.served(t, c, "/health", v) != "native" {
				return false
			}
		}
		return true
	})
	routesLike(t, c, 1000, all...)

	// An auto-rollback on one instance rolls the route back on all.
	if code, out, errOut := a.cli("weights", "set", "get_conversation", "100"); code != 0 {
		t.Fatalf("weights set get_conversation 100: exit %d\n%s%s", code, out, errOut)
	}
	eventuallyFleet(t, "every instance at the store's generation", func() bool {
		f := a.fleet(t, c)
		if f.Fleet == nil || len(f.Fleet.Instances) != len(all) {
			return false
		}
		for _, in := range f.Fleet.Instances {
			if in.Behind {
				return false
			}
		}
		return true
	})
	// Native fails on a (its conversation store is unreachable): its
	// breaker trips and rolls the route back fleet-wide.
	eventuallyFleet(t, "a's native breaker trips", func() bool {
		a.served(t, c, "/conversations/x", "u1")
		_, body := a.adminCall(t, c, http.MethodGet, "/admin/routes/get_conversation", nil)
		var info proxy.RouteInfo
		return json.Unmarshal(body, &info) == nil && info.NativeBP == 0
	})
	for _, p := range []*fleetProc{b, d, e} {
		eventuallyFleet(t, p.name+" rolled back", func() bool {
			_, body := p.adminCall(t, c, http.MethodGet, "/admin/routes/get_conversation", nil)
			var info proxy.RouteInfo
			return json.Unmarshal(body, &info) == nil && info.NativeBP == 0
		})
		if got := p.served(t, c, "/conversations/x", "u1"); got != "legacy" {
			t.Fatalf("%s serves get_conversation from %s after the rollback", p.name, got)
		}
	}
	code, out, _ = d.cli("audit", "-n", "5")
	if code != 0 || !strings.Contains(out, "auto_rollback") || !strings.Contains(out, "native breaker tripped") {
		t.Fatalf("cutover audit: exit %d\n%s", code, out)
	}
	if line := firstLine(out, "auto_rollback"); !strings.Contains(line, " a ") || !strings.Contains(line, "get_conversation 100% -> 0%") {
		t.Fatalf("auto_rollback audit line does not name instance a and the change: %q", line)
	}
}

func firstLine(s, substr string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}
