package fleet

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// MaxShare is a share of 100 % in basis points.
const MaxShare = 10000

// Source says where a Snapshot's shares come from.
type Source string

const (
	// SourceStore is the fleet store's state.
	SourceStore Source = "store"
	// SourceFile is the config file's shares, used by an instance that could
	// not reach the store within its startup bound.
	SourceFile Source = "file"
)

// RouteState is the fleet's state of one route.
type RouteState struct {
	// Share is the native share in basis points (0-10000).
	Share int `json:"share_bp"`
	// FileShare is the config file's share last written to the store for
	// this route (by seeding or a file edit); see the package doc.
	FileShare int `json:"file_share_bp"`
	// Rollout is the rollout driver's state of the route, opaque here. Nil
	// means none.
	Rollout json.RawMessage `json:"rollout,omitempty"`
	// Changed describes the last change of the route.
	Changed ChangeInfo `json:"changed"`
}

// ChangeInfo says who changed a route last, from where and why.
type ChangeInfo struct {
	Generation uint64    `json:"generation"`
	Time       time.Time `json:"time"`
	Who        string    `json:"who"`
	Instance   string    `json:"instance"`
	Action     string    `json:"action"`
	Reason     string    `json:"reason,omitempty"`
}

func (r RouteState) clone() RouteState {
	r.Rollout = bytes.Clone(r.Rollout)
	return r
}

// document is the state as stored (the doc field of <prefix>state).
type document struct {
	Generation uint64 `json:"generation"`
	// Epoch names one life of the state: it is drawn anew whenever the state
	// is written into an empty or behind store (seed, restore), so two
	// lives that reached the same generation are told apart.
	Epoch string `json:"epoch"`
	// Seeded is true while the state is only what a config file seeded, by
	// an instance that had no state of its own: an instance that applied a
	// fleet state restores it over a seeded one (package doc).
	Seeded bool                  `json:"seeded,omitempty"`
	Routes map[string]RouteState `json:"routes"`
}

// newEpoch draws an epoch name.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Snapshot is one generation of the fleet state, immutable: every method
// returns copies, so a Snapshot may be shared between goroutines freely. The
// zero Snapshot is generation 0 with no routes.
type Snapshot struct {
	gen    uint64
	epoch  string
	seeded bool
	routes map[string]RouteState
	source Source
}

func newSnapshot(d document, src Source) *Snapshot {
	return &Snapshot{gen: d.Generation, epoch: d.Epoch, seeded: d.Seeded, routes: d.Routes, source: src}
}

// Generation is the store's generation this snapshot is (0 when the store
// was empty or the snapshot comes from the file).
func (s *Snapshot) Generation() uint64 { return s.gen }

// Source says whether the snapshot is the store's state or the file's.
func (s *Snapshot) Source() Source { return s.source }

// Route returns the state of the named route and whether the fleet knows it.
func (s *Snapshot) Route(name string) (RouteState, bool) {
	r, ok := s.routes[name]
	return r.clone(), ok
}

// Share is the route's share in basis points and whether the fleet knows the route.
func (s *Snapshot) Share(name string) (int, bool) {
	r, ok := s.routes[name]
	return r.Share, ok
}

// Shares returns every route's share in basis points.
func (s *Snapshot) Shares() map[string]int {
	out := make(map[string]int, len(s.routes))
	for name, r := range s.routes {
		out[name] = r.Share
	}
	return out
}

// RouteNames lists the routes the snapshot knows, sorted.
func (s *Snapshot) RouteNames() []string { return slices.Sorted(maps.Keys(s.routes)) }

// MarshalJSON renders {"generation", "source", "routes"}.
func (s *Snapshot) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Generation uint64                `json:"generation"`
		Source     Source                `json:"source"`
		Routes     map[string]RouteState `json:"routes"`
	}{s.gen, s.source, s.routes})
}

func (s *Snapshot) document() document {
	d := document{Generation: s.gen, Epoch: s.epoch, Seeded: s.seeded, Routes: make(map[string]RouteState, len(s.routes))}
	for k, v := range s.routes {
		d.Routes[k] = v.clone()
	}
	return d
}

// Edit is what a change does to one route; nil fields are left as they are.
type Edit struct {
	// Share is the new native share in basis points (0-10000).
	Share *int
	// FileShare records the config file's share (seeding and file edits).
	FileShare *int
	// Rollout replaces the route's rollout blob; it must be a JSON value, and
	// JSON null removes it.
	Rollout json.RawMessage
}

// Actor identifies who makes a change, for the audit log.
type Actor struct {
	// Who is the person or component ("cutover" for automatic changes).
	Who string `json:"who"`
	// Remote is the client address of an admin call. Zero means none.
	Remote string `json:"remote,omitempty"`
	// Action names the change: set, rollback, auto_rollback, seed,
	// config_file, restore, rollout... Required.
	Action string `json:"action"`
	// Reason is why, in words. Zero means none given.
	Reason string `json:"reason,omitempty"`
}

// Change is one atomic change of the fleet state.
type Change struct {
	// Edits are the route edits, by route name; a route the store does not
	// know is created.
	Edits map[string]Edit
	// Actor is who makes the change.
	Actor Actor
	// Fence, when not nil, writes the change only while the lease is still
	// held with its token (ErrFenced otherwise).
	Fence *Lease
}

// ErrInvalid is a change the store refuses whatever its state: a share out
// of range, a rollout blob that is not JSON, no action.
var ErrInvalid = errors.New("invalid fleet change")

func (c Change) validate() error {
	var errs []error
	if c.Actor.Action == "" {
		errs = append(errs, errors.New("actor: action is required"))
	}
	for _, name := range slices.Sorted(maps.Keys(c.Edits)) {
		e := c.Edits[name]
		if name == "" {
			errs = append(errs, errors.New("route name is empty"))
		}
		for field, p := range map[string]*int{"share": e.Share, "file_share": e.FileShare} {
			if p != nil && (*p < 0 || *p > MaxShare) {
				errs = append(errs, fmt.Errorf("route %q: %s %d bp is not in [0, %d]", name, field, *p, MaxShare))
			}
		}
		if e.Rollout != nil && !json.Valid(e.Rollout) {
			errs = append(errs, fmt.Errorf("route %q: rollout is not JSON", name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// RouteChange is what one change did to one route, as audited.
type RouteChange struct {
	Route string `json:"route"`
	// Old is the route before the change; nil when the route was new.
	Old *RouteValue `json:"old"`
	New RouteValue  `json:"new"`
}

// RouteValue is the audited part of a route's state.
type RouteValue struct {
	Share     int             `json:"share_bp"`
	FileShare int             `json:"file_share_bp"`
	Rollout   json.RawMessage `json:"rollout,omitempty"`
}

func valueOf(r RouteState) RouteValue {
	return RouteValue{Share: r.Share, FileShare: r.FileShare, Rollout: bytes.Clone(r.Rollout)}
}

// apply computes the state after ch from d (at generation gen), with info
// stamped on the routes it changes. It returns the route changes in name
// order; none means ch changes nothing.
func apply(d document, ch Change, info ChangeInfo) (document, []RouteChange) {
	next := document{Generation: info.Generation, Epoch: d.Epoch, Seeded: d.Seeded && ch.Actor.Action == "seed",
		Routes: make(map[string]RouteState, len(d.Routes)+len(ch.Edits))}
	if next.Epoch == "" {
		next.Epoch = newEpoch()
	}
	for k, v := range d.Routes {
		next.Routes[k] = v.clone()
	}
	var changes []RouteChange
	for _, name := range slices.Sorted(maps.Keys(ch.Edits)) {
		e := ch.Edits[name]
		old, known := d.Routes[name]
		r := old.clone()
		if e.Share != nil {
			r.Share = *e.Share
		}
		if e.FileShare != nil {
			r.FileShare = *e.FileShare
		}
		if e.Rollout != nil {
			if bytes.Equal(bytes.TrimSpace(e.Rollout), []byte("null")) {
				r.Rollout = nil
			} else {
				r.Rollout = bytes.Clone(e.Rollout)
			}
		}
		if known && r.Share == old.Share && r.FileShare == old.FileShare && bytes.Equal(r.Rollout, old.Rollout) {
			continue
		}
		rc := RouteChange{Route: name, New: valueOf(r)}
		if known {
			v := valueOf(old)
			rc.Old = &v
		}
		r.Changed = info
		next.Routes[name] = r
		changes = append(changes, rc)
	}
	return next, changes
}
