package shadow

import (
	"bytes"
	"errors"
	"io"
	"net/http"
)

// ErrBodyTooLarge is returned by BufferBody when the request body is larger
// than the limit; the request is still intact for the primary.
var ErrBodyTooLarge = errors.New("request body larger than the shadow limit")

// BufferBody reads at most max+1 bytes of r.Body so the shadow can replay it,
// the way Traefik's mirror does. Whatever happens, r.Body is replaced by a
// reader that yields the whole original body, so the primary is unaffected:
//
//   - body fits (len <= max): returns the bytes; r.Body replays them and
//     r.GetBody is set.
//   - body overflows: returns ErrBodyTooLarge; r.Body yields the bytes
//     already read followed by the unread rest (nothing is buffered beyond
//     max+1 bytes).
//   - read error: returns that error; r.Body yields the bytes read and then
//     the same error, so the primary sees the failure as it would have.
//
// A nil or http.NoBody body returns (nil, nil). max below 0 is treated as 0.
func BufferBody(r *http.Request, max int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if max < 0 {
		max = 0
	}
	orig := r.Body
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength <= max {
		buf.Grow(int(r.ContentLength) + 1)
	}
	n, err := buf.ReadFrom(io.LimitReader(orig, max+1))
	read := buf.Bytes()
	switch {
	case err != nil:
		r.Body = readCloser{io.MultiReader(bytes.NewReader(read), errReader{err}), orig}
		return nil, err
	case n > max:
		r.Body = readCloser{io.MultiReader(bytes.NewReader(read), orig), orig}
		return nil, ErrBodyTooLarge
	}
	r.Body = readCloser{bytes.NewReader(read), orig}
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(read)), nil }
	return read, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
