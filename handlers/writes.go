package handlers

import (
	"context"
	"sync/atomic"
)

type writesKey struct{}

// TrackWrites returns a context for a request whose caller may run it
// again elsewhere (a proxy replaying a failed or timed-out native request on
// legacy), and the flag the handlers set, before they first write to the
// store on the request's behalf (saving a turn, deleting a conversation):
// from then on the request has committed state, so it must not be replayed
// (the turn would be saved twice) nor cut short without its answer. The
// flag is set before the write is issued, since one that fails or times out
// may still have been applied. Safe for concurrent use.
func TrackWrites(ctx context.Context) (context.Context, *atomic.Bool) {
	f := new(atomic.Bool)
	return context.WithValue(ctx, writesKey{}, f), f
}

// noteWrite marks ctx's request as having (maybe) written to the store.
func noteWrite(ctx context.Context) {
	if f, ok := ctx.Value(writesKey{}).(*atomic.Bool); ok {
		f.Store(true)
	}
}
