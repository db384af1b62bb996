package shadow

import (
	"regexp"
	"sort"
	"sync"
)

// NoiseConfig tunes noise learning, after Diffy: a sample of requests is sent
// to the primary backend twice, and a field that differs between those two
// runs of the same backend (a timestamp, an id) is noise. Its differences
// with the shadow are reported as noise instead of failures unless the
// shadow differs on it clearly more often than the backend does with itself.
type NoiseConfig struct {
	// MinSamples is the number of primary-vs-primary comparisons a route needs
	// before any field is called noise. Zero means 5.
	MinSamples int
	// Relative is the relative threshold: a noisy field still counts as a
	// real difference when (rawRate-noiseRate)/noiseRate exceeds it (and the
	// absolute threshold is exceeded too). Zero means 0.2.
	Relative float64
	// Absolute is the absolute threshold on rawRate-noiseRate. Zero means 0.03.
	Absolute float64
	// MaxFields bounds the fields tracked per route. Zero means 1000.
	MaxFields int
}

// Noise learns, per route and field, how often primary and shadow differ
// (raw rate) and how often two runs of the primary differ (noise rate).
// Safe for concurrent use; memory is bounded by routes × MaxFields.
type Noise struct {
	cfg    NoiseConfig
	mu     sync.Mutex
	routes map[string]*noiseRoute
}

type noiseRoute struct {
	raw, noise int64 // comparisons observed
	fields     map[string]*fieldCount
}

type fieldCount struct{ raw, noise int64 }

// FieldStat is one field's learnt rates.
type FieldStat struct {
	Path      string  `json:"path"`
	RawRate   float64 `json:"raw_rate"`
	NoiseRate float64 `json:"noise_rate"`
	Noise     bool    `json:"noise"`
}

// NewNoise returns an empty learner.
func NewNoise(cfg NoiseConfig) *Noise {
	if cfg.MinSamples <= 0 {
		cfg.MinSamples = 5
	}
	if cfg.Relative <= 0 {
		cfg.Relative = 0.2
	}
	if cfg.Absolute <= 0 {
		cfg.Absolute = 0.03
	}
	if cfg.MaxFields <= 0 {
		cfg.MaxFields = 1000
	}
	return &Noise{cfg: cfg, routes: map[string]*noiseRoute{}}
}

var indexRE = regexp.MustCompile(`\[\d+\]`)

// fieldKey generalises array indices so `$.items[3].id` and `$.items[4].id`
// are learnt as one field.
func fieldKey(path string) string { return indexRE.ReplaceAllString(path, "[*]") }

func (n *Noise) route(name string) *noiseRoute {
	r := n.routes[name]
	if r == nil {
		r = &noiseRoute{fields: map[string]*fieldCount{}}
		n.routes[name] = r
	}
	return r
}

func (n *Noise) observe(route string, paths []string, noise bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.route(route)
	if noise {
		r.noise++
	} else {
		r.raw++
	}
	seen := map[string]bool{}
	for _, p := range paths {
		k := fieldKey(p)
		if seen[k] {
			continue
		}
		seen[k] = true
		f := r.fields[k]
		if f == nil {
			if len(r.fields) >= n.cfg.MaxFields {
				continue
			}
			f = &fieldCount{}
			r.fields[k] = f
		}
		if noise {
			f.noise++
		} else {
			f.raw++
		}
	}
}

// ObserveNoise records one primary-vs-primary comparison and the paths of its
// semantic mismatches.
func (n *Noise) ObserveNoise(route string, paths []string) { n.observe(route, paths, true) }

// ObserveRaw records one primary-vs-shadow comparison and the paths of its
// semantic mismatches.
func (n *Noise) ObserveRaw(route string, paths []string) { n.observe(route, paths, false) }

// IsNoise reports whether differences on path are, for now, explained by noise.
func (n *Noise) IsNoise(route, path string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.routes[route]
	if r == nil {
		return false
	}
	f := r.fields[fieldKey(path)]
	if f == nil {
		return false
	}
	return n.verdict(r, f)
}

func (n *Noise) verdict(r *noiseRoute, f *fieldCount) bool {
	if r.noise < int64(n.cfg.MinSamples) || f.noise == 0 {
		return false
	}
	noiseRate := float64(f.noise) / float64(r.noise)
	rawRate := 0.0
	if r.raw > 0 {
		rawRate = float64(f.raw) / float64(r.raw)
	}
	excess := rawRate - noiseRate
	return !(excess > n.cfg.Absolute && excess/noiseRate > n.cfg.Relative)
}

// Fields returns the learnt rates of every tracked field of route, by path.
func (n *Noise) Fields(route string) []FieldStat {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.routes[route]
	if r == nil {
		return nil
	}
	out := make([]FieldStat, 0, len(r.fields))
	for p, f := range r.fields {
		st := FieldStat{Path: p, Noise: n.verdict(r, f)}
		if r.raw > 0 {
			st.RawRate = float64(f.raw) / float64(r.raw)
		}
		if r.noise > 0 {
			st.NoiseRate = float64(f.noise) / float64(r.noise)
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// applyNoise marks semantic mismatches on noisy fields and recomputes the
// class: a comparison whose only semantic differences are noise is ClassNoise
// unless it also has encoding differences.
func (n *Noise) apply(route string, r *Result) {
	if n == nil {
		return
	}
	class := ClassMatch
	for i := range r.Mismatches {
		m := &r.Mismatches[i]
		if m.Class == ClassSemantic && n.IsNoise(route, m.Path) {
			m.Noise = true
			m.Class = ClassNoise
		}
		if m.Class.rank() > class.rank() {
			class = m.Class
		}
	}
	if r.Dropped > 0 && class.rank() < ClassSemantic.rank() {
		class = ClassSemantic
	}
	r.Class = class
}

func semanticPaths(r Result) []string {
	var out []string
	for _, m := range r.Mismatches {
		if m.Class == ClassSemantic {
			out = append(out, m.Path)
		}
	}
	return out
}
