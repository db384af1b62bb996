package shadow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"mime"
	"net/http"
	"regexp"
	"strings"
)

// Class is the verdict on one mismatch or on a whole comparison.
type Class string

const (
	// ClassMatch: no difference that counts.
	ClassMatch Class = "match"
	// ClassEncoding: the same value in different bytes (key order, number or
	// unicode escaping, whitespace, header case or charset).
	ClassEncoding Class = "encoding_only"
	// ClassSemantic: different values.
	ClassSemantic Class = "semantic"
	// ClassNoise: every semantic difference is on a field learnt to differ
	// between two runs of the same backend.
	ClassNoise Class = "noise"
	// ClassError: the shadow side failed (transport error or timeout); nothing
	// was compared.
	ClassError Class = "error"
)

// rank orders classes by severity for the overall verdict.
func (c Class) rank() int {
	switch c {
	case ClassSemantic:
		return 4
	case ClassError:
		return 3
	case ClassEncoding:
		return 2
	case ClassNoise:
		return 1
	}
	return 0
}

// Mismatch is one difference. Path is "status", "header.<Name>", a JSONPath
// into the body ("$.usage.output_tokens", "$" for the whole body), or for
// event streams "events.count", "events[i].event", "events[i].data$.x",
// "sse.text", "sse.terminal".
type Mismatch struct {
	Path    string `json:"path"`
	Class   Class  `json:"class"`
	Primary string `json:"primary"`
	Shadow  string `json:"shadow"`
	Detail  string `json:"detail,omitempty"`
	Noise   bool   `json:"noise,omitempty"`
}

// Result is the outcome of one comparison.
type Result struct {
	Class      Class      `json:"class"`
	Mismatches []Mismatch `json:"mismatches,omitempty"`
	// Dropped counts mismatches left out past Rules.MaxMismatches.
	Dropped int `json:"dropped,omitempty"`
}

// Rules say how one route's responses are compared. The zero value compares
// status, Content-Type and the body byte for byte (a byte difference is still
// classified: equal JSON values or text equal up to whitespace give
// encoding_only).
//
// Ignore and Normalize apply in both modes, to JSON bodies and to the JSON
// data of each event of a stream: a difference only in ignored fields or in
// what a rule normalises away is a match, never a mismatch. The modes differ
// only in what is reported for the rest: JSON mode one mismatch per
// differing JSONPath, byte mode one mismatch at "$" naming the first
// differing path.
type Rules struct {
	// Headers is the allowlist of response headers compared. Nil means
	// DefaultHeaders; an empty non-nil slice compares none.
	Headers []string
	// JSON turns on the structural diff: one mismatch per differing JSONPath.
	JSON bool
	// Ignore lists JSONPaths left out of the comparison.
	Ignore []string
	// Normalize rewrites values before comparing: with a Path, string values at
	// that JSONPath; without one, the raw text of the body and of each event's
	// data (so it works on non-JSON bodies too).
	Normalize []Normalize
	// SSEText is the JSONPath, inside each event's JSON data, of the text
	// fragment assembled into the streamed text; events without it add
	// nothing. Empty means "$.text" (the `delta` events of /chat/stream);
	// "-" concatenates the raw data of every event.
	SSEText string
	// MaxMismatches caps the mismatches kept per comparison. Zero means 50.
	MaxMismatches int
}

// Normalize is one regular-expression rewrite (Go RE2 syntax; Replace may use
// $1-style references).
type Normalize struct {
	Path    string
	Pattern string
	Replace string
}

// DefaultHeaders is the header allowlist when Rules.Headers is nil.
var DefaultHeaders = []string{"Content-Type"}

// ComparatorConfig holds the default rules and per-route rules. A route with
// an entry uses it instead of Default (no merging).
type ComparatorConfig struct {
	Default Rules
	Routes  map[string]Rules
}

// Comparator compares a primary and a shadow response under per-route rules.
// It is immutable after NewComparator and safe for concurrent use.
type Comparator struct {
	def    *compiled
	routes map[string]*compiled
}

type compiled struct {
	headers []string
	json    bool
	ignore  []jsonPath
	norm    []compiledNorm
	text    []compiledNorm
	sseText *jsonPath
	max     int
}

type compiledNorm struct {
	path jsonPath
	re   *regexp.Regexp
	repl string
}

// NewComparator validates and compiles cfg, reporting every bad path or
// pattern at once, each naming its route.
func NewComparator(cfg ComparatorConfig) (*Comparator, error) {
	var errs []error
	c := &Comparator{routes: map[string]*compiled{}}
	c.def = compileRules("default", cfg.Default, &errs)
	for name, r := range cfg.Routes {
		c.routes[name] = compileRules(fmt.Sprintf("route %q", name), r, &errs)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

func compileRules(where string, r Rules, errs *[]error) *compiled {
	c := &compiled{headers: r.Headers, json: r.JSON, max: r.MaxMismatches}
	if c.headers == nil {
		c.headers = DefaultHeaders
	}
	if c.max <= 0 {
		c.max = 50
	}
	for _, p := range r.Ignore {
		jp, err := compilePath(p)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: ignore: %w", where, err))
			continue
		}
		c.ignore = append(c.ignore, jp)
	}
	for _, n := range r.Normalize {
		re, err := regexp.Compile(n.Pattern)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: normalize %q: %w", where, n.Pattern, err))
			continue
		}
		if n.Path == "" {
			c.text = append(c.text, compiledNorm{re: re, repl: n.Replace})
			continue
		}
		jp, err := compilePath(n.Path)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: normalize: %w", where, err))
			continue
		}
		c.norm = append(c.norm, compiledNorm{path: jp, re: re, repl: n.Replace})
	}
	switch r.SSEText {
	case "-":
	case "":
		jp, _ := compilePath("$.text")
		c.sseText = &jp
	default:
		jp, err := compilePath(r.SSEText)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: sse_text: %w", where, err))
		} else {
			c.sseText = &jp
		}
	}
	return c
}

func (c *Comparator) rules(route string) *compiled {
	if r, ok := c.routes[route]; ok {
		return r
	}
	return c.def
}

// Compare compares primary against shadow under route's rules. Neither side
// may be truncated or failed (Mirror checks that first).
func (c *Comparator) Compare(route string, primary, shadow Response) Result {
	d := &differ{rules: c.rules(route)}
	if primary.Status != shadow.Status {
		d.add(Mismatch{Path: "status", Class: ClassSemantic,
			Primary: fmt.Sprint(primary.Status), Shadow: fmt.Sprint(shadow.Status)})
	}
	d.headers(primary.Header, shadow.Header)
	if IsEventStream(primary.Header) && IsEventStream(shadow.Header) {
		d.events(ParseEvents(primary.Body), ParseEvents(shadow.Body))
	} else {
		d.body("", primary.Body, shadow.Body)
	}
	return d.result()
}

type differ struct {
	rules   *compiled
	out     []Mismatch
	dropped int
	// semantic is the path of the first semantic mismatch, kept even when
	// the mismatch itself was dropped past max.
	semantic string
	hit      bool // an ignore or normalise rule applied somewhere
}

func (d *differ) add(m Mismatch) {
	if m.Class == ClassSemantic && d.semantic == "" {
		d.semantic = m.Path
	}
	if len(d.out) >= d.rules.max {
		d.dropped++
		return
	}
	d.out = append(d.out, m)
}

func (d *differ) result() Result {
	r := Result{Class: ClassMatch, Mismatches: d.out, Dropped: d.dropped}
	for _, m := range d.out {
		if m.Class.rank() > r.Class.rank() {
			r.Class = m.Class
		}
	}
	if d.dropped > 0 && r.Class == ClassMatch {
		r.Class = ClassSemantic
	}
	return r
}

func (d *differ) headers(a, b http.Header) {
	for _, name := range d.rules.headers {
		va, vb := a.Values(name), b.Values(name)
		if len(va) == 0 && len(vb) == 0 {
			continue
		}
		sa, sb := strings.Join(va, ", "), strings.Join(vb, ", ")
		switch {
		case len(va) == 0 || len(vb) == 0:
			d.add(Mismatch{Path: "header." + http.CanonicalHeaderKey(name), Class: ClassSemantic,
				Primary: orAbsent(va, sa), Shadow: orAbsent(vb, sb)})
		case sa == sb:
		case normHeader(name, sa) == normHeader(name, sb):
			d.add(Mismatch{Path: "header." + http.CanonicalHeaderKey(name), Class: ClassEncoding,
				Primary: sa, Shadow: sb, Detail: "same value up to charset, media type case or list spacing"})
		default:
			d.add(Mismatch{Path: "header." + http.CanonicalHeaderKey(name), Class: ClassSemantic,
				Primary: sa, Shadow: sb})
		}
	}
}

func orAbsent(v []string, s string) string {
	if len(v) == 0 {
		return "<absent>"
	}
	return s
}

// normHeader reduces a header value to what it means, undoing only what is
// encoding: Content-Type's media type and charset case, its parameter
// spacing and quoting, and a UTF-8 charset on JSON (which has no other
// encoding); optional whitespace at the ends of any value, and around the
// "," and ";" of the list headers in listHeaders, whose elements are
// case-insensitive too where foldHeaders says so. Anything else (case or
// spaces inside a Location, a request id, a boundary) is part of the value.
func normHeader(name, v string) string {
	name = http.CanonicalHeaderKey(name)
	if name == "Content-Type" {
		if mt, params, err := mime.ParseMediaType(v); err == nil {
			if cs, ok := params["charset"]; ok {
				cs = strings.ToLower(cs)
				if cs == "utf8" {
					cs = "utf-8"
				}
				params["charset"] = cs
				if cs == "utf-8" && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
					delete(params, "charset")
				}
			}
			if f := mime.FormatMediaType(mt, params); f != "" {
				return f
			}
		}
	}
	v = strings.TrimSpace(v)
	if listHeaders[name] {
		v = trimListSpace(v)
		if foldHeaders[name] {
			v = strings.ToLower(v)
		}
	}
	return v
}

// listHeaders are headers whose value is a comma-separated list (RFC 9110's
// #rule), so spacing around "," and ";" carries no meaning.
var listHeaders = map[string]bool{
	"Accept": true, "Accept-Encoding": true, "Accept-Language": true, "Accept-Ranges": true,
	"Access-Control-Allow-Headers": true, "Access-Control-Allow-Methods": true, "Access-Control-Expose-Headers": true,
	"Allow": true, "Cache-Control": true, "Connection": true, "Content-Encoding": true, "Content-Language": true,
	"Pragma": true, "Trailer": true, "Vary": true, "Via": true,
}

// foldHeaders are list headers whose elements are case-insensitive: header
// names, content codings, cache directives.
var foldHeaders = map[string]bool{
	"Access-Control-Allow-Headers": true, "Access-Control-Expose-Headers": true, "Cache-Control": true,
	"Connection": true, "Content-Encoding": true, "Trailer": true, "Vary": true,
}

// trimListSpace drops the spaces and tabs next to "," and ";" outside
// quoted strings.
func trimListSpace(v string) string {
	var b strings.Builder
	var ws []byte // spaces held until we know what follows them
	quoted, escaped, afterSep := false, false, true
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted:
			b.WriteByte(c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				quoted = false
			}
			continue
		case c == ' ' || c == '\t':
			ws = append(ws, c)
			continue
		}
		sep := c == ',' || c == ';'
		if !sep && !afterSep {
			b.Write(ws)
		}
		ws = ws[:0]
		b.WriteByte(c)
		afterSep, quoted = sep, c == '"'
	}
	return b.String()
}

func (d *differ) applyText(b []byte) []byte {
	for _, n := range d.rules.text {
		nb := n.re.ReplaceAll(b, []byte(n.repl))
		if !bytes.Equal(nb, b) {
			d.hit = true
		}
		b = nb
	}
	return b
}

// body compares two payloads (a whole body, or one event's data); prefix is
// put before the JSONPath of each mismatch.
func (d *differ) body(prefix string, a, b []byte) {
	a, b = d.applyText(a), d.applyText(b)
	if bytes.Equal(a, b) {
		return
	}
	ja, ta, errA := parseJSON(a)
	jb, tb, errB := parseJSON(b)
	if errA == nil && errB == nil {
		if d.rules.json {
			before, hitBefore := len(d.out)+d.dropped, d.hit
			d.hit = false
			d.value(prefix, nil, ja, jb)
			if len(d.out)+d.dropped == before && !bytes.Equal(d.rawOf(nil, ja, ta), d.rawOf(nil, jb, tb)) {
				d.add(Mismatch{Path: prefix + "$", Class: ClassEncoding, Primary: clip(a), Shadow: clip(b),
					Detail: "same JSON value, different bytes (key order, escaping, number format or whitespace)"})
			}
			d.hit = d.hit || hitBefore
			return
		}
		// Byte mode: one mismatch for the whole body, but the route's ignore
		// and normalize rules apply as in JSON mode, so a body that differs
		// only where the rules say to look away is a match.
		sub := &differ{rules: &compiled{ignore: d.rules.ignore, norm: d.rules.norm, max: 1}}
		sub.value("", nil, ja, jb)
		switch {
		case sub.semantic != "":
			d.add(Mismatch{Path: prefix + "$", Class: ClassSemantic, Primary: clip(a), Shadow: clip(b),
				Detail: "first difference at " + sub.semantic})
		case !bytes.Equal(sub.rawOf(nil, ja, ta), sub.rawOf(nil, jb, tb)):
			d.add(Mismatch{Path: prefix + "$", Class: ClassEncoding, Primary: clip(a), Shadow: clip(b),
				Detail: "same JSON value, different bytes (key order, escaping, number format or whitespace)"})
		}
		return
	}
	if bytes.Equal(collapseSpace(a), collapseSpace(b)) {
		d.add(Mismatch{Path: prefix + "$", Class: ClassEncoding, Primary: clip(a), Shadow: clip(b),
			Detail: "same text up to whitespace"})
		return
	}
	d.add(Mismatch{Path: prefix + "$", Class: ClassSemantic, Primary: clip(a), Shadow: clip(b),
		Detail: fmt.Sprintf("first differing byte at offset %d", firstDiff(a, b))})
}

func (d *differ) ignored(at []elem) bool {
	for _, p := range d.rules.ignore {
		if p.match(at) {
			d.hit = true
			return true
		}
	}
	return false
}

func (d *differ) normString(at []elem, s string) (string, bool) {
	applied := false
	for _, n := range d.rules.norm {
		if n.path.match(at) {
			s, applied = n.re.ReplaceAllString(s, n.repl), true
		}
	}
	return s, applied
}

// value walks two JSON trees in step, reporting each differing location.
func (d *differ) value(prefix string, at []elem, a, b *jnode) {
	if len(at) > 0 && d.ignored(at) {
		return
	}
	path := func() string { return prefix + formatPath(at) }
	if a == nil || b == nil || a.kind != b.kind {
		d.add(Mismatch{Path: path(), Class: ClassSemantic, Primary: a.text(200), Shadow: b.text(200)})
		return
	}
	switch a.kind {
	case 's':
		sa, na := d.normString(at, a.str)
		sb, nb := d.normString(at, b.str)
		if na || nb {
			d.hit = true
		}
		if sa != sb {
			d.add(Mismatch{Path: path(), Class: ClassSemantic, Primary: a.text(200), Shadow: b.text(200)})
		}
	case 'n':
		if a.num == b.num {
			return
		}
		ra, okA := new(big.Rat).SetString(string(a.num))
		rb, okB := new(big.Rat).SetString(string(b.num))
		if okA && okB && ra.Cmp(rb) == 0 {
			d.add(Mismatch{Path: path(), Class: ClassEncoding, Primary: string(a.num), Shadow: string(b.num),
				Detail: "same number, different literal"})
			return
		}
		d.add(Mismatch{Path: path(), Class: ClassSemantic, Primary: string(a.num), Shadow: string(b.num)})
	case 'b':
		if a.b != b.b {
			d.add(Mismatch{Path: path(), Class: ClassSemantic, Primary: a.text(20), Shadow: b.text(20)})
		}
	case 'z':
	case '[':
		n := max(len(a.kids), len(b.kids))
		for i := range n {
			var ka, kb *jnode
			if i < len(a.kids) {
				ka = a.kids[i]
			}
			if i < len(b.kids) {
				kb = b.kids[i]
			}
			d.value(prefix, append(at[:len(at):len(at)], elem{index: i, isIndex: true}), ka, kb)
		}
	case '{':
		seen := map[string]bool{}
		for _, keys := range [][]string{a.keys, b.keys} {
			for _, k := range keys {
				if seen[k] {
					continue
				}
				seen[k] = true
				d.value(prefix, append(at[:len(at):len(at)], elem{key: k}), a.child(k), b.child(k))
			}
		}
	}
}

// rawOf is the bytes of n with ignored members left out and normalised
// strings replaced by their normalised value: what must be byte-equal for two
// value-equal documents to count as a match rather than encoding_only.
func (d *differ) rawOf(at []elem, n *jnode, tail []byte) []byte {
	var b bytes.Buffer
	d.writeRaw(&b, at, n, false)
	b.Write(tail)
	return b.Bytes()
}

// writeRaw writes n's bytes; first drops the "," before n (n is the first
// member written after ignored ones, as if it had been first all along).
func (d *differ) writeRaw(b *bytes.Buffer, at []elem, n *jnode, first bool) {
	raw := n.raw
	if first {
		raw = dropComma(raw)
	}
	switch n.kind {
	case '{', '[':
		b.Write(raw)
		wrote := false
		for i, k := range n.kids {
			var e elem
			if n.kind == '{' {
				e = elem{key: n.keys[i]}
			} else {
				e = elem{index: i, isIndex: true}
			}
			sub := append(at[:len(at):len(at)], e)
			if d.matchesIgnore(sub) {
				continue
			}
			first := !wrote && i > 0
			wrote = true
			if n.kind == '{' {
				kraw := n.kraw[i]
				if first {
					kraw = dropComma(kraw)
				}
				b.Write(kraw)
				first = false // the separator was the key's
			}
			d.writeRaw(b, sub, k, first)
		}
		b.Write(n.end)
	case 's':
		if s, ok := d.normString(at, n.str); ok {
			q, _ := json.Marshal(s)
			b.Write(q)
			return
		}
		b.Write(raw)
	default:
		b.Write(raw)
	}
}

// dropComma removes the separating "," from a token's leading bytes.
func dropComma(raw []byte) []byte {
	if i := bytes.IndexByte(raw, ','); i >= 0 && len(bytes.TrimSpace(raw[:i])) == 0 {
		return append(raw[:i:i], raw[i+1:]...)
	}
	return raw
}

func (d *differ) matchesIgnore(at []elem) bool {
	for _, p := range d.rules.ignore {
		if p.match(at) {
			return true
		}
	}
	return false
}

// events compares two event streams: count, each event's name and data, the
// assembled text, and the terminal event.
func (d *differ) events(a, b []Event) {
	if len(a) != len(b) {
		d.add(Mismatch{Path: "events.count", Class: ClassSemantic,
			Primary: fmt.Sprint(len(a)), Shadow: fmt.Sprint(len(b))})
	}
	for i := range min(len(a), len(b)) {
		if a[i].Name != b[i].Name {
			d.add(Mismatch{Path: fmt.Sprintf("events[%d].event", i), Class: ClassSemantic,
				Primary: a[i].Name, Shadow: b[i].Name})
		}
		d.body(fmt.Sprintf("events[%d].data", i), []byte(a[i].Data), []byte(b[i].Data))
	}
	if ta, tb := d.assemble(a), d.assemble(b); ta != tb {
		d.add(Mismatch{Path: "sse.text", Class: ClassSemantic, Primary: clip([]byte(ta)), Shadow: clip([]byte(tb)),
			Detail: fmt.Sprintf("assembled text differs from byte %d", firstDiff([]byte(ta), []byte(tb)))})
	}
	if len(a) != len(b) {
		la, lb := lastEvent(a), lastEvent(b)
		if la.Name != lb.Name || la.Data != lb.Data {
			d.add(Mismatch{Path: "sse.terminal", Class: ClassSemantic,
				Primary: la.Name + " " + clip([]byte(la.Data)), Shadow: lb.Name + " " + clip([]byte(lb.Data))})
		}
	}
}

func lastEvent(ev []Event) Event {
	if len(ev) == 0 {
		return Event{Name: "<none>"}
	}
	return ev[len(ev)-1]
}

func (d *differ) assemble(ev []Event) string {
	var b strings.Builder
	for _, e := range ev {
		if d.rules.sseText == nil {
			b.WriteString(e.Data)
			continue
		}
		root, _, err := parseJSON([]byte(e.Data))
		if err != nil {
			continue
		}
		if s, ok := findString(root, nil, *d.rules.sseText); ok {
			b.WriteString(s)
		}
	}
	return b.String()
}

// findString returns the first string value in n whose location matches p.
func findString(n *jnode, at []elem, p jsonPath) (string, bool) {
	if n.kind == 's' && p.match(at) {
		return n.str, true
	}
	for i, k := range n.kids {
		e := elem{index: i, isIndex: true}
		if n.kind == '{' {
			e = elem{key: n.keys[i]}
		}
		if s, ok := findString(k, append(at[:len(at):len(at)], e), p); ok {
			return s, true
		}
	}
	return "", false
}

func collapseSpace(b []byte) []byte { return []byte(strings.Join(strings.Fields(string(b)), " ")) }

func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// clip shortens a value for a mismatch line; full bodies live in the record.
func clip(b []byte) string {
	const limit = 200
	if len(b) > limit {
		return string(trimPartialRune(b[:limit])) + "…"
	}
	return string(b)
}
