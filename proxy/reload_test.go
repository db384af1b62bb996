package proxy

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// writeAtomic replaces path like an editor or a ConfigMap update does.
func writeConfigAtomic(t *testing.T, path, data string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".next.yaml")
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// A config change, valid or not, while a bounded load runs: every request
// succeeds, a valid file is swapped in, an invalid one is rejected and
// counted and the last good config stays.
func TestReloadUnderLoad(t *testing.T) {
	legacy := newBackend(t, echoHandler("legacy"))
	base := baseConfig(legacy.URL)
	withShare := func(pct string) string {
		return strings.Replace(base, "    path: /models\n", "    path: /models\n    native_percent: "+pct+"\n", 1)
	}
	ts := startServer(t, withShare("10"), newFakeNative("models"))
	c := newClient(t)

	var (
		stop     atomic.Bool
		total    atomic.Int64
		failures atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	const workers, maxPerWorker = 8, 4000
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < maxPerWorker && !stop.Load(); i++ {
				req, _ := http.NewRequest("GET", ts.URL+"/models", nil)
				req.Header.Set("X-User-Id", "w"+strconv.Itoa(w)+"-"+strconv.Itoa(i))
				resp, err := c.Do(req)
				total.Add(1)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d", resp.StatusCode))
				}
			}
		}()
	}

	reloads := func(result string) int {
		v, _ := strconv.Atoi(metricValue(t, c, ts.AdminURL, `cutover_config_reloads_total{result="`+result+`"}`))
		return v
	}
	steps := []struct {
		name      string
		data      string
		valid     bool
		wantShare int
	}{
		{"valid: 25 %", withShare("25"), true, 2500},
		{"invalid: share out of range", withShare("150"), false, 2500},
		{"invalid: not YAML", "routes: [\n  - {name: x", false, 2500},
		{"invalid: share on a route without a native handler", strings.Replace(withShare("60"), "    path: /health\n", "    path: /health\n    native_percent: 5\n", 1), false, 2500},
		{"invalid: unknown key", withShare("70") + "bogus: 1\n", false, 2500},
		{"valid: 80 %", withShare("80"), true, 8000},
		{"valid: 0.5 % with a different stickiness", withShare("0.5") + "stickiness: [header:X-Other, client_ip]\n", true, 50},
	}
	for _, st := range steps {
		okBefore, failBefore := reloads("success"), reloads("failure")
		writeConfigAtomic(t, ts.File, st.data)
		waitFor(t, func() bool {
			if st.valid {
				return reloads("success") > okBefore
			}
			return reloads("failure") > failBefore
		})
		if got := ts.Router.Config().Route("models").Share; got != st.wantShare {
			t.Errorf("%s: share in force %d, want %d", st.name, got, st.wantShare)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during reloads; first: %v", n, total.Load(), firstErr.Load())
	}
	if total.Load() < int64(len(steps)) {
		t.Errorf("only %d requests ran", total.Load())
	}
	if !strings.Contains(ts.Logs.String(), "config reload rejected") {
		t.Error("rejected reloads were not logged")
	}
	t.Logf("%d requests across %d reloads, none failed", total.Load(), len(steps))
}
