package handlers

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/bedrockstub"
)

func TestZZMemProbe(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PROBE_N"))
	if n == 0 {
		t.Skip()
	}
	runtime.MemProfileRate = 512
	path := os.Getenv("PROBE_PATH")
	h := newHarness(t, harnessOpts{stub: bedrockstub.Options{TTFT: 300 * time.Millisecond, TokensPerSecond: 1}})
	addr := h.srv.Listener.Addr().String()
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	g0 := runtime.NumGoroutine()
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf(`{"message": "hello %d", "conversation_id": "probe-%d"}`, i, i)
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
		conns = append(conns, c)
	}
	if path == "/chat/stream" {
		for _, c := range conns { // wait for the first delta on each
			br := bufio.NewReader(c)
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				if l == "event: delta\n" {
					break
				}
			}
		}
	} else {
		time.Sleep(3 * time.Second)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	g1 := runtime.NumGoroutine()
	per := func(a, b uint64) float64 { return float64(int64(b)-int64(a)) / float64(n) / 1024 }
	t.Logf("n=%d goroutines +%.2f/req heapInuse %.1f KiB/req stackInuse %.1f KiB/req heapSys %.1f sys %.1f",
		n, float64(g1-g0)/float64(n), per(ms0.HeapInuse, ms1.HeapInuse), per(ms0.StackInuse, ms1.StackInuse), per(ms0.HeapSys, ms1.HeapSys), per(ms0.Sys, ms1.Sys))
	if os.Getenv("PROBE_PANIC") != "" {
		time.Sleep(time.Minute)
	}
	f, _ := os.Create(os.Getenv("PROBE_OUT"))
	_ = pprof.Lookup("heap").WriteTo(f, 0)
	f.Close()
	g, _ := os.Create(os.Getenv("PROBE_OUT") + ".goroutines")
	_ = pprof.Lookup("goroutine").WriteTo(g, 1)
	g.Close()
	for _, c := range conns {
		c.Close()
	}
}
