package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cutover/cutover/internal/fleet"
)

// LeaseName is the fleet lease the driver holds.
const LeaseName = "rollout-driver"

// FleetStore is the Store of a fleet: the rollout states are the routes'
// Rollout blobs in the fleet state, written with their shares in one
// change (audited), and the driver's writes are fenced by the fleet lease
// LeaseName.
type FleetStore struct {
	// Fleet is the fleet store. Required.
	Fleet *fleet.Store
	// LeaseTTL is the lease's time to live; the driver renews it every
	// round, so its interval must be well below it. Zero means 15s.
	LeaseTTL time.Duration

	mu    sync.Mutex
	lease *fleet.Lease
}

var _ Store = (*FleetStore)(nil)

// Lead implements Store: it renews the lease it holds, or tries to acquire
// it when it holds none (or lost it).
func (s *FleetStore) Lead(ctx context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease != nil {
		err := s.lease.Renew(ctx)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, fleet.ErrLeaseLost) {
			return false, err
		}
		s.lease = nil
	}
	ttl := s.LeaseTTL
	if ttl <= 0 {
		ttl = 15 * time.Second
	}
	l, err := s.Fleet.Acquire(ctx, LeaseName, ttl)
	if errors.Is(err, fleet.ErrLeaseHeld) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	s.lease = l
	return true, nil
}

// Release gives the lease up (on shutdown), so another instance takes over
// at once rather than after the TTL.
func (s *FleetStore) Release(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease != nil {
		_ = s.lease.Release(ctx)
		s.lease = nil
	}
}

// Load implements Store from the snapshot the instance applies.
func (s *FleetStore) Load(context.Context) (map[string]State, uint64, error) {
	snap := s.Fleet.Current()
	if snap == nil {
		return nil, 0, errors.New("fleet state not applied yet")
	}
	return States(snap), snap.Generation(), nil
}

// States decodes the rollout state of every route of snap that has one; a
// blob that cannot be decoded is left out.
func States(snap *fleet.Snapshot) map[string]State {
	out := map[string]State{}
	if snap == nil {
		return out
	}
	for _, name := range snap.RouteNames() {
		r, _ := snap.Route(name)
		if len(r.Rollout) == 0 {
			continue
		}
		var st State
		if json.Unmarshal(r.Rollout, &st) == nil {
			out[name] = st
		}
	}
	return out
}

// Save implements Store with one fleet change of the route's share and
// rollout blob.
func (s *FleetStore) Save(ctx context.Context, gen uint64, st State, actor Actor, fenced bool) (uint64, error) {
	ch, err := Edit(st)
	if err != nil {
		return 0, err
	}
	change := fleet.Change{Edits: map[string]fleet.Edit{st.Route: ch},
		Actor: fleet.Actor{Who: actor.Who, Remote: actor.Remote, Action: actor.Action, Reason: actor.Reason}}
	if fenced {
		s.mu.Lock()
		change.Fence = s.lease
		s.mu.Unlock()
		if change.Fence == nil {
			return 0, fmt.Errorf("rollout driver: %w", fleet.ErrFenced)
		}
	}
	snap, err := s.Fleet.Apply(ctx, gen, change)
	if errors.Is(err, fleet.ErrConflict) {
		s.awaitNewer(ctx, gen)
	}
	if err != nil {
		return 0, err
	}
	return snap.Generation(), nil
}

// awaitNewer waits (at most a second) until the instance applies a
// generation after gen, so a change re-decided after a conflict is decided
// on the state that won.
func (s *FleetStore) awaitNewer(ctx context.Context, gen uint64) {
	s.Fleet.Poke()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if cur := s.Fleet.Current(); cur != nil && cur.Generation() > gen {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Edit is the fleet edit that writes st and its share.
func Edit(st State) (fleet.Edit, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return fleet.Edit{}, fmt.Errorf("encode rollout of %q: %w", st.Route, err)
	}
	share := st.Share()
	return fleet.Edit{Share: &share, Rollout: b}, nil
}
