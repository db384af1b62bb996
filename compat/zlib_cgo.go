//go:build cgo

package compat

/*
#cgo LDFLAGS: -lz
#include <zlib.h>
#include <stdlib.h>

static int cutover_compress(unsigned char *dst, unsigned long *dstLen, const unsigned char *src, unsigned long srcLen) {
	return compress2(dst, dstLen, src, srcLen, Z_DEFAULT_COMPRESSION);
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

// zlibCompress is CPython's zlib.compress(data): level Z_DEFAULT_COMPRESSION,
// 15 window bits, memLevel 8, default strategy, which is what compress2
// uses, run by the same system zlib as CPython.
func zlibCompress(data []byte) ([]byte, error) {
	bound := C.compressBound(C.uLong(len(data)))
	dst := make([]byte, int(bound))
	dstLen := C.ulong(bound)
	var src *C.uchar
	if len(data) > 0 {
		src = (*C.uchar)(unsafe.Pointer(&data[0]))
	} else {
		src = (*C.uchar)(unsafe.Pointer(&dst[0])) // any valid pointer; length 0
	}
	rc := C.cutover_compress((*C.uchar)(unsafe.Pointer(&dst[0])), &dstLen, src, C.ulong(len(data)))
	if rc != C.Z_OK {
		return nil, fmt.Errorf("zlib compress2: error %d", int(rc))
	}
	return dst[:int(dstLen)], nil
}
