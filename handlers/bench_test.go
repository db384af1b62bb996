package handlers

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// The benchmarks drive the App through a real HTTP server, the in-process
// stub (no latency) and the shared Redis, so their CPU and allocation
// profiles show the per-request cost of the native path:
//
//	go test ./handlers/ -run '^$' -bench Chat -benchmem -cpuprofile cpu.out
//
// Each parallel client keeps its own conversation, so history grows to
// HistoryTurns pairs as in bench/.
func benchChat(b *testing.B, path string) {
	h := newHarness(b, harnessOpts{})
	transport := &http.Transport{MaxIdleConnsPerHost: 1024}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	var seq atomic.Int64
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		conv := fmt.Sprintf("bench-%d", seq.Add(1))
		for i := 0; pb.Next(); i++ {
			body := fmt.Sprintf(`{"message": "Hello <world> & café %d, tell me something about streams", "conversation_id": %q}`, i, conv)
			resp, err := client.Post(h.srv.URL+path, "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			if resp.StatusCode != http.StatusOK {
				b.Errorf("%s: status %d", path, resp.StatusCode)
			}
			if path == "/chat/stream" {
				sc := bufio.NewScanner(resp.Body)
				done := false
				for sc.Scan() {
					if sc.Text() == "event: done" {
						done = true
					}
				}
				if !done {
					b.Errorf("%s: no done event", path)
				}
			} else {
				_, _ = io.Copy(io.Discard, resp.Body)
			}
			resp.Body.Close()
		}
	})
}

func BenchmarkChat(b *testing.B)       { benchChat(b, "/chat") }
func BenchmarkChatStream(b *testing.B) { benchChat(b, "/chat/stream") }
