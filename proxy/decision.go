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

// Decision is the routing outcome for one request, handed to the
// Dispatcher. Decorators (breakers, fallback, shadowing) read it and may set
// Served and Fallback; the access log and metrics report what they say when
// the request ends. A Decision is only valid during the request.
type Decision struct {
	// Route is the matched route's name, or UnmatchedRoute.
	Route string
	// Backend is the backend chosen.
	Backend Backend
	// Reason says why.
	Reason Reason
	// Bucket is the sticky bucket in [0, 10000), or -1 when none was computed.
	Bucket int
	// Source is the identity source that produced the bucket ("" if none).
	Source string
	// Match is the compat route match (zero when unmatched).
	Match compat.Match
	// Config is the matched route's configuration (nil when unmatched).
	// It belongs to the config snapshot in force: read only.
	Config *config.Route
	// Served is the backend that actually answered; it starts as Backend and
	// a fallback decorator changes it.
	Served Backend
	// Fallback, when not empty, names why another backend than Backend served
	// (e.g. "breaker_open", "native_5xx").
	Fallback string
	// Err is the transport error of the round trip, if any (see StatusFor).
	Err error
}

func (d *Decision) reset() { *d = Decision{Bucket: -1} }

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

// Dispatcher serves a request whose backend has been decided. Breakers,
// fallback and shadowing are Dispatcher decorators.
type Dispatcher interface {
	Dispatch(w http.ResponseWriter, r *http.Request, d *Decision)
}

// DispatcherFunc adapts a function to Dispatcher.
type DispatcherFunc func(w http.ResponseWriter, r *http.Request, d *Decision)

// Dispatch calls f.
func (f DispatcherFunc) Dispatch(w http.ResponseWriter, r *http.Request, d *Decision) { f(w, r, d) }

// NativeApp is what the proxy needs of the native handlers: an http.Handler
// serving the legacy endpoints, and the names of those it implements.
// *handlers.App satisfies it.
type NativeApp interface {
	http.Handler
	Endpoints() []string
}

// backends is the base Dispatcher: it sends the request to the decided backend.
type backends struct {
	legacy http.Handler
	native http.Handler
}

var _ Dispatcher = (*backends)(nil)

func (b *backends) Dispatch(w http.ResponseWriter, r *http.Request, d *Decision) {
	if d.Served == Native && b.native != nil {
		b.native.ServeHTTP(w, r)
		return
	}
	d.Served = Legacy
	b.legacy.ServeHTTP(w, r)
}
