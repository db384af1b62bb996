package load

import (
	"context"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// openStats is what the open loop measured beyond the shared counters.
type openStats struct {
	arrivals int64   // scheduled inside the window
	lagP99MS float64 // p99 of (sent − scheduled) over the window's arrivals
}

// runOpen runs the open loop: arrivals on a fixed schedule (Poisson or uniform at Rate) from the
// start of the ramp, each from a user drawn at random from the population, whatever the target
// answers. Arrivals scheduled inside the window are recorded, their latency counted from the
// scheduled time; after the window the schedule goes on (so the load stays the same) until every
// window arrival has ended, each bounded by Timeout. It returns the number in flight when the
// window closed, the generator's CPU in the window and the schedule's figures.
func (r *runner) runOpen(ctx context.Context) (openAtEnd int64, windowCPU float64, st openStats) {
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	h := fnv.New64a()
	_, _ = h.Write([]byte(r.cfg.Salt))
	rng := rand.New(rand.NewPCG(h.Sum64(), 0x0be1)) // the schedule is a workload choice, not a routing decision
	wrote := make([]atomic.Bool, r.cfg.Users)
	lag := newHist()
	var window, all sync.WaitGroup
	var arrivals atomic.Int64
	stop := make(chan struct{})
	dispatched := make(chan struct{})

	go func() {
		defer close(dispatched)
		mean := float64(time.Second) / r.cfg.Rate
		next := time.Now()
		for {
			now := time.Now()
			// Send every arrival already due: at high rates one wake-up sends several.
			for !next.After(now) {
				r.arrive(reqCtx, next, rng, wrote, lag, &window, &all, &arrivals)
				gap := mean
				if r.cfg.Arrivals == ArrivalsPoisson {
					gap = rng.ExpFloat64() * mean
				}
				next = next.Add(time.Duration(gap))
			}
			t := time.NewTimer(next.Sub(now))
			select {
			case <-stop:
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()

	openAtEnd, windowCPU = r.window(ctx)
	// Wait for the window's arrivals (each ends within Timeout of being sent), with a bound in case
	// the generator sent some late; whatever is still open then is counted as unfinished below.
	drained := make(chan struct{})
	go func() {
		window.Wait()
		close(drained)
	}()
	bound := time.NewTimer(r.cfg.Timeout + 5*time.Second)
	select {
	case <-drained:
	case <-bound.C:
	case <-ctx.Done():
	}
	bound.Stop()
	close(stop)
	<-dispatched
	cancel()
	all.Wait()
	st.arrivals = arrivals.Load()
	st.lagP99MS = lag.stats().P99MS
	return openAtEnd, windowCPU, st
}

// arrive sends one arrival scheduled at due on its own goroutine (owned by all, and by window when
// due falls inside the window).
func (r *runner) arrive(ctx context.Context, due time.Time, rng *rand.Rand, wrote []atomic.Bool, lag *hist,
	window, all *sync.WaitGroup, arrivals *atomic.Int64) {
	user := rng.IntN(len(wrote))
	op := "chat"
	switch n := rng.IntN(100); {
	case n < r.cfg.ChatPct:
	case n < r.cfg.ChatPct+r.cfg.StreamPct:
		op = "stream"
	default:
		op = "get"
	}
	msg := messages[rng.IntN(len(messages))]
	inWindow := !due.Before(r.start) && due.Before(r.end)
	if inWindow {
		window.Add(1)
		arrivals.Add(1)
		lag.record(time.Since(due))
	}
	all.Add(1)
	go func() {
		defer all.Done()
		if inWindow {
			defer window.Done()
		}
		if op == "get" && !wrote[user].Load() {
			op = "chat" // a conversation must exist before it is read
		}
		cid := conversationID(r.cfg.Salt, user)
		out := r.exchange(ctx, op, cid, "bench-"+r.cfg.Salt+"-"+strconv.Itoa(user), msg, due)
		elapsed := time.Since(due)
		if out.kind == "" && op != "get" {
			wrote[user].Store(true)
		}
		if !inWindow {
			return
		}
		if ctx.Err() != nil && out.kind != "" {
			// Still open when the drain bound passed: neither answered nor failed by the target.
			r.unfinished.Add(1)
			r.fail("unfinished_after_drain")
			return
		}
		r.record(op, out, elapsed)
	}()
}
