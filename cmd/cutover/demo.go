package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/testenv"
	"github.com/cutover/cutover/proxy"
)

func init() {
	register("demo", "run the local stack: Redis, Bedrock stub, legacy app under gunicorn, cutover in front", demoCmd)
}

// demoAdminToken is the demo's admin token; the demo's admin listener is loopback only.
const demoAdminToken = "demo-token"

// demoCmd starts the whole stack on loopback and serves until interrupted. It
// reuses the test starters (internal/testenv), so the demo runs the very
// processes the tests run: redis-server, the legacy app under gunicorn sync
// workers, and the stub (in process) with a realistic latency.
//
// Ports: DEMO_PORT (traffic, default 8080), DEMO_ADMIN_PORT (default 9090),
// DEMO_STUB_PORT (default 8900); Redis and gunicorn take free ports. With
// -instances N, instance i listens on DEMO_PORT+i-1 and DEMO_ADMIN_PORT+i-1
// and the instances form a fleet (docs/fleet.md).
func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ttft := fs.Duration("ttft", 300*time.Millisecond, "stub time to first token")
	tps := fs.Float64("tps", 40, "stub tokens per second while streaming")
	share := fs.Float64("native-percent", 0, "native share for every route at start")
	instances := fs.Int("instances", 1, "cutover instances; above 1 they form a fleet on Redis database 1, on consecutive ports")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *instances < 1 || *instances > 9 {
		return fmt.Errorf("-instances %d is not in [1, 9]", *instances)
	}
	// The stub accepts any signature; static test credentials keep the SDKs
	// from looking for real ones (IMDS, profiles).
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo", "AWS_REGION": "us-east-1",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
	} {
		os.Setenv(k, v)
	}
	os.Unsetenv("AWS_PROFILE")
	os.Unsetenv("AWS_BEARER_TOKEN_BEDROCK")
	port := envPort("DEMO_PORT", 8080)
	adminPort := envPort("DEMO_ADMIN_PORT", 9090)
	stubPort := envPort("DEMO_STUB_PORT", 8900)

	redis, stopRedis, err := testenv.NewRedis()
	if err != nil {
		return err
	}
	defer stopRedis()

	stub := bedrockstub.New(bedrockstub.Options{TTFT: *ttft, TokensPerSecond: *tps})
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(stubPort)))
	if err != nil {
		return fmt.Errorf("stub listener: %w", err)
	}
	stubSrv := &http.Server{Handler: stub, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = stubSrv.Serve(ln) }()
	defer func() {
		stub.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stubSrv.Shutdown(sctx)
	}()
	stubURL := "http://" + ln.Addr().String()

	legacy, stopLegacy, err := testenv.NewLegacy(map[string]string{
		"REDIS_URL":            redis.URL(),
		"BEDROCK_ENDPOINT_URL": stubURL,
		"SECRET_KEY":           "demo-secret",
		"GUNICORN_WORKERS":     "4",
	})
	if err != nil {
		return err
	}
	defer stopLegacy()

	dir, err := os.MkdirTemp("", "cutover-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// A fleet keeps its state in database 1 of the demo's Redis, apart from
	// the conversations in database 0.
	fleetURL := ""
	if *instances > 1 {
		fleetURL = "redis://" + redis.Addr() + "/1"
	}
	g, gctx := errgroup.WithContext(ctx)
	var files []string
	for i := range *instances {
		file := filepath.Join(dir, fmt.Sprintf("cutover-%d.yaml", i+1))
		y := demoConfig(port+i, adminPort+i, legacy.URL(), redis.URL(), stubURL, *share)
		if fleetURL != "" {
			y += demoFleet(fleetURL, i+1)
		}
		if err := os.WriteFile(file, []byte(y), 0o600); err != nil {
			return err
		}
		files = append(files, file)
		cfg, err := config.Load(file)
		if err != nil {
			return err
		}
		log := newLogger(stdout, cfg.Log.Level)
		if fleetURL != "" {
			log = log.With("instance", cfg.Fleet.Instance)
		}
		native, closeNative, err := buildNative(ctx, cfg, log, nil)
		if err != nil {
			return err
		}
		defer closeNative()
		srv, err := proxy.New(cfg, proxy.Options{Native: native, Logger: log, Version: version})
		if err != nil {
			return err
		}
		g.Go(func() error { return runServer(gctx, srv, log) })
	}
	fmt.Fprint(stderr, demoHelp(port, adminPort, legacy.URL(), redis.URL(), stubURL, files[0]))
	if fleetURL != "" {
		fmt.Fprint(stderr, demoFleetHelp(port, adminPort, *instances, fleetURL))
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	fmt.Fprintln(stderr, "demo: stopping everything")
	return err
}

// demoFleet is the fleet: section of instance i of a demo fleet.
func demoFleet(url string, i int) string {
	return fmt.Sprintf("fleet:\n  redis_url: %s\n  instance: demo-%d\n  heartbeat_ttl: 3s\n", url, i)
}

func demoFleetHelp(port, adminPort, n int, fleetURL string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "A fleet of %d instances shares its shares through %s (see docs/fleet.md):\n", n, fleetURL)
	for i := range n {
		fmt.Fprintf(&b, "  demo-%d  traffic http://127.0.0.1:%d  admin http://127.0.0.1:%d\n", i+1, port+i, adminPort+i)
	}
	last := "http://127.0.0.1:" + strconv.Itoa(adminPort+n-1)
	fmt.Fprintf(&b, `Try:
  CUTOVER_ADMIN_URL=%[1]s CUTOVER_ADMIN_TOKEN=%[2]s bin/cutover weights -reason try set chat 25   # on one instance...
  CUTOVER_ADMIN_URL=http://127.0.0.1:%[3]d CUTOVER_ADMIN_TOKEN=%[2]s bin/cutover weights get  # ...in force on every one
  CUTOVER_ADMIN_URL=%[1]s bin/cutover fleet
  CUTOVER_ADMIN_URL=%[1]s bin/cutover audit

`, last, demoAdminToken, adminPort)
	return b.String()
}

func envPort(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func demoConfig(port, adminPort int, legacyURL, redisURL, stubURL string, share float64) string {
	return fmt.Sprintf(`listen:
  addr: 127.0.0.1:%d
  served_by_header: X-Cutover-Served-By
shutdown:
  drain_delay: 100ms
admin:
  addr: 127.0.0.1:%d
  token: %s
legacy:
  url: %s
native:
  redis_url: %s
  bedrock_endpoint_url: %s
  secret_key: demo-secret
override:
  enabled: true
  allow_without_token: true # a local demo: curl -H "X-Cutover-Backend: native"
`, port, adminPort, demoAdminToken, legacyURL, redisURL, stubURL) +
		testenv.RoutesYAML(func(string) []string { return []string{fmt.Sprintf("native_percent: %g", share)} })
}

func demoHelp(port, adminPort int, legacyURL, redisURL, stubURL, file string) string {
	p := "http://127.0.0.1:" + strconv.Itoa(port)
	a := "http://127.0.0.1:" + strconv.Itoa(adminPort)
	return fmt.Sprintf(`
cutover demo is up (Ctrl-C stops everything)
  cutover (ALB target)  %[1]s      admin API %[2]s (token %[3]s)
  legacy app (gunicorn) %[4]s
  Bedrock stub          %[5]s
  Redis                 %[6]s
  config (hot reload)   %[7]s

Try:
  curl -si %[1]s/chat -H 'Content-Type: application/json' -d '{"message": "Hello there"}'
  curl -sN %[1]s/chat/stream -H 'Content-Type: application/json' -d '{"message": "Stream me a reply", "conversation_id": "demo-1"}'
  curl -s  %[1]s/conversations/demo-1
  curl -si %[1]s/chat -H 'X-Cutover-Backend: native' -H 'Content-Type: application/json' -d '{"message": "Served by Go"}'
  curl -s  %[2]s/admin/routes
  curl -s -X PUT %[2]s/admin/routes/chat -H 'Authorization: Bearer %[3]s' -d '{"native_percent": 50}'
  curl -s -X POST %[2]s/admin/rollback -H 'Authorization: Bearer %[3]s'
  curl -s  %[2]s/metrics | grep cutover_
  CUTOVER_ADMIN_URL=%[2]s CUTOVER_ADMIN_TOKEN=%[3]s bin/cutover weights get
Every response carries X-Cutover-Served-By: legacy|native in the demo.

`, p, a, demoAdminToken, legacyURL, stubURL, redisURL, file)
}
