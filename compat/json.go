package compat

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxIntDigits is CPython 3.11's default sys.get_int_max_str_digits():
// int <-> str conversions of longer integers raise ValueError.
const maxIntDigits = 4300

// MaxEncodeDepth is the deepest nesting Dumps encodes. CPython's encoder
// counts every nested container against the recursion limit (1000), minus
// the frames already on the stack: jsonify called directly in a Flask view
// under a gunicorn sync worker encodes at most 970 levels (measured with
// testdata/vector_app.py's /json-deep); deeper values raise RecursionError,
// a 500.
const MaxEncodeDepth = 970

// Member is one key/value pair of an Object.
type Member struct {
	Key   string
	Value any
}

// Object is a JSON object with Python dict semantics: unique keys kept in
// insertion order. Unmarshal produces it for every object; Dumps writes it in
// order unless sort_keys is on. The zero value is an empty object.
type Object []Member

// Get returns the value stored under key.
func (o Object) Get(key string) (any, bool) {
	for _, m := range o {
		if m.Key == key {
			return m.Value, true
		}
	}
	return nil, false
}

// Set stores v under key: in place if key exists (a dict keeps the first
// position), else appended.
func (o *Object) Set(key string, v any) {
	for i := range *o {
		if (*o)[i].Key == key {
			(*o)[i].Value = v
			return
		}
	}
	*o = append(*o, Member{key, v})
}

// Delete removes key, keeping the order of the others.
func (o *Object) Delete(key string) {
	*o = slices.DeleteFunc(*o, func(m Member) bool { return m.Key == key })
}

// Keys returns the keys in order.
func (o Object) Keys() []string {
	out := make([]string, len(o))
	for i, m := range o {
		out[i] = m.Key
	}
	return out
}

// Map returns the members as a map (losing the order).
func (o Object) Map() map[string]any {
	out := make(map[string]any, len(o))
	for _, m := range o {
		out[m.Key] = m.Value
	}
	return out
}

// RawJSON is inserted into Dumps output verbatim; it must be what the
// Python encoder would have produced for the value it stands for.
type RawJSON []byte

// DumpOptions selects Python json.dumps settings. The zero value is
// json.dumps(v) with defaults: insertion order, separators (", ", ": "),
// ensure_ascii=True, allow_nan=True.
type DumpOptions struct {
	// SortKeys is sort_keys=True.
	SortKeys bool
	// Compact is separators=(",", ":").
	Compact bool
	// Stdlib is json.dumps called directly, without Flask's JSON provider:
	// time.Time and encoding.TextMarshaler values (UUID) are not
	// serialisable (*UnsupportedTypeError, Python's TypeError) instead of
	// being written as Flask's http_date and str().
	Stdlib bool
}

// Dumps encodes v exactly as CPython 3.11's json.dumps with opt (and Flask's
// default= hook for dates), ensure_ascii=True. Supported values:
//   - nil, bool, string (invalid UTF-8 bytes become \ufffd, except WTF-8
//     encoded surrogates, which are written as the lone \udXXX escapes
//     Unmarshal decoded them from);
//   - all Go integer kinds, *big.Int and big.Int as Python ints; float32/64
//     as Python floats (repr: 1.0, 1e+16, NaN, Infinity); json.Number as
//     the int or float json.loads would make of it;
//   - Object in insertion order, or sorted with SortKeys;
//   - maps with string or integer keys (Python's str() of int keys; Go maps
//     have no order, so their keys are always sorted: strings by code
//     point, integers numerically);
//   - slices and arrays (a nil slice is []) except []byte (Python's bytes
//     are not serialisable); structs as dicts of their exported fields,
//     named by `json` tags (Flask's dataclass support);
//   - pointers and interfaces to the above (nil is null); time.Time as
//     Flask's http_date; encoding.TextMarshaler as its text (Flask: str(uuid));
//     RawJSON verbatim.
//
// It fails where Python raises: unsupported types (TypeError), integers over
// 4300 digits (ValueError) and nesting beyond MaxEncodeDepth (*RecursionError).
func Dumps(v any, opt DumpOptions) ([]byte, error) {
	e := encoder{opt: opt}
	if err := e.encode(reflect.ValueOf(v), 0); err != nil {
		return nil, err
	}
	return e.buf, nil
}

// Marshal is Flask's JSON response encoding (app.json.response / jsonify)
// without the trailing newline: json.dumps(v, sort_keys=True,
// ensure_ascii=True, separators=(",", ":")). It is also what the session
// serializer signs.
func Marshal(v any) ([]byte, error) {
	return Dumps(v, DumpOptions{SortKeys: true, Compact: true})
}

// JSONBody is the exact body jsonify(v) sends: Marshal(v) plus "\n".
func JSONBody(v any) ([]byte, error) {
	b, err := Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// WriteJSON writes what a view returning (jsonify(v), status) sends:
// Content-Type application/json, Content-Length, body Marshal(v)+"\n"
// (for 1xx, 204 and 304, Werkzeug's rule: no Content-Length and no body,
// and no Content-Type for 304). If v
// cannot be encoded it writes Werkzeug's 500 page instead, as Flask does
// when serialising the view's return value fails, and returns the error.
// Headers already set on w (e.g. by SaveSession) are kept.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	body, err := JSONBody(v)
	if err != nil {
		WriteError(w, &HTTPError{Code: http.StatusInternalServerError, Err: err})
		return err
	}
	h := w.Header()
	if status != http.StatusNotModified { // Werkzeug drops entity headers from a 304
		h.Set("Content-Type", "application/json")
	}
	if bodyAllowed(status) {
		h.Set("Content-Length", strconv.Itoa(len(body)))
	} else {
		body = nil
	}
	w.WriteHeader(status)
	_, err = w.Write(body)
	return err
}

// UnsupportedTypeError is Python's TypeError "Object of type X is not JSON serializable".
type UnsupportedTypeError struct{ Type reflect.Type }

func (e *UnsupportedTypeError) Error() string {
	return fmt.Sprintf("Object of type %s is not JSON serializable", e.Type)
}

var (
	bigIntType        = reflect.TypeOf(big.Int{})
	timeType          = reflect.TypeOf(time.Time{})
	objectType        = reflect.TypeOf(Object(nil))
	rawType           = reflect.TypeOf(RawJSON(nil))
	numberType        = reflect.TypeOf(json.Number(""))
	textMarshalerType = reflect.TypeOf((*encoding.TextMarshaler)(nil)).Elem()
	errIntDigits      = errors.New("Exceeds the limit (4300 digits) for integer string conversion")
	errDepth          = &RecursionError{}
)

type encoder struct {
	opt DumpOptions
	buf []byte
}

func (e *encoder) itemSep() string {
	if e.opt.Compact {
		return ","
	}
	return ", "
}

func (e *encoder) keySep() string {
	if e.opt.Compact {
		return ":"
	}
	return ": "
}

// encode writes v; depth counts the containers enclosing v.
func (e *encoder) encode(v reflect.Value, depth int) error {
	if !v.IsValid() {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	t := v.Type()
	switch t {
	case objectType:
		return e.encodeObject(v.Interface().(Object), depth)
	case rawType:
		e.buf = append(e.buf, v.Bytes()...)
		return nil
	case bigIntType:
		if v.CanAddr() {
			return e.encodeBig(v.Addr().Interface().(*big.Int))
		}
		b := v.Interface().(big.Int)
		return e.encodeBig(&b)
	case timeType:
		if e.opt.Stdlib {
			return &UnsupportedTypeError{t}
		}
		e.buf = AppendQuoteASCII(e.buf, HTTPDate(v.Interface().(time.Time)))
		return nil
	case numberType:
		return e.encodeNumber(v.String())
	}
	if t.Kind() == reflect.Pointer && t.Elem() == bigIntType {
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		return e.encodeBig(v.Interface().(*big.Int))
	}
	if t.Kind() != reflect.Interface && t.Kind() != reflect.Pointer && t.Implements(textMarshalerType) {
		if e.opt.Stdlib {
			return &UnsupportedTypeError{t}
		}
		text, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return err
		}
		e.buf = AppendQuoteASCII(e.buf, string(text))
		return nil
	}
	switch t.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		return e.encode(v.Elem(), depth)
	case reflect.Bool:
		if v.Bool() {
			e.buf = append(e.buf, "true"...)
		} else {
			e.buf = append(e.buf, "false"...)
		}
	case reflect.String:
		e.buf = AppendQuoteASCII(e.buf, v.String())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.buf = strconv.AppendInt(e.buf, v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.buf = strconv.AppendUint(e.buf, v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		e.buf = append(e.buf, FloatRepr(v.Float())...)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return &UnsupportedTypeError{t}
		}
		return e.encodeList(v, depth)
	case reflect.Array:
		return e.encodeList(v, depth)
	case reflect.Map:
		return e.encodeMap(v, depth)
	case reflect.Struct:
		return e.encodeStruct(v, depth)
	default:
		return &UnsupportedTypeError{t}
	}
	return nil
}

// encodeNumber writes an encoding/json Number as the Python value json.loads
// would have made of it: an int without fraction or exponent, else a float.
func (e *encoder) encodeNumber(s string) error {
	if strings.ContainsAny(s, ".eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return fmt.Errorf("json.Number %q: %w", s, err)
		}
		e.buf = append(e.buf, FloatRepr(f)...)
		return nil
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return fmt.Errorf("json.Number %q is not a number", s)
	}
	return e.encodeBig(n)
}

func (e *encoder) encodeBig(b *big.Int) error {
	s := b.String()
	if len(strings.TrimPrefix(s, "-")) > maxIntDigits {
		return errIntDigits
	}
	e.buf = append(e.buf, s...)
	return nil
}

func (e *encoder) encodeList(v reflect.Value, depth int) error {
	if depth >= MaxEncodeDepth {
		return errDepth
	}
	n := v.Len()
	if n == 0 {
		e.buf = append(e.buf, "[]"...)
		return nil
	}
	e.buf = append(e.buf, '[')
	for i := 0; i < n; i++ {
		if i > 0 {
			e.buf = append(e.buf, e.itemSep()...)
		}
		if err := e.encode(v.Index(i), depth+1); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, ']')
	return nil
}

func (e *encoder) encodeObject(o Object, depth int) error {
	if depth >= MaxEncodeDepth {
		return errDepth
	}
	if len(o) == 0 {
		e.buf = append(e.buf, "{}"...)
		return nil
	}
	members := o
	if e.opt.SortKeys {
		members = slices.Clone(o)
		slices.SortStableFunc(members, func(a, b Member) int { return comparePyStr(a.Key, b.Key) })
	}
	e.buf = append(e.buf, '{')
	for i, m := range members {
		if i > 0 {
			e.buf = append(e.buf, e.itemSep()...)
		}
		e.buf = AppendQuoteASCII(e.buf, m.Key)
		e.buf = append(e.buf, e.keySep()...)
		if err := e.encode(reflect.ValueOf(m.Value), depth+1); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, '}')
	return nil
}

type mapEntry struct {
	key   string
	num   *big.Int
	value reflect.Value
}

func (e *encoder) encodeMap(v reflect.Value, depth int) error {
	if depth >= MaxEncodeDepth {
		return errDepth
	}
	if v.Len() == 0 {
		e.buf = append(e.buf, "{}"...)
		return nil
	}
	kt := v.Type().Key()
	entries := make([]mapEntry, 0, v.Len())
	it := v.MapRange()
	for it.Next() {
		k := it.Key()
		var me mapEntry
		switch kt.Kind() {
		case reflect.String:
			me.key = k.String()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			me.num = big.NewInt(k.Int())
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			me.num = new(big.Int).SetUint64(k.Uint())
		default:
			return &UnsupportedTypeError{kt}
		}
		if me.num != nil {
			me.key = me.num.String()
		}
		me.value = it.Value()
		entries = append(entries, me)
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].num != nil {
			return entries[i].num.Cmp(entries[j].num) < 0
		}
		return comparePyStr(entries[i].key, entries[j].key) < 0
	})
	e.buf = append(e.buf, '{')
	for i, me := range entries {
		if i > 0 {
			e.buf = append(e.buf, e.itemSep()...)
		}
		e.buf = AppendQuoteASCII(e.buf, me.key)
		e.buf = append(e.buf, e.keySep()...)
		if err := e.encode(me.value, depth+1); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, '}')
	return nil
}

func (e *encoder) encodeStruct(v reflect.Value, depth int) error {
	var o Object
	collectFields(v, &o)
	return e.encodeObject(o, depth)
}

func collectFields(v reflect.Value, o *Object) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Name
		omitEmpty := false
		if tag, ok := f.Tag.Lookup("json"); ok {
			n, opts, _ := strings.Cut(tag, ",")
			if n == "-" && opts == "" {
				continue
			}
			if n != "" {
				name = n
			}
			omitEmpty = strings.Contains(","+opts+",", ",omitempty,")
		} else if f.Anonymous && f.Type.Kind() == reflect.Struct {
			collectFields(v.Field(i), o)
			continue
		}
		fv := v.Field(i)
		if omitEmpty && fv.IsZero() {
			continue
		}
		o.Set(name, fv.Interface())
	}
}

// comparePyStr orders strings as Python compares str: by code point. For
// valid UTF-8 that is byte order; WTF-8 surrogates (ED A0..BF xx) sort as
// U+D800..U+DFFF, below U+E000 (EE..), which byte order also gives.
func comparePyStr(a, b string) int { return strings.Compare(a, b) }

// FloatRepr is Python's float.__repr__ as json.dumps writes it: shortest
// round-trip digits, exponent form when the exponent is < -4 or >= 16
// (1e-05, 1e+16), ".0" added to integral values, and the bare tokens NaN,
// Infinity and -Infinity.
func FloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // "-d.ddde±XX"
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	mant, expStr, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expStr)
	digits := strings.Replace(mant, ".", "", 1)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	switch {
	case exp < -4 || exp >= 16:
		b.WriteString(digits[:1])
		if len(digits) > 1 {
			b.WriteByte('.')
			b.WriteString(digits[1:])
		}
		b.WriteByte('e')
		if exp < 0 {
			b.WriteByte('-')
			exp = -exp
		} else {
			b.WriteByte('+')
		}
		if exp < 10 {
			b.WriteByte('0')
		}
		b.WriteString(strconv.Itoa(exp))
	case exp < 0:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", -exp-1))
		b.WriteString(digits)
	default:
		point := exp + 1
		if len(digits) <= point {
			b.WriteString(digits)
			b.WriteString(strings.Repeat("0", point-len(digits)))
			b.WriteString(".0")
		} else {
			b.WriteString(digits[:point])
			b.WriteByte('.')
			b.WriteString(digits[point:])
		}
	}
	return b.String()
}

const hexDigits = "0123456789abcdef"

func appendU4(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[(r>>12)&0xf], hexDigits[(r>>8)&0xf], hexDigits[(r>>4)&0xf], hexDigits[r&0xf])
}

// decodeWTF8 decodes one code point like utf8.DecodeRuneInString, and also
// accepts the 3-byte encodings of surrogates (ED A0..BF 80..BF), returning
// the surrogate itself. Other invalid bytes give (RuneError, 1).
func decodeWTF8(s string) (rune, int) {
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && n == 1 && len(s) >= 3 && s[0] == 0xED && s[1] >= 0xA0 && s[1] <= 0xBF && s[2] >= 0x80 && s[2] <= 0xBF {
		return rune(0xD000) | rune(s[1]&0x3F)<<6 | rune(s[2]&0x3F), 3
	}
	return r, n
}

// appendWTF8 appends r as UTF-8, surrogates included (as WTF-8).
func appendWTF8(b []byte, r rune) []byte {
	if r >= 0xD800 && r <= 0xDFFF {
		return append(b, 0xED, byte(0x80|(r>>6)&0x3F), byte(0x80|r&0x3F))
	}
	return utf8.AppendRune(b, r)
}

// AppendQuoteASCII appends s as json.dumps(s) with ensure_ascii=True writes
// it: `"` and `\` escaped, \n \r \t \b \f, every other code point outside
// 0x20..0x7e as \u00XX (lower-case hex), astral ones as surrogate pairs.
// '<', '>', '&' and '/' are not escaped.
func AppendQuoteASCII(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			switch c {
			case '"':
				b = append(b, '\\', '"')
			case '\\':
				b = append(b, '\\', '\\')
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := decodeWTF8(s[i:])
		i += n
		switch r {
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			if r > 0xFFFF {
				r -= 0x10000
				b = appendU4(b, 0xD800|(r>>10)&0x3FF)
				b = appendU4(b, 0xDC00|r&0x3FF)
			} else {
				b = appendU4(b, r)
			}
		}
	}
	return append(b, '"')
}

// HTTPDate formats t as werkzeug.http.http_date (Flask's JSON default for
// dates): "Tue, 02 Jan 2024 03:04:05 GMT", in UTC.
func HTTPDate(t time.Time) string {
	return t.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")
}
