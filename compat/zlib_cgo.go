//go:build cgo

package compat

/*
#cgo LDFLAGS: -lz
#include <zlib.h>
#include <stdlib.h>

// cutover_deflate_new is a deflate stream with compress2's parameters
// (deflateInit: level Z_DEFAULT_COMPRESSION, 15 window bits, memLevel 8,
// default strategy), or NULL.
static z_stream *cutover_deflate_new(void) {
	z_stream *s = calloc(1, sizeof *s);
	if (s == NULL) return NULL;
	if (deflateInit(s, Z_DEFAULT_COMPRESSION) != Z_OK) {
		free(s);
		return NULL;
	}
	return s;
}

static void cutover_deflate_free(z_stream *s) {
	deflateEnd(s);
	free(s);
}

// cutover_deflate compresses src into dst (*dstLen bytes, at least
// compressBound(srcLen)) as one zlib stream, like compress2, on a reused
// stream: deflateReset gives the state deflateInit gave, so the bytes are
// the same, without compress2's allocation of the stream's ~260 KiB.
static int cutover_deflate(z_stream *s, unsigned char *dst, unsigned long *dstLen, const unsigned char *src, unsigned long srcLen) {
	int rc = deflateReset(s);
	if (rc != Z_OK) return rc;
	s->next_in = (Bytef *)src;
	s->avail_in = (uInt)srcLen;
	s->next_out = dst;
	s->avail_out = (uInt)*dstLen;
	rc = deflate(s, Z_FINISH);
	if (rc != Z_STREAM_END) return rc == Z_OK ? Z_BUF_ERROR : rc;
	*dstLen = s->total_out;
	return Z_OK;
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// ZlibByteExact reports whether zlibCompress reproduces CPython's
// zlib.compress bytes (true with cgo and the system zlib, which CPython
// links too; false in the pure-Go fallback).
const ZlibByteExact = true

// deflaters are idle deflate streams, reused (deflateReset) instead of
// compress2's allocating and freeing one per call, which cost about 200 µs
// per session cookie (a fresh mapping of ~260 KiB and its page faults). At
// most cap streams stay idle; more are freed.
var deflaters = make(chan *C.z_stream, 16)

// maxDeflateInput bounds one call: zlib's avail_in and avail_out are 32-bit.
const maxDeflateInput = 1 << 30

// zlibCompress is CPython's zlib.compress(data): level Z_DEFAULT_COMPRESSION,
// 15 window bits, memLevel 8, default strategy (compress2's parameters), run
// by the same system zlib as CPython.
func zlibCompress(data []byte) ([]byte, error) {
	if len(data) > maxDeflateInput {
		return nil, fmt.Errorf("zlib compress: %d bytes is more than one call takes", len(data))
	}
	var s *C.z_stream
	select {
	case s = <-deflaters:
	default:
		if s = C.cutover_deflate_new(); s == nil {
			return nil, fmt.Errorf("zlib compress: deflateInit failed")
		}
	}
	bound := C.compressBound(C.uLong(len(data)))
	dst := make([]byte, int(bound))
	dstLen := C.ulong(bound)
	var src *C.uchar
	if len(data) > 0 {
		src = (*C.uchar)(unsafe.Pointer(&data[0]))
	} else {
		src = (*C.uchar)(unsafe.Pointer(&dst[0])) // any valid pointer; length 0
	}
	rc := C.cutover_deflate(s, (*C.uchar)(unsafe.Pointer(&dst[0])), &dstLen, src, C.ulong(len(data)))
	if rc != C.Z_OK {
		C.cutover_deflate_free(s) // its state is unknown: never reused
		return nil, fmt.Errorf("zlib compress: error %d", int(rc))
	}
	select {
	case deflaters <- s:
	default:
		C.cutover_deflate_free(s)
	}
	return dst[:int(dstLen)], nil
}
