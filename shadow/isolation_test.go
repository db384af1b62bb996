package shadow

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cutover/cutover/internal/testenv"
)

func TestCheckIsolated(t *testing.T) {
	ctx := context.Background()
	a, b := testenv.StartRedis(t), testenv.StartRedis(t)
	client := func(addr string, db int) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: addr, DB: db, MaxRetries: -1})
		t.Cleanup(func() { c.Close() })
		return c
	}
	port := a.Addr()[strings.LastIndexByte(a.Addr(), ':'):]
	tests := []struct {
		name      string
		prod, iso *redis.Client
		want      error
	}{
		{"two servers", client(a.Addr(), 0), client(b.Addr(), 0), nil},
		{"one server under two names", client("127.0.0.1"+port, 0), client("localhost"+port, 0), ErrNotIsolated},
		{"one server, the same client", client(a.Addr(), 0), client(a.Addr(), 0), ErrNotIsolated},
		{"another database of one server", client(a.Addr(), 0), client(a.Addr(), 1), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckIsolated(ctx, tt.prod, tt.iso); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("CheckIsolated = %v, want %v", err, tt.want)
			}
			// The canary never stays behind, on either side.
			for _, c := range []*redis.Client{tt.prod, tt.iso} {
				keys, err := c.Keys(ctx, CanaryPrefix+"*").Result()
				if err != nil || len(keys) != 0 {
					t.Errorf("canary keys left: %q %v", keys, err)
				}
			}
		})
	}

	// Isolation that cannot be proven is refused: either side unreachable.
	dead := client("127.0.0.1:1", 0)
	if err := CheckIsolated(ctx, client(a.Addr(), 0), dead); err == nil || !strings.Contains(err.Error(), "isolated redis") {
		t.Errorf("isolated redis down: %v", err)
	}
	if err := CheckIsolated(ctx, dead, client(b.Addr(), 0)); err == nil || !strings.Contains(err.Error(), "production redis") {
		t.Errorf("production redis down: %v", err)
	}
}
