package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"syscall"
)

// StatusClientClosed is the status logged (never sent) when the client went
// away before the response was complete, as nginx does.
const StatusClientClosed = 499

// ErrBackendTimeout wraps backend calls that ran out of time (the native
// attempt past breaker.native_timeout).
var ErrBackendTimeout = errors.New("backend timeout")

// StatusFor is the one place that maps a failed round trip to a status code:
// 499 when the client went away (r's context was cancelled), 504 when the
// backend timed out, 502 otherwise (unreachable, reset, bad response).
func StatusFor(r *http.Request, err error) int {
	switch ErrorKind(r, err) {
	case "client_gone":
		return StatusClientClosed
	case "timeout":
		return http.StatusGatewayTimeout
	case "breaker_open":
		return http.StatusServiceUnavailable
	case "client_timeout":
		return http.StatusRequestTimeout
	}
	return http.StatusBadGateway
}

// ErrorKind classifies a round-trip error for logs and metrics:
// "client_gone", "timeout", "breaker_open" (refused by a circuit breaker: 503),
// "client_timeout" (the client sent its body too slowly: 408),
// "unreachable" (could not connect) or "bad_gateway"
// (anything else, e.g. the connection broke mid-response).
func ErrorKind(r *http.Request, err error) string {
	// Before client_gone: net/http cancels the request context on the body
	// read error too.
	if errors.Is(err, ErrClientTimeout) || bodyTimedOut(r) {
		return "client_timeout"
	}
	if r != nil && errors.Is(r.Context().Err(), context.Canceled) {
		return "client_gone"
	}
	if errors.Is(err, ErrBreakerOpen) {
		return "breaker_open"
	}
	if errors.Is(err, ErrBackendTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return "unreachable"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return "unreachable"
	}
	if errors.Is(err, context.Canceled) {
		return "client_gone"
	}
	return "bad_gateway"
}
