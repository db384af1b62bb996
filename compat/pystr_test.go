package compat

import (
	"encoding/base64"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"
	"unicode"
)

// TestPyStrRepr compares PyStr and PyRepr with str() and repr() of the same
// values as the installed Flask decodes them from a session cookie.
func TestPyStrRepr(t *testing.T) {
	o := startOracle(t)
	big30, _ := new(big.Int).SetString("-"+strings.Repeat("7", 30), 10)
	when := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []any{
		"plain", "", "caf\u00e9 \U0001F600 <b>&</b>",
		"it's", `say "hi"`, `both ' and "`, `back\slash`, "tab\tnl\ncr\r",
		"\x00\x1f\x7f\u0080\u0085\u009f\u00a0\u00ad\u00ff\u0100",
		"\u0378\u2028\u2029\u3000\u200b\ufeff\uffff\ue000",
		"\xed\xa0\x80 lone \xed\xbf\xbf" /* lone surrogates, WTF-8 */, "\U000e0001\U0010ffff\U0001fae8\U00031350\u0cf3\U0001f600",
		Markup("<b>it's</b>"), Markup(""),
		UUID{0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x56, 0x78},
		when, when.Add(-5 * time.Second), time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC),
		[]byte("ab"), []byte{}, []byte("it's \"q\" \\ \t\n\r\x00\x7f\x80\xff"), []byte("'"),
		nil, true, false, int64(0), int64(-7), big30,
		1.5, -0.0, 0.1, 1e16, 1e-5, 123456789.125, math.Inf(1), math.Inf(-1), math.NaN(),
		Tuple{}, Tuple{"a"}, Tuple{"a", int64(1)},
		[]any{}, []any{"a", int64(1), nil, 2.5, []any{Tuple{"x"}}},
		Object{}, Object{{Key: "b", Value: int64(1)}, {Key: "a", Value: "x"}},
		Object{{Key: " t", Value: "looks tagged"}},
		[]any{Markup("m"), when, []byte("y"), Object{{Key: "k'", Value: math.NaN()}}},
	}
	for _, v := range tests {
		c := &SessionCodec{SecretKey: "test-secret", Now: func() time.Time { return time.Unix(1700000000, 0) }}
		cookie, err := c.Encode(Object{{Key: "v", Value: v}})
		if err != nil {
			t.Fatalf("%#v: encode: %v", v, err)
		}
		var resp struct {
			Str  []rune `json:"str"`
			Repr []rune `json:"repr"`
		}
		o.ask(t, map[string]any{"op": "pystr", "cookie": cookie, "now": 1700000000}, &resp)
		// What the native app holds: the value as compat decodes the cookie
		// (dict keys in the cookie's order, which Flask's serializer sorts).
		sess, err := c.Decode(cookie)
		if err != nil {
			t.Fatalf("%#v: decode: %v", v, err)
		}
		v, _ := sess.Get("v")
		gotStr, err := PyStr(v)
		if err != nil {
			t.Errorf("PyStr(%#v): %v", v, err)
		}
		gotRepr, err := PyRepr(v)
		if err != nil {
			t.Errorf("PyRepr(%#v): %v", v, err)
		}
		if want := wtf8(resp.Str); gotStr != want {
			t.Errorf("PyStr(%#v)\n got %q\nwant %q", v, gotStr, want)
		}
		if want := wtf8(resp.Repr); gotRepr != want {
			t.Errorf("PyRepr(%#v)\n got %q\nwant %q", v, gotRepr, want)
		}
	}
}

func wtf8(cps []rune) string {
	var b []byte
	for _, r := range cps {
		b = appendWTF8(b, r)
	}
	return string(b)
}

// TestPyPrintable checks pyPrintable against str.isprintable() of the
// installed python3 for every code point. It fails if that python3 uses
// other Unicode tables than Python 3.11 (14.0): repr() output would differ.
func TestPyPrintable(t *testing.T) {
	o := startOracle(t)
	var resp struct {
		Printable string `json:"printable"`
	}
	o.ask(t, map[string]any{"op": "printable"}, &resp)
	want, err := base64.StdEncoding.DecodeString(resp.Printable)
	if err != nil || len(want) != unicode.MaxRune+1 {
		t.Fatalf("printable table: %d bytes, %v", len(want), err)
	}
	bad := 0
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if pyPrintable(r) != (want[r] == 1) {
			if bad++; bad <= 10 {
				t.Errorf("pyPrintable(%U) = %v, python3 says %v", r, pyPrintable(r), want[r] == 1)
			}
		}
	}
	if bad > 10 {
		t.Errorf("... %d code points differ in all", bad)
	}
}

func TestPyStrErrors(t *testing.T) {
	huge, _ := new(big.Int).SetString(strings.Repeat("9", 4301), 10)
	for _, v := range []any{huge, struct{}{}, []any{map[string]int{}}} {
		if s, err := PyStr(v); err == nil {
			t.Errorf("PyStr(%T) = %q, want an error", v, s)
		}
	}
}
