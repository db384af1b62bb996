package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Counters keep the windowed measurements of the fleet: every instance adds
// its counts to the window of each route under rollout, and the driver
// reads the sum. They also keep each route's last evaluation, so any
// instance can show the gate values.
type Counters interface {
	// Add adds w to the route's window.
	Add(ctx context.Context, route string, window uint64, w Window) error
	// Read returns the sum of what every instance added to the window.
	Read(ctx context.Context, route string, window uint64) (Window, error)
	// SetLast records the route's last evaluation.
	SetLast(ctx context.Context, route string, e Evaluation) error
	// Last returns the route's last evaluation (zero when none).
	Last(ctx context.Context, route string) (Evaluation, error)
}

// Evaluation is one evaluation as shown between history entries.
type Evaluation struct {
	Time     time.Time   `json:"time"`
	Window   uint64      `json:"window"`
	Step     int         `json:"step"`
	Measured Window      `json:"measured"`
	Decision Decision    `json:"decision"`
	Gates    []GateValue `json:"gates,omitempty"`
}

// RedisCounters are Counters in Redis (the fleet store): a hash per route
// and window, "<prefix>rollout:<route>:w<window>", whose fields are added
// to with HINCRBY, and expire after TTL.
type RedisCounters struct {
	// Client is the Redis client. Required.
	Client redis.Cmdable
	// Prefix starts every key. Zero means "cutover:".
	Prefix string
	// TTL is how long a window's counts are kept after their last change.
	// Zero means 24h.
	TTL time.Duration
}

var _ Counters = (*RedisCounters)(nil)

func (c *RedisCounters) key(route string, suffix string) string {
	p := c.Prefix
	if p == "" {
		p = "cutover:"
	}
	return p + "rollout:" + route + ":" + suffix
}

func (c *RedisCounters) ttl() time.Duration {
	if c.TTL <= 0 {
		return 24 * time.Hour
	}
	return c.TTL
}

// fields flattens w into hash fields, zero ones left out.
func fields(w Window) map[string]int64 {
	f := map[string]int64{}
	put := func(k string, v int64) {
		if v != 0 {
			f[k] = v
		}
	}
	for side, c := range map[string]Counts{"l": w.Legacy, "n": w.Native} {
		put(side+".req", c.Requests)
		put(side+".err", c.Errors)
		for i, v := range c.Latency {
			put(side+".lat."+strconv.Itoa(i), v)
		}
	}
	put("cmp", w.Compared)
	put("mis", w.Mismatched)
	put("trips", w.NativeTrips)
	return f
}

// Add implements Counters with one transaction of HINCRBY and an EXPIRE.
func (c *RedisCounters) Add(ctx context.Context, route string, window uint64, w Window) error {
	f := fields(w)
	if len(f) == 0 {
		return nil
	}
	key := c.key(route, "w"+strconv.FormatUint(window, 10))
	_, err := c.Client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for k, v := range f {
			p.HIncrBy(ctx, key, k, v)
		}
		p.Expire(ctx, key, c.ttl())
		return nil
	})
	if err != nil {
		return fmt.Errorf("add rollout counts of %q: %w", route, err)
	}
	return nil
}

// Read implements Counters.
func (c *RedisCounters) Read(ctx context.Context, route string, window uint64) (Window, error) {
	m, err := c.Client.HGetAll(ctx, c.key(route, "w"+strconv.FormatUint(window, 10))).Result()
	if err != nil {
		return Window{}, fmt.Errorf("read rollout counts of %q: %w", route, err)
	}
	return parseFields(m)
}

func parseFields(m map[string]string) (Window, error) {
	var w Window
	var errs []error
	for k, s := range m {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %s: %w", k, err))
			continue
		}
		side, rest, _ := strings.Cut(k, ".")
		var c *Counts
		switch side {
		case "l":
			c = &w.Legacy
		case "n":
			c = &w.Native
		}
		switch {
		case k == "cmp":
			w.Compared = v
		case k == "mis":
			w.Mismatched = v
		case k == "trips":
			w.NativeTrips = v
		case c != nil && rest == "req":
			c.Requests = v
		case c != nil && rest == "err":
			c.Errors = v
		case c != nil && strings.HasPrefix(rest, "lat."):
			i, err := strconv.Atoi(rest[4:])
			if err != nil || i < 0 || i > len(LatencyBounds) {
				errs = append(errs, fmt.Errorf("field %s: no such bucket", k))
				continue
			}
			if c.Latency == nil {
				c.Latency = make([]int64, len(LatencyBounds)+1)
			}
			c.Latency[i] = v
		}
	}
	return w, errors.Join(errs...)
}

// SetLast implements Counters.
func (c *RedisCounters) SetLast(ctx context.Context, route string, e Evaluation) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := c.Client.Set(ctx, c.key(route, "last"), b, c.ttl()).Err(); err != nil {
		return fmt.Errorf("record last evaluation of %q: %w", route, err)
	}
	return nil
}

// Last implements Counters.
func (c *RedisCounters) Last(ctx context.Context, route string) (Evaluation, error) {
	var e Evaluation
	b, err := c.Client.Get(ctx, c.key(route, "last")).Bytes()
	if errors.Is(err, redis.Nil) {
		return e, nil
	}
	if err != nil {
		return e, fmt.Errorf("read last evaluation of %q: %w", route, err)
	}
	return e, json.Unmarshal(b, &e)
}

// MemoryCounters are Counters of a single instance, in memory; the zero
// value is ready. Only the latest window of each route is kept.
type MemoryCounters struct {
	mu      sync.Mutex
	windows map[string]memWindow
	last    map[string]Evaluation
}

type memWindow struct {
	id uint64
	w  Window
}

var _ Counters = (*MemoryCounters)(nil)

// Add implements Counters.
func (c *MemoryCounters) Add(_ context.Context, route string, window uint64, w Window) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.windows == nil {
		c.windows = map[string]memWindow{}
	}
	cur := c.windows[route]
	if cur.id != window {
		cur = memWindow{id: window}
	}
	cur.w.Add(w)
	c.windows[route] = cur
	return nil
}

// Read implements Counters.
func (c *MemoryCounters) Read(_ context.Context, route string, window uint64) (Window, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.windows[route]; cur.id == window {
		var out Window
		out.Add(cur.w)
		return out, nil
	}
	return Window{}, nil
}

// SetLast implements Counters.
func (c *MemoryCounters) SetLast(_ context.Context, route string, e Evaluation) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]Evaluation{}
	}
	c.last[route] = e
	return nil
}

// Last implements Counters.
func (c *MemoryCounters) Last(_ context.Context, route string) (Evaluation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last[route], nil
}
