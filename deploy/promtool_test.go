package deploy_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// tool finds a binary of Debian's prometheus package, which `make setup`
// installs; its absence fails the test rather than skipping it.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: run `make setup` (it installs Debian's prometheus package)", name)
	}
	return path
}

// promtool runs promtool with args in dir and fails the test on a non-zero exit.
func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool(t, "promtool"), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestAlertRulesCheck(t *testing.T) {
	promtool(t, "prometheus", "check", "rules", "alerts.yml")
}

func TestAlertRulesUnitTests(t *testing.T) {
	promtool(t, "prometheus", "test", "rules", "alerts_test.yml")
}

// promtoolTests is the part of a promtool unit test file the tests read.
type promtoolTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// Every alert has a unit test in which it fires and one in which it stays
// quiet, so `promtool test rules` covers the whole file.
func TestEveryAlertIsUnitTested(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("prometheus", "alerts_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var pt promtoolTests
	if err := yaml.Unmarshal(data, &pt); err != nil {
		t.Fatalf("alerts_test.yml: %v", err)
	}
	if len(pt.RuleFiles) != 1 || pt.RuleFiles[0] != "alerts.yml" {
		t.Errorf("alerts_test.yml tests %v, want [alerts.yml]", pt.RuleFiles)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range pt.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, g := range loadAlerts(t).Groups {
		for _, r := range g.Rules {
			if !fires[r.Alert] {
				t.Errorf("alert %s has no unit test in which it fires", r.Alert)
			}
			if !quiet[r.Alert] {
				t.Errorf("alert %s has no unit test in which it stays quiet", r.Alert)
			}
		}
	}
}
