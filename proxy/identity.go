package proxy

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/cutover/cutover/config"
)

// source is a compiled identity source.
type source struct {
	kind config.SourceKind
	name string // canonical header name for headers
	text string // config form, for logs
}

func compileSources(list []config.Source) []source {
	out := make([]source, len(list))
	for i, s := range list {
		out[i] = source{kind: s.Kind, name: s.Name, text: s.String()}
		if s.Kind == config.SourceHeader {
			out[i].name = textproto.CanonicalMIMEHeaderKey(s.Name)
		}
	}
	return out
}

// identityOpts are the process-wide identity settings.
type identityOpts struct {
	sessionCookie string
	trustedHops   int
	maxBody       int64
}

// identity returns the first non-empty identity of r, and the source that
// gave it. A json: source reads the body into d's buffer (r.Body still
// yields the same bytes).
func identity(r *http.Request, d *Decision, sources []source, o *identityOpts) (string, string) {
	for i := range sources {
		s := &sources[i]
		var v string
		switch s.kind {
		case config.SourceHeader:
			if vs := r.Header[s.name]; len(vs) > 0 {
				v = strings.TrimSpace(vs[0])
			}
		case config.SourcePath:
			v = d.Match.Param(s.name)
		case config.SourceJSON:
			v = jsonField(r, d, s.name, o.maxBody)
		case config.SourceSession:
			if c := cookieValue(r, o.sessionCookie); c != "" {
				v = sessionField(c, s.name)
			}
		case config.SourceCookie:
			v = cookieValue(r, s.name)
		case config.SourceClientIP:
			v = clientIP(r, o.trustedHops)
		}
		if v != "" {
			return v, s.text
		}
	}
	return "", ""
}

// clientIP is the address hops entries from the right of X-Forwarded-For
// (the ALB appends the address it saw), else the peer address.
func clientIP(r *http.Request, hops int) string {
	vs := r.Header["X-Forwarded-For"]
	// Walk the entries from the right without building a list.
	for i := len(vs) - 1; i >= 0 && hops > 0; i-- {
		s := vs[i]
		for s != "" {
			j := strings.LastIndexByte(s, ',')
			entry := strings.TrimSpace(s[j+1:])
			if j < 0 {
				s = ""
			} else {
				s = s[:j]
			}
			if entry == "" {
				continue
			}
			hops--
			if hops == 0 || (i == 0 && s == "") {
				return entry
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// cookieValue finds cookie name in the Cookie headers without parsing them all.
func cookieValue(r *http.Request, name string) string {
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if ok && k == name {
				if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				return v
			}
		}
	}
	return ""
}

// maxSessionPayload bounds the inflated session payload we look into.
const maxSessionPayload = 64 << 10

// sessionField decodes the payload of a Flask session cookie (itsdangerous
// URLSafeTimedSerializer: [.]base64(payload).timestamp.signature, a leading
// dot meaning zlib) without verifying the signature: the bucket only needs a
// stable value, and a client forging one only picks its own bucket. It
// returns the named top-level field (strings as is, other JSON values as
// their JSON text) or, with no name, the whole payload JSON; never the raw
// cookie, whose timestamp and signature change on every refresh.
func sessionField(cookie, name string) string {
	compressed := strings.HasPrefix(cookie, ".")
	if compressed {
		cookie = cookie[1:]
	}
	payload, _, ok := strings.Cut(cookie, ".")
	if !ok || payload == "" {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(payload, "="))
	if err != nil {
		return ""
	}
	if compressed {
		zr, err := zlib.NewReader(bytes.NewReader(raw))
		if err != nil {
			return ""
		}
		raw, err = io.ReadAll(io.LimitReader(zr, maxSessionPayload+1))
		if err != nil || len(raw) > maxSessionPayload {
			return ""
		}
	}
	if name == "" {
		if !json.Valid(raw) {
			return ""
		}
		return string(raw)
	}
	return topLevelField(raw, name)
}

// topLevelField returns field name of a JSON object: a string's value, or
// the JSON text of any other non-null value; "" when absent or not an object.
func topLevelField(data []byte, name string) string {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return ""
	}
	v, ok := obj[name]
	if !ok || len(v) == 0 || string(v) == "null" {
		return ""
	}
	if v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) != nil {
			return ""
		}
		return s
	}
	return string(v)
}

// jsonField finds a top-level field of a JSON body of at most limit bytes
// (read into the request's one body buffer); larger bodies, or bodies of
// unknown length that turn out larger, are skipped.
func jsonField(r *http.Request, d *Decision, name string, limit int64) string {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || r.ContentLength > limit {
		return ""
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		return ""
	}
	body, ok, _ := d.bodyUpTo(r, limit)
	if !ok {
		return ""
	}
	return topLevelField(body, name)
}

func isJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(strings.ToLower(mt))
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// bucketLabel formats a bucket for logs ("" when none).
func bucketLabel(b int) string {
	if b < 0 {
		return ""
	}
	return strconv.Itoa(b)
}
