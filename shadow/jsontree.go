package shadow

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// jnode is a JSON value decoded with its key order, its number literals and
// the raw bytes of each token (including the separators and whitespace before
// it), so the comparator can tell "same value" from "same bytes" on the parts
// of a document that are not ignored.
type jnode struct {
	kind byte   // '{' object, '[' array, 's' string, 'n' number, 'b' bool, 'z' null
	raw  []byte // token bytes with leading separators; containers: the opening delimiter
	end  []byte // containers: the closing delimiter with leading whitespace
	keys []string
	kraw [][]byte
	kids []*jnode
	str  string
	num  json.Number
	b    bool
}

const maxJSONDepth = 256

var errNotJSON = errors.New("not a single JSON value")

// parseJSON decodes exactly one JSON value (plus trailing whitespace, kept in
// tail). It returns errNotJSON for anything else, including nesting deeper
// than maxJSONDepth, so such bodies are compared as bytes.
func parseJSON(data []byte) (root *jnode, tail []byte, err error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, errNotJSON
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var prev int64
	next := func() (json.Token, []byte, error) {
		t, err := dec.Token()
		off := dec.InputOffset()
		raw := data[prev:off]
		prev = off
		return t, raw, err
	}
	var value func(t json.Token, raw []byte, depth int) (*jnode, error)
	value = func(t json.Token, raw []byte, depth int) (*jnode, error) {
		if depth > maxJSONDepth {
			return nil, errNotJSON
		}
		switch v := t.(type) {
		case json.Delim:
			n := &jnode{kind: byte(v), raw: raw}
			for {
				t, r, err := next()
				if err != nil {
					return nil, errNotJSON
				}
				if d, ok := t.(json.Delim); ok && (d == '}' || d == ']') {
					n.end = r
					return n, nil
				}
				if n.kind == '{' {
					k, ok := t.(string)
					if !ok {
						return nil, errNotJSON
					}
					n.keys, n.kraw = append(n.keys, k), append(n.kraw, r)
					t, r, err = next()
					if err != nil {
						return nil, errNotJSON
					}
				}
				kid, err := value(t, r, depth+1)
				if err != nil {
					return nil, err
				}
				n.kids = append(n.kids, kid)
			}
		case string:
			return &jnode{kind: 's', raw: raw, str: v}, nil
		case json.Number:
			return &jnode{kind: 'n', raw: raw, num: v}, nil
		case bool:
			return &jnode{kind: 'b', raw: raw, b: v}, nil
		case nil:
			return &jnode{kind: 'z', raw: raw}, nil
		}
		return nil, errNotJSON
	}
	t, raw, err := next()
	if err != nil {
		return nil, nil, errNotJSON
	}
	root, err = value(t, raw, 0)
	if err != nil {
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errNotJSON
	}
	return root, data[prev:], nil
}

// child returns the value of key k (the last one, as Python's json keeps the
// last duplicate) or nil.
func (n *jnode) child(k string) *jnode {
	for i := len(n.keys) - 1; i >= 0; i-- {
		if n.keys[i] == k {
			return n.kids[i]
		}
	}
	return nil
}

// text renders a node for a diff report: compact, at most limit bytes.
func (n *jnode) text(limit int) string {
	if n == nil {
		return "<absent>"
	}
	var b bytes.Buffer
	n.render(&b, limit)
	s := b.String()
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return s
}

func (n *jnode) render(b *bytes.Buffer, limit int) {
	if b.Len() > limit {
		return
	}
	switch n.kind {
	case '{', '[':
		b.WriteByte(n.kind)
		for i, k := range n.kids {
			if i > 0 {
				b.WriteByte(',')
			}
			if n.kind == '{' {
				q, _ := json.Marshal(n.keys[i])
				b.Write(q)
				b.WriteByte(':')
			}
			k.render(b, limit)
		}
		if n.kind == '{' {
			b.WriteByte('}')
		} else {
			b.WriteByte(']')
		}
	default:
		b.Write(bytes.TrimLeft(n.raw, " \t\r\n,:"))
	}
}
