package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cutover/cutover/internal/fleet"
)

// ErrNone is an action on a route that has no rollout (HTTP 404).
var ErrNone = errors.New("no rollout for this route")

// conflictRetries bounds the re-decisions of an operator's change when
// another change lands in between.
const conflictRetries = 5

// Begin starts a rollout of route with plan through store, unless one is
// active (ErrState); a finished one (completed, rolled back, aborted) is
// replaced. Its first step's share is applied with it.
func Begin(ctx context.Context, store Store, route string, plan Plan, actor Actor, now time.Time) (State, error) {
	return change(ctx, store, route, actor, func(cur State, ok bool) (State, error) {
		if ok && (cur.Status.Active() || cur.Status == StatusPaused) {
			return State{}, fmt.Errorf("start: a %s rollout of %q exists (abort it first): %w", cur.Status, route, ErrState)
		}
		return Start(route, plan, actor.Who, actor.Reason, now)
	})
}

// Act makes an operator's action on route's rollout through store.
func Act(ctx context.Context, store Store, route string, a Action, actor Actor, now time.Time) (State, error) {
	return change(ctx, store, route, actor, func(cur State, ok bool) (State, error) {
		if !ok {
			return State{}, fmt.Errorf("route %q: %w", route, ErrNone)
		}
		return Do(cur, a, actor.Who, actor.Reason, now)
	})
}

func change(ctx context.Context, store Store, route string, actor Actor, f func(State, bool) (State, error)) (State, error) {
	var err error
	for range conflictRetries {
		states, gen, lerr := store.Load(ctx)
		if lerr != nil {
			return State{}, lerr
		}
		cur, ok := states[route]
		next, ferr := f(cur, ok)
		if ferr != nil {
			return State{}, ferr
		}
		if _, err = store.Save(ctx, gen, next, actor, false); !errors.Is(err, fleet.ErrConflict) {
			return next, err
		}
	}
	return State{}, err
}
