package proxy

import (
	"log/slog"
	"net/http"

	"github.com/cutover/cutover/config"
)

// pipeline is the request path of a Server, built once by newPipeline:
//
//	Router      (router.go)   match the route, compute the request's facts once → *Decision
//	shadowing   (shadow.go)   sample by the same bucket function, tee the answer, queue a job
//	Fallback    (fallback.go) breakers (Allow → done), fallback to the other backend
//	backends    (decision.go) legacy: Passthrough (legacy.go) | native: NativeApp
//
// With tracing on (Options.Tracer), the Router opens each request's span,
// the legacy transport and the native app make its children, and shadow
// calls get traces of their own, linked to it.
//
// Each stage holds only the stage inside it; what the outer stages need
// back (who served, why another backend did, the error) is written into the
// request's Decision, which the Router owns, logs and counts. What a stage
// needs from the process (the config in force, rolling a route back) is a
// function it is given here.
type pipeline struct {
	router    *Router
	shadow    *shadowing
	breakers  *Breakers
	transport *http.Transport // to legacy, closed at drain
}

// newPipeline builds the stages for cfg. The Router comes first, because
// the breakers are given its config getter and its rollback; the stages
// behind it are then chained, innermost first, before any request can
// arrive (Server.Run starts the listeners).
func newPipeline(cfg *config.Config, opts Options, log *slog.Logger) (*pipeline, error) {
	native := opts.Native
	p := &pipeline{transport: NewTransport(cfg.Legacy)}
	legacy, err := NewLegacy(cfg.Legacy, LegacyOptions{Transport: opts.Tracer.LegacyTransport(p.transport), Logger: log})
	if err != nil {
		return nil, err
	}
	if p.shadow, err = newShadowing(cfg, native, opts.Shadow, log); err != nil {
		return nil, err
	}
	// The Router compiles the config (and, through Prepare, the shadow
	// comparison rules); it serves nothing until Run.
	p.shadow.tracer = opts.Tracer
	rt, err := NewRouter(cfg, RouterOptions{Legacy: legacy, Native: native, Logger: log, Prepare: p.shadow.prepare, Tracer: opts.Tracer})
	if err != nil {
		p.shadow.closeResources()
		return nil, err
	}
	p.router = rt
	p.breakers = NewBreakers(BreakerOptions{Config: rt.Config, HasNative: rt.HasNative, Rollback: rt.rollback,
		Registerer: rt.Metrics().Registry, Logger: log, Now: opts.Now})
	p.shadow.next = p.breakers.fallback(rt.base)
	rt.dispatch = p.shadow
	return p, nil
}
