package bedrockstub

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// jsonEncoder returns an encoder that leaves <, > and & alone, as the service does.
func jsonEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// errTrailingData reports a JSON body with more than one value.
var errTrailingData = errors.New("trailing data after JSON value")

// decodeJSON parses body keeping number literals exactly as written (json.Number), so 1 and 1.0 differ.
func decodeJSON(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errTrailingData
	}
	return v, nil
}

// Canonicalize returns the canonical form of a JSON body: object keys sorted, no insignificant
// whitespace, strings re-escaped one way (so "é" and "\u00e9" agree), number literals kept as written
// (so 1 and 1.0 stay distinct). Replies depend on the body only through this form.
func Canonicalize(body []byte) ([]byte, error) {
	v, err := decodeJSON(body)
	if err != nil {
		return nil, err
	}
	return canonical(v), nil
}

func canonical(v any) []byte {
	// encoding/json sorts map keys and writes json.Number literally.
	b, err := json.Marshal(v)
	if err != nil {
		// v came from decodeJSON, which only yields marshalable values.
		panic(fmt.Sprintf("bedrockstub: canonicalize: %v", err))
	}
	return b
}

// reply is the generated answer to one request.
type reply struct {
	id     string   // msg_bdrk_…
	pieces []string // one per output token; their concatenation is the text
	// total is how many tokens the model "wanted" to write; len(pieces) < total means max_tokens cut it.
	total int
}

func (r reply) text() string       { return strings.Join(r.pieces, "") }
func (r reply) outputTokens() int  { return len(r.pieces) }
func (r reply) stopReason() string { return stopReasonFor(r.truncated()) }
func (r reply) truncated() bool    { return len(r.pieces) < r.total }

func stopReasonFor(truncated bool) string {
	if truncated {
		return "max_tokens"
	}
	return "end_turn"
}

// vocabulary is what replies are made of; it mixes plain ASCII with the characters whose encoding
// differs between JSON encoders (non-ASCII, astral emoji, quotes, HTML specials).
var vocabulary = []string{
	"the", "stub", "answers", "with", "a", "reply", "made", "of", "words", "from", "this", "list",
	"and", "every", "request", "gets", "its", "own", "sequence", "model", "token", "stream", "chunk",
	"delta", "Bedrock", "deterministic", "canonical", "body", "hash", "cutover", "proxy", "shadow",
	"café", "naïve", "Zürich", "façade", "déjà-vu", "Ærøskøbing", "Straße", "日本語", "テスト", "中文",
	"😀", "✨", "🦀", "'single'", "\"double\"", "a<b", "b>a", "R&D", "<i>", "</i>", "50%", "back\\slash",
	"tab\there", "¿qué?", "¡sí!", "ελληνικά", "русский", "עברית", "…", "—",
}

// mustHave appear in every reply that max_tokens does not cut short, so each reply exercises every
// encoding difference: é, ü, 日本語, an astral emoji, double quotes, <, > and &.
var mustHave = []string{"café", "über", "日本語", "🚀", "\"quoted\"", "<b>&amp;</b> & <>"}

// hashStream yields deterministic pseudo-random numbers from a seed: SHA-256 in counter mode.
type hashStream struct {
	seed [32]byte
	ctr  uint64
}

func (h *hashStream) next() uint64 {
	var buf [40]byte
	copy(buf[:32], h.seed[:])
	binary.BigEndian.PutUint64(buf[32:], h.ctr)
	h.ctr++
	sum := sha256.Sum256(buf[:])
	return binary.BigEndian.Uint64(sum[:8])
}

func (h *hashStream) intn(n int) int { return int(h.next() % uint64(n)) }

const (
	minWords = 8
	maxWords = 40
)

// generate builds the reply for modelID and a canonical body, cut to maxTokens (if > 0) tokens.
func generate(modelID string, canonicalBody []byte, maxTokens int) reply {
	h := sha256.New()
	h.Write([]byte(modelID))
	h.Write([]byte{0})
	h.Write(canonicalBody)
	hs := &hashStream{}
	copy(hs.seed[:], h.Sum(nil))

	n := minWords + hs.intn(maxWords-minWords+1)
	words := make([]string, n)
	for i := range words {
		words[i] = vocabulary[hs.intn(len(vocabulary))]
	}
	// Put each mustHave word at its own position, chosen by a partial Fisher-Yates shuffle.
	pos := make([]int, n)
	for i := range pos {
		pos[i] = i
	}
	for i, w := range mustHave {
		j := i + hs.intn(n-i)
		pos[i], pos[j] = pos[j], pos[i]
		words[pos[i]] = w
	}
	newline := 1 + hs.intn(n-1) // at least one line break, never before the first word
	pieces := make([]string, n)
	for i, w := range words {
		var sep string
		switch {
		case i == 0:
		case i == newline:
			sep = "\n"
		default:
			switch hs.intn(10) {
			case 0:
				sep = ", "
			case 1:
				sep = ". "
			case 2:
				sep = "\n\n"
			default:
				sep = " "
			}
		}
		pieces[i] = sep + w
	}
	pieces[n-1] += "."

	r := reply{id: messageID(hs), pieces: pieces, total: n}
	if maxTokens > 0 && maxTokens < n {
		r.pieces = pieces[:maxTokens]
	}
	return r
}

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func messageID(hs *hashStream) string {
	var b strings.Builder
	b.WriteString("msg_bdrk_01")
	for range 22 {
		b.WriteByte(idAlphabet[hs.intn(len(idAlphabet))])
	}
	return b.String()
}

// countInputTokens estimates input tokens from the prompt text: one per four characters (runes) of
// every string in the given values (the system prompt and the messages), plus a small fixed overhead.
func countInputTokens(values ...any) int {
	var runes int
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			runes += utf8.RuneCountInString(v)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for k, e := range v {
				if k == "role" || k == "type" {
					continue
				}
				walk(e)
			}
		}
	}
	for _, v := range values {
		walk(v)
	}
	return 7 + (runes+3)/4
}

// modelName is the model name Anthropic reports for a Bedrock model id or ARN:
// "us.anthropic.claude-3-5-sonnet-20240620-v1:0" → "claude-3-5-sonnet-20240620".
func modelName(modelID string) string {
	name := modelID
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	if i := strings.LastIndex(name, "anthropic."); i >= 0 {
		name = name[i+len("anthropic."):]
	}
	if i := strings.LastIndex(name, "-v"); i > 0 && isVersion(name[i+2:]) {
		name = name[:i]
	}
	return name
}

// isVersion reports whether s looks like "1" or "1:0".
func isVersion(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != ':' {
			return false
		}
	}
	return s[0] != ':'
}
