package deploy_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/testenv"
)

// cutoverSetup is what a test's `cutover serve` is given beyond what every
// one here shares (free loopback ports, a short drain, one Bedrock attempt,
// the legacy app's session secret, WARN logs).
type cutoverSetup struct {
	LegacyURL, RedisURL, StubURL string
	// Extra is more top-level YAML (sections the shared part does not set).
	Extra string
	// Env sets more settings (CUTOVER_*), e.g. keys of the shared sections.
	Env []string
	// Routes gives each route of the legacy app its settings (testenv.RoutesYAML).
	Routes func(name string) []string
}

// startCutover writes the config to a file in dir and runs `cutover serve`
// (bin) as a real process until the test ends, waiting for its health check.
// It returns the process and the traffic and admin base URLs.
func startCutover(t *testing.T, dir, bin string, c *http.Client, s cutoverSetup) (p *proc, base, admin string) {
	t.Helper()
	traffic, adminAddr := freeAddr(t), freeAddr(t)
	yaml := fmt.Sprintf(`listen:
  addr: %s
admin:
  addr: %s
shutdown:
  drain_delay: 100ms
  timeout: 5s
legacy:
  url: %s
native:
  redis_url: %s
  bedrock_endpoint_url: %s
  secret_key: %s
  bedrock_max_attempts: 1
log:
  level: warn
`, traffic, adminAddr, s.LegacyURL, s.RedisURL, s.StubURL, testenv.LegacySecretKey) + s.Extra + testenv.RoutesYAML(s.Routes)
	path := filepath.Join(dir, "cutover.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append([]string{ // the stub takes any signature; never look for real credentials
		"AWS_ACCESS_KEY_ID=AKIDDEPLOYTEST", "AWS_SECRET_ACCESS_KEY=deploy-test", "AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
	}, s.Env...)
	p = startProc(t, dir, "cutover", bin, []string{"serve", "-config", path}, env)
	base, admin = "http://"+traffic, "http://"+adminAddr
	waitHTTP(t, c, p, base+"/_cutover/health", 30*time.Second)
	return p, base, admin
}
