package testenv

import "strings"

// Route is one rule of the legacy app's route table as cutover's config
// names it: the Flask endpoint, the Werkzeug rule and its methods.
type Route struct {
	Name, Path string
	Methods    []string
}

// LegacyRoutes is the route table of the Flask app in legacy/app.py, in its
// declaration order. Test configs, the demo and the benchmarks render it
// with RoutesYAML rather than writing it out again.
var LegacyRoutes = []Route{
	{"health", "/health", []string{"GET"}},
	{"models", "/models", []string{"GET"}},
	{"chat", "/chat", []string{"POST"}},
	{"chat_stream", "/chat/stream", []string{"POST"}},
	{"get_conversation", "/conversations/<conversation_id>", []string{"GET"}},
	{"delete_conversation", "/conversations/<conversation_id>", []string{"DELETE"}},
}

// RoutesYAML renders LegacyRoutes as a config's top-level "routes:" list.
// extra, when not nil, returns more settings for a route, one "key: value"
// YAML line each (unindented; nested blocks in flow style).
func RoutesYAML(extra func(name string) []string) string {
	var b strings.Builder
	b.WriteString("routes:\n")
	for _, r := range LegacyRoutes {
		b.WriteString("  - name: " + r.Name + "\n")
		b.WriteString("    path: " + r.Path + "\n") // no YAML quoting needed: '/' and '<>' are plain
		b.WriteString("    methods: [" + strings.Join(r.Methods, ", ") + "]\n")
		if extra != nil {
			for _, line := range extra(r.Name) {
				b.WriteString("    " + line + "\n")
			}
		}
	}
	return b.String()
}
