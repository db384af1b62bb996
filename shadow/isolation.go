package shadow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotIsolated is returned by CheckIsolated when the isolated Redis is the
// production one (the same server and database under another name).
var ErrNotIsolated = errors.New("the isolated redis is the production redis: a key written to it is visible in production")

// CanaryPrefix starts the name of the key CheckIsolated writes.
const CanaryPrefix = "cutover:isolation-canary:"

// CheckIsolated proves that iso (the isolated Redis shadowed writes go to,
// and RedisCopier's Dest) is not prod (the production Redis): it writes a
// canary key of random name to iso (expiring in a minute, so a crash leaves
// nothing behind), checks that prod does not see it, and deletes it. It
// returns ErrNotIsolated when prod sees the key, and an error naming the side
// when either cannot be reached: isolation that cannot be proven is not
// assumed. It proves a separate keyspace, so another database of the same
// server passes. A proxy calls it once at start, before any shadow-safe route
// runs.
func CheckIsolated(ctx context.Context, prod, iso redis.Cmdable) error {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("isolation canary: %w", err)
	}
	key := CanaryPrefix + hex.EncodeToString(b[:])
	ok, err := iso.SetNX(ctx, key, "1", time.Minute).Result()
	if err != nil {
		return fmt.Errorf("isolation canary: write to the isolated redis: %w", err)
	}
	if !ok {
		return fmt.Errorf("isolation canary: key %s already exists in the isolated redis", key)
	}
	defer iso.Del(context.WithoutCancel(ctx), key)
	n, err := prod.Exists(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("isolation canary: read from the production redis: %w", err)
	}
	if n != 0 {
		return ErrNotIsolated
	}
	return nil
}
