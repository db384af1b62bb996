package proxy

import (
	"net/http"

	"github.com/cespare/xxhash/v2"

	"github.com/cutover/cutover/compat"
	"github.com/cutover/cutover/config"
)

// Backend is the side that serves a request.
type Backend uint8

// The two backends.
const (
	Legacy Backend = iota
	Native
)

// String returns "legacy" or "native", the value used in logs, metrics and
// the served-by header.
func (b Backend) String() string {
	if b == Native {
		return "native"
	}
	return "legacy"
}

// Reason says why a Decision chose its backend.
type Reason uint8

// Reasons, as logged.
const (
	// ReasonUnmatched: no route matched the request (always legacy).
	ReasonUnmatched Reason = iota
	// ReasonNoHandler: the route has no native handler (always legacy).
	ReasonNoHandler
	// ReasonShare: the sticky bucket was compared with the route's share
	// (or the share is 0 % or 100 %, where no bucket is needed).
	ReasonShare
	// ReasonNoIdentity: no identity source yielded a value; such requests
	// stay on legacy unless the share is 100 %.
	ReasonNoIdentity
	// ReasonOverride: the QA override header chose the backend.
	ReasonOverride
	// ReasonOverrideNoHandler: the QA override asked for native, but the
	// request matched no route or its route has no native handler, so it
	// went to legacy as every such request does (issue 3).
	ReasonOverrideNoHandler
)

var reasonNames = [...]string{"unmatched", "no_handler", "share", "no_identity", "override", "override_no_handler"}

// String returns the reason's log name.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// UnmatchedRoute is the route label of requests that match no route.
const UnmatchedRoute = "_unmatched"

// Decision is one request's record, owned by the Router: the facts computed
// once when the request arrives (route, backend, identity key, bucket, method
// safety, the one bounded body buffer), then the outcome the stages report
// as the request goes down the pipeline (Served, Fallback, Err). The Router
// logs and counts what it says when the request ends. A Decision is pooled:
// it is only valid during the request.
type Decision struct {
	// Route is the matched route's name, or UnmatchedRoute.
	Route string
	// Backend is the backend chosen.
	Backend Backend
	// Reason says why.
	Reason Reason
	// Bucket is the sticky bucket in [0, 10000), or -1 when none was computed.
	Bucket int
	// Key is the request's identity (the first source of the route that
	// yielded a value), computed when routing or shadow sampling needs it;
	// "" when none was found or none was needed.
	Key string
	// Source is the identity source that produced Key ("" if none).
	Source string
	// Safe reports whether the method only reads (GET, HEAD, OPTIONS,
	// TRACE): such a request may be replayed on another backend and
	// shadowed to the production side.
	Safe bool
	// Match is the compat route match (zero when unmatched).
	Match compat.Match
	// Config is the matched route's configuration (nil when unmatched).
	// It belongs to the config snapshot in force: read only.
	Config *config.Route

	// Served is the backend that actually answered; it starts as Backend and
	// the fallback stage changes it.
	Served Backend
	// Fallback, when not empty, names why another backend than Backend served
	// (e.g. "breaker_open", "native_5xx").
	Fallback string
	// Err is the error of the backend call, if any; the Router maps it to
	// the logged status (StatusFor).
	Err error

	rte  *route      // the compiled route (nil when unmatched)
	body requestBody // the one bounded buffer of the request body
	// ticket is the breakers' permission for the request's legacy round
	// trip (Fallback fills it; at most one per request).
	ticket legacyTicket
}

func (d *Decision) reset() { *d = Decision{Bucket: -1} }

// safeMethod reports whether m only reads.
func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// Buckets is the number of sticky buckets; a share in basis points selects
// the buckets below it.
const Buckets = 10000

// Bucket hashes key under seed into [0, Buckets). It is a pure function, so
// every proxy instance computes the same bucket with no shared state, and
// because a request is native exactly when its bucket is below the share,
// raising a share only moves keys from legacy to native.
func Bucket(seed uint64, key string) int {
	var d xxhash.Digest
	d.ResetWithSeed(seed)
	_, _ = d.WriteString(key)
	return int(d.Sum64() % Buckets)
}

// Seed derives a route's hash seed from its salt.
func Seed(salt string) uint64 { return xxhash.Sum64String("cutover-route:" + salt) }

// Sampling (a route's shadow.rate_bp and shadow.noise_rate) uses Bucket too,
// under seeds of its own derived from the route's salt, so the keys a route
// shadows are independent of the keys it routes to native, and raising a
// rate only adds keys. These two seeds and Seed are the only hash seeds.
func shadowSeed(salt string) uint64 { return xxhash.Sum64String("cutover-shadow:" + salt) }

func noiseSeed(salt string) uint64 { return xxhash.Sum64String("cutover-noise:" + salt) }

// sampled reports whether key falls in the first rateBP of Buckets under
// seed: none at 0 or below, all at Buckets or above.
func sampled(seed uint64, key string, rateBP int) bool {
	switch {
	case rateBP <= 0:
		return false
	case rateBP >= Buckets:
		return true
	}
	return Bucket(seed, key) < rateBP
}

// Dispatcher is a stage of the pipeline: it serves a request whose backend
// has been decided, reporting its outcome in d. The stages are built once,
// in newPipeline (pipeline.go); each holds only the stage inside it.
type Dispatcher interface {
	Dispatch(w http.ResponseWriter, r *http.Request, d *Decision)
}

// NativeApp is what the proxy needs of the native handlers: an http.Handler
// serving the legacy endpoints, and the names of those it implements.
// *handlers.App satisfies it.
type NativeApp interface {
	http.Handler
	Endpoints() []string
}

// backends is the innermost stage: the legacy reverse proxy and the native
// app. The fallback stage calls serveLegacy and serveNative itself; Dispatch
// serves a Router built without breakers (NewRouter alone).
type backends struct {
	legacy *Passthrough
	native http.Handler // nil when there are no native handlers
}

var _ Dispatcher = (*backends)(nil)

// Dispatch sends the request to d.Served.
func (b *backends) Dispatch(w http.ResponseWriter, r *http.Request, d *Decision) {
	if d.Served == Native && b.native != nil {
		b.native.ServeHTTP(w, r)
		return
	}
	b.serveLegacy(w, r, d, nil, false)
}

// serveLegacy runs the legacy round trip, reporting it to t (nil: no
// breaker) when the response header arrives or the trip fails. With
// holdUnsent, a trip that failed before the request reached legacy answers
// nothing and d.Err wraps errNotSent, so the caller can send it elsewhere.
func (b *backends) serveLegacy(w http.ResponseWriter, r *http.Request, d *Decision, t *legacyTicket, holdUnsent bool) {
	d.Served = Legacy
	d.Err = b.legacy.serve(w, r, t, holdUnsent)
}
