package shadow

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNoFleet is returned by Mirror.FleetSummary and Mirror.ResetFleet when
// the Mirror has no FleetTally (no Redis store): its summary is the process's.
var ErrNoFleet = errors.New("no fleet summary: the diff store has no Redis")

// FleetTally sums the summary of a fleet of proxies in one Redis hash next to
// the diff stream, so GET /admin/shadow/summary covers the fleet as GET
// /admin/diffs does. A Mirror with a FleetTally adds the counts it made since
// its last flush to the hash every Interval and when it closes, with one
// MULTI of HINCRBYs from a goroutine of its own: the request path and the
// shadow workers never wait on Redis. The hash outlives any one process
// (a restarted instance adds to it); Mirror.ResetFleet deletes it.
//
// A failed flush is logged and counted (cutover_shadow_fleet_flush_failures_total)
// and its counts are retried with the next one; a flush whose reply is lost
// after Redis applied it is counted twice. Counts an instance made in its
// last Interval before a reset elsewhere land after the reset.
//
// Fields are "<route>|<counter>", counter one of compared, matched,
// encoding_only, semantic, noise, errors or skipped/<reason>.
type FleetTally struct {
	// Client is the Redis holding the hash. Required.
	Client redis.Cmdable
	// Key is the hash key. Empty means "cutover:diffs:summary", the key cutover
	// uses beside the default diff stream (<redis_stream>:summary).
	Key string
	// Interval is how often a Mirror flushes its new counts. Zero means 1s.
	Interval time.Duration
	// Timeout bounds one flush, read or reset. Zero means 2s (as a diff
	// store write).
	Timeout time.Duration
}

func (f *FleetTally) key() string {
	if f.Key == "" {
		return "cutover:diffs:summary"
	}
	return f.Key
}

func (f *FleetTally) interval() time.Duration {
	if f.Interval <= 0 {
		return time.Second
	}
	return f.Interval
}

func (f *FleetTally) timeout() time.Duration {
	if f.Timeout <= 0 {
		return 2 * time.Second
	}
	return f.Timeout
}

// counters lists a summary's counters by hash field suffix.
func counters(s *RouteSummary) []struct {
	name string
	n    *int64
} {
	return []struct {
		name string
		n    *int64
	}{
		{"compared", &s.Compared}, {"matched", &s.Matched}, {"encoding_only", &s.EncodingOnly},
		{"semantic", &s.Semantic}, {"noise", &s.Noise}, {"errors", &s.Errors},
	}
}

// add increments the hash by the counts in now that prev (what was flushed
// before, by route) does not have yet. It reports whether there was any.
func (f *FleetTally) add(ctx context.Context, now []RouteSummary, prev map[string]RouteSummary) (bool, error) {
	type incr struct {
		field string
		n     int64
	}
	var incs []incr
	for i := range now {
		cur, old := &now[i], prev[now[i].Route]
		oc := counters(&old)
		for j, c := range counters(cur) {
			if d := *c.n - *oc[j].n; d != 0 {
				incs = append(incs, incr{cur.Route + "|" + c.name, d})
			}
		}
		for reason, n := range cur.Skipped {
			if d := n - old.Skipped[reason]; d != 0 {
				incs = append(incs, incr{cur.Route + "|skipped/" + reason, d})
			}
		}
	}
	if len(incs) == 0 {
		return false, nil
	}
	_, err := f.Client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, in := range incs {
			p.HIncrBy(ctx, f.key(), in.field, in.n)
		}
		return nil
	})
	if err != nil {
		return true, fmt.Errorf("hincrby %s: %w", f.key(), err)
	}
	return true, nil
}

// read returns the fleet's tallies, sorted by route.
func (f *FleetTally) read(ctx context.Context) ([]RouteSummary, error) {
	h, err := f.Client.HGetAll(ctx, f.key()).Result()
	if err != nil {
		return nil, fmt.Errorf("hgetall %s: %w", f.key(), err)
	}
	byRoute := map[string]*RouteSummary{}
	for field, v := range h {
		i := strings.LastIndexByte(field, '|')
		n, err := strconv.ParseInt(v, 10, 64)
		if i < 0 || err != nil {
			continue
		}
		route, name := field[:i], field[i+1:]
		s := byRoute[route]
		if s == nil {
			s = &RouteSummary{Route: route, Skipped: map[string]int64{}}
			byRoute[route] = s
		}
		if reason, ok := strings.CutPrefix(name, "skipped/"); ok {
			s.Skipped[reason] = n
			continue
		}
		for _, c := range counters(s) {
			if c.name == name {
				*c.n = n
			}
		}
	}
	out := make([]RouteSummary, 0, len(byRoute))
	for _, s := range byRoute {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Route < out[j].Route })
	return out, nil
}
