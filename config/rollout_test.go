package config

import (
	"strings"
	"testing"
	"time"
)

func TestRolloutConfig(t *testing.T) {
	c, err := Parse([]byte(`routes:
  - name: chat
    path: /chat
    rollout:
      steps: [shadow, 1, 5.5, 100]
      interval: 30s
      min_requests: 20
      gates: {max_p99_ratio: 1.5}
rollout:
  webhooks: [{url: "http://127.0.0.1:9/hook", format: slack}]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Route("chat").Rollout
	if len(p.Steps) != 4 || p.Steps[0] != "shadow" || p.Steps[2] != "5.5" || p.Interval != 30*time.Second ||
		p.MinRequests != 20 || p.Gates.MaxP99Ratio != 1.5 {
		t.Errorf("plan %+v", p)
	}
	r := c.Rollout
	if r.Interval != 5*time.Second || r.LeaseTTL != 15*time.Second || r.Webhooks[0].Retries != 3 || r.Webhooks[0].Timeout != 5*time.Second {
		t.Errorf("rollout %+v", r)
	}

	_, err = Parse([]byte(`routes:
  - name: chat
    path: /chat
rollout:
  interval: 10s
  lease_ttl: 20s
  webhooks: [{url: "ftp://x", format: xml}]
`), nil)
	for _, want := range []string{"lease_ttl 20s is below three intervals", `webhooks[0]: url "ftp://x"`, `format "xml"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
}
