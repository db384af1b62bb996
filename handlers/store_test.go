package handlers

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRedisPoolExhausted checks that a request finding no free Redis
// connection within the pool timeout gets the legacy 503, and that the pool
// serves again once a connection is free.
func TestRedisPoolExhausted(t *testing.T) {
	h := newHarness(t, harnessOpts{pool: &RedisOptions{PoolSize: 1, PoolTimeout: 100 * time.Millisecond}})
	own := h.app.store.(*redis.Client)
	if got := own.Options().PoolSize; got != 1 {
		t.Fatalf("pool size %d, want 1", got)
	}

	// Hold the only connection with a blocking pop until the key is pushed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	held := make(chan error, 1)
	go func() { held <- own.BLPop(ctx, 5*time.Second, "pool-test:release").Err() }()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if st := own.PoolStats(); st.TotalConns == 1 && st.IdleConns == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the blocking pop never took the connection")
		}
		time.Sleep(5 * time.Millisecond)
	}

	r := h.postJSON(t, "/chat", `{"message": "hi", "conversation_id": "pool"}`)
	wantStatusBody(t, r, 503, "{\"code\":\"store_unavailable\",\"error\":\"conversation store unavailable\"}\n")
	r = h.do(t, "GET", "/conversations/pool", nil, "")
	wantStatusBody(t, r, 503, "{\"code\":\"store_unavailable\",\"error\":\"conversation store unavailable\"}\n")

	if err := h.rdb.RPush(context.Background(), "pool-test:release", "go").Err(); err != nil {
		t.Fatal(err)
	}
	if err := <-held; err != nil {
		t.Fatalf("blocking pop: %v", err)
	}
	r = h.postJSON(t, "/chat", `{"message": "hi", "conversation_id": "pool"}`)
	if r.status != 200 {
		t.Errorf("after the connection was freed: %d %q", r.status, r.body)
	}
}

func TestNewRedisOptions(t *testing.T) {
	c, err := NewRedis(RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if o := c.Options(); o.PoolSize != 256 || o.PoolTimeout != 6*time.Second || o.Addr != "127.0.0.1:6379" || o.ReadBufferSize != 4096 {
		t.Errorf("defaults: pool %d, timeout %s, addr %s, read buffer %d", o.PoolSize, o.PoolTimeout, o.Addr, o.ReadBufferSize)
	}
	if _, err := NewRedis(RedisOptions{PoolSize: -1}); err == nil {
		t.Error("a negative pool size was accepted")
	}
}
