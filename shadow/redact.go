package shadow

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Redacted replaces every secret kept in a diff record.
const Redacted = "[REDACTED]"

// Redaction lists the secrets kept out of diff records, in addition to the
// defaults: a list given here adds to its default and never replaces it (a
// custom list that dropped Cookie or Authorization by accident would leak
// them), so the zero value redacts exactly the defaults.
type Redaction struct {
	// Headers are request and response headers whose values are replaced,
	// besides DefaultRedactHeaders. A name ending in "*" matches every header
	// whose name starts with the rest (case-insensitive): "X-Amzn-Oidc-*".
	Headers []string
	// Fields are names (case-insensitive, after JSON escapes are resolved)
	// whose values are replaced in query strings, form bodies and JSON, besides
	// DefaultRedactFields. In JSON the whole value goes, whatever its type: a
	// number, an object or an array under a secret key is replaced by the
	// string "[REDACTED]".
	Fields []string
	// Patterns are regular expressions whose matches are replaced anywhere in
	// bodies, besides DefaultRedactPatterns.
	Patterns []string
}

// Defaults of Redaction, always applied.
var (
	DefaultRedactHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie",
		"X-Api-Key", "X-Auth-Token", "X-Amz-Security-Token", "X-Amzn-Oidc-*"}
	DefaultRedactFields = []string{"api_key", "apikey", "password", "secret", "token", "access_token",
		"refresh_token", "id_token", "client_secret", "aws_secret_access_key", "aws_session_token"}
	DefaultRedactPatterns = []string{`AKIA[0-9A-Z]{16}`, `(?i)bearer\s+[A-Za-z0-9._~+/=-]+`}
)

type redactor struct {
	headers  map[string]bool // canonical names
	prefixes []string        // lower-case prefixes of "Name-*" entries
	fields   map[string]bool // lower case
	formRE   *regexp.Regexp  // field=value in a form body
	pattern  []*regexp.Regexp
}

func newRedactor(r Redaction) (*redactor, error) {
	rd := &redactor{headers: map[string]bool{}, fields: map[string]bool{}}
	for _, h := range concat(DefaultRedactHeaders, r.Headers) {
		if p, ok := strings.CutSuffix(h, "*"); ok {
			rd.prefixes = append(rd.prefixes, strings.ToLower(p))
		} else {
			rd.headers[http.CanonicalHeaderKey(h)] = true
		}
	}
	var quoted []string
	for _, f := range concat(DefaultRedactFields, r.Fields) {
		if f = strings.ToLower(f); !rd.fields[f] {
			rd.fields[f] = true
			quoted = append(quoted, regexp.QuoteMeta(f))
		}
	}
	rd.formRE = regexp.MustCompile(`((?:^|&)(?i:` + strings.Join(quoted, "|") + `)=)[^&]*`)
	for _, p := range concat(DefaultRedactPatterns, r.Patterns) {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("redaction pattern %q: %w", p, err)
		}
		rd.pattern = append(rd.pattern, re)
	}
	return rd, nil
}

func concat(a, b []string) []string { return append(append([]string(nil), a...), b...) }

func (rd *redactor) secretHeader(name string) bool {
	if rd.headers[http.CanonicalHeaderKey(name)] {
		return true
	}
	lower := strings.ToLower(name)
	for _, p := range rd.prefixes {
		if strings.HasPrefix(lower, p) {
			return true
		}
	}
	return false
}

func (rd *redactor) header(h http.Header) http.Header {
	if h == nil {
		return nil
	}
	out := h.Clone()
	for k, vs := range out {
		if rd.secretHeader(k) {
			red := make([]string, len(vs))
			for i := range red {
				red[i] = Redacted
			}
			out[k] = red
		}
	}
	return out
}

func (rd *redactor) query(q string) string {
	if q == "" {
		return q
	}
	vals, err := url.ParseQuery(q)
	if err != nil {
		return rd.form(q)
	}
	changed := false
	for k, vs := range vals {
		if rd.fields[strings.ToLower(k)] {
			for i := range vs {
				vs[i] = Redacted
			}
			changed = true
		}
	}
	if !changed {
		return q
	}
	return vals.Encode()
}

func (rd *redactor) form(s string) string {
	return rd.formRE.ReplaceAllString(s, "${1}"+url.QueryEscape(Redacted))
}

func (rd *redactor) body(b string, contentType string) string {
	b = rd.json(b)
	if strings.HasPrefix(strings.ToLower(contentType), "application/x-www-form-urlencoded") {
		b = rd.form(b)
	}
	for _, re := range rd.pattern {
		b = re.ReplaceAllString(b, Redacted)
	}
	return b
}

// redactedJSON replaces a secret member's value in JSON text.
const redactedJSON = `"` + Redacted + `"`

// json replaces the value of every JSON object member whose key is a secret
// field with "[REDACTED]", whatever the value is (string, number, literal,
// object or array). It walks the JSON structure lexically instead of
// decoding it whole, so that a record body clipped at its limit, the data
// lines of an event stream and JSON inside other text are all covered, and
// the rest of the text keeps its bytes. A string token followed by ':' is a
// key; keys are compared after their escapes are resolved ("\u0074oken" is
// "token"). A raw newline ends any string (valid JSON strings cannot hold
// one), so a stray quote in non-JSON text cannot hide the keys of later lines.
// A secret value that never ends (clipped) is replaced up to the end.
func (rd *redactor) json(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if s[i] != '"' {
			i++
			continue
		}
		end, closed := scanString(s, i)
		if !closed {
			i = end
			continue
		}
		colon := skipSpace(s, end)
		if colon >= len(s) || s[colon] != ':' || !rd.fields[jsonKey(s[i:end])] {
			i = end
			continue
		}
		v := skipSpace(s, colon+1)
		ve := skipValue(s, v)
		if ve == v {
			i = end
			continue
		}
		b.WriteString(s[last:v])
		b.WriteString(redactedJSON)
		last, i = ve, ve
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// scanString returns the index just past the JSON string starting at s[i]
// (a '"') and true, or the index of the raw newline or end of input that cut
// it short and false.
func scanString(s string, i int) (int, bool) {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		case '\n':
			return j, false
		}
	}
	return len(s), false
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the JSON value starting at s[i]:
// a string, a bracketed object or array (strings inside skipped), or a
// scalar up to the next delimiter. A value cut short ends where s ends (or,
// for a string, at its raw newline).
func skipValue(s string, i int) int {
	if i >= len(s) {
		return i
	}
	switch s[i] {
	case '"':
		end, _ := scanString(s, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(s); {
			switch s[j] {
			case '"':
				j, _ = scanString(s, j)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
			j++
		}
		return len(s)
	}
	j := i
	for j < len(s) && !strings.ContainsRune(",}]\r\n\t ", rune(s[j])) {
		j++
	}
	return j
}

// jsonKey is a quoted JSON key, decoded and lower-cased.
func jsonKey(quoted string) string {
	if !strings.Contains(quoted, `\`) {
		return strings.ToLower(quoted[1 : len(quoted)-1])
	}
	var k string
	if json.Unmarshal([]byte(quoted), &k) != nil {
		return strings.ToLower(quoted[1 : len(quoted)-1])
	}
	return strings.ToLower(k)
}

// mismatches redacts the value excerpts of mismatches: a redacted header, a
// JSON path through a redacted field, and secrets found in any excerpt.
func (rd *redactor) mismatches(ms []Mismatch) []Mismatch {
	if len(ms) == 0 {
		return ms
	}
	out := make([]Mismatch, len(ms))
	for i, m := range ms {
		if rd.secretPath(m.Path) {
			m.Primary, m.Shadow = Redacted, Redacted
		} else {
			m.Primary, m.Shadow = rd.excerpt(m.Primary), rd.excerpt(m.Shadow)
		}
		out[i] = m
	}
	return out
}

// BinaryExcerpt replaces a mismatch excerpt that is not valid UTF-8: like a
// binary body, it is not stored.
const BinaryExcerpt = "[binary, not stored]"

func (rd *redactor) excerpt(s string) string {
	if !utf8.ValidString(s) {
		return BinaryExcerpt
	}
	return rd.body(s, "")
}

// secretPath says whether a mismatch path names a redacted header or passes
// through a redacted field: any key of a JSONPath such as
// events[2].data$.auth.api_key, $.token.value or $['api key'].
func (rd *redactor) secretPath(path string) bool {
	if name, ok := strings.CutPrefix(path, "header."); ok {
		return rd.secretHeader(name)
	}
	i := strings.IndexByte(path, '$')
	if i < 0 {
		return false
	}
	for p := path[i+1:]; p != ""; {
		var key string
		switch {
		case strings.HasPrefix(p, "['"):
			end := strings.Index(p, "']")
			if end < 0 {
				return rd.fields[strings.ToLower(p[2:])]
			}
			key, p = p[2:end], p[end+2:]
		case p[0] == '.':
			end := strings.IndexAny(p[1:], ".[")
			if end < 0 {
				end = len(p) - 1
			}
			key, p = p[1:end+1], p[end+1:]
		default: // [n]
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return false
			}
			p = p[end+1:]
			continue
		}
		if rd.fields[strings.ToLower(key)] {
			return true
		}
	}
	return false
}
