package shadow

import (
	"sort"
	"sync"
	"sync/atomic"
)

// tally holds per-route counters on the request path without a global lock:
// routes and reasons are created once, then only atomics are touched.
type tally struct {
	routes sync.Map // route name -> *routeTally
}

type routeTally struct {
	compared, matched, encoding, semantic, noise, errors atomic.Int64
	skipped                                              sync.Map // reason -> *atomic.Int64
}

func (t *tally) route(name string) *routeTally {
	if r, ok := t.routes.Load(name); ok {
		return r.(*routeTally)
	}
	r, _ := t.routes.LoadOrStore(name, &routeTally{})
	return r.(*routeTally)
}

func (r *routeTally) skip(reason string) *atomic.Int64 {
	if n, ok := r.skipped.Load(reason); ok {
		return n.(*atomic.Int64)
	}
	n, _ := r.skipped.LoadOrStore(reason, new(atomic.Int64))
	return n.(*atomic.Int64)
}

func (r *routeTally) count(c Class) {
	switch c {
	case ClassMatch:
		r.matched.Add(1)
	case ClassEncoding:
		r.encoding.Add(1)
	case ClassSemantic:
		r.semantic.Add(1)
	case ClassNoise:
		r.noise.Add(1)
	case ClassError:
		r.errors.Add(1)
		return
	}
	r.compared.Add(1)
}

// RouteSummary is one route's tally: this process's since the mirror started
// (Mirror.Summary), or the fleet's since its last reset (Mirror.FleetSummary).
type RouteSummary struct {
	Route        string           `json:"route"`
	Compared     int64            `json:"compared"`
	Matched      int64            `json:"matched"`
	EncodingOnly int64            `json:"encoding_only"`
	Semantic     int64            `json:"semantic"`
	Noise        int64            `json:"noise"`
	Errors       int64            `json:"errors"`
	Skipped      map[string]int64 `json:"skipped"`
}

func (t *tally) summary() []RouteSummary {
	var out []RouteSummary
	t.routes.Range(func(k, v any) bool {
		r := v.(*routeTally)
		s := RouteSummary{Route: k.(string), Compared: r.compared.Load(), Matched: r.matched.Load(),
			EncodingOnly: r.encoding.Load(), Semantic: r.semantic.Load(), Noise: r.noise.Load(),
			Errors: r.errors.Load(), Skipped: map[string]int64{}}
		r.skipped.Range(func(k, v any) bool {
			s.Skipped[k.(string)] = v.(*atomic.Int64).Load()
			return true
		})
		out = append(out, s)
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Route < out[j].Route })
	return out
}
