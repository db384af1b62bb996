package deploy_test

import (
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/config"
)

// taskDefinition is the part of an ECS task definition the tests read.
type taskDefinition struct {
	NetworkMode             string      `json:"networkMode"`
	RequiresCompatibilities []string    `json:"requiresCompatibilities"`
	ExecutionRoleArn        string      `json:"executionRoleArn"`
	TaskRoleArn             string      `json:"taskRoleArn"`
	ContainerDefinitions    []container `json:"containerDefinitions"`
}

type container struct {
	Name         string   `json:"name"`
	Essential    bool     `json:"essential"`
	Command      []string `json:"command"`
	PortMappings []struct {
		ContainerPort int `json:"containerPort"`
	} `json:"portMappings"`
	Environment []struct {
		Name, Value string
	} `json:"environment"`
	Secrets []struct {
		Name      string `json:"name"`
		ValueFrom string `json:"valueFrom"`
	} `json:"secrets"`
	DependsOn []struct {
		ContainerName string `json:"containerName"`
		Condition     string `json:"condition"`
	} `json:"dependsOn"`
	HealthCheck *struct {
		Command []string `json:"command"`
	} `json:"healthCheck"`
	StopTimeout      int `json:"stopTimeout"`
	LogConfiguration struct {
		LogDriver string            `json:"logDriver"`
		Options   map[string]string `json:"options"`
	} `json:"logConfiguration"`
}

func (c container) env() map[string]string {
	m := map[string]string{}
	for _, e := range c.Environment {
		m[e.Name] = e.Value
	}
	return m
}

func (c container) secret(name string) string {
	for _, s := range c.Secrets {
		if s.Name == name {
			return s.ValueFrom
		}
	}
	return ""
}

func (c container) exposes(port int) bool {
	for _, p := range c.PortMappings {
		if p.ContainerPort == port {
			return true
		}
	}
	return false
}

// targetGroup is alb-target-group.json: the create-target-group input and
// the target group's and load balancer's attributes.
type targetGroup struct {
	TargetGroup struct {
		Protocol            string `json:"Protocol"`
		Port                int    `json:"Port"`
		TargetType          string `json:"TargetType"`
		HealthCheckPath     string `json:"HealthCheckPath"`
		HealthCheckPort     string `json:"HealthCheckPort"`
		HealthCheckInterval int    `json:"HealthCheckIntervalSeconds"`
		HealthCheckTimeout  int    `json:"HealthCheckTimeoutSeconds"`
		Matcher             struct {
			HTTPCode string `json:"HttpCode"`
		} `json:"Matcher"`
	} `json:"TargetGroup"`
	TargetGroupAttributes  []attribute `json:"TargetGroupAttributes"`
	LoadBalancerAttributes []attribute `json:"LoadBalancerAttributes"`
}

type attribute struct{ Key, Value string }

func attrSeconds(t *testing.T, attrs []attribute, key string) time.Duration {
	t.Helper()
	for _, a := range attrs {
		if a.Key == key {
			n, err := strconv.Atoi(a.Value)
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			return time.Duration(n) * time.Second
		}
	}
	t.Fatalf("attribute %s is missing", key)
	return 0
}

type service struct {
	TaskDefinition                string `json:"taskDefinition"`
	HealthCheckGracePeriodSeconds int    `json:"healthCheckGracePeriodSeconds"`
	DeploymentConfiguration       struct {
		MinimumHealthyPercent int `json:"minimumHealthyPercent"`
	} `json:"deploymentConfiguration"`
	LoadBalancers []struct {
		ContainerName string `json:"containerName"`
		ContainerPort int    `json:"containerPort"`
	} `json:"loadBalancers"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// fargateMaxStopTimeout is the largest stopTimeout Fargate accepts.
const fargateMaxStopTimeout = 120 * time.Second

// albIdleTimeoutDefault is the ALB's idle timeout when the attribute is unset.
const albIdleTimeoutDefault = 60 * time.Second

func portOf(t *testing.T, what, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%s %q: %v", what, hostport, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s %q: %v", what, hostport, err)
	}
	return n
}

var arnFrom = regexp.MustCompile(`^arn:aws:(ssm:[a-z0-9-]+:\d{12}:parameter/|secretsmanager:[a-z0-9-]+:\d{12}:secret:)\S+$`)

// The ECS example is the config cutover would run with: cutover.yaml (baked
// into the image) plus the task definition's environment, loaded by config
// itself. Its ports, health check, drain and stop timings, idle timeouts,
// secrets and logs must agree with that config and with each other.
func TestECSExample(t *testing.T) {
	var td taskDefinition
	readJSON(t, filepath.Join("ecs", "task-definition.json"), &td)
	var tg targetGroup
	readJSON(t, filepath.Join("ecs", "alb-target-group.json"), &tg)
	var svc service
	readJSON(t, filepath.Join("ecs", "service.json"), &svc)

	var cut, legacy container
	for _, c := range td.ContainerDefinitions {
		switch c.Name {
		case "cutover":
			cut = c
		case "legacy":
			legacy = c
		}
	}
	if cut.Name == "" || legacy.Name == "" {
		t.Fatal("the task needs a cutover and a legacy container")
	}
	yaml, err := os.ReadFile(filepath.Join("ecs", "cutover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cut.Command, " "); got != "serve -config /etc/cutover/cutover.yaml" {
		t.Errorf("cutover command %q, want the Dockerfile's serve -config /etc/cutover/cutover.yaml", got)
	}
	var environ []string
	for k, v := range cut.env() {
		environ = append(environ, k+"="+v)
	}
	for _, s := range cut.Secrets { // their values come from SSM or Secrets Manager at start
		environ = append(environ, s.Name+"=secret-from-"+s.ValueFrom)
	}
	cfg, err := config.Parse(yaml, environ)
	if err != nil {
		t.Fatalf("the task's config does not load: %v", err)
	}

	// Every CUTOVER_ variable is a real setting (a typo would be ignored):
	// changing its value changes the config, or makes it invalid.
	for i, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		changed := slices.Clone(environ)
		changed[i] = name + "=" + value + "0"
		alt, err := config.Parse(yaml, changed)
		if err == nil && reflect.DeepEqual(alt, cfg) {
			t.Errorf("%s is not a cutover setting: changing it changes nothing", name)
		}
	}

	// The ALB reaches cutover's traffic port and checks its health path.
	traffic := portOf(t, "listen.addr", cfg.Listen.Addr)
	if tg.TargetGroup.Port != traffic || !cut.exposes(traffic) {
		t.Errorf("target group port %d, cutover listens on %d (exposed: %v)", tg.TargetGroup.Port, traffic, cut.exposes(traffic))
	}
	if tg.TargetGroup.HealthCheckPath != cfg.Listen.HealthPath || tg.TargetGroup.HealthCheckPort != "traffic-port" ||
		tg.TargetGroup.Matcher.HTTPCode != "200" {
		t.Errorf("health check %s on %s matching %s, want %s on traffic-port matching 200",
			tg.TargetGroup.HealthCheckPath, tg.TargetGroup.HealthCheckPort, tg.TargetGroup.Matcher.HTTPCode, cfg.Listen.HealthPath)
	}
	if tg.TargetGroup.TargetType != "ip" || td.NetworkMode != "awsvpc" {
		t.Errorf("target type %s with network mode %s: Fargate tasks are ip targets in awsvpc", tg.TargetGroup.TargetType, td.NetworkMode)
	}
	if tg.TargetGroup.HealthCheckTimeout >= tg.TargetGroup.HealthCheckInterval {
		t.Errorf("health check timeout %ds is not below its interval %ds", tg.TargetGroup.HealthCheckTimeout, tg.TargetGroup.HealthCheckInterval)
	}
	if len(svc.LoadBalancers) != 1 || svc.LoadBalancers[0].ContainerName != "cutover" || svc.LoadBalancers[0].ContainerPort != traffic {
		t.Errorf("the service's load balancer targets %+v, want container cutover port %d", svc.LoadBalancers, traffic)
	}
	// A task whose fleet store does not answer at start fails its health
	// check for up to fleet.startup_sync_bound, then serves its file's
	// shares: ECS must not replace it for that meanwhile.
	if grace := time.Duration(svc.HealthCheckGracePeriodSeconds) * time.Second; cfg.Fleet.StartupSyncBound > 0 && grace < cfg.Fleet.StartupSyncBound {
		t.Errorf("healthCheckGracePeriodSeconds %v is below fleet.startup_sync_bound %v", grace, cfg.Fleet.StartupSyncBound)
	}
	if svc.DeploymentConfiguration.MinimumHealthyPercent < 100 {
		t.Errorf("minimumHealthyPercent %d: a deployment would drop capacity while tasks drain", svc.DeploymentConfiguration.MinimumHealthyPercent)
	}

	// Draining: the deregistration delay is cutover's drain delay, and ECS
	// waits for the drain and for in-flight requests before SIGKILL.
	dereg := attrSeconds(t, tg.TargetGroupAttributes, "deregistration_delay.timeout_seconds")
	if dereg != cfg.Shutdown.DrainDelay {
		t.Errorf("deregistration delay %v, shutdown.drain_delay %v: they must match", dereg, cfg.Shutdown.DrainDelay)
	}
	stop := time.Duration(cut.StopTimeout) * time.Second
	if need := cfg.Shutdown.DrainDelay + cfg.Shutdown.Timeout; stop < need || stop > fargateMaxStopTimeout {
		t.Errorf("cutover stopTimeout %v: it must cover drain_delay + shutdown.timeout (%v) and stay within Fargate's %v",
			stop, need, fargateMaxStopTimeout)
	}

	// Idle timeouts: cutover keeps idle connections longer than the ALB does.
	idle := albIdleTimeoutDefault
	for _, a := range tg.LoadBalancerAttributes {
		if a.Key == "idle_timeout.timeout_seconds" {
			idle = attrSeconds(t, tg.LoadBalancerAttributes, a.Key)
		}
	}
	if cfg.Listen.IdleTimeout <= idle {
		t.Errorf("listen.idle_timeout %v is not above the ALB's idle timeout %v: the ALB would reuse closed connections (502)", cfg.Listen.IdleTimeout, idle)
	}

	// Legacy beside cutover: loopback only, healthy before cutover starts,
	// stopped after it (ECS stops dependents first).
	lu, err := url.Parse(cfg.Legacy.URL)
	if err != nil {
		t.Fatal(err)
	}
	bind := legacy.env()["BIND"]
	if lu.Hostname() != "127.0.0.1" || bind != lu.Host {
		t.Errorf("legacy.url %s, gunicorn BIND %q: legacy must listen on the task's loopback where cutover calls it", cfg.Legacy.URL, bind)
	}
	if len(legacy.PortMappings) != 0 {
		t.Error("legacy has port mappings: only cutover is to be reachable from outside the task")
	}
	healthy := false
	for _, d := range cut.DependsOn {
		healthy = healthy || (d.ContainerName == "legacy" && d.Condition == "HEALTHY")
	}
	if !healthy || legacy.HealthCheck == nil || !strings.Contains(strings.Join(legacy.HealthCheck.Command, " "), "http://"+lu.Host+"/health") {
		t.Error("cutover must depend on legacy being HEALTHY, by a health check of legacy's /health")
	}
	if !cut.Essential || !legacy.Essential {
		t.Error("both containers are essential: the task is unusable without either")
	}

	// Native and legacy share the app's settings and its session secret.
	le := legacy.env()
	for _, same := range []struct{ name, native, legacy string }{
		{"Redis URL", cfg.Native.RedisURL, le["REDIS_URL"]},
		{"AWS region", cfg.Native.AWSRegion, le["AWS_REGION"]},
		{"model id", cfg.Native.ModelID, le["BEDROCK_MODEL_ID"]},
	} {
		if same.native != same.legacy {
			t.Errorf("%s: native %q, legacy %q", same.name, same.native, same.legacy)
		}
	}
	if s := cut.secret("CUTOVER_NATIVE_SECRET_KEY"); s == "" || s != legacy.secret("SECRET_KEY") {
		t.Errorf("native.secret_key from %q, legacy SECRET_KEY from %q: one secret for both", s, legacy.secret("SECRET_KEY"))
	}
	if cut.secret("CUTOVER_ADMIN_TOKEN") == "" || cfg.Admin.Token == "" {
		t.Error("the admin token must come from a secret")
	}
	admin := portOf(t, "admin.addr", cfg.Admin.Addr)
	if !cut.exposes(admin) {
		t.Errorf("admin port %d (metrics) is not exposed for the scraper", admin)
	}
	if cfg.Admin.PersistShares() {
		t.Error("admin.persist must be false: the config is in the read-only image")
	}
	// Several tasks: one set of shares in a fleet store apart from the
	// conversations (docs/fleet.md).
	if fu, nu := cfg.Fleet.RedisURL, cfg.Native.RedisURL; fu == "" || redisHost(t, fu) == redisHost(t, nu) {
		t.Errorf("fleet.redis_url %q: a fleet of tasks needs one, apart from the conversations' %q", fu, nu)
	}

	// Secrets come from SSM or Secrets Manager, never from plain environment.
	if td.ExecutionRoleArn == "" || td.TaskRoleArn == "" {
		t.Error("the execution role reads the secrets and writes logs; the task role calls Bedrock: both are needed")
	}
	secretName := regexp.MustCompile(`(?i)(token|secret|password|key)$`)
	for _, c := range td.ContainerDefinitions {
		for _, e := range c.Environment {
			if secretName.MatchString(e.Name) {
				t.Errorf("container %s: %s is in plain environment; use secrets", c.Name, e.Name)
			}
		}
		for _, s := range c.Secrets {
			if !arnFrom.MatchString(s.ValueFrom) {
				t.Errorf("container %s: secret %s from %q, want an SSM parameter or Secrets Manager ARN", c.Name, s.Name, s.ValueFrom)
			}
		}
		lc := c.LogConfiguration
		if lc.LogDriver != "awslogs" || lc.Options["awslogs-group"] == "" || lc.Options["awslogs-region"] == "" || lc.Options["awslogs-stream-prefix"] == "" {
			t.Errorf("container %s: logs %+v, want awslogs with group, region and stream prefix", c.Name, lc)
		}
	}
}

func redisHost(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatalf("redis url %q: %v", u, err)
	}
	return p.Host
}
