package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// dashboard is the part of Grafana's dashboard JSON model the tests read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
			AllValue   string `json:"allValue"`
			IncludeAll bool   `json:"includeAll"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	GridPos     struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		RefID        string `json:"refId"`
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("grafana", "cutover.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("grafana/cutover.json: %v", err)
	}
	return d
}

// allPanels flattens rows.
func (d dashboard) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// query is one PromQL expression of the kit, named for messages.
type query struct {
	where, expr, legend string
}

// queries returns every PromQL expression of the dashboard: each panel
// target, and each query variable's label_values() selector.
func (d dashboard) queries(t *testing.T) []query {
	t.Helper()
	var out []query
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			out = append(out, query{where: "panel " + p.Title + " " + tg.RefID, expr: tg.Expr, legend: tg.LegendFormat})
		}
	}
	lv := regexp.MustCompile(`^label_values\((.+), *([a-z_]+)\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := lv.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Fatalf("variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
		}
		out = append(out, query{where: "variable " + v.Name, expr: "group by (" + m[2] + ") (" + m[1] + ")"})
	}
	return out
}

var legendLabel = regexp.MustCompile(`\{\{ *([a-zA-Z_]+) *\}\}`)

// checkQueries fails on anything a query uses that the README's table
// lacks, and on a legend label the query's result cannot carry.
func checkQueries(t *testing.T, qs []query) {
	t.Helper()
	docs := readmeMetrics(t)
	for _, q := range qs {
		problems, err := undocumented(q.expr, docs)
		if err != nil {
			t.Errorf("%s: %v\n%s", q.where, err, q.expr)
			continue
		}
		for _, p := range problems {
			t.Errorf("%s: %s\n%s", q.where, p, q.expr)
		}
		u, _ := parseUsage(q.expr)
		for _, m := range legendLabel.FindAllStringSubmatch(q.legend, -1) {
			if !slices.Contains(u.grouping, m[1]) {
				t.Errorf("%s: legend {{%s}} is not a label the query groups by\n%s", q.where, m[1], q.expr)
			}
		}
	}
}

func TestDashboardUsesDocumentedMetrics(t *testing.T) {
	d := loadDashboard(t)
	qs := d.queries(t)
	if len(qs) < 20 {
		t.Fatalf("only %d queries found in the dashboard", len(qs))
	}
	checkQueries(t, qs)
}

// The dashboard imports and renders: unique panel ids, every query panel on
// the ${datasource} variable, panels inside the 24-column grid without
// overlapping, every $variable defined.
func TestDashboardIsWellFormed(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid and a title")
	}
	vars := map[string]bool{"__rate_interval": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.IncludeAll && v.AllValue != ".*" {
			t.Errorf("variable %s: All must be .* (the queries use =~)", v.Name)
		}
	}
	ids := map[int]string{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	varRef := regexp.MustCompile(`\$\{?([A-Za-z_]+)\}?`)
	for _, p := range d.allPanels() {
		if prev, ok := ids[p.ID]; ok || p.ID == 0 {
			t.Errorf("panel %q: id %d is also %q", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panel %q overlaps %q at (%d, %d)", p.Title, other, x, y)
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Description == "" {
			t.Errorf("panel %q has no description", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		for _, tg := range p.Targets {
			for _, m := range varRef.FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[m[1]] {
					t.Errorf("panel %q: $%s is not a dashboard variable", p.Title, m[1])
				}
			}
		}
	}
}

// alertRules is the part of a Prometheus rule file the tests read.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadAlerts(t *testing.T) alertRules {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var r alertRules
	if err := yaml.Unmarshal(data, &r); err != nil {
		t.Fatalf("prometheus/alerts.yml: %v", err)
	}
	return r
}

var annotationLabel = regexp.MustCompile(`\$labels\.([a-zA-Z_]+)`)

// Every alert uses documented metrics, names its severity, and its
// annotations use only labels its expression keeps.
func TestAlertsUseDocumentedMetrics(t *testing.T) {
	rules := loadAlerts(t)
	var qs []query
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			qs = append(qs, query{where: "alert " + r.Alert, expr: r.Expr})
			if s := r.Labels["severity"]; s != "page" && s != "ticket" {
				t.Errorf("alert %s: severity %q, want page or ticket", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s needs a summary and a description", r.Alert)
			}
			u, err := parseUsage(r.Expr)
			if err != nil {
				continue // reported by checkQueries
			}
			for _, a := range r.Annotations {
				for _, m := range annotationLabel.FindAllStringSubmatch(a, -1) {
					if !slices.Contains(u.grouping, m[1]) {
						t.Errorf("alert %s: annotation uses $labels.%s, which the expression does not keep", r.Alert, m[1])
					}
				}
			}
		}
	}
	if n < 8 {
		t.Fatalf("only %d alert rules found", n)
	}
	checkQueries(t, qs)
}

// substitute replaces the dashboard's variables as Grafana would with
// "All" selected for job: the given job, route: every route, and
// $__rate_interval: rate.
func substitute(expr, job, rate string) string {
	return strings.NewReplacer("$__rate_interval", rate, "$job", job, "$route", ".*").Replace(expr)
}
