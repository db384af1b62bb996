package compat

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFlaskAcceptsGoCookies is the proof the byte comparison cannot give
// when compression differs (a CGO_ENABLED=0 build, see zlib_nocgo.go): every
// cookie SessionCodec.Encode makes is opened by the installed Flask
// (SecureCookieSessionInterface's serializer with the same SECRET_KEY and
// clock, through testdata/pyjson_oracle.py) and must decode to exactly the
// session that was encoded. It runs in both builds; make test runs it with
// and without cgo.
func TestFlaskAcceptsGoCookies(t *testing.T) {
	o := startOracle(t)
	v := loadVectors(t)
	type tc struct {
		name string
		ts   int64
		data Object
	}
	var cases []tc
	for i, tt := range v.Session.Encode {
		obj, ok := mustTyped(t, tt.Value, false).(Object)
		if !ok {
			t.Fatalf("encode vector %d is not a dict", i)
		}
		cases = append(cases, tc{fmt.Sprintf("vector-%d", i), tt.TS, obj})
	}
	// Sessions big enough to compress, of every kind of value the tagged
	// serializer carries, at sizes from just over the threshold to a
	// cookie's limit.
	uid := UUID{0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x56, 0x78}
	when := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	huge, _ := new(big.Int).SetString(strings.Repeat("9", 60), 10)
	for _, n := range []int{8, 20, 60, 150, 300} {
		cases = append(cases, tc{fmt.Sprintf("mixed-%d", n), 1795726800, Object{
			{Key: "conversation_id", Value: "c-" + strings.Repeat("a", n%64)},
			{Key: "notes", Value: strings.Repeat("caf\u00e9 <&> \U0001F600 \"q\" ", n)},
			{Key: "history", Value: []any{int64(n), 1.5, math.Inf(1), nil, true, huge, "x\ud7ff"}},
			{Key: "tuple", Value: Tuple{"a", int64(1), Tuple{}}},
			{Key: "uuid", Value: uid},
			{Key: "markup", Value: Markup(strings.Repeat("<b>x</b>", n/4+1))},
			{Key: "when", Value: when},
			{Key: "raw", Value: []byte(strings.Repeat("\x00\xffab", n))},
			{Key: "nested", Value: Object{{Key: " t", Value: []any{"looks tagged"}}}},
			{Key: "_permanent", Value: true},
		}})
		cases = append(cases, tc{fmt.Sprintf("repetitive-%d", n), 1795726800, Object{
			{Key: "notes", Value: strings.Repeat("caf\u00e9 <&> ", n)},
			{Key: "n", Value: 1.5},
		}})
	}
	compressed := 0
	for _, tt := range cases {
		c := &SessionCodec{SecretKey: "test-secret", Now: func() time.Time { return time.Unix(tt.ts, 0) }}
		cookie, err := c.Encode(tt.data)
		if err != nil {
			t.Fatalf("%s: encode: %v", tt.name, err)
		}
		if strings.HasPrefix(cookie, ".") {
			compressed++
		}
		var resp struct {
			OK    bool            `json:"ok"`
			Value json.RawMessage `json:"value"`
			Error string          `json:"error"`
		}
		o.ask(t, map[string]any{"op": "session", "cookie": cookie, "now": tt.ts}, &resp)
		if !resp.OK {
			t.Errorf("%s: Flask refused %s: %s", tt.name, cookie, resp.Error)
			continue
		}
		// The serializer sorts keys: compare as Python's dict == does.
		if got := mustTyped(t, resp.Value, false); !pyEqual(sortKeys(got), sortKeys(tt.data)) {
			t.Errorf("%s: Flask decoded %s to a different session:\n got %s\nwant %s", tt.name, cookie, short(fmt.Sprint(got)), short(fmt.Sprint(tt.data)))
		}
	}
	// The point is the compressed form: make sure it was exercised.
	if compressed < 15 {
		t.Errorf("only %d of %d cookies were compressed", compressed, len(cases))
	}
	t.Logf("Flask opened %d Go cookies (%d compressed; byte-exact zlib: %v)", len(cases), compressed, ZlibByteExact)
}

// sortKeys returns v with every Object's members in key order.
func sortKeys(v any) any {
	switch x := v.(type) {
	case Object:
		out := make(Object, len(x))
		for i, m := range x {
			out[i] = Member{m.Key, sortKeys(m.Value)}
		}
		slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Key, b.Key) })
		return out
	case []any:
		out := make([]any, len(x))
		for i, it := range x {
			out[i] = sortKeys(it)
		}
		return out
	case Tuple:
		return Tuple(sortKeys([]any(x)).([]any))
	}
	return v
}
