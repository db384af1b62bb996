package proxy

import (
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/testenv"
)

// Clients trickling their request bodies no longer pin gunicorn's sync
// workers: with more stalled uploads than workers (2), other legacy requests
// are answered at once, because the proxy reads a body whole before it dials
// legacy. Before, each stalled upload held a worker until
// listen.body_read_timeout (60s here), and /health waited behind them.
func TestSlowUploadsDoNotPinLegacyWorkers(t *testing.T) {
	legacy := testenv.StartLegacy(t, map[string]string{"GUNICORN_LOGLEVEL": "warning"})
	yaml := `
shutdown: {drain_delay: 1ms, timeout: 5s}
admin: {token: admin-secret}
listen: {body_read_timeout: 60s}
legacy: {url: ` + legacy.URL() + `}
routes:
  - name: health
    path: /health
  - name: chat
    path: /chat
    methods: [POST]
`
	ts := startServer(t, yaml, nil)
	c := newClient(t)
	timed := func() time.Duration {
		t.Helper()
		start := time.Now()
		resp, body := do(t, c, "GET", ts.URL+"/health", "", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /health: %d %s", resp.StatusCode, body)
		}
		return time.Since(start)
	}
	before := timed()

	const stalled = 5 // more than the workers
	head := "POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 102400\r\n\r\n"
	for i := range stalled {
		conn, err := net.Dial("tcp", ts.TrafficAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := io.WriteString(conn, head+`{"message": "`+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Every stalled upload is in the proxy before /health is asked.
	waitFor(t, func() bool {
		v, _ := strconv.Atoi(metricValue(t, c, ts.AdminURL, "cutover_in_flight_requests"))
		return v == stalled
	})
	during := timed() // fails at the client's 10s timeout if every worker is held
	t.Logf("GET /health through the proxy to gunicorn (2 workers): %v alone, %v with %d uploads stalled", before, during, stalled)
	if strings.Contains(legacy.Output(), "POST /chat") {
		t.Errorf("a stalled upload reached legacy:\n%s", legacy.Output())
	}
}
