package shadow

import (
	"net/http"
	"strings"
	"testing"
)

func jsonResp(status int, body string) Response {
	return Response{Status: status, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body)}
}

func mustComparator(t *testing.T, cfg ComparatorConfig) *Comparator {
	t.Helper()
	c, err := NewComparator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func paths(r Result) []string {
	var out []string
	for _, m := range r.Mismatches {
		out = append(out, string(m.Class)+" "+m.Path)
	}
	return out
}

func TestCompareJSON(t *testing.T) {
	c := mustComparator(t, ComparatorConfig{Default: Rules{JSON: true}})
	tests := []struct {
		name      string
		give      [2]Response
		wantClass Class
		want      []string
	}{
		{
			name:      "identical",
			give:      [2]Response{jsonResp(200, `{"a":1,"b":"x"}`), jsonResp(200, `{"a":1,"b":"x"}`)},
			wantClass: ClassMatch,
		},
		{
			name:      "key order",
			give:      [2]Response{jsonResp(200, `{"a":1,"b":"x"}`), jsonResp(200, `{"b":"x","a":1}`)},
			wantClass: ClassEncoding,
			want:      []string{"encoding_only $"},
		},
		{
			name:      "unicode escaping",
			give:      [2]Response{jsonResp(200, `{"name":"Jos\u00e9 \ud83d\ude00"}`), jsonResp(200, `{"name":"José 😀"}`)},
			wantClass: ClassEncoding,
			want:      []string{"encoding_only $"},
		},
		{
			name:      "float literal",
			give:      [2]Response{jsonResp(200, `{"usage":{"t":1.0}}`), jsonResp(200, `{"usage":{"t":1}}`)},
			wantClass: ClassEncoding,
			want:      []string{"encoding_only $.usage.t"},
		},
		{
			name:      "whitespace",
			give:      [2]Response{jsonResp(200, "{\"a\": [1, 2]}\n"), jsonResp(200, `{"a":[1,2]}`)},
			wantClass: ClassEncoding,
			want:      []string{"encoding_only $"},
		},
		{
			name:      "semantic value with path",
			give:      [2]Response{jsonResp(200, `{"usage":{"output_tokens":12,"input_tokens":3}}`), jsonResp(200, `{"usage":{"output_tokens":13,"input_tokens":3}}`)},
			wantClass: ClassSemantic,
			want:      []string{"semantic $.usage.output_tokens"},
		},
		{
			name:      "missing key and array element",
			give:      [2]Response{jsonResp(200, `{"m":[{"id":1},{"id":2}],"x":true}`), jsonResp(200, `{"m":[{"id":1}]}`)},
			wantClass: ClassSemantic,
			want:      []string{"semantic $.m[1]", "semantic $.x"},
		},
		{
			name:      "type change",
			give:      [2]Response{jsonResp(200, `{"a":"1"}`), jsonResp(200, `{"a":1}`)},
			wantClass: ClassSemantic,
			want:      []string{"semantic $.a"},
		},
		{
			name:      "status",
			give:      [2]Response{jsonResp(200, `{}`), jsonResp(500, `{}`)},
			wantClass: ClassSemantic,
			want:      []string{"semantic status"},
		},
		{
			name: "header charset and case",
			give: [2]Response{
				{Status: 200, Header: http.Header{"Content-Type": {"text/html; charset=utf-8"}}, Body: []byte("x")},
				{Status: 200, Header: http.Header{"Content-Type": {"text/html; charset=UTF-8"}}, Body: []byte("x")},
			},
			wantClass: ClassEncoding,
			want:      []string{"encoding_only header.Content-Type"},
		},
		{
			name: "header semantic",
			give: [2]Response{
				{Status: 200, Header: http.Header{"Content-Type": {"text/html; charset=utf-8"}}, Body: []byte("x")},
				{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte("x")},
			},
			wantClass: ClassSemantic,
			want:      []string{"semantic header.Content-Type"},
		},
		{
			name:      "encoding and semantic together is semantic",
			give:      [2]Response{jsonResp(200, `{"a":1.0,"b":2}`), jsonResp(200, `{"a":1,"b":3}`)},
			wantClass: ClassSemantic,
			want:      []string{"encoding_only $.a", "semantic $.b"},
		},
		{
			name:      "non-JSON text",
			give:      [2]Response{{Status: 404, Body: []byte("<p>Not Found</p>\n")}, {Status: 404, Body: []byte("<p>Not found</p>\n")}},
			wantClass: ClassSemantic,
			want:      []string{"semantic $"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.Compare("r", tt.give[0], tt.give[1])
			if got.Class != tt.wantClass {
				t.Errorf("class = %s, want %s (%v)", got.Class, tt.wantClass, got.Mismatches)
			}
			if g, w := strings.Join(paths(got), "; "), strings.Join(tt.want, "; "); g != w {
				t.Errorf("mismatches = %q, want %q", g, w)
			}
		})
	}
}

// The default (byte-exact) mode reports one mismatch for the whole body, but
// still tells encoding drift from a value change.
func TestCompareByteExactClassifies(t *testing.T) {
	c := mustComparator(t, ComparatorConfig{})
	tests := []struct {
		name string
		a, b string
		want Class
	}{
		{"same bytes", `{"a":1}`, `{"a":1}`, ClassMatch},
		{"key order", `{"a":1,"b":2}`, `{"b":2,"a":1}`, ClassEncoding},
		{"escaping", `"\u00e9"`, `"é"`, ClassEncoding},
		{"number", `[1.0]`, `[1]`, ClassEncoding},
		{"value", `{"a":1}`, `{"a":2}`, ClassSemantic},
		{"text whitespace", "a  b\n", "a b", ClassEncoding},
		{"text", "a b", "a c", ClassSemantic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.Compare("r", jsonResp(200, tt.a), jsonResp(200, tt.b))
			if got.Class != tt.want {
				t.Errorf("class = %s, want %s (%v)", got.Class, tt.want, got.Mismatches)
			}
			if tt.want != ClassMatch && (len(got.Mismatches) != 1 || got.Mismatches[0].Path != "$") {
				t.Errorf("mismatches = %v, want one at $", got.Mismatches)
			}
		})
	}
}

func TestCompareIgnoreAndNormalize(t *testing.T) {
	c := mustComparator(t, ComparatorConfig{
		Default: Rules{JSON: true},
		Routes: map[string]Rules{
			"conv": {
				JSON:   true,
				Ignore: []string{"$..created_at", "$.meta.request_id"},
				Normalize: []Normalize{
					{Path: "$.messages[*].content", Pattern: `\d{4}-\d\d-\d\d`, Replace: "DATE"},
				},
			},
		},
	})
	a := jsonResp(200, `{"meta":{"request_id":"r1"},"messages":[{"content":"on 2024-01-02","created_at":"t1"}]}`)
	b := jsonResp(200, `{"meta":{"request_id":"r2"},"messages":[{"content":"on 2025-03-04","created_at":"t2"}]}`)
	if got := c.Compare("conv", a, b); got.Class != ClassMatch {
		t.Errorf("conv: class = %s (%v), want match", got.Class, got.Mismatches)
	}
	// Encoding drift outside the ignored fields is still seen.
	b2 := jsonResp(200, `{"messages":[{"created_at":"t2","content":"on 2025-03-04"}],"meta":{"request_id":"r2"}}`)
	if got := c.Compare("conv", a, b2); got.Class != ClassEncoding {
		t.Errorf("conv reordered: class = %s (%v), want encoding_only", got.Class, got.Mismatches)
	}
	// Another route uses the default rules: the same pair differs.
	got := c.Compare("other", a, b)
	if want := "semantic $.meta.request_id; semantic $.messages[0].content; semantic $.messages[0].created_at"; strings.Join(paths(got), "; ") != want {
		t.Errorf("other: %q, want %q", strings.Join(paths(got), "; "), want)
	}
}

func TestCompareTextNormalize(t *testing.T) {
	c := mustComparator(t, ComparatorConfig{Default: Rules{Normalize: []Normalize{{Pattern: `id=\w+`, Replace: "id=X"}}}})
	got := c.Compare("r", Response{Status: 200, Body: []byte("ok id=abc")}, Response{Status: 200, Body: []byte("ok id=def")})
	if got.Class != ClassMatch {
		t.Errorf("class = %s (%v), want match", got.Class, got.Mismatches)
	}
}

func TestNewComparatorReportsEveryProblem(t *testing.T) {
	_, err := NewComparator(ComparatorConfig{Routes: map[string]Rules{
		"chat": {Ignore: []string{"a.b"}, Normalize: []Normalize{{Pattern: "("}}},
	}})
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{`route "chat": ignore: path "a.b"`, `route "chat": normalize "("`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func sse(events ...string) Response {
	return Response{Status: 200, Header: http.Header{"Content-Type": {"text/event-stream; charset=utf-8"}},
		Body: []byte(strings.Join(events, ""))}
}

func TestCompareEventStreams(t *testing.T) {
	c := mustComparator(t, ComparatorConfig{Default: Rules{JSON: true, SSEText: "$.text"}})
	full := sse("event: start\ndata: {\"id\":\"c1\"}\n\n", "data: {\"text\":\"Hel\"}\n\n", "data: {\"text\":\"lo é\"}\n\n", "event: done\ndata: {\"tokens\":2}\n\n")
	tests := []struct {
		name      string
		give      Response
		wantClass Class
		want      []string
	}{
		{"same", full, ClassMatch, nil},
		{
			"escaped data",
			sse("event: start\ndata: {\"id\":\"c1\"}\n\n", "data: {\"text\":\"Hel\"}\n\n", "data: {\"text\":\"lo \\u00e9\"}\n\n", "event: done\ndata: {\"tokens\":2}\n\n"),
			ClassEncoding, []string{"encoding_only events[2].data$"},
		},
		{
			"different chunk text",
			sse("event: start\ndata: {\"id\":\"c1\"}\n\n", "data: {\"text\":\"Hel\"}\n\n", "data: {\"text\":\"lo!\"}\n\n", "event: done\ndata: {\"tokens\":2}\n\n"),
			ClassSemantic, []string{"semantic events[2].data$.text", "semantic sse.text"},
		},
		{
			"cut before terminal event",
			sse("event: start\ndata: {\"id\":\"c1\"}\n\n", "data: {\"text\":\"Hel\"}\n\n", "data: {\"text\":\"lo é\"}\n\n", "event: error\ndata: {\"error\":\"x\"}\n\n"),
			ClassSemantic, []string{"semantic events[3].event", "semantic events[3].data$.tokens", "semantic events[3].data$.error"},
		},
		{
			"missing terminal",
			sse("event: start\ndata: {\"id\":\"c1\"}\n\n", "data: {\"text\":\"Hel\"}\n\n", "data: {\"text\":\"lo é\"}\n\n"),
			ClassSemantic, []string{"semantic events.count", "semantic sse.terminal"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.Compare("r", full, tt.give)
			if got.Class != tt.wantClass {
				t.Errorf("class = %s, want %s (%v)", got.Class, tt.wantClass, got.Mismatches)
			}
			if g, w := strings.Join(paths(got), "; "), strings.Join(tt.want, "; "); g != w {
				t.Errorf("mismatches = %q, want %q", g, w)
			}
		})
	}
}

func TestParseEvents(t *testing.T) {
	got := ParseEvents([]byte(": comment\r\nevent: a\r\ndata: 1\r\ndata:2\r\nid: 7\r\n\r\ndata: x\rdata: y\r\rdata: tail"))
	want := []Event{{Name: "a", Data: "1\n2", ID: "7"}, {Data: "x\ny"}, {Data: "tail"}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestJSONPath(t *testing.T) {
	loc := func(parts ...any) []elem {
		var out []elem
		for _, p := range parts {
			switch v := p.(type) {
			case string:
				out = append(out, elem{key: v})
			case int:
				out = append(out, elem{index: v, isIndex: true})
			}
		}
		return out
	}
	tests := []struct {
		path string
		at   []elem
		want bool
	}{
		{"$.a.b", loc("a", "b"), true},
		{"$.a.b", loc("a", "c"), false},
		{"$.a.b", loc("a", "b", "c"), false},
		{"$.a[*].b", loc("a", 3, "b"), true},
		{"$.a[1].b", loc("a", 3, "b"), false},
		{"$..created_at", loc("m", 0, "created_at"), true},
		{"$..created_at", loc("created_at"), true},
		{"$..created_at", loc("created_at", "x"), false},
		{"$['a b'].*", loc("a b", "z"), true},
	}
	for _, tt := range tests {
		p, err := compilePath(tt.path)
		if err != nil {
			t.Fatalf("%s: %v", tt.path, err)
		}
		if got := p.match(tt.at); got != tt.want {
			t.Errorf("%s on %s = %v, want %v", tt.path, formatPath(tt.at), got, tt.want)
		}
	}
	for _, bad := range []string{"a", "$.", "$..", "$[x]", "$['a"} {
		if _, err := compilePath(bad); err == nil {
			t.Errorf("compilePath(%q): want error", bad)
		}
	}
}

func FuzzCompare(f *testing.F) {
	f.Add([]byte(`{"a":[1,2.0,"x"]}`), []byte(`{"a":[1,2,"x"]}`))
	f.Add([]byte("data: 1\n\n"), []byte(`[`))
	f.Add([]byte(`{"a":1 ,"b":2}`), []byte(`{"a":1, "b":2}`))
	c, _ := NewComparator(ComparatorConfig{Default: Rules{JSON: true}})
	bc, _ := NewComparator(ComparatorConfig{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		for _, c := range []*Comparator{c, bc} {
			r := c.Compare("r", jsonResp(200, string(a)), jsonResp(200, string(b)))
			if string(a) == string(b) && r.Class != ClassMatch {
				t.Fatalf("equal bodies classified %s", r.Class)
			}
			if string(a) != string(b) && r.Class == ClassMatch {
				t.Fatalf("different bodies matched")
			}
		}
	})
}

func TestCompareSSETextDefaults(t *testing.T) {
	a := sse("event: delta\ndata: {\"text\": \"Hi\"}\n\n", "event: done\ndata: {\"usage\": 1}\n\n")
	b := sse("event: delta\ndata: {\"text\": \"Hi\", \"extra\": 1}\n\n", "event: done\ndata: {\"usage\": 1}\n\n")
	// Default "$.text": same assembled text, so only the event data differs.
	got := mustComparator(t, ComparatorConfig{}).Compare("r", a, b)
	if g := strings.Join(paths(got), "; "); g != "semantic events[0].data$" {
		t.Errorf("default: %q", g)
	}
	// "-": the raw data is assembled, so the text differs too.
	got = mustComparator(t, ComparatorConfig{Default: Rules{SSEText: "-"}}).Compare("r", a, b)
	if g := strings.Join(paths(got), "; "); g != "semantic events[0].data$; semantic sse.text" {
		t.Errorf("raw: %q", g)
	}
}

// Ignore and normalize rules apply in the default byte mode too: a body that
// differs only where the rules look away is a match; anything else is still
// one mismatch at $, classified as in JSON mode.
func TestCompareByteModeAppliesRules(t *testing.T) {
	rules := Rules{
		Ignore:    []string{"$.conversation_id", "$..created_at"},
		Normalize: []Normalize{{Path: "$.reply", Pattern: `\d{4}-\d\d-\d\d`, Replace: "DATE"}},
	}
	for _, mode := range []struct {
		name string
		json bool
	}{{"bytes", false}, {"json", true}} {
		r := rules
		r.JSON = mode.json
		c := mustComparator(t, ComparatorConfig{Default: r})
		tests := []struct {
			name string
			a, b string
			want Class
		}{
			{"ignored field", `{"conversation_id":"c1","reply":"hi"}`, `{"conversation_id":"c2","reply":"hi"}`, ClassMatch},
			{"ignored field on one side only", `{"conversation_id":"c1","reply":"hi"}`, `{"reply":"hi"}`, ClassMatch},
			{"ignored at depth", `{"m":[{"created_at":"t1","x":1}]}`, `{"m":[{"created_at":"t2","x":1}]}`, ClassMatch},
			{"normalised", `{"reply":"on 2024-01-02"}`, `{"reply":"on 2025-03-04"}`, ClassMatch},
			{"other field differs", `{"conversation_id":"c1","reply":"hi"}`, `{"conversation_id":"c2","reply":"ho"}`, ClassSemantic},
			{"re-encoded outside the ignored field", `{"conversation_id":"c1","note":"\u00e9"}`, `{"conversation_id":"c2","note":"é"}`, ClassEncoding},
			{"number literal then a value change", `{"a":1.0,"b":2}`, `{"a":1,"b":3}`, ClassSemantic},
		}
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				got := c.Compare("r", jsonResp(200, tt.a), jsonResp(200, tt.b))
				if got.Class != tt.want {
					t.Errorf("class = %s, want %s (%v)", got.Class, tt.want, got.Mismatches)
				}
				if tt.want == ClassMatch && len(got.Mismatches) != 0 {
					t.Errorf("a match with mismatches: %v", got.Mismatches)
				}
				if !mode.json && tt.want != ClassMatch && (len(got.Mismatches) != 1 || got.Mismatches[0].Path != "$") {
					t.Errorf("byte mode: mismatches = %v, want one at $", got.Mismatches)
				}
			})
		}
	}
	// Byte mode names the first differing path past the ignored one.
	c := mustComparator(t, ComparatorConfig{Default: rules})
	got := c.Compare("r", jsonResp(200, `{"conversation_id":"c1","reply":"hi"}`), jsonResp(200, `{"conversation_id":"c2","reply":"ho"}`))
	if len(got.Mismatches) != 1 || got.Mismatches[0].Detail != "first difference at $.reply" {
		t.Errorf("byte mode detail: %+v", got.Mismatches)
	}
	// Event data of a stream, in byte mode.
	a := sse("event: start\ndata: {\"conversation_id\": \"c1\"}\n\n", "event: delta\ndata: {\"text\": \"Hi\"}\n\n")
	b := sse("event: start\ndata: {\"conversation_id\": \"c2\"}\n\n", "event: delta\ndata: {\"text\": \"Hi\"}\n\n")
	if got := c.Compare("r", a, b); got.Class != ClassMatch {
		t.Errorf("stream with an ignored field: %s %v", got.Class, got.Mismatches)
	}
}

// Only differences that are encoding are encoding_only; any other header
// difference is semantic.
func TestCompareHeaderClasses(t *testing.T) {
	headers := []string{"Content-Type", "Location", "X-Request-Id", "Vary", "Cache-Control", "Allow", "Etag"}
	c := mustComparator(t, ComparatorConfig{Default: Rules{Headers: headers}})
	tests := []struct {
		name   string
		header string
		a, b   string
		want   Class
	}{
		{"same", "Location", "/chat/abc", "/chat/abc", ClassMatch},
		{"charset case", "Content-Type", "text/html; charset=utf-8", "text/html; charset=UTF-8", ClassEncoding},
		{"parameter spacing", "Content-Type", "text/html;charset=utf-8", "text/html; charset=utf-8", ClassEncoding},
		{"quoted charset", "Content-Type", `text/plain; charset="utf-8"`, "text/plain; charset=utf-8", ClassEncoding},
		{"media type case", "Content-Type", "Application/JSON", "application/json", ClassEncoding},
		{"utf8 alias", "Content-Type", "text/html; charset=utf8", "text/html; charset=utf-8", ClassEncoding},
		{"JSON with and without its only charset", "Content-Type", "application/json", "application/json; charset=utf-8", ClassEncoding},
		{"list spacing", "Vary", "Accept-Encoding,Cookie", "Accept-Encoding, Cookie", ClassEncoding},
		{"header names in a list", "Vary", "Cookie", "cookie", ClassEncoding},
		{"directive spacing and case", "Cache-Control", "no-cache,max-age=0", "No-Cache , max-age=0", ClassEncoding},
		{"surrounding whitespace", "X-Request-Id", "abc", " abc ", ClassEncoding},

		{"path case", "Location", "/Chat/ABC", "/chat/abc", ClassSemantic},
		{"space inside a value", "X-Request-Id", `"a b"`, `"ab"`, ClassSemantic},
		{"value case", "X-Request-Id", "abc", "ABC", ClassSemantic},
		{"list spacing is not a list's on other headers", "X-Request-Id", "a,b", "a, b", ClassSemantic},
		{"methods are case-sensitive", "Allow", "GET, HEAD", "GET, head", ClassSemantic},
		{"list element added", "Vary", "Cookie", "Cookie, Accept", ClassSemantic},
		{"spacing inside a quoted string", "Cache-Control", `private="a, b"`, `private="a,b"`, ClassSemantic},
		{"other charset", "Content-Type", "text/html; charset=utf-8", "text/html; charset=iso-8859-1", ClassSemantic},
		{"HTML with and without a charset", "Content-Type", "text/html", "text/html; charset=utf-8", ClassSemantic},
		{"boundary case", "Content-Type", "multipart/form-data; boundary=ABC", "multipart/form-data; boundary=abc", ClassSemantic},
		{"weak and strong etag", "Etag", `"v1"`, `W/"v1"`, ClassSemantic},
		{"absent", "Location", "/chat", "", ClassSemantic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ha, hb := http.Header{}, http.Header{}
			if tt.a != "" {
				ha.Set(tt.header, tt.a)
			}
			if tt.b != "" {
				hb.Set(tt.header, tt.b)
			}
			got := c.Compare("r", Response{Status: 200, Header: ha, Body: []byte("x")}, Response{Status: 200, Header: hb, Body: []byte("x")})
			if got.Class != tt.want {
				t.Errorf("%s: %q vs %q: class = %s, want %s (%v)", tt.header, tt.a, tt.b, got.Class, tt.want, got.Mismatches)
			}
			if tt.want != ClassMatch && (len(got.Mismatches) != 1 || got.Mismatches[0].Path != "header."+http.CanonicalHeaderKey(tt.header)) {
				t.Errorf("mismatches = %v, want one at header.%s", got.Mismatches, tt.header)
			}
		})
	}
}
