//go:build !cgo

package compat

import (
	"bytes"
	"compress/zlib"
)

// ZlibByteExact reports whether zlibCompress reproduces CPython's
// zlib.compress bytes. Without cgo it does not: Go's compress/zlib emits a
// different (equally valid) deflate stream, so compressed session cookies
// differ in bytes from Flask's, though Flask accepts them and they decode to
// the same session. Uncompressed cookies (small sessions) are unaffected.
const ZlibByteExact = false

func zlibCompress(data []byte) ([]byte, error) {
	var b bytes.Buffer
	w, err := zlib.NewWriterLevel(&b, 6)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
