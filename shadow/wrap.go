package shadow

import (
	"net/http"
	"slices"
)

// Plan is the proxy's shadow decision for one request, returned by the plan
// func given to Wrap.
type Plan struct {
	// Route names the route (metric label, store key, sampling salt).
	Route string
	// RateBP is the shadow share in basis points (0..10000).
	RateBP int
	// Key is the sampling key (the stickiness key). Empty means the method
	// and request URI, so a given request is still sampled deterministically.
	Key string
	// PrimarySide is the side serving the client (SideLegacy or SideNative).
	PrimarySide string
	// Target is the other side. Nil means no shadow for this request.
	Target Target
	// ShadowSafe allows unsafe methods: the Target must then write nowhere
	// (a dry-run native handler, or the isolated legacy target).
	ShadowSafe bool
	// Methods, when non-nil, lists the only methods shadowed (unsafe ones
	// still need ShadowSafe). Nil means every safe method, plus every method
	// when ShadowSafe.
	Methods []string
	// Copier, when set (shadow-safe write routes), snapshots the state the
	// shadow reads before the primary runs.
	Copier StateCopier
	// ModelCall marks a route whose shadow invokes the model.
	ModelCall bool
	// Replay and NoiseRateBP: a NoiseRateBP share of the shadowed requests is
	// also replayed on Replay (the primary side, side-effect free) to learn
	// noise. Nil Replay or zero rate means none.
	Replay      Target
	NoiseRateBP int
}

// Wrap decorates the primary handler of a route with shadowing: for each
// request it asks plan (false: serve without shadowing), checks the method
// (unsafe ones only on shadow-safe routes), samples, buffers the body (the primary always gets the whole body),
// snapshots state for shadow-safe writes, serves the primary through a Tee
// (streams stay unbuffered) and submits the comparison job. Every reason for
// not shadowing is counted. The added work on the primary path is a hash,
// a bounded body copy, the tee copy and a non-blocking channel send.
func (m *Mirror) Wrap(primary http.Handler, plan func(*http.Request) (Plan, bool)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := plan(r)
		if !ok {
			primary.ServeHTTP(w, r)
			return
		}
		m.Serve(w, r, p, primary)
	})
}

// Serve is Wrap for one request whose plan is already known (for a proxy
// whose decorators are not http.Handlers): it serves r with primary and
// shadows it according to p.
func (m *Mirror) Serve(w http.ResponseWriter, r *http.Request, p Plan, primary http.Handler) {
	if p.Target == nil || p.RateBP <= 0 {
		primary.ServeHTTP(w, r)
		return
	}
	if reason := methodSkip(r.Method, p); reason != "" {
		m.Skip(p.Route, reason)
		primary.ServeHTTP(w, r)
		return
	}
	key := p.Key
	if key == "" {
		key = r.Method + " " + r.URL.RequestURI()
	}
	if !Sample(p.Route, key, p.RateBP) {
		m.Skip(p.Route, SkipNotSampled)
		primary.ServeHTTP(w, r)
		return
	}
	body, err := BufferBody(r, m.opts.MaxBodyBytes)
	if err != nil {
		m.Skip(p.Route, SkipBodyTooLarge)
		primary.ServeHTTP(w, r)
		return
	}
	req := NewRequest(r, body) // before the primary can touch r
	var snap Snapshot
	if p.Copier != nil {
		if snap, err = p.Copier.Snapshot(r.Context(), r, body); err != nil {
			m.log.Warn("shadow snapshot failed", "route", p.Route, "err", err)
			m.Skip(p.Route, SkipSnapshot)
			primary.ServeHTTP(w, r)
			return
		}
	}
	tee := NewTee(w, m.opts.MaxResponseBytes)
	primary.ServeHTTP(tee, r)
	if r.Context().Err() != nil {
		// The client left mid-response: what it got is not a full answer.
		m.Skip(p.Route, SkipClientGone)
		return
	}
	j := Job{Route: p.Route, Request: req, Primary: tee.Captured(), PrimarySide: p.PrimarySide,
		Target: p.Target, Snapshot: snap, ModelCall: p.ModelCall, Context: r.Context()}
	if p.Replay != nil && Sample(p.Route+"\x00noise", key, p.NoiseRateBP) {
		j.Replay = p.Replay
	}
	m.Submit(j)
}

// methodSkip returns why method is not shadowed under p, or "".
func methodSkip(method string, p Plan) string {
	if p.Methods != nil && !slices.Contains(p.Methods, method) {
		return SkipMethodExcluded
	}
	if !safeMethod(method) && !p.ShadowSafe {
		return SkipUnsafeMethod
	}
	return ""
}

func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}
