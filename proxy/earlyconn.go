package proxy

import (
	"context"
	"net"
	"sync/atomic"
)

// earlyResponseDialer wraps a dial func so that a connection whose write side
// fails keeps "accepting" writes instead of returning the error.
//
// Why: gunicorn answers some requests before reading their body (Flask's 413
// for a body over MAX_CONTENT_LENGTH) and then closes the socket. Go's
// http.Transport races the request-body write error against the response
// (persistConn.roundTrip selects on writeErrCh and the response): when the
// write error wins, the client gets a 502 instead of the legacy app's 413
// (golang/go#11745). Swallowing the write error lets the transport read the
// response the server did send; if the server sent none, the read fails and
// the request still ends in a 502 through StatusFor.
func earlyResponseDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &earlyConn{Conn: c}, nil
	}
}

// earlyConn is a net.Conn whose Write reports success once the peer has
// stopped reading; reads are untouched.
type earlyConn struct {
	net.Conn
	broken atomic.Bool
}

func (c *earlyConn) Write(p []byte) (int, error) {
	if c.broken.Load() {
		return len(p), nil
	}
	n, err := c.Conn.Write(p)
	if err != nil && !isTimeout(err) {
		c.broken.Store(true)
		return len(p), nil
	}
	return n, err
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
