package compat

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Session decoding outcomes, as itsdangerous raises them.
var (
	// ErrBadSignature is itsdangerous.BadSignature (also BadTimeSignature):
	// the cookie is not signed with any of the keys, or is malformed. Flask
	// then starts an empty session.
	ErrBadSignature = errors.New("bad signature")
	// ErrSignatureExpired is itsdangerous.SignatureExpired: the timestamp is
	// older than MaxAge or in the future. Flask then starts an empty session.
	ErrSignatureExpired = errors.New("signature expired")
	// ErrBadPayload is itsdangerous.BadPayload: the signature is valid but the
	// payload does not decode. Flask does not catch it: the request fails
	// with a 500.
	ErrBadPayload = errors.New("bad payload")
)

// DefaultSessionLifetime is Flask's PERMANENT_SESSION_LIFETIME (31 days).
const DefaultSessionLifetime = 31 * 24 * time.Hour

// maxSessionPayload bounds the inflated size of a compressed cookie payload.
// A real cookie (under 4 KiB) inflates to far less; Python has no bound.
const maxSessionPayload = 8 << 20

// Tuple is a Python tuple in a session (tag " t"); it decodes from and
// encodes to the tagged form, and as plain JSON it is a list.
type Tuple []any

// Markup is markupsafe.Markup in a session (tag " m").
type Markup string

// UUID is uuid.UUID in a session (tag " u", stored as 32 hex digits).
type UUID [16]byte

// String is str(uuid): the lower-case hyphenated form.
func (u UUID) String() string {
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// MarshalText makes Dumps write a UUID as str(uuid), like Flask's JSON default.
func (u UUID) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// SessionCodec signs and verifies Flask session cookies exactly as
// SecureCookieSessionInterface does: itsdangerous URLSafeTimedSerializer,
// salt "cookie-session", HMAC key derivation, HMAC-SHA1 signatures, Flask's
// TaggedJSONSerializer, zlib compression when it saves more than one byte.
// It also holds the cookie settings save_session uses. A SessionCodec is
// safe for concurrent use once built.
type SessionCodec struct {
	// SecretKey is Flask's SECRET_KEY; it signs new cookies. Required.
	SecretKey string
	// FallbackKeys is SECRET_KEY_FALLBACKS (oldest first): accepted when
	// verifying, never used to sign. Nil means none.
	FallbackKeys []string
	// MaxAge is PERMANENT_SESSION_LIFETIME: the oldest accepted cookie
	// timestamp, and the Expires of permanent sessions. Zero means 31 days.
	MaxAge time.Duration
	// Now is the clock for timestamps and expiry. Nil means time.Now.
	Now func() time.Time

	// CookieName is SESSION_COOKIE_NAME. Empty means "session".
	CookieName string
	// CookiePath is SESSION_COOKIE_PATH. Empty means "/".
	CookiePath string
	// CookieDomain is SESSION_COOKIE_DOMAIN. Empty means none.
	CookieDomain string
	// CookieSecure is SESSION_COOKIE_SECURE.
	CookieSecure bool
	// CookieSameSite is SESSION_COOKIE_SAMESITE ("Lax", "Strict", "None"). Empty means none.
	CookieSameSite string
	// NoHTTPOnly turns SESSION_COOKIE_HTTPONLY (default on) off.
	NoHTTPOnly bool
	// NoRefreshEachRequest turns SESSION_REFRESH_EACH_REQUEST (default on)
	// off: permanent sessions are then re-sent only when modified.
	NoRefreshEachRequest bool
}

func (c *SessionCodec) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *SessionCodec) maxAge() time.Duration {
	if c.MaxAge == 0 {
		return DefaultSessionLifetime
	}
	return c.MaxAge
}

func (c *SessionCodec) cookieName() string {
	if c.CookieName == "" {
		return "session"
	}
	return c.CookieName
}

func deriveKey(secret string) []byte {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte("cookie-session"))
	return m.Sum(nil)
}

func sign(key []byte, value string) []byte {
	m := hmac.New(sha1.New, key)
	m.Write([]byte(value))
	return m.Sum(nil)
}

// Encode returns the cookie value Flask would set for data at c.Now():
// payload "." timestamp "." signature. With cgo (ZlibByteExact) it is
// byte-identical to Flask's, compressed payloads included.
func (c *SessionCodec) Encode(data Object) (string, error) {
	if c.SecretKey == "" {
		return "", errors.New("session codec: no secret key")
	}
	tagged, err := tagValue(data)
	if err != nil {
		return "", err
	}
	js, err := Marshal(tagged)
	if err != nil {
		return "", err
	}
	payload := base64.RawURLEncoding.EncodeToString(js)
	z, err := zlibCompress(js)
	if err != nil {
		return "", err
	}
	if len(z) < len(js)-1 {
		payload = "." + base64.RawURLEncoding.EncodeToString(z)
	}
	ts := c.now().Unix()
	value := payload + "." + base64.RawURLEncoding.EncodeToString(intToBytes(ts))
	return value + "." + base64.RawURLEncoding.EncodeToString(sign(deriveKey(c.SecretKey), value)), nil
}

func intToBytes(n int64) []byte {
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = byte(n)
		n >>= 8
	}
	return bytes.TrimLeft(b[:], "\x00")
}

// Decode verifies and decodes a cookie value as open_session does (with
// max_age = MaxAge). Errors wrap ErrBadSignature, ErrSignatureExpired or
// ErrBadPayload.
func (c *SessionCodec) Decode(cookie string) (Object, error) {
	// want_bytes: the cookie str is UTF-8 encoded.
	i := strings.LastIndexByte(cookie, '.')
	if i < 0 {
		return nil, fmt.Errorf("no '.' found in value: %w", ErrBadSignature)
	}
	value, sig := cookie[:i], cookie[i+1:]
	sigOK := false
	if sigBytes, err := itsdangerousB64Decode(sig); err == nil {
		keys := append([]string{c.SecretKey}, reverse(c.FallbackKeys)...)
		for _, k := range keys {
			if hmac.Equal(sign(deriveKey(k), value), sigBytes) {
				sigOK = true
				break
			}
		}
	}
	j := strings.LastIndexByte(value, '.')
	if j < 0 {
		if !sigOK {
			return nil, fmt.Errorf("signature does not match: %w", ErrBadSignature)
		}
		return nil, fmt.Errorf("timestamp missing: %w", ErrBadSignature)
	}
	payload, tsPart := value[:j], value[j+1:]
	var (
		ts   uint64
		tsOK bool
	)
	if tb, err := itsdangerousB64Decode(tsPart); err == nil && len(tb) <= 8 {
		// struct.unpack(">Q", ...) after left-padding to 8 bytes.
		for _, b := range tb {
			ts = ts<<8 | uint64(b)
		}
		tsOK = true
	}
	if !sigOK {
		return nil, fmt.Errorf("signature does not match: %w", ErrBadSignature)
	}
	if !tsOK {
		return nil, fmt.Errorf("malformed timestamp: %w", ErrBadSignature)
	}
	now := c.now().Unix()
	maxAge := int64(c.maxAge() / time.Second)
	if now < 0 || ts > uint64(now) {
		return nil, fmt.Errorf("signature age < 0 seconds: %w", ErrSignatureExpired)
	}
	if age := now - int64(ts); age > maxAge {
		return nil, fmt.Errorf("signature age %d > %d seconds: %w", age, maxAge, ErrSignatureExpired)
	}
	return decodePayload(payload)
}

func reverse(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

func decodePayload(payload string) (Object, error) {
	compressed := strings.HasPrefix(payload, ".")
	if compressed {
		payload = payload[1:]
	}
	js, err := itsdangerousB64Decode(payload)
	if err != nil {
		return nil, fmt.Errorf("could not base64 decode the payload: %w", ErrBadPayload)
	}
	if compressed {
		zr, err := zlib.NewReader(bytes.NewReader(js))
		if err != nil {
			return nil, fmt.Errorf("could not zlib decompress the payload: %w", ErrBadPayload)
		}
		out, err := io.ReadAll(io.LimitReader(zr, maxSessionPayload+1))
		if err != nil || len(out) > maxSessionPayload {
			return nil, fmt.Errorf("could not zlib decompress the payload: %w", ErrBadPayload)
		}
		js = out
	}
	if !utf8.Valid(js) {
		return nil, fmt.Errorf("payload is not UTF-8: %w", ErrBadPayload)
	}
	v, err := Loads(string(js))
	if err != nil {
		return nil, fmt.Errorf("could not load the payload: %v: %w", err, ErrBadPayload)
	}
	u, err := untagValue(v)
	if err != nil {
		return nil, fmt.Errorf("could not load the payload: %v: %w", err, ErrBadPayload)
	}
	return sessionDict(u)
}

// sessionDict is what open_session's SecureCookieSession(data) makes of the
// decoded payload: dict(data), or an empty dict for None. A dict is kept; a
// list (or tuple) is read as key/value pairs; an empty string or bytes give
// an empty dict; anything else fails as in Python (TypeError or ValueError:
// a 500). Deviation: pairs with non-string keys (which Python would accept,
// e.g. [[1, 2]]) are reported as ErrBadPayload, since a compat session has
// string keys; only a holder of the secret key can produce them.
func sessionDict(v any) (Object, error) {
	bad := func(why string) (Object, error) {
		return nil, fmt.Errorf("session data %s: %w", why, ErrBadPayload)
	}
	switch x := v.(type) {
	case nil:
		return nil, nil
	case Object:
		return x, nil
	case string:
		if x == "" {
			return nil, nil
		}
		return bad("is a non-empty string")
	case Markup:
		if x == "" {
			return nil, nil
		}
		return bad("is a non-empty string")
	case []byte:
		if len(x) == 0 {
			return nil, nil
		}
		return bad("is bytes")
	case Tuple:
		return sessionDict([]any(x))
	case []any:
		out := Object{}
		for _, el := range x {
			var k, val any
			switch p := el.(type) {
			case []any:
				if len(p) != 2 {
					return bad("pair has the wrong length")
				}
				k, val = p[0], p[1]
			case Tuple:
				if len(p) != 2 {
					return bad("pair has the wrong length")
				}
				k, val = p[0], p[1]
			case string, Markup:
				r := []rune(fmt.Sprint(p))
				if len(r) != 2 {
					return bad("pair has the wrong length")
				}
				k, val = string(r[0]), string(r[1])
			case Object:
				if len(p) != 2 {
					return bad("pair has the wrong length")
				}
				k, val = p[0].Key, p[1].Key
			default:
				return bad("pair is not a sequence")
			}
			switch key := k.(type) {
			case string:
				out.Set(key, val)
			case Markup:
				out.Set(string(key), val)
			default:
				return bad("has a non-string key")
			}
		}
		return out, nil
	}
	return bad("is not a dict")
}

// a2bBase64 is CPython's binascii.a2b_base64(s, strict_mode=False) on the
// standard alphabet: characters outside it are skipped, a sufficient run of
// "=" ends the data, and leftover bits are ignored.
func a2bBase64(s []byte) ([]byte, error) {
	out := make([]byte, 0, len(s)*3/4)
	quadPos, pads := 0, 0
	var left byte
	for _, ch := range s {
		if ch == '=' {
			pads++
			if quadPos >= 2 && quadPos+pads >= 4 {
				return out, nil
			}
			continue
		}
		v := b64Value(ch)
		if v < 0 {
			continue
		}
		pads = 0
		switch quadPos {
		case 0:
			quadPos, left = 1, byte(v)
		case 1:
			out = append(out, left<<2|byte(v)>>4)
			quadPos, left = 2, byte(v)&0x0f
		case 2:
			out = append(out, left<<4|byte(v)>>2)
			quadPos, left = 3, byte(v)&0x03
		case 3:
			out = append(out, left<<6|byte(v))
			quadPos, left = 0, 0
		}
	}
	if quadPos != 0 {
		return nil, errors.New("incorrect padding")
	}
	return out, nil
}

func b64Value(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '+':
		return 62
	case c == '/':
		return 63
	}
	return -1
}

// itsdangerousB64Decode is itsdangerous.encoding.base64_decode on the
// bytes of a cookie: "=" padding added by length, then urlsafe_b64decode
// ("-" and "_" mapped to "+" and "/", everything else outside the alphabet
// skipped by the non-validating decoder).
func itsdangerousB64Decode(s string) ([]byte, error) {
	b := make([]byte, 0, len(s)+3)
	b = append(b, s...)
	for len(b)%4 != 0 {
		b = append(b, '=')
	}
	for i, c := range b {
		switch c {
		case '-':
			b[i] = '+'
		case '_':
			b[i] = '/'
		}
	}
	return a2bBase64(b)
}

// tagKeys are the registered keys of Flask's TaggedJSONSerializer.
var tagKeys = map[string]bool{" di": true, " t": true, " b": true, " m": true, " u": true, " d": true}

// tagValue ports TaggedJSONSerializer.tag: Go session values become the
// JSON-ready tagged tree (dict with one tag-like key -> " di", Tuple -> " t",
// []byte -> " b", Markup -> " m", UUID -> " u", time.Time -> " d").
func tagValue(v any) (any, error) {
	switch x := v.(type) {
	case Object:
		if len(x) == 1 && tagKeys[x[0].Key] {
			inner, err := tagValue(x[0].Value)
			if err != nil {
				return nil, err
			}
			return Object{{" di", Object{{x[0].Key + "__", inner}}}}, nil
		}
		out := make(Object, len(x))
		for i, m := range x {
			t, err := tagValue(m.Value)
			if err != nil {
				return nil, err
			}
			out[i] = Member{m.Key, t}
		}
		return out, nil
	case map[string]any:
		o := make(Object, 0, len(x))
		for k, val := range x {
			o = append(o, Member{k, val})
		}
		return tagValue(o)
	case Tuple:
		items, err := tagList(x)
		if err != nil {
			return nil, err
		}
		return Object{{" t", items}}, nil
	case []any:
		return tagList(x)
	case []byte:
		return Object{{" b", base64.StdEncoding.EncodeToString(x)}}, nil
	case Markup:
		return Object{{" m", string(x)}}, nil
	case UUID:
		return Object{{" u", hex.EncodeToString(x[:])}}, nil
	case time.Time:
		return Object{{" d", HTTPDate(x)}}, nil
	}
	// Other Go slices and string-keyed maps are lists and dicts to Python:
	// scan them too, so a nested one-key dict gets its " di" escape.
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 {
			return v, nil // typed byte slices: left to Marshal (not JSON serialisable)
		}
		items := make([]any, rv.Len())
		for i := range items {
			items[i] = rv.Index(i).Interface()
		}
		return tagList(items)
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return v, nil
		}
		o := make(Object, 0, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			o = append(o, Member{it.Key().String(), it.Value().Interface()})
		}
		return tagValue(o)
	}
	return v, nil
}

func tagList(x []any) ([]any, error) {
	out := make([]any, len(x))
	for i, item := range x {
		t, err := tagValue(item)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

// untagValue ports TaggedJSONSerializer._untag_scan.
func untagValue(v any) (any, error) {
	switch x := v.(type) {
	case Object:
		out := make(Object, len(x))
		for i, m := range x {
			u, err := untagValue(m.Value)
			if err != nil {
				return nil, err
			}
			out[i] = Member{m.Key, u}
		}
		if len(out) != 1 || !tagKeys[out[0].Key] {
			return out, nil
		}
		return untagOne(out[0].Key, out[0].Value)
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			u, err := untagValue(item)
			if err != nil {
				return nil, err
			}
			out[i] = u
		}
		return out, nil
	}
	return v, nil
}

func untagOne(key string, v any) (any, error) {
	switch key {
	case " di":
		o, ok := v.(Object)
		if !ok || len(o) == 0 {
			return nil, errors.New("tag ' di': not a dict")
		}
		k := o[0].Key
		if r := []rune(k); len(r) >= 2 {
			k = string(r[:len(r)-2])
		} else {
			k = ""
		}
		return Object{{k, o[0].Value}}, nil
	case " t":
		l, ok := v.([]any)
		if !ok {
			return nil, errors.New("tag ' t': not a list")
		}
		return Tuple(l), nil
	case " b":
		s, ok := v.(string)
		if !ok {
			return nil, errors.New("tag ' b': not a string")
		}
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				return nil, errors.New("string argument should contain only ASCII characters")
			}
		}
		return a2bBase64([]byte(s))
	case " m":
		s, ok := v.(string)
		if !ok {
			return nil, errors.New("tag ' m': not a string")
		}
		return Markup(s), nil
	case " u":
		s, ok := v.(string)
		if !ok {
			return nil, errors.New("tag ' u': not a string")
		}
		return parsePyUUID(s)
	case " d":
		s, ok := v.(string)
		if !ok {
			return nil, nil
		}
		t, err := time.Parse(time.RFC1123, s)
		if err != nil {
			// werkzeug.http.parse_date returns None for what it cannot parse.
			return nil, nil
		}
		return t.UTC(), nil
	}
	return Object{{key, v}}, nil
}

// parsePyUUID is uuid.UUID(hex=s).
func parsePyUUID(s string) (UUID, error) {
	var u UUID
	s = strings.ReplaceAll(s, "urn:", "")
	s = strings.ReplaceAll(s, "uuid:", "")
	s = strings.Trim(s, "{}")
	s = strings.ReplaceAll(s, "-", "")
	if utf8.RuneCountInString(s) != 32 {
		return u, errors.New("badly formed hexadecimal UUID string")
	}
	t := strings.TrimSpace(s)
	t = strings.TrimPrefix(strings.TrimPrefix(t, "0x"), "0X")
	t = strings.ReplaceAll(t, "_", "")
	n, ok := new(big.Int).SetString(t, 16)
	if !ok || n.Sign() < 0 || n.BitLen() > 128 {
		return u, errors.New("badly formed hexadecimal UUID string")
	}
	n.FillBytes(u[:])
	return u, nil
}

// Session is flask.session for one request: the decoded values plus the
// accessed/modified flags that decide what save_session sends. Every method
// counts as an access (Flask 3.1.3 sets accessed whenever the session is
// reached through the request context). Not safe for concurrent use.
type Session struct {
	data     Object
	accessed bool
	modified bool
}

// NewSession returns a session holding data (not accessed, not modified).
func NewSession(data Object) *Session { return &Session{data: data} }

// Accessed reports whether the request touched the session (Vary: Cookie).
func (s *Session) Accessed() bool { return s.accessed }

// Modified reports whether the session was changed.
func (s *Session) Modified() bool { return s.modified }

// Touch marks the session accessed without reading it.
func (s *Session) Touch() { s.accessed = true }

// MarkModified is session.modified = True: needed after changing a value
// in place (a nested Object or list), which Set alone would not notice.
func (s *Session) MarkModified() { s.accessed, s.modified = true, true }

// Get is session.get(key).
func (s *Session) Get(key string) (any, bool) {
	s.accessed = true
	return s.data.Get(key)
}

// Set is session[key] = v.
func (s *Session) Set(key string, v any) {
	s.accessed, s.modified = true, true
	s.data.Set(key, v)
}

// Pop is session.pop(key, None): modified only if key was present.
func (s *Session) Pop(key string) (any, bool) {
	s.accessed = true
	v, ok := s.data.Get(key)
	if ok {
		s.data.Delete(key)
		s.modified = true
	}
	return v, ok
}

// Clear is session.clear(): always modified.
func (s *Session) Clear() {
	s.accessed, s.modified = true, true
	s.data = nil
}

// Len is len(session).
func (s *Session) Len() int {
	s.accessed = true
	return len(s.data)
}

// Values returns a copy of the values in order.
func (s *Session) Values() Object {
	s.accessed = true
	return append(Object(nil), s.data...)
}

// Permanent is session.permanent: the truthiness of "_permanent".
func (s *Session) Permanent() bool {
	s.accessed = true
	v, _ := s.data.Get("_permanent")
	return pyTruthy(v)
}

// SetPermanent is session.permanent = p (stores "_permanent": p).
func (s *Session) SetPermanent(p bool) { s.Set("_permanent", p) }

func pyTruthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case int64:
		return x != 0
	case *big.Int:
		return x.Sign() != 0
	case float64:
		return x != 0
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case Tuple:
		return len(x) > 0
	case Object:
		return len(x) > 0
	case []byte:
		return len(x) > 0
	case Markup:
		return x != ""
	}
	return true
}

// SessionCookie returns the request's session cookie value ("" if none)
// as Flask reads it: gunicorn joins repeated Cookie headers with ",",
// Werkzeug's parse_cookie splits on ";" (keeping quoted values, with
// backslash escapes undone) and request.cookies.get returns the first.
func (c *SessionCodec) SessionCookie(r *http.Request) string {
	vs := r.Header.Values("Cookie")
	if len(vs) == 0 {
		return ""
	}
	v, _ := ParseCookie(strings.Join(vs, ","), c.cookieName())
	return v
}

var (
	cookieRe        = regexp.MustCompile(`([^=;]*)(?:[ \t\n\r\f\v]*=[ \t\n\r\f\v]*("(?:[^\\"]|\\.)*"|.*?))?[ \t\n\r\f\v]*;[ \t\n\r\f\v]*`)
	cookieUnslashRe = regexp.MustCompile(`\\([0-3][0-7]{2}|.)`)
)

// ParseCookie is werkzeug.sansio.http.parse_cookie(header).get(name): the
// first value of the named cookie and whether it was present.
func ParseCookie(header, name string) (string, bool) {
	for _, m := range cookieRe.FindAllStringSubmatch(header+";", -1) {
		k := pyStripLatin1(m[1])
		if k == "" || k != name {
			continue
		}
		v := pyStripLatin1(m[2])
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = cookieUnslashRe.ReplaceAllStringFunc(v[1:len(v)-1], func(esc string) string {
				if len(esc) == 2 {
					return esc[1:]
				}
				n, _ := strconv.ParseUint(esc[1:], 8, 8)
				return string([]byte{byte(n)})
			})
			v = DecodeUTF8Replace([]byte(v))
		}
		return v, true
	}
	return "", false
}

// Open is open_session: the request's session, empty when there is no
// cookie or it fails verification (bad signature, expired). A cookie that
// verifies but does not decode is returned as an error wrapping
// ErrBadPayload, which Flask turns into a 500.
func (c *SessionCodec) Open(r *http.Request) (*Session, error) {
	val := c.SessionCookie(r)
	if val == "" {
		return NewSession(nil), nil
	}
	data, err := c.Decode(val)
	if errors.Is(err, ErrBadPayload) {
		return nil, err
	}
	if err != nil {
		return NewSession(nil), nil
	}
	return NewSession(data), nil
}

// SaveSession is SecureCookieSessionInterface.save_session: it adds
// "Vary: Cookie" when the session was accessed, deletes the cookie when a
// modified session is empty, and sets it when modified or (permanent and
// refresh-each-request), with Expires = now + MaxAge for permanent sessions.
// Call it before the response header is written.
func (c *SessionCodec) SaveSession(w http.ResponseWriter, s *Session) error {
	h := w.Header()
	if s.accessed {
		addVary(h, "Cookie")
	}
	if len(s.data) == 0 {
		if s.modified {
			h.Add("Set-Cookie", c.cookieHeader("", "Thu, 01 Jan 1970 00:00:00 GMT", true))
			addVary(h, "Cookie")
		}
		return nil
	}
	permanent := pyTruthy(func() any { v, _ := s.data.Get("_permanent"); return v }())
	if !(s.modified || permanent && !c.NoRefreshEachRequest) {
		return nil
	}
	val, err := c.Encode(s.data)
	if err != nil {
		return err
	}
	expires := ""
	if permanent {
		expires = HTTPDate(c.now().Add(c.maxAge()))
	}
	h.Add("Set-Cookie", c.cookieHeader(val, expires, false))
	addVary(h, "Cookie")
	return nil
}

// cookieHeader is werkzeug.http.dump_cookie for the session settings.
func (c *SessionCodec) cookieHeader(value, expires string, maxAge0 bool) string {
	parts := []string{c.cookieName() + "=" + value}
	if c.CookieDomain != "" {
		d, _, _ := strings.Cut(c.CookieDomain, ":")
		parts = append(parts, "Domain="+strings.TrimLeft(d, "."))
	}
	if expires != "" {
		parts = append(parts, "Expires="+expires)
	}
	if maxAge0 {
		parts = append(parts, "Max-Age=0")
	}
	if c.CookieSecure {
		parts = append(parts, "Secure")
	}
	if !c.NoHTTPOnly {
		parts = append(parts, "HttpOnly")
	}
	path := c.CookiePath
	if path == "" {
		path = "/"
	}
	parts = append(parts, "Path="+path)
	if c.CookieSameSite != "" {
		ss := strings.ToUpper(c.CookieSameSite[:1]) + strings.ToLower(c.CookieSameSite[1:])
		parts = append(parts, "SameSite="+ss)
	}
	return strings.Join(parts, "; ")
}

// addVary is response.vary.add(v): the first Vary header parsed as a set,
// v added unless present (case-insensitive), written back as one header.
func addVary(h http.Header, v string) {
	cur := h.Get("Vary")
	var items []string
	for _, p := range strings.Split(cur, ",") {
		if p = strings.TrimSpace(p); p != "" {
			items = append(items, p)
		}
	}
	for _, it := range items {
		if strings.EqualFold(it, v) {
			h.Set("Vary", strings.Join(items, ", "))
			return
		}
	}
	h.Set("Vary", strings.Join(append(items, v), ", "))
}

// FormatTimestamp is base64url(int_to_bytes(ts)) as in the cookie's middle part.
func FormatTimestamp(ts int64) string {
	return base64.RawURLEncoding.EncodeToString(intToBytes(ts))
}
