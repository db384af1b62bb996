package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDefaults(t *testing.T) {
	c, err := Parse(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"listen.addr", c.Listen.Addr, ":8080"},
		{"health_path", c.Listen.HealthPath, "/_cutover/health"},
		{"idle_timeout above the ALB's 60s", c.Listen.IdleTimeout, 75 * time.Second},
		{"admin loopback", c.Admin.Addr, "127.0.0.1:9090"},
		{"admin token empty", c.Admin.Token, ""},
		{"legacy.url", c.Legacy.URL, "http://127.0.0.1:8000"},
		{"override off", c.Override.Enabled, false},
		{"override header", c.Override.Header, "X-Cutover-Backend"},
		{"stickiness", strings.Join(c.Stickiness, ","), strings.Join(DefaultStickiness, ",")},
		{"trusted hops", c.Identity.TrustedHops, 1},
		{"access log on", c.Log.AccessLog(), true},
		{"persist on", c.Admin.PersistShares(), true},
		{"drain delay", c.Shutdown.DrainDelay, 15 * time.Second},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestRouteShares(t *testing.T) {
	tests := []struct {
		give    string
		want    int
		wantErr string
	}{
		{give: "native_percent: 12.5", want: 1250},
		{give: "native_percent: 0.01", want: 1},
		{give: "native_percent: 100", want: 10000},
		{give: "native_bp: 333", want: 333},
		{give: "native_percent: 5\n    native_bp: 500", want: 500},
		{give: "", want: 0},
		{give: "native_percent: 12.345", wantErr: `route "chat": native_percent: 12.345 has more than two decimals`},
		{give: "native_percent: -1", wantErr: `route "chat": native_percent: -1 is not in [0, 100]`},
		{give: "native_bp: 10001", wantErr: `route "chat": native_bp 10001 is not in [0, 10000]`},
		{give: "native_percent: 5\n    native_bp: 501", wantErr: `disagree`},
		{give: "native_percent: lots", wantErr: `native_percent`},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			c, err := Parse([]byte("routes:\n  - name: chat\n    path: /chat\n    methods: [post]\n    "+tt.give+"\n"), nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Route("chat").Share; got != tt.want {
				t.Errorf("share = %d, want %d", got, tt.want)
			}
			if m := c.Route("chat").Methods; len(m) != 1 || m[0] != "POST" {
				t.Errorf("methods = %v", m)
			}
		})
	}
}

// Validation reports every problem at once, each naming its route and field.
func TestValidationReportsEverything(t *testing.T) {
	yaml := `
listen:
  health_path: health
  idle_timeout: -1s
legacy:
  url: ftp://legacy
override:
  header: "bad header"
stickiness: [header:X-User-Id, nonsense:x]
routes:
  - name: chat
    path: chat
    native_percent: 120
    breaker:
      failure_ratio: 2
      failure_statuses: [404]
    shadow:
      rate_bp: 20000
      compare: xml
      safe: true
  - name: chat
    path: /c
    stickiness: [json:]
  - path: /x
log:
  level: loud
`
	_, err := Parse([]byte(yaml), nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`listen: health_path "health" must start with /`,
		`listen: idle_timeout -1s is negative`,
		`legacy: url "ftp://legacy" must be http or https`,
		`override: header "bad header" is not a valid header name`,
		`stickiness: source "nonsense:x"`,
		`route "chat": path "chat" must start with /`,
		`route "chat": native_percent: 120 is not in [0, 100]`,
		`route "chat": breaker: failure_ratio 2 is not in [0, 1]`,
		`route "chat": breaker: failure_statuses: 404 is not a 5xx status`,
		`route "chat": shadow: rate_bp 20000 is not in [0, 10000]`,
		`route "chat": shadow: compare "xml" is not bytes or json`,
		`route "chat": name is used by more than one route`,
		`route "chat": stickiness: source "json:"`,
		`route #3: name is required`,
		`log: level "loud"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if n := len(strings.Split(err.Error(), "\n")); n < 15 {
		t.Errorf("%d problems reported:\n%v", n, err)
	}
}

func TestUnknownKeysRejected(t *testing.T) {
	_, err := Parse([]byte("listen:\n  adress: x\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "adress") {
		t.Errorf("typo accepted: %v", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	env := []string{
		"CUTOVER_ADMIN_TOKEN=from-env", "CUTOVER_LEGACY_URL=http://10.0.0.5:8000", "CUTOVER_OVERRIDE_ENABLED=true",
		"CUTOVER_OVERRIDE_TOKEN=qa-token",
		"CUTOVER_SHUTDOWN_DRAIN_DELAY=30s", "CUTOVER_STICKINESS=header:X-A, client_ip", "CUTOVER_NATIVE_HISTORY_TURNS=4",
		"OTHER_VAR=1",
	}
	c, err := Parse([]byte("admin:\n  token: from-file\nlegacy:\n  url: http://file\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.Token != "from-env" || c.Legacy.URL != "http://10.0.0.5:8000" || !c.Override.Enabled ||
		c.Shutdown.DrainDelay != 30*time.Second || strings.Join(c.Stickiness, "|") != "header:X-A|client_ip" || c.Native.HistoryTurns != 4 {
		t.Errorf("env not applied: %+v", c)
	}
	// An empty variable is unset, as with viper's AutomaticEnv: it must not
	// replace the file's admin token with "" (every admin call refused).
	c, err = Parse([]byte("admin:\n  token: from-file\n"), []string{"CUTOVER_ADMIN_TOKEN=", "CUTOVER_LEGACY_URL="})
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.Token != "from-file" || c.Legacy.URL == "" {
		t.Errorf("empty env vars applied: token %q, legacy url %q", c.Admin.Token, c.Legacy.URL)
	}
	if _, err := Parse(nil, []string{"CUTOVER_SHUTDOWN_DRAIN_DELAY=soon"}); err == nil {
		t.Error("a bad env value was accepted")
	}
}

func TestShadowSafeNeedsIsolatedTarget(t *testing.T) {
	base := "routes:\n  - name: chat\n    path: /chat\n    methods: [POST]\n    shadow:\n      rate_percent: 10\n      safe: true\n"
	if _, err := Parse([]byte(base), nil); err == nil || !strings.Contains(err.Error(), "isolated_legacy_url") {
		t.Errorf("err = %v", err)
	}
	ok := base + "shadow:\n  isolated_legacy_url: http://127.0.0.1:8001\n  isolated_redis_url: redis://127.0.0.1:6380/0\n"
	c, err := Parse([]byte(ok), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Route("chat").Shadow.Rate != 1000 {
		t.Errorf("shadow rate %d", c.Route("chat").Shadow.Rate)
	}
	same := base + "legacy:\n  url: http://127.0.0.1:8001\nshadow:\n  isolated_legacy_url: http://127.0.0.1:8001\n  isolated_redis_url: redis://x:1/0\n"
	if _, err := Parse([]byte(same), nil); err == nil || !strings.Contains(err.Error(), "isolated_legacy_url is the production legacy app") {
		t.Errorf("isolated target = production accepted: %v", err)
	}
}

func TestExampleConfigLoads(t *testing.T) {
	c, err := Load("../docs/config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Routes) != 6 || c.Route("get_conversation").Path != "/conversations/<conversation_id>" {
		t.Errorf("example routes: %+v", c.Routes)
	}
}

func TestSetSharesKeepsTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	orig := `# top comment
routes:
  # the chat route
  - name: chat
    path: /chat
    methods: [POST]
    native_percent: 5 # ramping
  - name: models
    path: /models
    native_bp: 100
  - name: health
    path: /health
`
	if err := os.WriteFile(path, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SetShares(path, map[string]int{"chat": 1250, "models": 0, "health": 1}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	for _, want := range []string{"# top comment", "# the chat route", "native_percent: 12.5 # ramping", "native_bp: 0", "native_percent: 0.01"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("rewritten file lacks %q:\n%s", want, data)
		}
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode changed to %v", st.Mode().Perm())
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Route("chat").Share != 1250 || c.Route("models").Share != 0 || c.Route("health").Share != 1 {
		t.Errorf("shares after rewrite: %d %d %d", c.Route("chat").Share, c.Route("models").Share, c.Route("health").Share)
	}
	if err := SetShares(path, map[string]int{"nope": 1}); err == nil {
		t.Error("unknown route accepted")
	}
	if err := SetShares("", map[string]int{"chat": 1}); !errors.Is(err, ErrNoFile) {
		t.Errorf("err = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestWatcher(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	write := func(s string) {
		tmp := filepath.Join(dir, "tmp")
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	valid := func(pct string) string {
		return "routes:\n  - name: chat\n    path: /chat\n    native_percent: " + pct + "\n"
	}
	write(valid("1"))
	var (
		mu      sync.Mutex
		applied []int
		results []error
	)
	w := &Watcher{Path: path, Debounce: 10 * time.Millisecond,
		Apply: func(c *Config) error {
			if c.Route("chat").Share == 4200 {
				return errors.New("refused by the caller")
			}
			mu.Lock()
			applied = append(applied, c.Route("chat").Share)
			mu.Unlock()
			return nil
		},
		Result: func(err error) { mu.Lock(); results = append(results, err); mu.Unlock() },
	}
	data, _ := os.ReadFile(path)
	w.Prime(data)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	wait := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			got := len(results)
			mu.Unlock()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d reload results, want %d", got, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// No wait for the watch to start: Run compares the file once after
	// starting it, so this write is seen either way.
	write(valid("2"))
	wait(1)
	write(valid("300"))
	wait(2)
	write(valid("42"))
	wait(3)
	write(valid("3"))
	wait(4)
	mu.Lock()
	if len(applied) != 2 || applied[0] != 200 || applied[1] != 300 {
		t.Errorf("applied %v, want [200 300]", applied)
	}
	if results[0] != nil || results[1] == nil || results[2] == nil || results[3] != nil {
		t.Errorf("results %v, want [nil err err nil]", results)
	}
	mu.Unlock()
	if err := w.Reload(true); err != nil {
		t.Errorf("forced reload: %v", err)
	}
}

func TestShadowDefaultsAndLimits(t *testing.T) {
	c, err := Parse(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Shadow
	if s.MaxInFlight != s.Workers || s.Workers != 4 {
		t.Errorf("max_in_flight %d, workers %d: want max_in_flight = workers = 4", s.MaxInFlight, s.Workers)
	}
	if s.Store.JSONLPath != DefaultJSONLPath || s.Store.JSONLFile() != "cutover-diffs.jsonl" {
		t.Errorf("jsonl_path %q (file %q), want the default file", s.Store.JSONLPath, s.Store.JSONLFile())
	}
	// Zero redaction lists: the shadow package's defaults apply (config
	// keeps no copy of them).
	if s.Redact != nil || s.RedactFields != nil || s.RedactPatterns != nil {
		t.Errorf("redaction lists defaulted in config: %q %q %q", s.Redact, s.RedactFields, s.RedactPatterns)
	}

	c, err = Parse([]byte("shadow:\n  workers: 2\n  store: {jsonl_path: \"-\"}\n"), []string{
		"CUTOVER_SHADOW_REDACT_FIELDS=session_token, pin", "CUTOVER_SHADOW_REDACT_PATTERNS=sk-[a-z0-9]+"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Shadow.MaxInFlight != 2 || c.Shadow.Store.JSONLFile() != "" {
		t.Errorf("max_in_flight %d (want workers, 2), jsonl file %q (want none)", c.Shadow.MaxInFlight, c.Shadow.Store.JSONLFile())
	}
	if strings.Join(c.Shadow.RedactFields, "|") != "session_token|pin" || strings.Join(c.Shadow.RedactPatterns, "|") != "sk-[a-z0-9]+" {
		t.Errorf("redact_fields %q, redact_patterns %q from the environment", c.Shadow.RedactFields, c.Shadow.RedactPatterns)
	}

	_, err = Parse([]byte("shadow:\n  workers: 4\n  max_in_flight: 16\n  redact_patterns: [\"(\"]\n"), nil)
	for _, want := range []string{"shadow: max_in_flight 16 is above workers 4", "shadow: redact_patterns #1:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
	if c, err := Parse([]byte("shadow:\n  workers: 8\n  max_in_flight: 2\n"), nil); err != nil || c.Shadow.MaxInFlight != 2 {
		t.Errorf("max_in_flight below workers: %v", err)
	}
}

// A file rewritten in place is empty for a moment; that moment is refused
// (an empty file is a valid config with no routes), and the config in force
// stays until the write completes.
func TestWatcherRefusesEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	full := "routes:\n  - name: chat\n    path: /chat\n    native_percent: 5\n"
	if err := os.WriteFile(path, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	var applied []int
	w := &Watcher{Path: path, Apply: func(c *Config) error { applied = append(applied, len(c.Routes)); return nil }}
	for _, tt := range []struct {
		give    string
		wantErr error
	}{
		{"", ErrEmptyFile},
		{" \n\t\n", ErrEmptyFile},
		{full, nil},
	} {
		if err := os.WriteFile(path, []byte(tt.give), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := w.Reload(false); !errors.Is(err, tt.wantErr) {
			t.Errorf("reload of %q: %v, want %v", tt.give, err, tt.wantErr)
		}
	}
	if len(applied) != 1 || applied[0] != 1 {
		t.Errorf("applied configs with %v routes, want [1]", applied)
	}
}
