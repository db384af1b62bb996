package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cutover/cutover/handlers"
)

// Fallback reasons, as logged (Decision.Fallback) and counted
// (cutover_fallbacks_total).
const (
	FallbackNativeBreakerOpen = "native_breaker_open"
	FallbackNative5xx         = "native_5xx"
	FallbackNativeTimeout     = "native_timeout"
	FallbackNativePanic       = "native_panic"
	FallbackLegacyBreakerOpen = "legacy_breaker_open"
	// FallbackLegacyUnreachable: the request never reached legacy (no
	// connection, or its header block never written), so native served it,
	// whatever the method.
	FallbackLegacyUnreachable = "legacy_unreachable"
)

// maxBufferedResponse bounds how much of a native response is held back
// while the attempt may still be replayed on legacy; a larger response is
// sent as it comes and can no longer be replayed.
const maxBufferedResponse = 1 << 20

// Fallback is the pipeline stage that puts the breakers around both
// backends and falls back from one to the other:
//
//   - native decided, its breaker open: legacy answers (the native side never
//     ran, so nothing needs replaying);
//   - native failing (a failure status, native_timeout before the response
//     started, or a panic): legacy answers when the request is safe to replay:
//     its body was buffered whole (up to native.max_content_length) and the
//     method is safe or the route is replayable. The native attempt writes
//     into a buffer, so a failed native response is never half-sent; a
//     stream (the handler flushed) or a response past 1 MiB is sent as it
//     comes and can no longer be replayed. When it cannot be replayed the
//     client gets the native answer (504 page on timeout, 500 page on a
//     panic);
//   - legacy decided, its breaker (the route's or the legacy-wide one) open:
//     a route with a native handler is served natively; any other request
//     gets Werkzeug's 503 page with Retry-After (the time until the breaker
//     lets probes through);
//   - legacy decided, and the request never reached it (dial refused or
//     timed out, its header block never written: legacy cannot have acted on
//     it): a route with a native handler is served natively, for any method,
//     counted as legacy_unreachable (the failed trip still counts for the
//     legacy breakers, a half-open probe's included);
//   - a request body for legacy is read whole before legacy is dialled (up to
//     native.max_content_length, the legacy app's MAX_CONTENT_LENGTH), so a
//     client trickling its body holds a goroutine here, never a gunicorn
//     sync worker; a declared Content-Length above it is forwarded as it
//     comes (legacy answers its early 413), and a body of unknown length is
//     buffered up to the bound and the rest streamed;
//   - a native breaker tripping on a route with breaker.auto_rollback sets the
//     route's share to 0 % through Router.SetShares (audited as action
//     "auto_rollback", who "cutover"), until ops raise it again.
//
// A panic in a native handler is recovered here, at the native boundary,
// and never takes the process down. newPipeline builds it (Breakers.fallback).
type Fallback struct {
	next *backends
	b    *Breakers
}

var _ Dispatcher = (*Fallback)(nil)

// fallback returns the breaker stage in front of the backends.
func (b *Breakers) fallback(next *backends) *Fallback { return &Fallback{next: next, b: b} }

// Dispatch serves r on the decided backend, behind its breakers.
//
// A QA override asked for one backend's own answer, so it gets exactly that:
// no route breaker admission and no fallback to the other side (a native
// override that fails shows the native failure), unless override.fallback is
// set. A legacy round trip still passes the legacy-wide breaker.
func (f *Fallback) Dispatch(w http.ResponseWriter, r *http.Request, d *Decision) {
	if d.Reason == ReasonOverride && !f.overrideFallback() {
		f.overridden(w, r, d)
		return
	}
	rb := f.b.forRoute(d.Config)
	if d.Served == Native {
		f.native(w, r, d, rb)
		return
	}
	f.legacy(w, r, d, rb)
}

// overrideFallback reports whether overridden requests go through the
// breakers and fallback too (override.fallback).
func (f *Fallback) overrideFallback() bool {
	cfg := f.b.config()
	return cfg != nil && cfg.Override.Fallback
}

// overridden serves an overridden request on its backend alone: native
// without a breaker, legacy behind the legacy-wide breaker only.
func (f *Fallback) overridden(w http.ResponseWriter, r *http.Request, d *Decision) {
	if d.Served == Native {
		f.next.Dispatch(w, r, d)
		return
	}
	t := &d.ticket
	if err := f.b.admitLegacy(nil, t); err != nil {
		d.Err = err
		writeErrorPage(w, StatusFor(r, err))
		return
	}
	f.toLegacy(w, r, d, t, false, nil)
}

func (rb *routeBreakers) nativeBreaker() *breaker {
	if rb == nil {
		return nil
	}
	return rb.native
}

func (f *Fallback) count(d *Decision, reason string) {
	d.Fallback = reason
	f.b.fallbacks.WithLabelValues(d.Route, reason).Inc()
}

// hasNative reports whether d's route has a native handler to fall back to.
func (f *Fallback) hasNative(d *Decision) bool {
	return d.Config != nil && f.b.hasNative(d.Route)
}

// legacy serves a request decided for legacy.
func (f *Fallback) legacy(w http.ResponseWriter, r *http.Request, d *Decision, rb *routeBreakers) {
	t := &d.ticket
	if err := f.b.admitLegacy(rb, t); err != nil {
		if f.hasNative(d) {
			f.count(d, FallbackLegacyBreakerOpen)
			d.Served = Native
			f.nativeOnly(w, r, d, rb)
			return
		}
		f.unavailable(w, d, err, f.b.legacyRetryAfter(rb))
		return
	}
	f.toLegacy(w, r, d, t, f.hasNative(d), rb)
}

// toLegacy runs the legacy round trip under ticket t, its body read first
// (bufferLegacyBody). With toNative (the route has a native handler; rb are
// its breakers), a request that never reached legacy is served natively
// instead.
func (f *Fallback) toLegacy(w http.ResponseWriter, r *http.Request, d *Decision, t *legacyTicket, toNative bool, rb *routeBreakers) {
	defer t.finish(r, 0, errNotCounted) // when the round trip never ran
	whole, ok := f.bufferLegacyBody(w, r, d)
	if !ok {
		return
	}
	hold := toNative && whole
	f.next.serveLegacy(w, r, d, t, hold)
	if !hold || !errors.Is(d.Err, errNotSent) {
		return
	}
	if errors.Is(r.Context().Err(), context.Canceled) {
		return // the client went away: nobody to answer
	}
	f.count(d, FallbackLegacyUnreachable)
	d.Err = nil
	d.body.rewind(r)
	f.nativeOnly(w, r, d, rb)
}

// bufferLegacyBody reads r's body before legacy is dialled, so that a slow
// client never holds a sync worker (gunicorn's advice is a buffering proxy
// in front): up to native.max_content_length, the legacy app's
// MAX_CONTENT_LENGTH. A body that declares more is left to stream (legacy
// answers its 413 early, byte for byte as before); one of unknown length
// past the bound is buffered to the bound and the rest streamed. whole says
// the body (if any) is held whole, so it can be sent again. When reading
// fails (the client was too slow, or went away) it answers, without
// dialling legacy, and reports ok false.
func (f *Fallback) bufferLegacyBody(w http.ResponseWriter, r *http.Request, d *Decision) (whole, ok bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return true, true
	}
	limit := int64(1 << 20)
	if cfg := f.b.config(); cfg != nil {
		limit = cfg.Native.MaxContentLength
	}
	if r.ContentLength > limit {
		return false, true
	}
	_, whole, err := d.bodyUpTo(r, limit)
	if err != nil {
		d.Err = err
		if status := StatusFor(r, err); status != StatusClientClosed {
			writeErrorPage(w, status)
		}
		return false, false
	}
	// net/http answered the client's Expect: 100-continue when the body was
	// read; legacy must not send a second 100.
	delete(r.Header, "Expect")
	return whole, true
}

// nativeOnly serves natively with nowhere to fall back to.
func (f *Fallback) nativeOnly(w http.ResponseWriter, r *http.Request, d *Decision, rb *routeBreakers) {
	nb := rb.nativeBreaker()
	p, err := nb.allow()
	if err != nil {
		f.unavailable(w, d, err, max(nb.retryAfter(f.b.now()), f.b.legacyRetryAfter(rb)))
		return
	}
	timeout := nativeTimeout(d)
	a := f.attempt(w, r, d, timeout > 0, timeout)
	defer a.release()
	p.done(a.outcome(r, nb))
	f.afterTrip(nb, d)
	a.answer(w, d)
}

// native serves a request decided for native, falling back to legacy.
func (f *Fallback) native(w http.ResponseWriter, r *http.Request, d *Decision, rb *routeBreakers) {
	nb := rb.nativeBreaker()
	p, err := nb.allow()
	if err != nil {
		f.count(d, FallbackNativeBreakerOpen)
		t := &d.ticket
		if lerr := f.b.admitLegacy(rb, t); lerr != nil {
			f.unavailable(w, d, lerr, max(nb.retryAfter(f.b.now()), f.b.legacyRetryAfter(rb)))
			return
		}
		f.toLegacy(w, r, d, t, false, nil)
		return
	}
	replay := d.Config != nil && (d.Safe || d.Config.Replayable)
	if replay {
		limit := int64(1 << 20)
		if cfg := f.b.config(); cfg != nil {
			limit = cfg.Native.MaxContentLength
		}
		_, replay, _ = d.bodyUpTo(r, limit)
	}
	timeout := nativeTimeout(d)
	a := f.attempt(w, r, d, replay || timeout > 0, timeout)
	outcome := a.outcome(r, nb)
	p.done(outcome)
	f.afterTrip(nb, d)
	defer a.release()
	// A native side that wrote to the store (a saved turn) is never replayed:
	// legacy would save the turn again.
	if outcome == nil || errors.Is(outcome, errNotCounted) || a.w.committed || !replay || a.wrote.Load() {
		a.answer(w, d)
		return
	}
	t := &d.ticket
	if lerr := f.b.admitLegacy(rb, t); lerr != nil {
		a.answer(w, d) // legacy is down too: the native answer is the best there is
		return
	}
	switch {
	case a.panicked:
		f.count(d, FallbackNativePanic)
	case a.w.expired():
		f.count(d, FallbackNativeTimeout)
	default:
		f.count(d, FallbackNative5xx)
	}
	d.body.rewind(r)
	f.toLegacy(w, r, d, t, false, nil)
}

// afterTrip rolls the route back to 0 % when this request tripped its
// native breaker and the route asks for it. It runs in the request's
// goroutine, outside the circuit's lock.
func (f *Fallback) afterTrip(nb *breaker, d *Decision) {
	if nb == nil || !nb.tripped.Load() || !nb.tripped.CompareAndSwap(true, false) {
		return
	}
	if d.Config == nil || !d.Config.Breaker.AutoRollback || f.b.rollback == nil {
		return
	}
	res, err := f.b.rollback(d.Route)
	if err != nil {
		f.b.log.Error("auto rollback failed", "route", d.Route, "error", err)
		return
	}
	if len(res.Changes) > 0 {
		f.b.log.Warn("auto rollback: native breaker tripped, share set to 0", "route", d.Route,
			"old_bp", res.Changes[0].Old, "persisted", res.Persisted)
	}
}

// unavailable answers 503 in the legacy app's format (Werkzeug's page)
// with Retry-After: no backend may be asked.
func (f *Fallback) unavailable(w http.ResponseWriter, d *Decision, err error, retry time.Duration) {
	d.Err = err
	f.b.rejected.WithLabelValues(d.Route).Inc()
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
	writeErrorPage(w, http.StatusServiceUnavailable)
}

func nativeTimeout(d *Decision) time.Duration {
	if d.Config == nil {
		return 0
	}
	return d.Config.Breaker.NativeTimeout
}

// nativeAttempt is one run of the native handler.
type nativeAttempt struct {
	w        *attemptWriter
	panicked bool
	panicVal any
	// wrote is set by the handlers before they first write to the store
	// (handlers.TrackWrites): the attempt has committed state.
	wrote *atomic.Bool
}

// attempt runs the native handler with an attemptWriter (buffering the
// response when buffered) and, when timeout > 0, cancels it if its response
// has not started by then. It never panics: a panic is recorded.
func (f *Fallback) attempt(w http.ResponseWriter, r *http.Request, d *Decision, buffered bool, timeout time.Duration) (a nativeAttempt) {
	a.w = newAttemptWriter(w, buffered)
	var ctx context.Context
	ctx, a.wrote = handlers.TrackWrites(r.Context())
	r = r.WithContext(ctx)
	a.w.wrote = a.wrote
	if timeout > 0 {
		ctx, cancel := context.WithCancel(r.Context())
		timer := time.AfterFunc(timeout, func() {
			if a.w.expire() {
				cancel()
			} else if a.wrote.Load() {
				f.b.log.Warn("native_timeout after the native side wrote to the store: letting it finish, no replay",
					"route", d.Route, "native_timeout", timeout.String())
			}
		})
		defer func() {
			timer.Stop()
			cancel()
		}()
		r = r.WithContext(ctx)
	}
	defer func() {
		if p := recover(); p != nil {
			a.panicked, a.panicVal = true, p
			if p != http.ErrAbortHandler {
				f.b.log.Error("native handler panic", "route", d.Route, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
		}
	}()
	defer a.w.finish()
	d.Served = Native
	f.next.Dispatch(a.w, r, d)
	return a
}

// outcome classifies the attempt for the native breaker nb.
func (a *nativeAttempt) outcome(r *http.Request, nb *breaker) error {
	switch {
	case errors.Is(r.Context().Err(), context.Canceled):
		return errNotCounted
	case a.panicked:
		return errPanic
	case a.w.expired():
		return errTimeout
	}
	status := a.w.status
	if status == 0 {
		status = http.StatusOK
	}
	if nb != nil {
		return nb.outcome(nil, status, nil)
	}
	return nil
}

// answer sends what the attempt produced when nothing else will answer: the
// held response, a 504 page after a timeout, a 500 page after a panic, or
// an aborted connection if a panic came after the response started.
func (a *nativeAttempt) answer(w http.ResponseWriter, d *Decision) {
	switch {
	case a.panicked && a.w.sent():
		panic(http.ErrAbortHandler)
	case a.panicked:
		writeErrorPage(w, http.StatusInternalServerError)
	case a.w.expired():
		d.Err = fmt.Errorf("native handler: %w", ErrBackendTimeout)
		writeErrorPage(w, http.StatusGatewayTimeout)
	default:
		a.w.commit()
	}
}

func (a *nativeAttempt) release() { a.w.release() }

var attemptBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// attemptWriter is the ResponseWriter of a native attempt. Buffered, it
// holds the header, status and body until commit, which the handler
// triggers by flushing (a stream) or by writing past maxBufferedResponse,
// and the Fallback by accepting the answer. Direct, it passes everything
// through and only watches the status. After expire (native_timeout) the
// handler's writes are dropped.
type attemptWriter struct {
	w        http.ResponseWriter
	buffered bool
	header   http.Header
	status   int
	buf      *bytes.Buffer

	mu        sync.Mutex // commit vs expire (the timer's goroutine)
	committed bool       // passing through (direct, or buffered and committed)
	timedOut  bool
	finished  bool // the handler returned: too late to expire
	// wrote: the handler wrote to the store (nil: never); too late to expire,
	// the answer to that write must reach the client.
	wrote *atomic.Bool
}

var errAttemptExpired = errors.New("native attempt timed out")

func newAttemptWriter(w http.ResponseWriter, buffered bool) *attemptWriter {
	aw := &attemptWriter{w: w, buffered: buffered}
	if buffered {
		aw.header = http.Header{}
		aw.buf = attemptBuffers.Get().(*bytes.Buffer)
	} else {
		aw.committed = true
	}
	return aw
}

func (aw *attemptWriter) release() {
	if aw.buf != nil {
		if aw.buf.Cap() <= 2*maxBufferedResponse {
			aw.buf.Reset()
			attemptBuffers.Put(aw.buf)
		}
		aw.buf = nil
	}
}

func (aw *attemptWriter) Header() http.Header {
	if aw.buffered {
		return aw.header
	}
	return aw.w.Header()
}

func (aw *attemptWriter) WriteHeader(code int) {
	if aw.status != 0 {
		return
	}
	if code >= 100 && code < 200 {
		if !aw.buffered {
			aw.w.WriteHeader(code)
		}
		return
	}
	aw.status = code
	if !aw.buffered {
		aw.w.WriteHeader(code)
	}
}

func (aw *attemptWriter) Write(p []byte) (int, error) {
	if aw.status == 0 {
		aw.WriteHeader(http.StatusOK)
	}
	if !aw.buffered {
		return aw.w.Write(p)
	}
	aw.mu.Lock()
	committed, expired := aw.committed, aw.timedOut
	aw.mu.Unlock()
	switch {
	case expired:
		return 0, errAttemptExpired
	case committed:
		return aw.w.Write(p)
	case aw.buf.Len()+len(p) > maxBufferedResponse:
		if !aw.commit() {
			return 0, errAttemptExpired
		}
		return aw.w.Write(p)
	}
	return aw.buf.Write(p)
}

// Flush commits a buffered response: a stream has started.
func (aw *attemptWriter) Flush() {
	if aw.status == 0 {
		aw.WriteHeader(http.StatusOK)
	}
	if aw.buffered && !aw.commit() {
		return
	}
	_ = http.NewResponseController(aw.w).Flush()
}

// Unwrap lets http.ResponseController reach the client's writer.
func (aw *attemptWriter) Unwrap() http.ResponseWriter { return aw.w }

// commit sends what is held and passes later writes through. It reports
// false when the attempt expired first (nothing is sent).
func (aw *attemptWriter) commit() bool {
	aw.mu.Lock()
	defer aw.mu.Unlock()
	if aw.timedOut {
		return false
	}
	if aw.committed {
		return true
	}
	aw.committed = true
	h := aw.w.Header()
	for k, v := range aw.header {
		h[k] = v
	}
	status := aw.status
	if status == 0 {
		status = http.StatusOK
	}
	aw.w.WriteHeader(status)
	if aw.buf.Len() > 0 {
		_, _ = aw.w.Write(aw.buf.Bytes())
	}
	return true
}

// expire marks the attempt timed out unless its response already started,
// the handler already returned, or it wrote to the store.
func (aw *attemptWriter) expire() bool {
	aw.mu.Lock()
	defer aw.mu.Unlock()
	if aw.committed || aw.finished || (aw.wrote != nil && aw.wrote.Load()) {
		return false
	}
	aw.timedOut = true
	return true
}

func (aw *attemptWriter) finish() {
	aw.mu.Lock()
	aw.finished = true
	aw.mu.Unlock()
}

func (aw *attemptWriter) expired() bool {
	aw.mu.Lock()
	defer aw.mu.Unlock()
	return aw.timedOut
}

// sent reports whether the response header reached the client's writer.
func (aw *attemptWriter) sent() bool {
	aw.mu.Lock()
	defer aw.mu.Unlock()
	return aw.committed && (aw.buffered || aw.status != 0)
}

var (
	_ http.ResponseWriter = (*attemptWriter)(nil)
	_ http.Flusher        = (*attemptWriter)(nil)
)
