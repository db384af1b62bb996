package handlers

import (
	"strings"

	"github.com/cutover/cutover/compat"
)

// rawTurn is a stored turn whose values are kept as the JSON string tokens
// they were read from.
type rawTurn struct {
	role, content, createdAt compat.RawJSON
}

// Stored turns as json.dumps({"role": r, "content": c, "created_at": t})
// writes them, in the legacy app and in saveTurns alike.
const (
	turnRole      = `{"role": `
	turnContent   = `, "content": `
	turnCreatedAt = `, "created_at": `
)

// fastTurn reads an item that is byte for byte what save_turns writes
// (three string values, Python's separators, ASCII only) without decoding
// it: each value is re-encoded later exactly as it was stored, so its token
// is used as it is. It reports false for anything else, which parseTurn then
// reads in full; the answer is the same either way, and the history of a
// busy conversation no longer costs a decode and an encode of every turn.
func fastTurn(item string) (rawTurn, bool) {
	var t rawTurn
	rest, ok := strings.CutPrefix(item, turnRole)
	if !ok {
		return t, false
	}
	if t.role, rest, ok = canonicalString(rest); !ok {
		return t, false
	}
	if rest, ok = strings.CutPrefix(rest, turnContent); !ok {
		return t, false
	}
	if t.content, rest, ok = canonicalString(rest); !ok {
		return t, false
	}
	if rest, ok = strings.CutPrefix(rest, turnCreatedAt); !ok {
		return t, false
	}
	if t.createdAt, rest, ok = canonicalString(rest); !ok {
		return t, false
	}
	return t, rest == "}"
}

// canonicalString splits a JSON string token off the front of s when it is
// exactly what json.dumps (ensure_ascii) writes for the string it decodes to,
// that is, what compat.AppendQuoteASCII gives back for it: printable ASCII
// as itself, `"` and `\` escaped, \n \r \t \b \f, and \u followed by four
// lower-case hex digits for every other code point below 0x20 or from 0x7f
// on (surrogates too, paired or lone: json.loads keeps a lone one, and a
// pair decodes to the astral code point that is written back as that pair).
func canonicalString(s string) (tok compat.RawJSON, rest string, ok bool) {
	if len(s) == 0 || s[0] != '"' {
		return nil, "", false
	}
	for i := 1; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			return compat.RawJSON(s[:i+1]), s[i+1:], true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, "", false
			}
			switch s[i+1] {
			case '"', '\\', 'n', 'r', 't', 'b', 'f':
				i += 2
			case 'u':
				if i+6 > len(s) {
					return nil, "", false
				}
				var v rune
				for _, h := range []byte(s[i+2 : i+6]) {
					switch {
					case h >= '0' && h <= '9':
						v = v<<4 | rune(h-'0')
					case h >= 'a' && h <= 'f':
						v = v<<4 | rune(h-'a'+10)
					default:
						return nil, "", false
					}
				}
				if v >= 0x20 && v < 0x7f {
					return nil, "", false // printable ASCII is written as itself
				}
				switch v {
				case '\n', '\r', '\t', '\b', '\f':
					return nil, "", false // these have their short escapes
				}
				i += 6
			default:
				return nil, "", false // \/ and invalid escapes
			}
		case c >= 0x20 && c < 0x7f:
			i++
		default:
			return nil, "", false // raw control or non-ASCII bytes are escaped on output
		}
	}
	return nil, "", false
}
