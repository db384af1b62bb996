package bedrockstub

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCanonicalize(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string
	}{
		{"sorts keys and drops whitespace", `{ "b" : 1, "a" : [ 2, {"d":3,"c":4} ] }`, `{"a":[2,{"c":4,"d":3}],"b":1}`},
		{"keeps number literals", `{"x":1.0,"y":1,"z":1e3,"w":-0}`, `{"w":-0,"x":1.0,"y":1,"z":1e3}`},
		{"one string escape", `{"t":"\u00e9\ud83d\ude80\/"}`, `{"t":"é🚀/"}`},
		{"same string raw", `{"t":"é🚀/"}`, `{"t":"é🚀/"}`},
		{"html escapes are one form", `{"t":"<&>"}`, `{"t":"\u003c\u0026\u003e"}`},
		{"scalar", ` "s" `, `"s"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tt.give))
			if err != nil {
				t.Fatalf("Canonicalize: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("Canonicalize(%s) = %s, want %s", tt.give, got, tt.want)
			}
		})
	}
}

func TestCanonicalizeRejects(t *testing.T) {
	for _, give := range []string{``, `{`, `{"a":1} {"b":2}`, `{"a":1}x`, `[1,]`, `nul`} {
		if got, err := Canonicalize([]byte(give)); err == nil {
			t.Errorf("Canonicalize(%q) = %s, want an error", give, got)
		}
	}
}

func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{`{"a":1.0}`, `{"b":"\u00e9","a":[1,2]}`, `[]`, `"x"`, `{"a":{"b":{"c":null}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c1, err := Canonicalize(body)
		if err != nil {
			return
		}
		if !json.Valid(c1) {
			t.Fatalf("canonical form %q is not valid JSON", c1)
		}
		c2, err := Canonicalize(c1)
		if err != nil {
			t.Fatalf("canonical form %q does not parse: %v", c1, err)
		}
		if string(c1) != string(c2) {
			t.Fatalf("not idempotent: %q then %q", c1, c2)
		}
	})
}

func TestGenerate(t *testing.T) {
	lengths := map[int]bool{}
	for i := range 300 {
		body := []byte(`{"n":` + string(rune('0'+i%10)) + `,"i":"` + strings.Repeat("x", i) + `"}`)
		r := generate("m", body, 0)
		n := r.outputTokens()
		lengths[n] = true
		if n < minWords || n > maxWords || r.truncated() || r.stopReason() != "end_turn" {
			t.Fatalf("reply %d: %d tokens, truncated %v, stop %q", i, n, r.truncated(), r.stopReason())
		}
		text := r.text()
		if !utf8.ValidString(text) {
			t.Fatalf("reply %d is not UTF-8: %q", i, text)
		}
		for _, want := range []string{"é", "ü", "日本語", "🚀", `"`, "<", ">", "&", "\n"} {
			if !strings.Contains(text, want) {
				t.Fatalf("reply %d lacks %q: %q", i, want, text)
			}
		}
		if !strings.HasPrefix(r.id, "msg_bdrk_01") || len(r.id) != len("msg_bdrk_01")+22 {
			t.Fatalf("reply %d: id %q", i, r.id)
		}
		again := generate("m", body, 0)
		if again.text() != text || again.id != r.id {
			t.Fatalf("reply %d differs between two calls", i)
		}
	}
	if len(lengths) < 20 {
		t.Errorf("reply lengths take only %d values over 300 bodies, want them to vary with the hash", len(lengths))
	}
}

func TestGenerateDependsOnModelAndBody(t *testing.T) {
	base := generate("model-a", []byte(`{"x":1}`), 0)
	for _, tt := range []struct {
		name  string
		model string
		body  string
	}{
		{"other model", "model-b", `{"x":1}`},
		{"other body", "model-a", `{"x":2}`},
		{"float literal", "model-a", `{"x":1.0}`},
	} {
		got := generate(tt.model, []byte(tt.body), 0)
		if got.text() == base.text() || got.id == base.id {
			t.Errorf("%s: same reply as the base request", tt.name)
		}
	}
}

func TestGenerateMaxTokens(t *testing.T) {
	full := generate("m", []byte(`{}`), 0)
	n := full.outputTokens()
	tests := []struct {
		give      int
		wantToks  int
		wantTrunc bool
	}{
		{1, 1, true},
		{n - 1, n - 1, true},
		{n, n, false},
		{n + 100, n, false},
	}
	for _, tt := range tests {
		r := generate("m", []byte(`{}`), tt.give)
		if r.outputTokens() != tt.wantToks || r.truncated() != tt.wantTrunc {
			t.Errorf("max %d: %d tokens, truncated %v; want %d, %v", tt.give, r.outputTokens(), r.truncated(), tt.wantToks, tt.wantTrunc)
		}
		if !strings.HasPrefix(full.text(), r.text()) {
			t.Errorf("max %d: %q is not a prefix of the full reply %q", tt.give, r.text(), full.text())
		}
		wantStop := "end_turn"
		if tt.wantTrunc {
			wantStop = "max_tokens"
		}
		if r.stopReason() != wantStop {
			t.Errorf("max %d: stop reason %q, want %q", tt.give, r.stopReason(), wantStop)
		}
	}
}

func TestModelName(t *testing.T) {
	tests := []struct{ give, want string }{
		{"anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet-20240620"},
		{"us.anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku-20240307"},
		{"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet-20240620"},
		{"anthropic.claude-v2", "claude"},
		{"my-model", "my-model"},
		{"anthropic.claude-instant-v1", "claude-instant"},
	}
	for _, tt := range tests {
		if got := modelName(tt.give); got != tt.want {
			t.Errorf("modelName(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestCountInputTokens(t *testing.T) {
	msgs := []any{map[string]any{"role": "user", "content": "12345678"}}
	if got, want := countInputTokens("abcd", msgs), 7+3; got != want {
		t.Errorf("countInputTokens = %d, want %d", got, want)
	}
	blocks := []any{map[string]any{"role": "user", "content": []any{map[string]any{"type": "text", "text": "日本語"}}}}
	if got, want := countInputTokens(nil, blocks), 7+1; got != want {
		t.Errorf("countInputTokens(blocks) = %d, want %d", got, want)
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (Options{}).Validate(); err != nil {
		t.Errorf("zero Options: %v", err)
	}
	err := Options{TTFT: -1, TokensPerSecond: -2, Fault: "boom"}.Validate()
	if err == nil {
		t.Fatal("invalid Options: no error")
	}
	for _, want := range []string{"ttft", "tokens per second", `fault "boom"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
