package compat

import (
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Rule is one Flask URL rule, as app.add_url_rule(Pattern, Endpoint, methods=Methods) declares it.
type Rule struct {
	// Endpoint is the Flask endpoint name (the view function name by default).
	Endpoint string
	// Pattern is the Werkzeug rule string: "/api/conversations/<conversation_id>",
	// "/page/<int:n>", "/files/<path:p>", "/x/<string(length=2):code>", "/o/<uuid:id>".
	Pattern string
	// Methods are the declared methods, case-insensitive. Nil means ["GET"], as
	// in Flask. HEAD is added when GET is present (Werkzeug) and OPTIONS unless
	// NoAutomaticOptions is set or OPTIONS is declared (Flask).
	Methods []string
	// NoAutomaticOptions disables Flask's provide_automatic_options for the
	// rule: OPTIONS is then neither added nor answered automatically.
	NoAutomaticOptions bool
	// NonStrictSlashes is Werkzeug's strict_slashes=False: a rule ending in
	// "/" also matches without it (no 308), and one without matches with it.
	NonStrictSlashes bool
}

// Match is the outcome of a successful match.
type Match struct {
	// Endpoint is Rule.Endpoint.
	Endpoint string
	// Rule is the matched rule (owned by the Map; do not modify).
	Rule *Rule
	// Params are the converted variables, as the Flask view receives them:
	// string for string/path/any, int64 or *big.Int for int, float64 for float,
	// and for uuid the canonical lower-case hyphenated string (str(uuid.UUID)).
	Params map[string]any
	// Methods are the rule's effective methods, sorted (owned by the Map; do
	// not modify).
	Methods []string
	// AutomaticOptions is true when the request is OPTIONS and the rule
	// provides automatic options: Flask answers it with an empty 200 and an
	// Allow header of Allowed, without calling the view.
	AutomaticOptions bool
	// Allowed is set when AutomaticOptions is: every method of every rule
	// matching the path (Werkzeug's allowed_methods), in AllowOrder.
	Allowed []string
}

// Param returns str(value) of the named variable, "" if absent.
func (m Match) Param(name string) string {
	v, ok := m.Params[name]
	if !ok {
		return ""
	}
	return paramString(v)
}

func paramString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case *big.Int:
		return x.String()
	case float64:
		return FloatRepr(x)
	default:
		return fmt.Sprint(x)
	}
}

// ErrNotFound is Werkzeug's NotFound from routing: no rule matches the path.
var ErrNotFound = errors.New("404 Not Found")

// MethodNotAllowedError is Werkzeug's MethodNotAllowed: rules match the path
// but none accepts the method.
type MethodNotAllowedError struct {
	// Allowed is the union of the methods of the rules matching the path, in AllowOrder.
	Allowed []string
}

func (e *MethodNotAllowedError) Error() string {
	return "405 Method Not Allowed (allowed: " + AllowHeader(e.Allowed) + ")"
}

// RedirectError is Werkzeug's RequestRedirect (308) for a missing trailing
// slash on a strict-slashes rule, or for merged repeated slashes.
type RedirectError struct {
	// Location is where to redirect: from Map.Match the quoted path only
	// ("/chat/"); from Map.MatchRequest the absolute URL Werkzeug builds
	// ("http://host/chat/?x=1").
	Location string
}

func (e *RedirectError) Error() string { return "308 Permanent Redirect: " + e.Location }

// Code is the redirect status, always 308 as in Werkzeug's RequestRedirect.
func (e *RedirectError) Code() int { return 308 }

// AllowOrder is the documented fixed order of methods in Allow headers.
// Werkzeug builds Allow from a Python set, so its order varies per process
// (PYTHONHASHSEED); cutover always sends the methods sorted alphabetically
// ("GET, HEAD, OPTIONS", which is one of the orders Werkzeug produces). Compare
// Allow values with AllowEqual.
func AllowOrder(methods []string) []string {
	out := make([]string, 0, len(methods))
	seen := map[string]bool{}
	for _, m := range methods {
		u := strings.ToUpper(m)
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	sort.Strings(out)
	return out
}

// AllowHeader formats methods as Werkzeug's HeaderSet does (", "-joined), in AllowOrder.
func AllowHeader(methods []string) string { return strings.Join(AllowOrder(methods), ", ") }

// AllowEqual reports whether two Allow header values name the same set of
// methods (case-insensitive, order and whitespace ignored).
func AllowEqual(a, b string) bool {
	split := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return AllowOrder(out)
	}
	return slices.Equal(split(a), split(b))
}

// Map is a compiled set of rules matching like werkzeug.routing.Map (3.1)
// with Flask's defaults: strict slashes, merge slashes, HEAD with GET,
// automatic OPTIONS. It is immutable and safe for concurrent use.
type Map struct {
	rules []*compiledRule
	root  *state
}

type converter struct {
	kind     string // string, int, float, path, uuid, any
	regex    string
	weight   int
	isolated bool // part_isolating
	// int/float
	fixedDigits int
	min, max    *big.Float
	// any
	items []string
}

type compiledRule struct {
	rule       *Rule
	methods    map[string]bool
	sorted     []string
	autoOpts   bool
	strict     bool
	parts      []*rulePart
	converters []string // variable names in order
	convs      map[string]*converter
}

type weighting struct {
	numStatic   int
	static      [][2]int
	numArgs     int
	argsWeights []int
}

func (a weighting) compare(b weighting) int {
	if c := cmpInt(a.numStatic, b.numStatic); c != 0 {
		return c
	}
	for i := 0; i < len(a.static) && i < len(b.static); i++ {
		if c := cmpInt(a.static[i][0], b.static[i][0]); c != 0 {
			return c
		}
		if c := cmpInt(a.static[i][1], b.static[i][1]); c != 0 {
			return c
		}
	}
	if c := cmpInt(len(a.static), len(b.static)); c != 0 {
		return c
	}
	if c := cmpInt(a.numArgs, b.numArgs); c != 0 {
		return c
	}
	if c := slices.Compare(a.argsWeights, b.argsWeights); c != 0 {
		return c
	}
	return 0
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type rulePart struct {
	content  string // static text, or regex source
	final    bool
	static   bool
	suffixed bool
	weight   weighting
	re       *regexp.Regexp
	groups   []int // submatch indexes of converter groups, in Werkzeug's sorted-name order
}

func (p *rulePart) equal(q *rulePart) bool {
	return p.content == q.content && p.final == q.final && p.static == q.static &&
		p.suffixed == q.suffixed && p.weight.compare(q.weight) == 0
}

type dynEdge struct {
	part *rulePart
	next *state
}

type state struct {
	dynamic []dynEdge
	rules   []*compiledRule
	static  map[string]*state
}

func newState() *state { return &state{static: map[string]*state{}} }

// NewMap compiles rules in order (Flask registers them in order, which
// decides between equally weighted rules). It reports every malformed rule at once.
func NewMap(rules ...Rule) (*Map, error) {
	m := &Map{root: newState()}
	var errs []error
	for i := range rules {
		r := rules[i]
		cr, err := compileRule(&r)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %q (%s): %w", r.Pattern, r.Endpoint, err))
			continue
		}
		m.rules = append(m.rules, cr)
		m.add(cr)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	m.sortDynamic(m.root)
	return m, nil
}

// Rules returns the rules in registration order.
func (m *Map) Rules() []Rule {
	out := make([]Rule, len(m.rules))
	for i, r := range m.rules {
		out[i] = *r.rule
	}
	return out
}

func (m *Map) add(cr *compiledRule) {
	st := m.root
	for _, p := range cr.parts {
		if p.static {
			next, ok := st.static[p.content]
			if !ok {
				next = newState()
				st.static[p.content] = next
			}
			st = next
			continue
		}
		var found *state
		for _, e := range st.dynamic {
			if e.part.equal(p) {
				found = e.next
				break
			}
		}
		if found == nil {
			found = newState()
			st.dynamic = append(st.dynamic, dynEdge{part: p, next: found})
		}
		st = found
	}
	st.rules = append(st.rules, cr)
}

func (m *Map) sortDynamic(st *state) {
	sort.SliceStable(st.dynamic, func(i, j int) bool {
		return st.dynamic[i].part.weight.compare(st.dynamic[j].part.weight) < 0
	})
	// Order of traversal is irrelevant for sorting.
	for _, n := range st.static {
		m.sortDynamic(n)
	}
	for _, e := range st.dynamic {
		m.sortDynamic(e.next)
	}
}

var partRe = regexp.MustCompile(`^(?:(/)|([^</]+)|<(?:([a-zA-Z_][a-zA-Z0-9_]*)(?:\((.*?)\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>)`)

func compileRule(r *Rule) (*compiledRule, error) {
	if !strings.HasPrefix(r.Pattern, "/") {
		return nil, errors.New("urls must start with a leading slash")
	}
	methods := r.Methods
	if methods == nil {
		methods = []string{"GET"}
	}
	cr := &compiledRule{rule: r, methods: map[string]bool{}, strict: !r.NonStrictSlashes, convs: map[string]*converter{}}
	for _, mt := range methods {
		cr.methods[strings.ToUpper(mt)] = true
	}
	if !r.NoAutomaticOptions && !cr.methods["OPTIONS"] {
		cr.autoOpts = true
		cr.methods["OPTIONS"] = true
	}
	if cr.methods["GET"] {
		cr.methods["HEAD"] = true
	}
	for mt := range cr.methods {
		cr.sorted = append(cr.sorted, mt)
	}
	cr.sorted = AllowOrder(cr.sorted)

	// The domain part (no subdomain/host matching in Flask's default setup).
	cr.parts = append(cr.parts, &rulePart{content: "", static: true})
	pattern := multiSlash.ReplaceAllString(r.Pattern, "/") // merge_slashes
	parts, err := cr.parseRule(pattern)
	if err != nil {
		return nil, err
	}
	cr.parts = append(cr.parts, parts...)
	return cr, nil
}

// parseRule ports werkzeug.routing.rules.Rule._parse_rule.
func (cr *compiledRule) parseRule(rule string) ([]*rulePart, error) {
	var (
		out        []*rulePart
		content    strings.Builder
		static     = true
		argWeights []int
		staticW    [][2]int
		final      bool
		convNumber int
		pos        int
		groupNames []string
	)
	reset := func() {
		content.Reset()
		static = true
		argWeights = nil
		staticW = nil
		final = false
		convNumber = 0
		groupNames = nil
	}
	emit := func(c string, suffixed bool) error {
		p := &rulePart{content: c, final: final, static: static, suffixed: suffixed,
			weight: weighting{-len(staticW), staticW, -len(argWeights), argWeights}}
		if !static {
			// A suffixed part's "(?<!/)" lookbehind (no RE2 equivalent) is
			// checked after matching, in matcher.match.
			re, err := regexp.Compile(`^(?:` + c + `)`)
			if err != nil {
				return fmt.Errorf("converter regex: %w", err)
			}
			p.re = re
			// Werkzeug sorts the group names as strings: __werkzeug_10 before __werkzeug_2.
			names := slices.Clone(groupNames)
			sort.Strings(names)
			for _, n := range names {
				p.groups = append(p.groups, re.SubexpIndex(n))
			}
		}
		out = append(out, p)
		return nil
	}
	for pos < len(rule) {
		mt := partRe.FindStringSubmatchIndex(rule[pos:])
		if mt == nil {
			return nil, fmt.Errorf("malformed url rule: %q", rule)
		}
		get := func(i int) (string, bool) {
			if mt[2*i] < 0 {
				return "", false
			}
			return rule[pos+mt[2*i] : pos+mt[2*i+1]], true
		}
		if s, ok := get(2); ok {
			staticW = append(staticW, [2]int{len(staticW), -len(s)})
			if static {
				content.WriteString(s)
			} else {
				content.WriteString(regexp.QuoteMeta(s))
			}
		}
		if variable, ok := get(5); ok {
			if static {
				c := regexp.QuoteMeta(content.String())
				content.Reset()
				content.WriteString(c)
			}
			static = false
			convName, _ := get(3)
			args, _ := get(4)
			conv, err := newConverter(convName, args)
			if err != nil {
				return nil, err
			}
			if _, dup := cr.convs[variable]; dup {
				return nil, fmt.Errorf("variable name %q used twice", variable)
			}
			cr.convs[variable] = conv
			cr.converters = append(cr.converters, variable)
			if !conv.isolated {
				final = true
			}
			name := "__werkzeug_" + strconv.Itoa(convNumber)
			groupNames = append(groupNames, name)
			content.WriteString("(?P<" + name + ">" + conv.regex + ")")
			convNumber++
			argWeights = append(argWeights, conv.weight)
		}
		if _, ok := get(1); ok {
			if final {
				content.WriteString("/")
			} else {
				if !static {
					content.WriteString(`\z`)
				}
				if err := emit(content.String(), false); err != nil {
					return nil, err
				}
				reset()
			}
		}
		pos += mt[1]
	}
	suffixed := false
	c := content.String()
	if final && strings.HasSuffix(c, "/") {
		suffixed = true
		c = c[:len(c)-1] + `(/?)`
	}
	if !static {
		c += `\z`
	}
	w := weighting{-len(staticW), staticW, -len(argWeights), argWeights}
	if err := emit(c, suffixed); err != nil {
		return nil, err
	}
	if suffixed {
		out = append(out, &rulePart{content: "", static: true, weight: w})
	}
	return out, nil
}

// newConverter builds one of Werkzeug's default converters from its name and
// argument string (parse_converter_args).
func newConverter(name, argstr string) (*converter, error) {
	args, kwargs, err := parseConverterArgs(argstr)
	if err != nil {
		return nil, err
	}
	bind := func(params []string) (map[string]string, error) {
		out := map[string]string{}
		if len(args) > len(params) {
			return nil, fmt.Errorf("converter %q: too many arguments", name)
		}
		for i, a := range args {
			out[params[i]] = a
		}
		for k, v := range kwargs {
			if !slices.Contains(params, k) {
				return nil, fmt.Errorf("converter %q: unexpected argument %q", name, k)
			}
			if _, dup := out[k]; dup {
				return nil, fmt.Errorf("converter %q: argument %q given twice", name, k)
			}
			out[k] = v
		}
		return out, nil
	}
	pyInt := func(s string) (int, error) {
		if s == "True" {
			return 1, nil
		}
		if s == "False" {
			return 0, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("converter %q: %q is not an int", name, s)
		}
		return n, nil
	}
	truthy := func(s string) bool { return s != "" && s != "False" && s != "0" && s != "None" }
	switch name {
	case "", "default", "string":
		a, err := bind([]string{"minlength", "maxlength", "length"})
		if err != nil {
			return nil, err
		}
		c := &converter{kind: "string", weight: 100, isolated: true}
		if l, ok := a["length"]; ok && l != "None" {
			n, err := pyInt(l)
			if err != nil {
				return nil, err
			}
			c.regex = fmt.Sprintf("[^/]{%d}", n)
		} else {
			minl := 1
			if s, ok := a["minlength"]; ok {
				if minl, err = pyInt(s); err != nil {
					return nil, err
				}
			}
			maxs := ""
			if s, ok := a["maxlength"]; ok && s != "None" {
				n, err := pyInt(s)
				if err != nil {
					return nil, err
				}
				maxs = strconv.Itoa(n)
			}
			c.regex = fmt.Sprintf("[^/]{%d,%s}", minl, maxs)
		}
		return c, nil
	case "path":
		if _, err := bind(nil); err != nil {
			return nil, err
		}
		return &converter{kind: "path", regex: `[^/].*?`, weight: 200}, nil
	case "uuid":
		if _, err := bind(nil); err != nil {
			return nil, err
		}
		return &converter{kind: "uuid", weight: 100, isolated: true,
			regex: `[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}`}, nil
	case "any":
		if len(kwargs) > 0 {
			return nil, errors.New(`converter "any": keyword arguments are not supported`)
		}
		quoted := make([]string, len(args))
		for i, a := range args {
			quoted[i] = regexp.QuoteMeta(a)
		}
		return &converter{kind: "any", weight: 100, isolated: true, items: args,
			regex: "(?:" + strings.Join(quoted, "|") + ")"}, nil
	case "int", "float":
		params := []string{"fixed_digits", "min", "max", "signed"}
		if name == "float" {
			params = []string{"min", "max", "signed"}
		}
		a, err := bind(params)
		if err != nil {
			return nil, err
		}
		// Python's \d matches any Unicode decimal digit, and int()/float() accept them.
		c := &converter{kind: name, weight: 50, isolated: true, regex: `\p{Nd}+`}
		if name == "float" {
			c.regex = `\p{Nd}+\.\p{Nd}+`
		}
		if truthy(a["signed"]) {
			c.regex = "-?" + c.regex
		}
		if s, ok := a["fixed_digits"]; ok {
			if c.fixedDigits, err = pyInt(s); err != nil {
				return nil, err
			}
		}
		for _, k := range []string{"min", "max"} {
			s, ok := a[k]
			if !ok || s == "None" {
				continue
			}
			f, _, err := big.ParseFloat(s, 10, 200, big.ToNearestEven)
			if err != nil {
				return nil, fmt.Errorf("converter %q: %s=%q is not a number", name, k, s)
			}
			if k == "min" {
				c.min = f
			} else {
				c.max = f
			}
		}
		return c, nil
	}
	return nil, fmt.Errorf("the converter %q does not exist", name)
}

var converterArgRe = regexp.MustCompile(`^\s*(?:(\w+)\s*=\s*)?(True|False|\d+.\d+|\d+.|\d+|[\w\d_.]+|[urUR]?("[^"]*?"|'[^']*'))\s*,`)

// parseConverterArgs ports werkzeug.routing.rules.parse_converter_args,
// keeping values as their Python source text (quotes removed from strings).
func parseConverterArgs(argstr string) (args []string, kwargs map[string]string, err error) {
	kwargs = map[string]string{}
	if argstr == "" {
		return nil, kwargs, nil
	}
	s := argstr + ","
	for len(s) > 0 {
		m := converterArgRe.FindStringSubmatch(s)
		if m == nil {
			if strings.TrimSpace(s) == "" {
				break
			}
			return nil, nil, fmt.Errorf("cannot parse converter argument %q", s)
		}
		v := m[2]
		if m[3] != "" {
			v = m[3][1 : len(m[3])-1]
		}
		if m[1] == "" {
			args = append(args, v)
		} else {
			kwargs[m[1]] = v
		}
		s = s[len(m[0]):]
	}
	return args, kwargs, nil
}

// errSlashRequired is Werkzeug's SlashRequired: matching needs a trailing slash.
var errSlashRequired = errors.New("slash required")

type matcher struct {
	method       string
	haveMatchFor map[string]bool
}

type matchResult struct {
	rule   *compiledRule
	values []string
}

func (mm *matcher) addMethods(cr *compiledRule) {
	if mm.haveMatchFor == nil {
		mm.haveMatchFor = map[string]bool{}
	}
	for k := range cr.methods {
		mm.haveMatchFor[k] = true
	}
}

// match ports StateMachineMatcher.match's inner _match. A nil rule means
// no match.
//
// values is appended to in place (no copy per branch, unlike Werkzeug's
// `values + groups`): siblings tried after a failed branch overwrite what it
// appended beyond len(values), and only the successful branch's slice is
// returned, after which nothing is appended any more.
func (mm *matcher) match(st *state, parts []string, values []string) (matchResult, error) {
	if len(parts) == 0 {
		for _, cr := range st.rules {
			if !cr.methods[mm.method] {
				mm.addMethods(cr)
				continue
			}
			return matchResult{cr, values}, nil
		}
		if next, ok := st.static[""]; ok {
			for _, cr := range next.rules {
				if cr.methods[mm.method] {
					if cr.strict {
						return matchResult{}, errSlashRequired
					}
					return matchResult{cr, values}, nil
				}
			}
		}
		return matchResult{}, nil
	}
	part := parts[0]
	if next, ok := st.static[part]; ok {
		rv, err := mm.match(next, parts[1:], values)
		if rv.rule != nil || err != nil {
			return rv, err
		}
	}
	for _, e := range st.dynamic {
		p := e.part
		target := part
		remaining := parts[1:]
		if p.final {
			target = strings.Join(parts, "/")
			remaining = nil
		}
		sm := p.re.FindStringSubmatchIndex(target)
		if sm == nil {
			continue
		}
		if p.suffixed {
			// Emulates "(?<!/)(/?)\Z": the converter text must not end in "/",
			// and an optional final slash follows.
			n := len(sm) / 2
			last := target[sm[2*(n-1)]:sm[2*(n-1)+1]]
			if sm[1] != len(target) {
				continue
			}
			prevEnd := sm[2*(n-1)]
			if prevEnd > 0 && target[prevEnd-1] == '/' {
				continue
			}
			if last == "/" {
				remaining = []string{""}
			}
		}
		next := values
		for _, gi := range p.groups {
			next = append(next, target[sm[2*gi]:sm[2*gi+1]])
		}
		rv, err := mm.match(e.next, remaining, next)
		if rv.rule != nil || err != nil {
			return rv, err
		}
	}
	if len(parts) == 1 && parts[0] == "" {
		for _, cr := range st.rules {
			if cr.strict {
				continue
			}
			if !cr.methods[mm.method] {
				mm.addMethods(cr)
				continue
			}
			return matchResult{cr, values}, nil
		}
	}
	return matchResult{}, nil
}

var (
	multiSlash    = regexp.MustCompile(`/{2,}`)
	errIntTooLong = errors.New("exceeds the limit (4300 digits) for integer string conversion")
)

// Match matches a decoded path (WSGI PATH_INFO after Werkzeug's UTF-8
// decoding) and method like Flask's url_adapter.match. Errors: ErrNotFound,
// *MethodNotAllowedError, *RedirectError (Location is the quoted path only).
// For OPTIONS on a rule with automatic options, the Match has
// AutomaticOptions and Allowed set.
func (m *Map) Match(method, path string) (Match, error) {
	method = strings.ToUpper(method)
	res, err := m.matchRaw(method, path)
	if err != nil {
		return Match{}, err
	}
	params := make(map[string]any, len(res.values))
	for i, name := range res.rule.converters {
		if i >= len(res.values) {
			break
		}
		v, ok := res.rule.convs[name].toPython(res.values[i])
		if !ok && v == errIntTooLong {
			// Python's int() raises ValueError (not a ValidationError): Flask answers 500.
			return Match{}, &HTTPError{Code: 500, Err: errIntTooLong}
		}
		if !ok {
			// Werkzeug raises NoMatch with what it has collected so far.
			return Match{}, m.noMatch(res.haveMatchFor)
		}
		params[name] = v
	}
	mt := Match{Endpoint: res.rule.rule.Endpoint, Rule: res.rule.rule, Params: params, Methods: slices.Clip(res.rule.sorted)}
	if method == "OPTIONS" && res.rule.autoOpts {
		mt.AutomaticOptions = true
		mt.Allowed = m.AllowedMethods(path)
	}
	return mt, nil
}

// AllowedMethods is Werkzeug's MapAdapter.allowed_methods: the methods of
// every rule matching path, in AllowOrder (empty if none).
func (m *Map) AllowedMethods(path string) []string {
	_, err := m.matchRaw("--", path)
	var mna *MethodNotAllowedError
	if errors.As(err, &mna) {
		return mna.Allowed
	}
	return nil
}

type rawResult struct {
	rule         *compiledRule
	values       []string
	haveMatchFor map[string]bool
}

func (m *Map) noMatch(have map[string]bool) error {
	if len(have) > 0 {
		var ms []string
		for k := range have {
			ms = append(ms, k)
		}
		return &MethodNotAllowedError{Allowed: AllowOrder(ms)}
	}
	return ErrNotFound
}

// splitParts is Werkzeug's [""] + path_part.split("/"), into buf when it fits.
func splitParts(buf []string, pathPart string) []string {
	parts := append(buf[:0], "")
	for {
		i := strings.IndexByte(pathPart, '/')
		if i < 0 {
			return append(parts, pathPart)
		}
		parts = append(parts, pathPart[:i])
		pathPart = pathPart[i+1:]
	}
}

func (m *Map) matchRaw(method, path string) (rawResult, error) {
	// MapAdapter.match: path_part = "/" + path_info.lstrip("/").
	pathPart := ""
	if path != "" {
		if trimmed := strings.TrimLeft(path, "/"); len(trimmed) == len(path)-1 {
			pathPart = path // already one leading slash: no copy
		} else {
			pathPart = "/" + trimmed
		}
	}
	mm := matcher{method: method}
	var partsBuf [16]string
	var valuesBuf [8]string
	rv, err := mm.match(m.root, splitParts(partsBuf[:], pathPart), valuesBuf[:0])
	if errors.Is(err, errSlashRequired) {
		return rawResult{}, &RedirectError{Location: QuotePath(pathPart + "/")}
	}
	if rv.rule == nil {
		merged := multiSlash.ReplaceAllString(pathPart, "/")
		rv, err = mm.match(m.root, splitParts(partsBuf[:], merged), valuesBuf[:0])
		if errors.Is(err, errSlashRequired) {
			return rawResult{}, &RedirectError{Location: QuotePath(merged + "/")}
		}
		if rv.rule == nil {
			return rawResult{}, m.noMatch(mm.haveMatchFor)
		}
		// Every rule merges slashes in Flask's default setup.
		return rawResult{}, &RedirectError{Location: QuotePath(merged)}
	}
	return rawResult{rule: rv.rule, values: rv.values, haveMatchFor: mm.haveMatchFor}, nil
}

func (c *converter) toPython(s string) (any, bool) {
	switch c.kind {
	case "int", "float":
		if c.fixedDigits > 0 && len([]rune(s)) != c.fixedDigits {
			return nil, false
		}
		ascii := asciiDigits(s)
		var (
			v   any
			cmp *big.Float
		)
		if c.kind == "int" {
			n, ok := new(big.Int).SetString(ascii, 10)
			if !ok {
				return nil, false
			}
			if len(strings.TrimLeft(ascii, "-")) > maxIntDigits {
				return errIntTooLong, false
			}
			cmp = new(big.Float).SetInt(n)
			if n.IsInt64() {
				v = n.Int64()
			} else {
				v = n
			}
		} else {
			f, err := strconv.ParseFloat(ascii, 64)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return nil, false
			}
			cmp = big.NewFloat(f)
			v = f
		}
		if (c.min != nil && cmp.Cmp(c.min) < 0) || (c.max != nil && cmp.Cmp(c.max) > 0) {
			return nil, false
		}
		return v, true
	case "uuid":
		return strings.ToLower(s), true
	}
	return s, true
}

func asciiDigits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r != '-' && r != '.' && unicode.IsDigit(r) && (r < '0' || r > '9') {
			b.WriteByte(byte('0' + digitValue(r)))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// digitValue returns the decimal value of a Unicode Nd character: Nd digits
// come in contiguous runs of ten starting at a zero.
func digitValue(r rune) int {
	z := r
	for unicode.IsDigit(z - 1) {
		z--
	}
	return int(r-z) % 10
}

// QuotePath is Python's urllib.parse.quote(path, safe="!$&'()*+,/:;=@"),
// which Werkzeug applies to redirect paths: UTF-8 bytes outside the
// unreserved and safe sets become %XX (upper-case hex).
func QuotePath(p string) string {
	const safe = "!$&'()*+,/:;=@_.-~"
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c < 0x80 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(safe, c) >= 0) {
			b.WriteByte(c)
			continue
		}
		b.WriteString(fmt.Sprintf("%%%02X", c))
	}
	return b.String()
}
