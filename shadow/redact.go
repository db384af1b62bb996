package shadow

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// Redacted replaces every secret kept in a diff record.
const Redacted = "[REDACTED]"

// Redaction lists the secrets kept out of diff records. Each nil field means
// its default; an empty non-nil slice redacts nothing of that kind.
type Redaction struct {
	// Headers are request and response headers whose values are replaced.
	// Nil means DefaultRedactHeaders.
	Headers []string
	// Fields are names (case-insensitive) whose values are replaced in query
	// strings, form bodies and JSON bodies (string values, at any depth).
	// Nil means DefaultRedactFields.
	Fields []string
	// Patterns are regular expressions whose matches are replaced anywhere in
	// bodies. Nil means DefaultRedactPatterns.
	Patterns []string
}

// Defaults of Redaction.
var (
	DefaultRedactHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie",
		"X-Api-Key", "X-Amz-Security-Token"}
	DefaultRedactFields = []string{"api_key", "apikey", "password", "secret", "token", "access_token",
		"refresh_token", "aws_secret_access_key", "aws_session_token"}
	DefaultRedactPatterns = []string{`AKIA[0-9A-Z]{16}`, `(?i)bearer\s+[A-Za-z0-9._~+/=-]+`}
)

type redactor struct {
	headers []string
	fields  map[string]bool
	jsonRE  *regexp.Regexp // "field" : "value"
	formRE  *regexp.Regexp // field=value in a form body
	pattern []*regexp.Regexp
}

func newRedactor(r Redaction) (*redactor, error) {
	if r.Headers == nil {
		r.Headers = DefaultRedactHeaders
	}
	if r.Fields == nil {
		r.Fields = DefaultRedactFields
	}
	if r.Patterns == nil {
		r.Patterns = DefaultRedactPatterns
	}
	rd := &redactor{headers: r.Headers, fields: map[string]bool{}}
	var quoted []string
	for _, f := range r.Fields {
		rd.fields[strings.ToLower(f)] = true
		quoted = append(quoted, regexp.QuoteMeta(f))
	}
	if len(quoted) > 0 {
		alt := "(?i:" + strings.Join(quoted, "|") + ")"
		rd.jsonRE = regexp.MustCompile(`("` + alt + `"\s*:\s*)"(?:[^"\\]|\\.)*"`)
		rd.formRE = regexp.MustCompile(`((?:^|&)` + alt + `=)[^&]*`)
	}
	for _, p := range r.Patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("redaction pattern %q: %w", p, err)
		}
		rd.pattern = append(rd.pattern, re)
	}
	return rd, nil
}

func (rd *redactor) header(h http.Header) http.Header {
	if h == nil {
		return nil
	}
	out := h.Clone()
	for _, k := range rd.headers {
		if vs := out.Values(k); len(vs) > 0 {
			red := make([]string, len(vs))
			for i := range red {
				red[i] = Redacted
			}
			out[http.CanonicalHeaderKey(k)] = red
		}
	}
	return out
}

func (rd *redactor) query(q string) string {
	if q == "" || len(rd.fields) == 0 {
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
	if rd.formRE == nil {
		return s
	}
	return rd.formRE.ReplaceAllString(s, "${1}"+url.QueryEscape(Redacted))
}

func (rd *redactor) body(b string, contentType string) string {
	if rd.jsonRE != nil {
		b = rd.jsonRE.ReplaceAllString(b, `${1}"`+Redacted+`"`)
	}
	if strings.HasPrefix(strings.ToLower(contentType), "application/x-www-form-urlencoded") {
		b = rd.form(b)
	}
	for _, re := range rd.pattern {
		b = re.ReplaceAllString(b, Redacted)
	}
	return b
}

// mismatches redacts the value excerpts of mismatches: a redacted header, a
// JSON path ending in a redacted field, and secrets matched in any excerpt.
func (rd *redactor) mismatches(ms []Mismatch) []Mismatch {
	if len(ms) == 0 {
		return ms
	}
	out := make([]Mismatch, len(ms))
	for i, m := range ms {
		if rd.secretPath(m.Path) {
			m.Primary, m.Shadow = Redacted, Redacted
		} else {
			m.Primary, m.Shadow = rd.body(m.Primary, ""), rd.body(m.Shadow, "")
		}
		out[i] = m
	}
	return out
}

func (rd *redactor) secretPath(path string) bool {
	if name, ok := strings.CutPrefix(path, "header."); ok {
		for _, h := range rd.headers {
			if strings.EqualFold(h, name) {
				return true
			}
		}
		return false
	}
	// The last key of a JSONPath such as events[2].data$.auth.api_key or $['api key'].
	var last string
	if strings.HasSuffix(path, "']") {
		if i := strings.LastIndex(path, "['"); i >= 0 {
			last = path[i+2 : len(path)-2]
		}
	} else if i := strings.LastIndexAny(path, ".$"); i >= 0 {
		last = path[i+1:]
	}
	return rd.fields[strings.ToLower(last)]
}
