package main

import (
	"testing"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/internal/testenv"
)

// The demo's generated config is valid and puts every route of the legacy
// app at the -share asked for.
func TestDemoConfig(t *testing.T) {
	y := demoConfig(8080, 9090, "http://127.0.0.1:8000", "redis://127.0.0.1:6379/0", "http://127.0.0.1:8900", 12.5)
	c, err := config.Parse([]byte(y), nil)
	if err != nil {
		t.Fatalf("demo config rejected: %v\n%s", err, y)
	}
	if len(c.Routes) != len(testenv.LegacyRoutes) {
		t.Fatalf("%d routes, want %d", len(c.Routes), len(testenv.LegacyRoutes))
	}
	for _, r := range testenv.LegacyRoutes {
		got := c.Route(r.Name)
		if got == nil || got.Path != r.Path || got.Share != 1250 {
			t.Errorf("route %s: %+v, want path %s at 1250 bp", r.Name, got, r.Path)
		}
	}
	if c.Admin.Token != demoAdminToken || !c.Override.Enabled {
		t.Errorf("admin token %q, override %v", c.Admin.Token, c.Override.Enabled)
	}
	if c.Fleet.Enabled() {
		t.Error("a single demo instance has a fleet store")
	}
	// An instance of a demo fleet: its store is apart from the conversations.
	c, err = config.Parse([]byte(y+demoFleet("redis://127.0.0.1:6379/1", 2)), nil)
	if err != nil {
		t.Fatalf("demo fleet config rejected: %v", err)
	}
	if c.Fleet.RedisURL != "redis://127.0.0.1:6379/1" || c.Fleet.Instance != "demo-2" {
		t.Errorf("demo fleet: %+v", c.Fleet)
	}
}
