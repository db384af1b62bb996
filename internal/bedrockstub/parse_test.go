package bedrockstub

import (
	"strings"
	"testing"
)

// FuzzParseRequests checks that any body gets a deliberate answer: either a validation message or a
// request the reply generator can use.
func FuzzParseRequests(f *testing.F) {
	for _, s := range []string{
		`{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`,
		`{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"temperature":1.0}`,
		`{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":3,"topP":0.5}}`,
		`{"max_tokens":-1}`, `[]`, `null`, `{"messages":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ar, msg := parseAnthropic(body)
		if msg == "" {
			if ar.maxTokens < 1 || ar.inputToks < 1 || len(ar.canonical) == 0 {
				t.Fatalf("accepted %q as %+v", body, ar)
			}
			if r := generate("m", ar.canonical, ar.maxTokens); r.outputTokens() < 1 || r.outputTokens() > ar.maxTokens {
				t.Fatalf("reply of %d tokens for max_tokens %d", r.outputTokens(), ar.maxTokens)
			}
		} else if strings.TrimSpace(msg) == "" {
			t.Fatal("blank validation message")
		}
		cr, msg := parseConverse(body)
		if msg == "" && (cr.maxTokens < 1 || cr.inputToks < 1 || len(cr.canonical) == 0) {
			t.Fatalf("accepted %q as %+v", body, cr)
		}
	})
}
