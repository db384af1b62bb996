package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOpenLoopAccountsForEveryArrival(t *testing.T) {
	app := newFake(5*time.Millisecond, goodStream)
	srv := httptest.NewServer(app)
	defer srv.Close()
	res, err := Run(context.Background(), Config{
		BaseURL: srv.URL, Mode: ModeOpen, Rate: 200, Arrivals: ArrivalsUniform,
		Ramp: 100 * time.Millisecond, Duration: time.Second, TTFT: time.Millisecond, TPS: 1000, Salt: "open",
	})
	if err != nil {
		t.Fatal(err)
	}
	// Uniform arrivals: the schedule puts 200 in a 1 s window whatever the machine's speed.
	if res.Arrivals < 199 || res.Arrivals > 201 {
		t.Errorf("arrivals in the window = %d, want 200", res.Arrivals)
	}
	if res.OK+res.Errors != res.Arrivals {
		t.Errorf("ok %d + errors %d != arrivals %d: every arrival of the window must be answered, failed or timed out", res.OK, res.Errors, res.Arrivals)
	}
	if res.Errors != 0 {
		t.Errorf("errors %d (%v), want none", res.Errors, res.Kinds)
	}
	if res.Users != 2200 || res.Mode != ModeOpen {
		t.Errorf("users %d mode %s, want the population rate × 11 = 2200 and mode open", res.Users, res.Mode)
	}
	if res.Chat.Count == 0 || res.StreamLast.Count == 0 || res.Get.Count == 0 {
		t.Errorf("mix chat %d stream %d get %d: want all three", res.Chat.Count, res.StreamLast.Count, res.Get.Count)
	}
	if res.OfferedRPS <= 0 || res.WindowCPUSeconds <= 0 {
		t.Errorf("offered %.1f rps, generator CPU %.3f s: want both measured", res.OfferedRPS, res.WindowCPUSeconds)
	}
	app.mu.Lock()
	defer app.mu.Unlock()
	if len(app.users) < 50 {
		t.Errorf("saw %d identities: arrivals come from a population of users", len(app.users))
	}
}

// concurrency counts the requests a handler holds at once, from their arrival to the first byte
// of their answer. (Counting to the handler's return would overcount: the client reads the whole
// answer, and may reuse or replace the connection, before the handler's deferred work has run.)
type concurrency struct {
	mu       sync.Mutex
	now, max int
	next     http.Handler
}

func (c *concurrency) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.now++
	c.max = max(c.max, c.now)
	c.mu.Unlock()
	fw := &firstByte{ResponseWriter: w, done: func() {
		c.mu.Lock()
		c.now--
		c.mu.Unlock()
	}}
	defer fw.answered()
	c.next.ServeHTTP(fw, r)
}

// firstByte calls done once, when the answer starts (or the handler returns without one).
type firstByte struct {
	http.ResponseWriter
	once sync.Once
	done func()
}

func (f *firstByte) answered() { f.once.Do(f.done) }

func (f *firstByte) WriteHeader(code int) {
	f.answered()
	f.ResponseWriter.WriteHeader(code)
}

func (f *firstByte) Write(p []byte) (int, error) {
	f.answered()
	return f.ResponseWriter.Write(p)
}

func (f *firstByte) Flush() {
	f.answered()
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

func TestOpenLoopPoolBoundsConnections(t *testing.T) {
	// 100 arrivals a second of 30 ms each need 3 connections: the pool of 2 makes them wait.
	c := &concurrency{next: newFake(30*time.Millisecond, goodStream)}
	srv := httptest.NewServer(c)
	defer srv.Close()
	res, err := Run(context.Background(), Config{
		BaseURL: srv.URL, Mode: ModeOpen, Rate: 100, Pool: 2, Arrivals: ArrivalsUniform,
		Duration: 500 * time.Millisecond, TTFT: time.Millisecond, TPS: 1000, Salt: "pool",
	})
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max > 2 || c.max == 0 {
		t.Errorf("the target saw %d requests at once, want at most the pool of 2", c.max)
	}
	if res.OK+res.Errors != res.Arrivals || res.Arrivals == 0 {
		t.Errorf("ok %d + errors %d vs arrivals %d", res.OK, res.Errors, res.Arrivals)
	}
}

func TestOpenLoopConfig(t *testing.T) {
	tests := []struct {
		name string
		give Config
		want string // substring of the error
	}{
		{"no rate", Config{Mode: ModeOpen, Duration: time.Second}, "rate 0 is not a positive number"},
		{"unknown arrivals", Config{Mode: ModeOpen, Rate: 10, Arrivals: "bursty", Duration: time.Second}, `arrivals "bursty" is neither`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), tt.give)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run error = %v, want %q", err, tt.want)
			}
		})
	}
	c := Config{Mode: ModeOpen, Rate: 2.5, Duration: time.Second}
	if err := c.defaults(); err != nil || c.Users != 28 || c.Pool != 1024 || c.Arrivals != ArrivalsPoisson {
		t.Errorf("defaults = %+v, %v; want 28 users, a pool of 1024, Poisson arrivals", c, err)
	}
}
