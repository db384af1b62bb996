package handlers

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cutover/cutover/compat"
)

// chatRequest is a validated /chat or /chat/stream body (parse_chat_request's result).
type chatRequest struct {
	message string
	// conversationID is "" when the body names none (JSON null or absent).
	conversationID  string
	hasConversation bool
	model           string
	// temperature and maxTokens are the JSON values as decoded (int64,
	// *big.Int or float64), so the Bedrock body repeats them as Python does.
	temperature any
	maxTokens   any
}

// validationError is the legacy ValidationError: a 400 with its message.
type validationError struct{ msg string }

func (e *validationError) Error() string { return e.msg }

func invalid(msg string) error { return &validationError{msg} }

// parseChatRequest is the legacy parse_chat_request: the same rules in the same
// order, the first failure wins; a key whose value is JSON null counts as absent.
// data is what compat.GetJSONLimit decoded.
func (a *App) parseChatRequest(data any) (*chatRequest, error) {
	obj, ok := data.(compat.Object)
	if !ok {
		return nil, invalid("request body must be a JSON object")
	}
	get := func(key string) any {
		v, _ := obj.Get(key)
		return v
	}

	req := &chatRequest{}
	switch m := get("message").(type) {
	case nil:
		return nil, invalid("message is required")
	case string:
		if pyStrip(m) == "" {
			return nil, invalid("message must not be blank")
		}
		if pyLen(m) > a.cfg.MaxMessageChars {
			return nil, invalid("message must be at most " + strconv.Itoa(a.cfg.MaxMessageChars) + " characters")
		}
		req.message = m
	default:
		return nil, invalid("message must be a string")
	}

	switch c := get("conversation_id").(type) {
	case nil:
	case string:
		if !validConversationID(c) {
			return nil, invalid("conversation_id must be 1-64 characters of letters, digits, '_' or '-'")
		}
		req.conversationID, req.hasConversation = c, true
	default:
		return nil, invalid("conversation_id must be a string")
	}

	switch m := get("model").(type) {
	case nil:
		req.model = a.cfg.ModelID
	case string:
		if _, ok := modelLimit(m); !ok {
			return nil, invalid("model must be one of: " + strings.Join(modelIDs(), ", "))
		}
		req.model = m
	default:
		return nil, invalid("model must be one of: " + strings.Join(modelIDs(), ", "))
	}

	switch t := get("temperature"); {
	case t == nil:
		req.temperature = defaultTemperature
	case !isNumber(t):
		return nil, invalid("temperature must be a number")
	case !inRange(t, 0, 1):
		return nil, invalid("temperature must be between 0 and 1")
	default:
		req.temperature = t
	}

	switch mt := get("max_tokens"); {
	case mt == nil:
		req.maxTokens = int64(defaultMaxTokens)
	case !isInt(mt):
		return nil, invalid("max_tokens must be an integer")
	case !inRange(mt, 1, maxTokensLimit):
		return nil, invalid("max_tokens must be between 1 and " + strconv.Itoa(maxTokensLimit))
	default:
		limit, _ := modelLimit(req.model)
		if !inRange(mt, 1, int64(limit)) {
			return nil, invalid("max_tokens must be at most " + strconv.Itoa(limit) + " for model " + req.model)
		}
		req.maxTokens = mt
	}
	return req, nil
}

// isNumber is the legacy is_number: an int or a float, and bool (an int
// subclass in Python) is not one. Decoded JSON true/false are Go bools, so
// only the numeric kinds compat.Unmarshal produces qualify.
func isNumber(v any) bool {
	switch v.(type) {
	case int64, *big.Int, float64:
		return true
	}
	return false
}

// isInt is isinstance(v, int) and not isinstance(v, bool).
func isInt(v any) bool {
	switch v.(type) {
	case int64, *big.Int:
		return true
	}
	return false
}

// inRange is Python's lo <= v <= hi for an int or float v: NaN compares false,
// big integers compare exactly.
func inRange(v any, lo, hi int64) bool {
	switch x := v.(type) {
	case int64:
		return lo <= x && x <= hi
	case *big.Int:
		return x.Cmp(big.NewInt(lo)) >= 0 && x.Cmp(big.NewInt(hi)) <= 0
	case float64:
		// lo and hi are small, so float64(lo/hi) is exact: the comparison is Python's.
		return !math.IsNaN(x) && float64(lo) <= x && x <= float64(hi)
	}
	return false
}

// validConversationID is CONVERSATION_ID_RE.fullmatch: [A-Za-z0-9_-]{1,64}.
func validConversationID(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// pyIsSpace is str.isspace() for one code point (Python 3.11): Go's
// unicode.IsSpace set plus the separators U+001C..U+001F.
func pyIsSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f, ' ', 0x85, 0xa0, 0x1680,
		0x2028, 0x2029, 0x202f, 0x205f, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

// pyStrip is str.strip() on a string compat decoded (WTF-8: lone surrogates
// are 3-byte sequences, never whitespace).
func pyStrip(s string) string {
	start := 0
	for start < len(s) {
		r, n := utf8.DecodeRuneInString(s[start:])
		if !pyIsSpace(r) {
			break
		}
		start += n
	}
	end := len(s)
	for end > start {
		r, n := utf8.DecodeLastRuneInString(s[start:end])
		if !pyIsSpace(r) {
			break
		}
		end -= n
	}
	return s[start:end]
}

// pyLen is len(str) for a WTF-8 string: code points, a lone surrogate
// (ED A0..BF xx) counting as one.
func pyLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 && i+2 < len(s) && s[i] == 0xED && s[i+1] >= 0xA0 && s[i+1] <= 0xBF && s[i+2] >= 0x80 && s[i+2] <= 0xBF {
			size = 3
		}
		i += size
		n++
	}
	return n
}
