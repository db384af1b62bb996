package shadow

import (
	"fmt"
	"strconv"
	"strings"
)

// A jsonPath is a compiled path pattern in the JSONPath subset the comparator
// understands: `$` root, `.name` or `['name']` child, `.*` or `[*]` any child,
// `[3]` array index, and `..name` any descendant called name.
type jsonPath struct {
	src  string
	segs []pathSeg
}

type segKind uint8

const (
	segKey segKind = iota
	segIndex
	segAny
	segDescend
)

type pathSeg struct {
	kind  segKind
	key   string
	index int
}

// elem is one step of a concrete location in a document.
type elem struct {
	key     string
	index   int
	isIndex bool
}

func compilePath(src string) (jsonPath, error) {
	s := strings.TrimSpace(src)
	if !strings.HasPrefix(s, "$") {
		return jsonPath{}, fmt.Errorf("path %q: must start with $", src)
	}
	s = s[1:]
	p := jsonPath{src: src}
	for s != "" {
		switch {
		case strings.HasPrefix(s, ".."):
			s = s[2:]
			name, rest := identPrefix(s)
			if name == "" {
				return jsonPath{}, fmt.Errorf("path %q: `..` needs a field name", src)
			}
			p.segs = append(p.segs, pathSeg{kind: segDescend, key: name})
			s = rest
		case strings.HasPrefix(s, ".*"):
			p.segs = append(p.segs, pathSeg{kind: segAny})
			s = s[2:]
		case strings.HasPrefix(s, "."):
			name, rest := identPrefix(s[1:])
			if name == "" {
				return jsonPath{}, fmt.Errorf("path %q: `.` needs a field name", src)
			}
			p.segs = append(p.segs, pathSeg{kind: segKey, key: name})
			s = rest
		case strings.HasPrefix(s, "[*]"):
			p.segs = append(p.segs, pathSeg{kind: segAny})
			s = s[3:]
		case strings.HasPrefix(s, "['"):
			end := strings.Index(s[2:], "']")
			if end < 0 {
				return jsonPath{}, fmt.Errorf("path %q: unterminated ['", src)
			}
			p.segs = append(p.segs, pathSeg{kind: segKey, key: s[2 : 2+end]})
			s = s[2+end+2:]
		case strings.HasPrefix(s, "["):
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return jsonPath{}, fmt.Errorf("path %q: unterminated [", src)
			}
			n, err := strconv.Atoi(s[1:end])
			if err != nil || n < 0 {
				return jsonPath{}, fmt.Errorf("path %q: bad index %q", src, s[1:end])
			}
			p.segs = append(p.segs, pathSeg{kind: segIndex, index: n})
			s = s[end+1:]
		default:
			return jsonPath{}, fmt.Errorf("path %q: unexpected %q", src, s)
		}
	}
	return p, nil
}

func identPrefix(s string) (name, rest string) {
	i := strings.IndexAny(s, ".[")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// match reports whether the concrete location at matches the pattern exactly.
func (p jsonPath) match(at []elem) bool { return matchSegs(p.segs, at) }

func matchSegs(segs []pathSeg, at []elem) bool {
	if len(segs) == 0 {
		return len(at) == 0
	}
	s := segs[0]
	if s.kind == segDescend {
		for i, e := range at {
			if !e.isIndex && e.key == s.key && matchSegs(segs[1:], at[i+1:]) {
				return true
			}
		}
		return false
	}
	if len(at) == 0 {
		return false
	}
	e := at[0]
	switch s.kind {
	case segKey:
		if e.isIndex || e.key != s.key {
			return false
		}
	case segIndex:
		if !e.isIndex || e.index != s.index {
			return false
		}
	}
	return matchSegs(segs[1:], at[1:])
}

// formatPath renders a concrete location as `$.a.b[0]`.
func formatPath(at []elem) string {
	var b strings.Builder
	b.WriteByte('$')
	for _, e := range at {
		switch {
		case e.isIndex:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(e.index))
			b.WriteByte(']')
		case isIdent(e.key):
			b.WriteByte('.')
			b.WriteString(e.key)
		default:
			b.WriteString("['")
			b.WriteString(e.key)
			b.WriteString("']")
		}
	}
	return b.String()
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
