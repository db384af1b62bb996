package compat

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
)

// JSONMediaTypeDescription is the 415 description request.get_json() raises
// for a non-JSON Content-Type.
const JSONMediaTypeDescription = "Did not attempt to load JSON data because the request Content-Type was not 'application/json'."

// Mimetype is Werkzeug's request.mimetype: the Content-Type before any ";",
// stripped and lower-cased ("" without the header). gunicorn keeps the last
// Content-Type header when several are sent, and so does Mimetype.
func Mimetype(r *http.Request) string {
	vs := r.Header.Values("Content-Type")
	if len(vs) == 0 {
		return ""
	}
	v, _, _ := strings.Cut(vs[len(vs)-1], ";")
	return strings.ToLower(pyStripLatin1(v))
}

// pyStripLatin1 is str.strip() on a latin-1 decoded header value.
func pyStripLatin1(s string) string {
	isSpace := func(c byte) bool {
		switch c {
		case ' ', '\t', '\n', '\r', 0x0b, 0x0c, 0x1c, 0x1d, 0x1e, 0x1f, 0x85, 0xa0:
			return true
		}
		return false
	}
	i, j := 0, len(s)
	for i < j && isSpace(s[i]) {
		i++
	}
	for j > i && isSpace(s[j-1]) {
		j--
	}
	return s[i:j]
}

// IsJSON is Werkzeug's request.is_json: mimetype application/json or application/*+json.
func IsJSON(r *http.Request) bool {
	mt := Mimetype(r)
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// errTooLarge is the cause attached to 413 errors.
var errTooLarge = errors.New("request body exceeds MAX_CONTENT_LENGTH")

// GetData is request.get_data() behind gunicorn (wsgi.input_terminated) with
// MAX_CONTENT_LENGTH = maxContentLength (negative means None, Flask's
// default). A Content-Length above the limit is a 413 before anything is
// read. A body without Content-Length (chunked) is cut at the limit without
// error, exactly as Werkzeug's LimitedStream.readall does, except that a
// limit of 0 is a 413. The body read is put back in r.Body, so a second
// call (or a handler) sees the same bytes, like Werkzeug's cached data.
func GetData(r *http.Request, maxContentLength int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		if maxContentLength == 0 && r.ContentLength < 0 {
			return nil, &HTTPError{Code: http.StatusRequestEntityTooLarge, Err: errTooLarge}
		}
		return []byte{}, nil
	}
	chunked := r.ContentLength < 0
	if maxContentLength >= 0 {
		if !chunked && r.ContentLength > maxContentLength {
			return nil, &HTTPError{Code: http.StatusRequestEntityTooLarge, Err: errTooLarge}
		}
		if chunked && maxContentLength == 0 {
			return nil, &HTTPError{Code: http.StatusRequestEntityTooLarge, Err: errTooLarge}
		}
	}
	var rd io.Reader = r.Body
	if chunked && maxContentLength >= 0 {
		rd = io.LimitReader(r.Body, maxContentLength)
	}
	data, err := io.ReadAll(rd)
	if err != nil {
		// Werkzeug's ClientDisconnected is a 400.
		return nil, &HTTPError{Code: http.StatusBadRequest, Err: err}
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	if !chunked {
		r.ContentLength = int64(len(data))
	}
	return data, nil
}

// GetJSON is Flask 3.1's request.get_json() outside debug mode, with no
// MAX_CONTENT_LENGTH; see GetJSONLimit.
func GetJSON(r *http.Request) (any, error) { return GetJSONLimit(r, -1) }

// GetJSONLimit is Flask 3.1's request.get_json() outside debug mode with
// MAX_CONTENT_LENGTH = maxContentLength (negative means None). Errors are
// *HTTPError, ready for WriteError:
//   - 415 with JSONMediaTypeDescription when the mimetype is not JSON (the
//     body is not read);
//   - 413 when GetData refuses the body;
//   - 400 with Werkzeug's generic description when the body does not decode
//     (Err holds the *JSONDecodeError, *UnicodeDecodeError or
//     ErrIntTooLong; in debug mode Flask would show "Failed to decode JSON
//     object: " + Err.Error(), see DebugDescription);
//   - 500 for nesting too deep for CPython (RecursionError is not a ValueError).
func GetJSONLimit(r *http.Request, maxContentLength int64) (any, error) {
	if !IsJSON(r) {
		return nil, &HTTPError{Code: http.StatusUnsupportedMediaType, Description: JSONMediaTypeDescription}
	}
	data, err := GetData(r, maxContentLength)
	if err != nil {
		return nil, err
	}
	v, err := Unmarshal(data)
	if err != nil {
		var re *RecursionError
		if errors.As(err, &re) {
			return nil, &HTTPError{Code: http.StatusInternalServerError, Err: err}
		}
		return nil, &HTTPError{Code: http.StatusBadRequest, Err: err}
	}
	return v, nil
}

// DebugDescription is the 400 description Flask shows in debug mode for a
// body that failed to decode: "Failed to decode JSON object: <error>".
func DebugDescription(decodeErr error) string {
	return "Failed to decode JSON object: " + decodeErr.Error()
}
