package handlers

import (
	"bytes"
	"testing"

	"github.com/cutover/cutover/compat"
)

// checkFastTurn fails when fastTurn reads item differently from parseTurn:
// every value it keeps raw must encode, in both of the encodings the
// handlers use (json.dumps for Bedrock, Flask's jsonify for GET), to the
// bytes the decoded value does.
func checkFastTurn(t *testing.T, item string) (fast bool) {
	t.Helper()
	raw, ok := fastTurn(item)
	if !ok {
		return false
	}
	slow, err := parseTurn(item, true)
	if err != nil {
		t.Fatalf("fastTurn read %q, parseTurn refused it: %v", item, err)
	}
	for _, opt := range []compat.DumpOptions{{}, {SortKeys: true, Compact: true}} {
		want, err := compat.Dumps(compat.Object{{Key: "role", Value: slow.role}, {Key: "content", Value: slow.content}, {Key: "created_at", Value: slow.createdAt}}, opt)
		if err != nil {
			t.Fatal(err)
		}
		got, err := compat.Dumps(compat.Object{{Key: "role", Value: raw.role}, {Key: "content", Value: raw.content}, {Key: "created_at", Value: raw.createdAt}}, opt)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("item %q, %+v:\n fast %s\n slow %s", item, opt, got, want)
		}
	}
	return true
}

func TestFastTurn(t *testing.T) {
	tests := []struct {
		give     string
		wantFast bool
	}{
		{`{"role": "user", "content": "hi", "created_at": "2023-11-14T22:13:20+00:00"}`, true},
		{`{"role": "user", "content": "caf\u00e9 \ud83d\ude00 <&> \"q\" \\ \n\t\r\b\f \u0000 \u001f \u007f", "created_at": "t"}`, true},
		{`{"role": "user", "content": "lone \ud800 and \udc00 and \udc00\ud800", "created_at": "t"}`, true},
		{`{"role": "user", "content": "", "created_at": ""}`, true},
		// Valid JSON that re-encodes differently, or another shape: the full decoder reads it.
		{`{"role": "user", "content": "caf\u00E9", "created_at": "t"}`, false},
		{`{"role": "user", "content": "\u0041", "created_at": "t"}`, false},
		{`{"role": "user", "content": "\u000a", "created_at": "t"}`, false},
		{`{"role": "user", "content": "a\/b", "created_at": "t"}`, false},
		{"{\"role\": \"user\", \"content\": \"caf\u00e9\", \"created_at\": \"t\"}", false},
		{"{\"role\": \"user\", \"content\": \"a\x7fb\", \"created_at\": \"t\"}", false},
		{`{"role":"user","content":"hi","created_at":"t"}`, false},
		{`{"role": "user", "content": "hi", "created_at": "t", "role": "assistant"}`, false},
		{`{"role": "user", "content": 5, "created_at": "t"}`, false},
		{`{"content": "hi", "role": "user", "created_at": "t"}`, false},
		{`{"role": "user", "content": "hi", "created_at": "t"} `, false},
		{`{"role": "user", "content": "hi`, false},
		{`{"role": "user", "content": "\u12`, false},
		{`{"role": "user", "content": "\`, false},
		{``, false},
	}
	for _, tt := range tests {
		if got := checkFastTurn(t, tt.give); got != tt.wantFast {
			t.Errorf("fastTurn(%q) ok = %v, want %v", tt.give, got, tt.wantFast)
		}
	}
}

// TestFastTurnReadsWhatIsStored checks that the items saveTurns writes take
// the fast path, whatever their text.
func TestFastTurnReadsWhatIsStored(t *testing.T) {
	for _, text := range []string{"hello", "caf\u00e9 \U0001F600 <b>&amp;</b>", "\"quoted\"\\\n\t\x00\x7f", "\xed\xa0\x80 lone surrogate (WTF-8)", ""} {
		item, err := compat.Dumps(compat.Object{{Key: "role", Value: "assistant"}, {Key: "content", Value: text}, {Key: "created_at", Value: "2023-11-14T22:13:20.250000+00:00"}}, compat.DumpOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !checkFastTurn(t, string(item)) {
			t.Errorf("stored item %s did not take the fast path", item)
		}
	}
}

func FuzzFastTurn(f *testing.F) {
	f.Add("hi", "2023-11-14T22:13:20+00:00")
	f.Add(`caf\u00e9 \ud83d\ude00`, `\u00E9`)
	f.Add(`\ud800\udc00\\\"`, `\/`)
	f.Fuzz(func(t *testing.T, content, created string) {
		checkFastTurn(t, `{"role": "user", "content": "`+content+`", "created_at": "`+created+`"}`)
	})
}
