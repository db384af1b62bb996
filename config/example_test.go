package config

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// docKeys returns the dotted keys the example documents: those set and
// those shown commented out ("# key: value  # what it means"). List items
// merge into one level ("routes.name").
func docKeys(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Uncomment lines that show a key (lower-case snake_case, as every key
	// is), keeping their indentation, so the commented ones parse too.
	commented := regexp.MustCompile(`(?m)^(\s*)# ?(\s*(?:- )?[a-z][a-z0-9_]*:(?:\s|$))`)
	data = commented.ReplaceAll(data, []byte("$1$2"))
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s with its documented keys uncommented is not YAML: %v", path, err)
	}
	keys := map[string]bool{}
	var walk func(v any, prefix string)
	walk = func(v any, prefix string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				keys[prefix+k] = true
				walk(x, prefix+k+".")
			}
		case []any:
			for _, x := range v {
				walk(x, prefix)
			}
		}
	}
	walk(doc, "")
	return keys
}

// structKeys returns the dotted keys of every mapstructure field of t.
func structKeys(t reflect.Type, prefix string, out map[string]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		key := prefix + tag
		out[key] = true
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Duration]() {
			structKeys(ft, key+".", out)
		}
	}
}

// docs/config.example.yaml documents every key of Config, and nothing else
// (a commented-out key with a typo would mislead whoever uncomments it).
func TestExampleDocumentsEveryKey(t *testing.T) {
	documented := docKeys(t, "../docs/config.example.yaml")
	want := map[string]bool{}
	structKeys(reflect.TypeFor[Config](), "", want)
	// legacy_breaker is a Breaker, but these two only apply to a route's
	// breaker and validation rejects them there.
	for _, k := range []string{"legacy_breaker.auto_rollback", "legacy_breaker.native_timeout"} {
		give := "legacy_breaker:\n  " + strings.TrimPrefix(k, "legacy_breaker.") + ": 1\n"
		if _, err := Parse([]byte(give), nil); err == nil {
			t.Errorf("%s is accepted: document it", k)
		}
		delete(want, k)
	}
	var missing, unknown []string
	for k := range want {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !want[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(unknown)
	if len(missing) > 0 {
		t.Errorf("docs/config.example.yaml does not document %d keys:\n  %s", len(missing), strings.Join(missing, "\n  "))
	}
	if len(unknown) > 0 {
		t.Errorf("docs/config.example.yaml documents keys that do not exist:\n  %s", strings.Join(unknown, "\n  "))
	}
	// The walk itself must see nested, list and commented keys.
	for _, k := range []string{"routes.breaker.failure_ratio", "routes.shadow.normalize.regex", "admin.token", "shadow.store.redis_url"} {
		if !want[k] {
			t.Errorf("struct walk misses %s", k)
		}
		if !slices.Contains(missing, k) && !documented[k] {
			t.Errorf("doc walk misses %s", k)
		}
	}
}
