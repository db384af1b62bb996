package proxy

import (
	"bytes"
	"io"
	"net/http"
)

// requestBody is the one bounded buffer of a request's body. It is read at
// most once, by the first stage that needs it (a json: identity source, the
// shadow tee, a native attempt that may be replayed on legacy), up to the
// largest limit any of them has (limit, set by the Router from the config in
// force); each stage then applies its own limit to what was read. Whatever
// happens, the backend still receives every byte, and every read error, of
// the client's body.
type requestBody struct {
	limit int64
	read  bool
	data  []byte
	whole bool  // data is the whole body
	err   error // reading failed; the backend sees the same error
	orig  io.ReadCloser
}

// bodyUpTo returns the request body when it is at most max bytes, reading it
// into the request's buffer on first use. ok is false when the body is
// larger than max (err nil) or could not be read (err says why). A request
// without a body returns (nil, true, nil).
func (d *Decision) bodyUpTo(r *http.Request, max int64) (data []byte, ok bool, err error) {
	b := &d.body
	if !b.read {
		if r.ContentLength > max {
			return nil, false, nil // not worth reading for this stage
		}
		b.fill(r, max)
	}
	switch {
	case b.err != nil:
		return nil, false, b.err
	case !b.whole || int64(len(b.data)) > max:
		return nil, false, nil
	}
	return b.data, true, nil
}

// fill reads r's body up to the buffer's limit (at least max) plus one byte,
// and puts back a body that yields what the client sent: the bytes read,
// then the unread rest or the read error.
func (b *requestBody) fill(r *http.Request, max int64) {
	b.read = true
	if r.Body == nil || r.Body == http.NoBody {
		b.whole = true
		return
	}
	limit := b.limit
	if limit < max {
		limit = max
	}
	b.orig = r.Body
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength <= limit {
		buf.Grow(int(r.ContentLength) + 1)
	}
	n, err := buf.ReadFrom(io.LimitReader(b.orig, limit+1))
	b.data = buf.Bytes()
	switch {
	case err != nil:
		b.err = err
		r.Body = readCloser{io.MultiReader(bytes.NewReader(b.data), errReader{err}), b.orig}
	case n > limit:
		r.Body = readCloser{io.MultiReader(bytes.NewReader(b.data), b.orig), b.orig}
	default:
		b.whole = true
		b.rewind(r)
	}
}

// rewind makes r.Body yield the whole buffered body again (a replay on
// another backend). Only valid when the body was read whole.
func (b *requestBody) rewind(r *http.Request) {
	if b.orig == nil {
		return // no body
	}
	data := b.data
	r.Body = readCloser{bytes.NewReader(data), b.orig}
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
}

type readCloser struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
