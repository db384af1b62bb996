package config

import (
	"strings"
	"testing"
	"time"
)

func TestLegacyBreakerAndTimeouts(t *testing.T) {
	c, err := Parse(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := c.LegacyBreaker
	if b.ConsecutiveFailures != 5 || b.MinRequests != 20 || b.Interval != time.Minute || b.OpenTimeout != 30*time.Second ||
		b.HalfOpenRequests != 1 || len(b.FailureStatuses) != 0 {
		t.Errorf("legacy_breaker defaults: %+v", b)
	}
	if c.Listen.BodyReadTimeout != time.Minute {
		t.Errorf("body_read_timeout default %s", c.Listen.BodyReadTimeout)
	}
	_, err = Parse([]byte(`
legacy_breaker:
  failure_ratio: 1.5
  failure_statuses: [404]
  auto_rollback: true
  native_timeout: 1s
routes:
  - name: chat
    path: /chat
    breaker:
      native_timeout: -1s
`), nil)
	for _, want := range []string{
		"legacy_breaker: failure_ratio 1.5 is not in [0, 1]",
		"legacy_breaker: failure_statuses: 404 is not a 5xx status",
		"legacy_breaker: auto_rollback applies to a route's native breaker only",
		"legacy_breaker: native_timeout applies to a route's breaker only",
		`route "chat": breaker: native_timeout -1s is negative`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	c, err = Parse([]byte("legacy_breaker:\n  failure_statuses: [502, 504]\n"), []string{"CUTOVER_LISTEN_BODY_READ_TIMEOUT=5s"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.BodyReadTimeout != 5*time.Second {
		t.Errorf("env override of body_read_timeout: %s", c.Listen.BodyReadTimeout)
	}
	n := c.Clone()
	n.LegacyBreaker.FailureStatuses[0] = 500
	if c.LegacyBreaker.FailureStatuses[0] != 502 {
		t.Error("Clone shares legacy_breaker.failure_statuses")
	}
}
