package compat

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// PyStr is Python 3.11's str() of a value as Unmarshal or a Flask session
// decodes it: what a view gets from f"{value}". Strings and Markup are
// themselves; None, True, False; ints in decimal; floats as repr (inf, nan);
// UUID hyphenated; time.Time (a session's " d" tag, which Flask decodes to an
// aware UTC datetime) as "2024-01-02 03:04:05+00:00"; everything else as
// PyRepr ([]byte as b'..', lists, Tuple, Object as dicts in their order).
// It fails on types Python would not have decoded and on ints over 4300
// digits (ValueError).
func PyStr(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case Markup:
		return string(x), nil
	case UUID:
		return x.String(), nil
	case time.Time:
		return pyDatetimeStr(x), nil
	}
	b, err := appendRepr(nil, v)
	return string(b), err
}

// PyRepr is Python 3.11's repr() of a value as Unmarshal or a Flask session
// decodes it (see PyStr): strings quoted as unicode_repr does (single quotes
// unless the text holds ' and no ", non-printable code points escaped as
// \xhh, \uhhhh or \Uhhhhhhhh by Unicode 14.0's categories, which Python 3.11
// uses), Markup('...'), UUID('...'), datetime.datetime(...).
func PyRepr(v any) (string, error) {
	b, err := appendRepr(nil, v)
	return string(b), err
}

func appendRepr(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "None"...), nil
	case bool:
		if x {
			return append(b, "True"...), nil
		}
		return append(b, "False"...), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case *big.Int:
		s := x.String()
		if len(strings.TrimPrefix(s, "-")) > maxIntDigits {
			return nil, errIntDigits
		}
		return append(b, s...), nil
	case float64:
		return append(b, pyFloatRepr(x)...), nil
	case string:
		return appendStrRepr(b, x), nil
	case Markup:
		b = append(b, "Markup("...)
		return append(appendStrRepr(b, string(x)), ')'), nil
	case UUID:
		return append(b, "UUID('"+x.String()+"')"...), nil
	case time.Time:
		return appendDatetimeRepr(b, x), nil
	case []byte:
		return appendBytesRepr(b, x), nil
	case []any:
		return appendSeqRepr(b, '[', ']', x, false)
	case Tuple:
		return appendSeqRepr(b, '(', ')', x, true)
	case Object:
		b = append(b, '{')
		for i, m := range x {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendStrRepr(b, m.Key)
			b = append(b, ": "...)
			var err error
			if b, err = appendRepr(b, m.Value); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	}
	return nil, fmt.Errorf("compat: no Python repr for %T", v)
}

func appendSeqRepr(b []byte, open, close byte, items []any, tuple bool) ([]byte, error) {
	b = append(b, open)
	for i, it := range items {
		if i > 0 {
			b = append(b, ", "...)
		}
		var err error
		if b, err = appendRepr(b, it); err != nil {
			return nil, err
		}
	}
	if tuple && len(items) == 1 {
		b = append(b, ',')
	}
	return append(b, close), nil
}

// pyFloatRepr is float.__repr__: FloatRepr except for the non-finite values,
// which repr writes as inf, -inf and nan (json.dumps as Infinity, NaN).
func pyFloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return FloatRepr(f)
}

// appendStrRepr is unicode_repr. s holds lone surrogates as WTF-8 (as
// Unmarshal decodes them); they are not printable, so they are escaped.
func appendStrRepr(b []byte, s string) []byte {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	b = append(b, quote)
	for i := 0; i < len(s); {
		r, n := decodeWTF8(s[i:])
		i += n
		switch {
		case r == rune(quote) || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\t':
			b = append(b, '\\', 't')
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r < ' ' || r == 0x7f:
			b = append(b, '\\', 'x', hexDigits[r>>4], hexDigits[r&0xf])
		case r < 0x7f:
			b = append(b, byte(r))
		case pyPrintable(r):
			b = appendWTF8(b, r)
		case r <= 0xff:
			b = append(b, '\\', 'x', hexDigits[r>>4], hexDigits[r&0xf])
		case r <= 0xffff:
			b = appendU4(b, r)
		default:
			b = append(b, '\\', 'U')
			for shift := 28; shift >= 0; shift -= 4 {
				b = append(b, hexDigits[(r>>shift)&0xf])
			}
		}
	}
	return append(b, quote)
}

// appendBytesRepr is bytes.__repr__.
func appendBytesRepr(b []byte, s []byte) []byte {
	quote := byte('\'')
	if strings.IndexByte(string(s), '\'') >= 0 && strings.IndexByte(string(s), '"') < 0 {
		quote = '"'
	}
	b = append(b, 'b', quote)
	for _, c := range s {
		switch {
		case c == quote || c == '\\':
			b = append(b, '\\', c)
		case c == '\t':
			b = append(b, '\\', 't')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c < ' ' || c >= 0x7f:
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, quote)
}

// pyDatetimeStr is str() of an aware datetime: ISO format with a space,
// microseconds only when non-zero, and the UTC offset as +HH:MM[:SS].
func pyDatetimeStr(t time.Time) string {
	s := t.Format("2006-01-02 15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		s += fmt.Sprintf(".%06d", us)
	}
	_, off := t.Zone()
	sign := '+'
	if off < 0 {
		sign, off = '-', -off
	}
	s += fmt.Sprintf("%c%02d:%02d", sign, off/3600, off/60%60)
	if off%60 != 0 {
		s += fmt.Sprintf(":%02d", off%60)
	}
	return s
}

// appendDatetimeRepr is datetime.__repr__ for the UTC datetimes Flask's " d"
// tag decodes to: trailing zero fields (microsecond, then second) omitted.
// Other offsets are written as datetime.timezone(datetime.timedelta(...)).
func appendDatetimeRepr(b []byte, t time.Time) []byte {
	b = fmt.Appendf(b, "datetime.datetime(%d, %d, %d, %d, %d", t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute())
	us := t.Nanosecond() / 1000
	switch {
	case us != 0:
		b = fmt.Appendf(b, ", %d, %d", t.Second(), us)
	case t.Second() != 0:
		b = fmt.Appendf(b, ", %d", t.Second())
	}
	_, off := t.Zone()
	if off == 0 {
		return append(b, ", tzinfo=datetime.timezone.utc)"...)
	}
	// timedelta's repr normalises to days >= -1 and 0 <= seconds < 86400.
	days, secs := off/86400, off%86400
	if secs < 0 {
		days, secs = days-1, secs+86400
	}
	switch {
	case days != 0 && secs != 0:
		return fmt.Appendf(b, ", tzinfo=datetime.timezone(datetime.timedelta(days=%d, seconds=%d)))", days, secs)
	case days != 0:
		return fmt.Appendf(b, ", tzinfo=datetime.timezone(datetime.timedelta(days=%d)))", days)
	}
	return fmt.Appendf(b, ", tzinfo=datetime.timezone(datetime.timedelta(seconds=%d)))", secs)
}

// pyPrintable is str.isprintable() for one code point in Python 3.11: not
// in Cc, Cf, Cs, Co, Cn, Zl, Zp or Zs, except the space. That is Go's
// unicode.IsPrint, but Go's tables are Unicode 15.0 and Python 3.11's are
// 14.0: the code points Unicode 15.0 assigned are unassigned (Cn) there.
// TestPyPrintable checks this against the installed python3.
func pyPrintable(r rune) bool {
	return unicode.IsPrint(r) && !unicode.Is(unicode15Additions, r)
}

// unicode15Additions are the printable code points Unicode 15.0 added to
// 14.0 (so Go's unicode.IsPrint accepts them and Python 3.11 does not).
var unicode15Additions = &unicode.RangeTable{
	R16: []unicode.Range16{
		{Lo: 0x0cf3, Hi: 0x0cf3, Stride: 1},
		{Lo: 0x0ece, Hi: 0x0ece, Stride: 1},
	},
	R32: []unicode.Range32{
		{Lo: 0x10efd, Hi: 0x10eff, Stride: 1},
		{Lo: 0x1123f, Hi: 0x11241, Stride: 1},
		{Lo: 0x11b00, Hi: 0x11b09, Stride: 1},
		{Lo: 0x11f00, Hi: 0x11f10, Stride: 1},
		{Lo: 0x11f12, Hi: 0x11f3a, Stride: 1},
		{Lo: 0x11f3e, Hi: 0x11f59, Stride: 1},
		{Lo: 0x1342f, Hi: 0x1342f, Stride: 1},
		{Lo: 0x13440, Hi: 0x13455, Stride: 1},
		{Lo: 0x1b132, Hi: 0x1b132, Stride: 1},
		{Lo: 0x1b155, Hi: 0x1b155, Stride: 1},
		{Lo: 0x1d2c0, Hi: 0x1d2d3, Stride: 1},
		{Lo: 0x1df25, Hi: 0x1df2a, Stride: 1},
		{Lo: 0x1e030, Hi: 0x1e06d, Stride: 1},
		{Lo: 0x1e08f, Hi: 0x1e08f, Stride: 1},
		{Lo: 0x1e4d0, Hi: 0x1e4f9, Stride: 1},
		{Lo: 0x1f6dc, Hi: 0x1f6dc, Stride: 1},
		{Lo: 0x1f774, Hi: 0x1f776, Stride: 1},
		{Lo: 0x1f77b, Hi: 0x1f77f, Stride: 1},
		{Lo: 0x1f7d9, Hi: 0x1f7d9, Stride: 1},
		{Lo: 0x1fa75, Hi: 0x1fa77, Stride: 1},
		{Lo: 0x1fa87, Hi: 0x1fa88, Stride: 1},
		{Lo: 0x1faad, Hi: 0x1faaf, Stride: 1},
		{Lo: 0x1fabb, Hi: 0x1fabd, Stride: 1},
		{Lo: 0x1fabf, Hi: 0x1fabf, Stride: 1},
		{Lo: 0x1face, Hi: 0x1facf, Stride: 1},
		{Lo: 0x1fada, Hi: 0x1fadb, Stride: 1},
		{Lo: 0x1fae8, Hi: 0x1fae8, Stride: 1},
		{Lo: 0x1faf7, Hi: 0x1faf8, Stride: 1},
		{Lo: 0x2b739, Hi: 0x2b739, Stride: 1},
		{Lo: 0x31350, Hi: 0x323af, Stride: 1},
	},
}
