package config

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// SourceKind is where an identity source reads the request.
type SourceKind string

// The identity source kinds; see Config.Stickiness.
const (
	SourceHeader   SourceKind = "header"
	SourcePath     SourceKind = "path"
	SourceJSON     SourceKind = "json"
	SourceSession  SourceKind = "session"
	SourceCookie   SourceKind = "cookie"
	SourceClientIP SourceKind = "client_ip"
)

// Source is one parsed identity source. Name is the header, path parameter,
// JSON field, session field or cookie name; it is empty for client_ip and for
// "session" (the whole session payload).
type Source struct {
	Kind SourceKind
	Name string
}

// String returns the source in its config form ("header:X-User-Id").
func (s Source) String() string {
	if s.Name == "" {
		return string(s.Kind)
	}
	return string(s.Kind) + ":" + s.Name
}

// ParseSources parses a stickiness list; the error joins every bad entry.
func ParseSources(list []string) ([]Source, error) {
	out := make([]Source, 0, len(list))
	var errs []error
	for _, s := range list {
		src, err := ParseSource(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, src)
	}
	return out, errors.Join(errs...)
}

// ParseSource parses one stickiness entry such as "header:X-User-Id".
func ParseSource(s string) (Source, error) {
	kind, name, hasName := strings.Cut(strings.TrimSpace(s), ":")
	src := Source{Kind: SourceKind(strings.ToLower(kind)), Name: strings.TrimSpace(name)}
	switch src.Kind {
	case SourceClientIP:
		if hasName {
			return Source{}, fmt.Errorf("source %q: client_ip takes no name", s)
		}
		return src, nil
	case SourceSession:
		return src, nil // the name is optional: whole payload
	case SourceHeader, SourceCookie:
		if !validToken(src.Name) {
			return Source{}, fmt.Errorf("source %q: %q is not a valid %s name", s, src.Name, src.Kind)
		}
		return src, nil
	case SourcePath, SourceJSON:
		if src.Name == "" {
			return Source{}, fmt.Errorf("source %q: %s needs a name (e.g. %s:conversation_id)", s, src.Kind, src.Kind)
		}
		return src, nil
	}
	return Source{}, fmt.Errorf("source %q: kind %q is not one of header, path, json, session, cookie, client_ip", s, kind)
}

func compileRegex(s string) (*regexp.Regexp, error) { return regexp.Compile(s) }
