package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// usage is what one PromQL expression reads: each metric name with the
// labels its own braces match on (name -> label -> values compared with = or
// =~, when they are plain words), and the labels named by grouping clauses
// (by, without, on, ignoring, group_left, group_right), which may belong to
// any metric of the expression.
type usage struct {
	metrics  map[string]map[string][]string
	grouping []string
}

// promqlKeywords are identifiers that are neither metric names nor labels.
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// groupingKeywords are followed by a parenthesised list of label names.
var groupingKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

type token struct {
	kind byte // 'i' identifier, 's' string, 'n' number or duration, 'p' punctuation
	text string
}

// lexPromQL splits a PromQL expression into tokens. Grafana variables
// ($route, $__rate_interval) lex as identifiers starting with '$'.
func lexPromQL(expr string) ([]token, error) {
	var out []token
	rs := []rune(expr)
	for i := 0; i < len(rs); {
		c := rs[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '#': // comment to the end of the line
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			var b strings.Builder
			for ; j < len(rs) && rs[j] != c; j++ {
				if rs[j] == '\\' && c != '`' && j+1 < len(rs) {
					j++
				}
				b.WriteRune(rs[j])
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			out = append(out, token{'s', b.String()})
			i = j + 1
		case c == '_' || c == ':' || c == '$' || unicode.IsLetter(c):
			j := i + 1
			for j < len(rs) && (rs[j] == '_' || rs[j] == ':' || unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j])) {
				j++
			}
			out = append(out, token{'i', string(rs[i:j])})
			i = j
		case unicode.IsDigit(c) || c == '.':
			j := i + 1
			for j < len(rs) && (unicode.IsDigit(rs[j]) || unicode.IsLetter(rs[j]) || rs[j] == '.') {
				j++
			}
			out = append(out, token{'n', string(rs[i:j])})
			i = j
		default:
			j := i + 1
			if j < len(rs) && strings.ContainsRune("=~!<>", c) && strings.ContainsRune("=~", rs[j]) {
				j++
			}
			out = append(out, token{'p', string(rs[i:j])})
			i = j
		}
	}
	return out, nil
}

// parseUsage reads the metric names and labels of a PromQL expression. It
// knows PromQL's shape well enough for that (selectors, functions,
// aggregations with their grouping clauses, ranges, offsets), not its grammar:
// a malformed expression is for promtool and the real Prometheus to reject.
func parseUsage(expr string) (usage, error) {
	toks, err := lexPromQL(expr)
	if err != nil {
		return usage{}, err
	}
	u := usage{metrics: map[string]map[string][]string{}}
	last := "" // the metric a following '{' belongs to
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		next := func(k int) token {
			if i+k < len(toks) {
				return toks[i+k]
			}
			return token{}
		}
		switch {
		case t.kind == 'i' && groupingKeywords[t.text]:
			last = ""
			if next(1).text != "(" {
				continue // group_left without labels
			}
			i += 2
			for ; i < len(toks) && toks[i].text != ")"; i++ {
				if toks[i].kind == 'i' {
					u.grouping = append(u.grouping, toks[i].text)
				}
			}
		case t.kind == 'i' && (next(1).text == "(" || next(1).text == "by" || next(1).text == "without"):
			// a function, or an aggregation (sum by (x) (...))
			last = ""
		case t.kind == 'i' && t.text == "offset":
			last = ""
			i++ // the duration
		case t.kind == 'i' && !promqlKeywords[t.text] && !strings.HasPrefix(t.text, "$"):
			if u.metrics[t.text] == nil {
				u.metrics[t.text] = map[string][]string{}
			}
			last = t.text
		case t.text == "{":
			labels := map[string][]string{}
			for i++; i < len(toks) && toks[i].text != "}"; i++ {
				if toks[i].kind != 'i' {
					continue
				}
				name, op, val := toks[i].text, next(1), next(2)
				if val.kind != 's' {
					return u, fmt.Errorf("matcher %s%s has no string value", name, op.text)
				}
				labels[name] = append(labels[name], matcherWords(op.text, val.text)...)
				i += 2
			}
			if last == "" {
				return u, fmt.Errorf("a selector without a metric name: {%v}", labels)
			}
			for k, v := range labels {
				u.metrics[last][k] = append(u.metrics[last][k], v...)
			}
			last = ""
		case t.text == "[":
			for ; i < len(toks) && toks[i].text != "]"; i++ {
			}
			last = ""
		default:
			last = ""
		}
	}
	return u, nil
}

var plainWords = regexp.MustCompile(`^[A-Za-z0-9_]+(\|[A-Za-z0-9_]+)*$`)

// matcherWords returns the label values a matcher names: the value of =,
// != and the alternatives of =~ or !~ when they are plain words (a regex such
// as ".*" or a Grafana variable names none). An empty string names none.
func matcherWords(op, val string) []string {
	if !plainWords.MatchString(val) {
		return []string{}
	}
	if op == "=" || op == "!=" {
		return []string{val}
	}
	return strings.Split(val, "|")
}

// metricDoc is one row of the README's metric table.
type metricDoc struct {
	labels    []string
	histogram bool
	// words are the backticked words of the row and of the paragraph that
	// introduces the table: the label values the README documents.
	words map[string]bool
}

// readmeMetrics reads the metric table of the README at the repository root.
func readmeMetrics(t *testing.T) map[string]metricDoc {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "| metric | labels | what |")
	if start < 0 {
		t.Fatal("README.md has no metric table (| metric | labels | what |)")
	}
	before := strings.TrimRight(text[:start], "\n")
	intro := before[strings.LastIndex(before, "\n\n")+1:]
	row := regexp.MustCompile("^\\| `(cutover_[a-z_]+)` \\| ([^|]*) \\| (.*) \\|$")
	word := regexp.MustCompile("`([^`]+)`")
	out := map[string]metricDoc{}
	for _, line := range strings.Split(text[start:], "\n")[2:] {
		m := row.FindStringSubmatch(line)
		if m == nil {
			break
		}
		d := metricDoc{labels: []string{}, words: map[string]bool{}, histogram: strings.HasPrefix(m[3], "histogram")}
		for _, w := range word.FindAllStringSubmatch(m[2], -1) {
			d.labels = append(d.labels, w[1])
		}
		for _, w := range word.FindAllStringSubmatch(intro+m[3], -1) {
			d.words[w[1]] = true
		}
		out[m[1]] = d
	}
	if len(out) == 0 {
		t.Fatal("README.md's metric table has no rows")
	}
	return out
}

// targetLabels are the labels Prometheus adds to every scraped series.
var targetLabels = []string{"job", "instance"}

// undocumented returns every metric name, label and label value that expr
// uses and the README's table (docs) lacks. A histogram's _bucket, _sum and
// _count series are its family's, _bucket with the le label; job and instance
// are Prometheus's own. A label named in a grouping clause must belong to one
// of the expression's metrics.
func undocumented(expr string, docs map[string]metricDoc) ([]string, error) {
	u, err := parseUsage(expr)
	if err != nil {
		return nil, err
	}
	var problems []string
	all := slices.Clone(targetLabels)
	for name, matchers := range u.metrics {
		family, suffix := name, ""
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			if d, ok := docs[strings.TrimSuffix(name, s)]; ok && strings.HasSuffix(name, s) && d.histogram {
				family, suffix = strings.TrimSuffix(name, s), s
			}
		}
		d, ok := docs[family]
		if !ok {
			problems = append(problems, fmt.Sprintf("metric %s is not in the README's table", name))
			continue
		}
		labels := append(slices.Clone(d.labels), targetLabels...)
		if suffix == "_bucket" {
			labels = append(labels, "le")
		}
		all = append(all, labels...)
		for label, values := range matchers {
			if !slices.Contains(labels, label) {
				problems = append(problems, fmt.Sprintf("%s has no label %s in the README's table", name, label))
				continue
			}
			for _, v := range values {
				if !d.words[v] && !slices.Contains(targetLabels, label) {
					problems = append(problems, fmt.Sprintf("%s{%s=%q}: the README does not document the value %q", name, label, v, v))
				}
			}
		}
	}
	for _, label := range u.grouping {
		if !slices.Contains(all, label) {
			problems = append(problems, fmt.Sprintf("grouping label %s belongs to none of the expression's metrics", label))
		}
	}
	if len(u.metrics) == 0 {
		problems = append(problems, "no metric at all")
	}
	slices.Sort(problems)
	return slices.Compact(problems), nil
}

// The checker itself: what it accepts and what it must refuse.
func TestUndocumented(t *testing.T) {
	docs := map[string]metricDoc{
		"cutover_requests_total": {labels: []string{"route", "backend", "code"},
			words: map[string]bool{"5xx": true, "native": true, "legacy": true, "_legacy": true}},
		"cutover_request_duration_seconds": {labels: []string{"route", "backend", "code"}, histogram: true,
			words: map[string]bool{}},
		"cutover_fallbacks_total": {labels: []string{"route", "reason"}, words: map[string]bool{"native_5xx": true}},
	}
	tests := []struct {
		give string
		want []string
	}{
		{give: `sum by (route, backend) (rate(cutover_requests_total{job=~"$job", route=~"$route", code="5xx"}[$__rate_interval]))`},
		{give: `histogram_quantile(0.99, sum by (le, backend) (rate(cutover_request_duration_seconds_bucket{route=~".*"}[5m])))`},
		{give: `sum(rate(cutover_requests_total{backend=~"native|legacy"}[5m])) > on (job, route) group_left () 0.05 * sum(cutover_fallbacks_total{reason="native_5xx"} offset 10m)`},
		{give: `cutover_requests_total{route!="_legacy"} # a comment naming cutover_nothing`},
		{give: `sum(rate(cutover_request_total[5m]))`, want: []string{"metric cutover_request_total is not in the README's table"}},
		{give: `rate(cutover_requests_total{rout="chat"}[5m])`, want: []string{"cutover_requests_total has no label rout in the README's table"}},
		{give: `rate(cutover_requests_total{code="5XX"}[5m])`, want: []string{`cutover_requests_total{code="5XX"}: the README does not document the value "5XX"`}},
		{give: `cutover_fallbacks_total{reason=~"native_5xx|native_500"}`, want: []string{`cutover_fallbacks_total{reason="native_500"}: the README does not document the value "native_500"`}},
		{give: `sum by (le) (rate(cutover_requests_total[5m]))`, want: []string{"grouping label le belongs to none of the expression's metrics"}},
		{give: `sum by (reason) (rate(cutover_requests_total[5m]))`, want: []string{"grouping label reason belongs to none of the expression's metrics"}},
		{give: `rate(cutover_request_duration_seconds_count{le="1"}[5m])`, want: []string{"cutover_request_duration_seconds_count has no label le in the README's table"}},
		{give: `vector(1)`, want: []string{"no metric at all"}},
	}
	for _, tt := range tests {
		got, err := undocumented(tt.give, docs)
		if err != nil {
			t.Errorf("%s: %v", tt.give, err)
			continue
		}
		if !slices.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
			t.Errorf("%s:\n got  %q\n want %q", tt.give, got, tt.want)
		}
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("repository root: %v", err)
	}
	return dir
}
