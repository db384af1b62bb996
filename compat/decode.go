package compat

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// JSONDecodeError is Python's json.JSONDecodeError: a message and the
// position (in code points) where decoding failed. Error() is str(exc):
// "Expecting value: line 1 column 1 (char 0)".
type JSONDecodeError struct {
	Msg    string
	Pos    int
	Lineno int
	Colno  int
}

func (e *JSONDecodeError) Error() string {
	return fmt.Sprintf("%s: line %d column %d (char %d)", e.Msg, e.Lineno, e.Colno, e.Pos)
}

// UnicodeDecodeError is Python's UnicodeDecodeError from decoding the body
// bytes before parsing (json.loads(bytes)): str(exc) is e.g.
// "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte".
type UnicodeDecodeError struct {
	Encoding string
	Start    int
	End      int
	Bytes    []byte
	Reason   string
}

func (e *UnicodeDecodeError) Error() string {
	if e.End-e.Start == 1 {
		return fmt.Sprintf("'%s' codec can't decode byte 0x%02x in position %d: %s", e.Encoding, e.Bytes[e.Start], e.Start, e.Reason)
	}
	return fmt.Sprintf("'%s' codec can't decode bytes in position %d-%d: %s", e.Encoding, e.Start, e.End-1, e.Reason)
}

// ErrIntTooLong is Python's ValueError for integers over 4300 digits;
// decoding errors match it with errors.Is (they are *IntDigitsError).
var ErrIntTooLong = errors.New("integer string over 4300 digits")

// IntDigitsError is the ValueError int() raises past
// sys.get_int_max_str_digits() (4300 by default).
type IntDigitsError struct{ Digits int }

func (e *IntDigitsError) Error() string {
	return fmt.Sprintf("Exceeds the limit (4300 digits) for integer string conversion: value has %d digits; use sys.set_int_max_str_digits() to increase the limit", e.Digits)
}

// Is makes errors.Is(err, ErrIntTooLong) true.
func (e *IntDigitsError) Is(target error) bool { return target == ErrIntTooLong }

// Unmarshal decodes data as CPython 3.11's json.loads(bytes): the encoding is
// detected like json.detect_encoding (UTF-8, UTF-8 with BOM, UTF-16/32 with
// or without BOM) and decoded with errors="surrogatepass"; then Python's
// parser rules apply: NaN, Infinity and -Infinity accepted; whitespace is
// only space, \t, \n, \r; control characters inside strings rejected;
// duplicate keys keep the last value at the first key's position; lone
// surrogate escapes kept. Results: nil, bool, string (lone surrogates as
// WTF-8 bytes, which Dumps writes back as \udXXX), int64 or *big.Int for
// integers, float64 for numbers with a fraction or exponent (1e400 is +Inf),
// []any, Object. Errors: *UnicodeDecodeError, *JSONDecodeError, ErrIntTooLong.
func Unmarshal(data []byte) (any, error) {
	text, err := decodeJSONBytes(data)
	if err != nil {
		return nil, err
	}
	return loadsRunes(text)
}

// Loads is json.loads(str) for text already decoded: unlike Unmarshal, a
// leading U+FEFF is rejected ("Unexpected UTF-8 BOM"). Lone surrogates may
// be given as WTF-8.
func Loads(s string) (any, error) {
	rs := make([]rune, 0, len(s))
	for i := 0; i < len(s); {
		r, n := decodeWTF8(s[i:])
		rs = append(rs, r)
		i += n
	}
	if len(rs) > 0 && rs[0] == 0xFEFF {
		return nil, (&parser{s: rs}).errAt("Unexpected UTF-8 BOM (decode using utf-8-sig)", 0)
	}
	return loadsRunes(rs)
}

func loadsRunes(text []rune) (any, error) {
	p := &parser{s: text}
	i := p.skipWS(0)
	v, end, err := p.scan(i, 0)
	if err != nil {
		return nil, err
	}
	end = p.skipWS(end)
	if end != len(text) {
		return nil, p.errAt("Extra data", end)
	}
	return v, nil
}

// decodeJSONBytes ports json.detect_encoding + bytes.decode(enc, "surrogatepass").
func decodeJSONBytes(b []byte) ([]rune, error) {
	// Error messages name the codec doing the work and count positions
	// like CPython: the utf-16/32 codecs report the endian-specific name and
	// positions in the whole input; utf-8-sig strips the BOM and hands the
	// rest to the utf-8 codec.
	switch {
	case hasPrefix(b, 0, 0, 0xFE, 0xFF):
		return decodeUTF32(b[4:], true, "utf-32-be", 4)
	case hasPrefix(b, 0xFF, 0xFE, 0, 0):
		return decodeUTF32(b[4:], false, "utf-32-le", 4)
	case hasPrefix(b, 0xFE, 0xFF):
		return decodeUTF16(b[2:], true, "utf-16-be", 2)
	case hasPrefix(b, 0xFF, 0xFE):
		return decodeUTF16(b[2:], false, "utf-16-le", 2)
	case hasPrefix(b, 0xEF, 0xBB, 0xBF):
		return decodeUTF8Surrogatepass(b[3:], "utf-8", 0)
	}
	if len(b) >= 4 {
		if b[0] == 0 {
			if b[1] != 0 {
				return decodeUTF16(b, true, "utf-16-be", 0)
			}
			return decodeUTF32(b, true, "utf-32-be", 0)
		}
		if b[1] == 0 {
			if b[2] != 0 || b[3] != 0 {
				return decodeUTF16(b, false, "utf-16-le", 0)
			}
			return decodeUTF32(b, false, "utf-32-le", 0)
		}
	} else if len(b) == 2 {
		if b[0] == 0 {
			return decodeUTF16(b, true, "utf-16-be", 0)
		}
		if b[1] == 0 {
			return decodeUTF16(b, false, "utf-16-le", 0)
		}
	}
	return decodeUTF8Surrogatepass(b, "utf-8", 0)
}

func hasPrefix(b []byte, p ...byte) bool {
	if len(b) < len(p) {
		return false
	}
	for i := range p {
		if b[i] != p[i] {
			return false
		}
	}
	return true
}

// utf8Invalid finds the maximal invalid subpart at b[0] (CPython's decoder
// reports and replaces exactly that many bytes) and its reason.
func utf8Invalid(b []byte) (n int, reason string) {
	c := b[0]
	var size int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		size = 2
	case c == 0xE0:
		size, lo = 3, 0xA0
	case c == 0xED:
		size, hi = 3, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		size = 3
	case c == 0xF0:
		size, lo = 4, 0x90
	case c == 0xF4:
		size, hi = 4, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		size = 4
	default:
		return 1, "invalid start byte"
	}
	for i := 1; i < size; i++ {
		if i >= len(b) {
			return i, "unexpected end of data"
		}
		l, h := byte(0x80), byte(0xBF)
		if i == 1 {
			l, h = lo, hi
		}
		if b[i] < l || b[i] > h {
			return i, "invalid continuation byte"
		}
	}
	return 0, ""
}

func decodeUTF8Surrogatepass(b []byte, enc string, offset int) ([]rune, error) {
	out := make([]rune, 0, len(b))
	for i := 0; i < len(b); {
		if b[i] < 0x80 {
			out = append(out, rune(b[i]))
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || n > 1 {
			out = append(out, r)
			i += n
			continue
		}
		// surrogatepass: an encoded surrogate is accepted.
		if i+2 < len(b) && b[i] == 0xED && b[i+1] >= 0xA0 && b[i+1] <= 0xBF && b[i+2] >= 0x80 && b[i+2] <= 0xBF {
			out = append(out, rune(0xD000)|rune(b[i+1]&0x3F)<<6|rune(b[i+2]&0x3F))
			i += 3
			continue
		}
		bad, reason := utf8Invalid(b[i:])
		if b[i] == 0xED && i+1 < len(b) && b[i+1] >= 0xA0 && b[i+1] <= 0xBF {
			// CPython reports ED A0..BF as an invalid continuation of one byte.
			bad, reason = 1, "invalid continuation byte"
		}
		full := make([]byte, offset+len(b))
		copy(full[offset:], b)
		return nil, &UnicodeDecodeError{Encoding: enc, Start: offset + i, End: offset + i + bad, Bytes: full, Reason: reason}
	}
	return out, nil
}

func decodeUTF16(b []byte, be bool, enc string, offset int) ([]rune, error) {
	out := make([]rune, 0, len(b)/2)
	full := func() []byte {
		f := make([]byte, offset+len(b))
		copy(f[offset:], b)
		return f
	}
	unit := func(i int) rune {
		if be {
			return rune(b[i])<<8 | rune(b[i+1])
		}
		return rune(b[i+1])<<8 | rune(b[i])
	}
	i := 0
	for ; i+1 < len(b); i += 2 {
		u := unit(i)
		if u >= 0xD800 && u <= 0xDBFF && i+3 < len(b) {
			if u2 := unit(i + 2); u2 >= 0xDC00 && u2 <= 0xDFFF {
				out = append(out, 0x10000+(u-0xD800)<<10+(u2-0xDC00))
				i += 2
				continue
			}
		}
		out = append(out, u) // surrogatepass keeps lone surrogates
	}
	if i < len(b) {
		return nil, &UnicodeDecodeError{Encoding: enc, Start: offset + i, End: offset + len(b), Bytes: full(), Reason: "truncated data"}
	}
	return out, nil
}

func decodeUTF32(b []byte, be bool, enc string, offset int) ([]rune, error) {
	out := make([]rune, 0, len(b)/4)
	i := 0
	for ; i+3 < len(b); i += 4 {
		var u uint32
		if be {
			u = uint32(b[i])<<24 | uint32(b[i+1])<<16 | uint32(b[i+2])<<8 | uint32(b[i+3])
		} else {
			u = uint32(b[i+3])<<24 | uint32(b[i+2])<<16 | uint32(b[i+1])<<8 | uint32(b[i])
		}
		if u > 0x10FFFF {
			f := make([]byte, offset+len(b))
			copy(f[offset:], b)
			return nil, &UnicodeDecodeError{Encoding: enc, Start: offset + i, End: offset + i + 4, Bytes: f, Reason: "code point not in range(0x110000)"}
		}
		out = append(out, rune(u))
	}
	if i < len(b) {
		f := make([]byte, offset+len(b))
		copy(f[offset:], b)
		return nil, &UnicodeDecodeError{Encoding: enc, Start: offset + i, End: offset + len(b), Bytes: f, Reason: "truncated data"}
	}
	return out, nil
}

// DecodeUTF8Replace is bytes.decode("utf-8", errors="replace"): each maximal
// invalid subpart becomes one U+FFFD (Go's range loop gives one per byte).
func DecodeUTF8Replace(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || n > 1 {
			sb.WriteRune(r)
			i += n
			continue
		}
		bad, _ := utf8Invalid(b[i:])
		if bad == 0 {
			bad = 1
		}
		sb.WriteRune(utf8.RuneError)
		i += bad
	}
	return sb.String()
}

type parser struct {
	s []rune
}

func (p *parser) errAt(msg string, pos int) *JSONDecodeError {
	line := 1
	last := -1
	for i := 0; i < pos && i < len(p.s); i++ {
		if p.s[i] == '\n' {
			line++
			last = i
		}
	}
	return &JSONDecodeError{Msg: msg, Pos: pos, Lineno: line, Colno: pos - last}
}

func (p *parser) skipWS(i int) int {
	for i < len(p.s) {
		switch p.s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func (p *parser) lit(i int, word string) bool {
	if i+len(word) > len(p.s) {
		return false
	}
	for k := 0; k < len(word); k++ {
		if p.s[i+k] != rune(word[k]) {
			return false
		}
	}
	return true
}

// scan ports scan_once_unicode from CPython's Modules/_json.c.
func (p *parser) scan(i, depth int) (any, int, error) {
	if i >= len(p.s) {
		return nil, 0, p.errAt("Expecting value", i)
	}
	if c := p.s[i]; (c == '[' || c == '{') && depth >= MaxDecodeDepth {
		return nil, 0, &RecursionError{}
	}
	switch c := p.s[i]; {
	case c == '"':
		s, end, err := p.scanString(i + 1)
		return s, end, err
	case c == '{':
		return p.scanObject(i+1, depth+1)
	case c == '[':
		return p.scanArray(i+1, depth+1)
	case c == 'n' && p.lit(i, "null"):
		return nil, i + 4, nil
	case c == 't' && p.lit(i, "true"):
		return true, i + 4, nil
	case c == 'f' && p.lit(i, "false"):
		return false, i + 5, nil
	case c == 'N' && p.lit(i, "NaN"):
		return math.NaN(), i + 3, nil
	case c == 'I' && p.lit(i, "Infinity"):
		return math.Inf(1), i + 8, nil
	case c == '-' && p.lit(i, "-Infinity"):
		return math.Inf(-1), i + 9, nil
	}
	return p.scanNumber(i)
}

// MaxDecodeDepth is the deepest nesting Unmarshal accepts. CPython's C
// scanner has no depth limit of its own but counts every nested container
// against the interpreter's recursion limit (1000), minus the frames already
// on the stack: a Flask view calling request.get_json() directly, under a
// gunicorn sync worker, decodes at most 971 levels (measured with
// testdata/vector_app.py). A view that calls it deeper in its own helpers
// gets a few levels less; compat does not model that.
const MaxDecodeDepth = 971

// RecursionError is Python's RecursionError for too deeply nested JSON
// (encoding or decoding). It is not a ValueError: Flask's get_json lets it
// through, giving a 500.
type RecursionError struct{}

func (*RecursionError) Error() string {
	return "maximum recursion depth exceeded"
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

func (p *parser) scanNumber(start int) (any, int, error) {
	i := start
	n := len(p.s)
	if i < n && p.s[i] == '-' {
		i++
	}
	switch {
	case i < n && p.s[i] == '0':
		i++
	case i < n && p.s[i] >= '1' && p.s[i] <= '9':
		for i < n && isDigit(p.s[i]) {
			i++
		}
	default:
		return nil, 0, p.errAt("Expecting value", start)
	}
	isFloat := false
	if i+1 < n && p.s[i] == '.' && isDigit(p.s[i+1]) {
		isFloat = true
		i += 2
		for i < n && isDigit(p.s[i]) {
			i++
		}
	}
	if i < n && (p.s[i] == 'e' || p.s[i] == 'E') {
		e := i + 1
		if e < n && (p.s[e] == '-' || p.s[e] == '+') {
			e++
		}
		if e < n && isDigit(p.s[e]) {
			for e < n && isDigit(p.s[e]) {
				e++
			}
			isFloat = true
			i = e
		}
	}
	text := string(p.s[start:i])
	if isFloat {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, 0, p.errAt("Expecting value", start)
		}
		return f, i, nil
	}
	if n := len(strings.TrimPrefix(text, "-")); n > maxIntDigits {
		return nil, 0, &IntDigitsError{Digits: n}
	}
	if v, err := strconv.ParseInt(text, 10, 64); err == nil {
		return v, i, nil
	}
	b, _ := new(big.Int).SetString(text, 10)
	return b, i, nil
}

func hexVal(r rune) int {
	switch {
	case r >= '0' && r <= '9':
		return int(r - '0')
	case r >= 'a' && r <= 'f':
		return int(r-'a') + 10
	case r >= 'A' && r <= 'F':
		return int(r-'A') + 10
	}
	return -1
}

// scanString ports scanstring_unicode (strict=True); end is the index after
// the opening quote. The result holds lone surrogates as WTF-8.
func (p *parser) scanString(end int) (string, int, error) {
	begin := end - 1
	n := len(p.s)
	var b []byte
	for {
		if end >= n {
			return "", 0, p.errAt("Unterminated string starting at", begin)
		}
		c := p.s[end]
		if c == '"' {
			return string(b), end + 1, nil
		}
		if c < 0x20 {
			return "", 0, p.errAt("Invalid control character at", end)
		}
		if c != '\\' {
			b = appendWTF8(b, c)
			end++
			continue
		}
		end++
		if end >= n {
			return "", 0, p.errAt("Unterminated string starting at", begin)
		}
		c = p.s[end]
		if c != 'u' {
			var out byte
			switch c {
			case '"':
				out = '"'
			case '\\':
				out = '\\'
			case '/':
				out = '/'
			case 'b':
				out = '\b'
			case 'f':
				out = '\f'
			case 'n':
				out = '\n'
			case 'r':
				out = '\r'
			case 't':
				out = '\t'
			default:
				return "", 0, p.errAt("Invalid \\escape", end-1)
			}
			b = append(b, out)
			end++
			continue
		}
		// \uXXXX. Like CPython's C scanner, at least one character must
		// follow the four digits (a closing quote is needed anyway).
		end++
		if end+4 >= n {
			return "", 0, p.errAt("Invalid \\uXXXX escape", end-1)
		}
		u, ok := p.hex4(end)
		if !ok {
			return "", 0, p.errAt("Invalid \\uXXXX escape", end-1)
		}
		end += 4
		if u >= 0xD800 && u <= 0xDBFF && end+6 < n && p.s[end] == '\\' && p.s[end+1] == 'u' {
			u2, ok := p.hex4(end + 2)
			if !ok {
				return "", 0, p.errAt("Invalid \\uXXXX escape", end+1)
			}
			if u2 >= 0xDC00 && u2 <= 0xDFFF {
				u = 0x10000 + ((u - 0xD800) << 10) | (u2 - 0xDC00)
				end += 6
			}
		}
		b = appendWTF8(b, u)
	}
}

func (p *parser) hex4(i int) (rune, bool) {
	if i+4 > len(p.s) {
		return 0, false
	}
	var u rune
	for k := 0; k < 4; k++ {
		h := hexVal(p.s[i+k])
		if h < 0 {
			return 0, false
		}
		u = u<<4 | rune(h)
	}
	return u, true
}

func (p *parser) scanObject(i, depth int) (any, int, error) {
	n := len(p.s)
	obj := Object{}
	index := map[string]int{}
	i = p.skipWS(i)
	if i < n && p.s[i] == '}' {
		return obj, i + 1, nil
	}
	for {
		if i >= n || p.s[i] != '"' {
			return nil, 0, p.errAt("Expecting property name enclosed in double quotes", i)
		}
		key, end, err := p.scanString(i + 1)
		if err != nil {
			return nil, 0, err
		}
		i = p.skipWS(end)
		if i >= n || p.s[i] != ':' {
			return nil, 0, p.errAt("Expecting ':' delimiter", i)
		}
		i = p.skipWS(i + 1)
		val, end, err := p.scan(i, depth)
		if err != nil {
			return nil, 0, err
		}
		if k, ok := index[key]; ok {
			obj[k].Value = val
		} else {
			index[key] = len(obj)
			obj = append(obj, Member{key, val})
		}
		i = p.skipWS(end)
		if i < n && p.s[i] == '}' {
			return obj, i + 1, nil
		}
		if i >= n || p.s[i] != ',' {
			return nil, 0, p.errAt("Expecting ',' delimiter", i)
		}
		i = p.skipWS(i + 1)
	}
}

func (p *parser) scanArray(i, depth int) (any, int, error) {
	n := len(p.s)
	arr := []any{}
	i = p.skipWS(i)
	if i < n && p.s[i] == ']' {
		return arr, i + 1, nil
	}
	for {
		val, end, err := p.scan(i, depth)
		if err != nil {
			return nil, 0, err
		}
		arr = append(arr, val)
		i = p.skipWS(end)
		if i < n && p.s[i] == ']' {
			return arr, i + 1, nil
		}
		if i >= n || p.s[i] != ',' {
			return nil, 0, p.errAt("Expecting ',' delimiter", i)
		}
		i = p.skipWS(i + 1)
	}
}
