package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// EnvPrefix prefixes environment overrides: admin.token is CUTOVER_ADMIN_TOKEN,
// legacy.url is CUTOVER_LEGACY_URL. Lists (stickiness) take comma-separated
// values; the route table can only be set in the file. An empty variable is
// unset, as with viper's AutomaticEnv (AllowEmptyEnv false), by the explicit
// filter in parse: CUTOVER_ADMIN_TOKEN= in a deployment template does not
// wipe the file's token.
const EnvPrefix = "CUTOVER"

// MaxShare is a share of 100 % in basis points.
const MaxShare = 10000

// Load reads the YAML file at path (may be "" for environment and defaults
// only), applies CUTOVER_* environment overrides and defaults, and validates.
// The error joins every problem found.
func Load(path string) (*Config, error) {
	c, err := Inspect(path)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Inspect is Load for validation tools (cutover check-config): besides the
// error joining every problem found, it returns the config as far as it
// could be decoded (fields that failed to decode keep their defaults), so
// the caller can add its own checks to the same report. The config is nil
// only when the file cannot be read or is not YAML; when the error is not
// nil the config must not be served.
func Inspect(path string) (*Config, error) {
	var data []byte
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		data = b
	}
	c, err := parse(data, os.Environ())
	if c != nil {
		c.file = path
		c.raw = data
	}
	return c, err
}

// Parse is Load on YAML bytes and an explicit environment (KEY=VALUE
// entries), for tests and for validating a file before it is swapped in.
func Parse(data []byte, environ []string) (*Config, error) {
	c, err := parse(data, environ)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// parse decodes and validates; the config is returned with the error
// (unless the YAML itself is unreadable) so that decode errors, such as an
// unknown key or a bad duration, are reported together with the validation
// of every field that did decode.
func parse(data []byte, environ []string) (*Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if len(bytes.TrimSpace(data)) > 0 {
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("parse config: %w", err)
		}
	}
	env := map[string]string{}
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && val != "" && strings.HasPrefix(k, EnvPrefix+"_") {
			env[k] = val
		}
	}
	for _, key := range envKeys(reflect.TypeFor[Config](), "") {
		name := EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
		if val, ok := env[name]; ok {
			if isListKey(key) {
				v.Set(key, splitList(val))
			} else {
				v.Set(key, val)
			}
		}
	}
	var c Config
	err := v.Unmarshal(&c, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
		dc.WeaklyTypedInput = true
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		)
	})
	return &c, errors.Join(decodeProblems(err, c.Routes), c.resolve())
}

// rootType is how mapstructure names the decoded root (Config itself).
var rootType = reflect.TypeFor[Config]().String()

// decodeProblems splits mapstructure's error into one error per field, each
// naming its field as validation does (a route by its name).
func decodeProblems(err error, routes []Route) error {
	if err == nil {
		return nil
	}
	var leaves []error
	var walk func(e error, field string)
	walk = func(e error, field string) {
		if de, ok := e.(*mapstructure.DecodeError); ok {
			name := de.Name()
			if name == rootType { // mapstructure 2.5 names the root by its type
				name = ""
			}
			walk(de.Unwrap(), name)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x, field)
			}
			return
		}
		if field != "" {
			leaves = append(leaves, fmt.Errorf("%s: %w", fieldLabel(field, routes), e))
			return
		}
		if u := errors.Unwrap(e); u != nil { // "decoding failed due to the following error(s)"
			walk(u, field)
			return
		}
		leaves = append(leaves, fmt.Errorf("decode config: %w", e))
	}
	walk(err, "")
	return errors.Join(leaves...)
}

// fieldLabel turns mapstructure's field name ("routes[2].breaker.interval")
// into validation's style (`route "chat": breaker.interval`).
func fieldLabel(name string, routes []Route) string {
	rest, ok := strings.CutPrefix(name, "routes[")
	if !ok {
		return name
	}
	idx, tail, ok := strings.Cut(rest, "]")
	if !ok {
		return name
	}
	var i int
	if _, err := fmt.Sscanf(idx, "%d", &i); err != nil {
		return name
	}
	label := fmt.Sprintf("route #%d", i+1)
	if i >= 0 && i < len(routes) && routes[i].Name != "" {
		label = fmt.Sprintf("route %q", routes[i].Name)
	}
	if tail = strings.TrimPrefix(tail, "."); tail != "" {
		return label + ": " + tail
	}
	return label
}

// envKeys lists the dotted keys of every field that an environment variable
// may set: scalars and lists of scalars, not the route table.
func envKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		key := prefix + tag
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Duration]():
			keys = append(keys, envKeys(ft, key+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			// the route table: file only
		default:
			keys = append(keys, key)
		}
	}
	return keys
}

func isListKey(key string) bool {
	switch key {
	case "stickiness", "shadow.redact", "shadow.redact_fields", "shadow.redact_patterns":
		return true
	}
	return false
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// DefaultStickiness is the identity source list used when none is configured.
var DefaultStickiness = []string{"header:X-User-Id", "path:conversation_id", "json:conversation_id", "session:conversation_id", "client_ip"}

// resolve fills defaults, resolves shares and sources, and validates.
func (c *Config) resolve() error {
	c.setDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	c.validateListeners(add)

	globalSources := parseSourcesInto("stickiness", c.Stickiness, c.Identity.SessionCookie, add)
	if c.Identity.TrustedHops < 0 {
		add("identity: trusted_hops %d is negative", c.Identity.TrustedHops)
	}
	if c.Identity.MaxBodyBytes < 0 {
		add("identity: max_body_bytes %d is negative", c.Identity.MaxBodyBytes)
	}

	names := map[string]bool{}
	for i := range c.Routes {
		r := &c.Routes[i]
		label := fmt.Sprintf("route %q", r.Name)
		if r.Name == "" {
			label = fmt.Sprintf("route #%d", i+1)
			add("%s: name is required", label)
		} else if names[r.Name] {
			add("%s: name is used by more than one route", label)
		}
		names[r.Name] = true
		r.validate(label, globalSources, c.Identity.SessionCookie, add)
		c.validateShadow(r, label, add)
	}
	c.validateShadowGlobal(add)
	c.validateLegacyBreaker(add)
	c.validateFleet(add)
	c.validateRollouts(add)
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	defDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	defInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.Listen.Addr, ":8080")
	def(&c.Listen.HealthPath, "/_cutover/health")
	defDur(&c.Listen.ReadHeaderTimeout, 10*time.Second)
	defDur(&c.Listen.BodyReadTimeout, 60*time.Second)
	defDur(&c.Listen.IdleTimeout, 75*time.Second)
	defInt(&c.Listen.MaxHeaderBytes, 1<<20)
	defDur(&c.Shutdown.DrainDelay, 15*time.Second)
	defDur(&c.Shutdown.Timeout, 60*time.Second)
	def(&c.Admin.Addr, "127.0.0.1:9090")
	def(&c.Legacy.URL, "http://127.0.0.1:8000")
	defDur(&c.Legacy.DialTimeout, 5*time.Second)
	defDur(&c.Legacy.ResponseHeaderTimeout, 120*time.Second)
	defDur(&c.Legacy.IdleConnTimeout, 30*time.Second)
	defInt(&c.Legacy.MaxIdleConnsPerHost, 256)
	def(&c.Native.RedisURL, "redis://127.0.0.1:6379/0")
	def(&c.Native.AWSRegion, "us-east-1")
	def(&c.Native.ModelID, "anthropic.claude-3-5-sonnet-20240620-v1:0")
	defInt(&c.Native.MaxMessageChars, 4000)
	defInt(&c.Native.HistoryTurns, 10)
	if c.Native.MaxContentLength == 0 {
		c.Native.MaxContentLength = 1 << 20
	}
	defDur(&c.Native.BedrockTimeout, 60*time.Second)
	defInt(&c.Native.BedrockMaxAttempts, 3)
	defInt(&c.Native.BedrockMaxIdleConns, 1024)
	defInt(&c.Native.RedisPoolSize, 256)
	defDur(&c.Native.RedisPoolTimeout, 6*time.Second)
	def(&c.Native.Headers.Server, "gunicorn") // handlers.GunicornHeaders
	def(&c.Override.Header, "X-Cutover-Backend")
	def(&c.Override.TokenHeader, "X-Cutover-Token")
	if len(c.Stickiness) == 0 {
		c.Stickiness = append([]string(nil), DefaultStickiness...)
	}
	def(&c.Identity.SessionCookie, "session")
	defInt(&c.Identity.TrustedHops, 1)
	if c.Identity.MaxBodyBytes == 0 {
		c.Identity.MaxBodyBytes = 64 << 10
	}
	defInt(&c.Shadow.Workers, 4)
	defInt(&c.Shadow.QueueSize, 256)
	if c.Shadow.MaxBodyBytes == 0 {
		c.Shadow.MaxBodyBytes = 1 << 20
	}
	if c.Shadow.MaxCaptureBytes == 0 {
		c.Shadow.MaxCaptureBytes = 1 << 20
	}
	defDur(&c.Shadow.Timeout, 30*time.Second)
	defInt(&c.Shadow.MaxInFlight, c.Shadow.Workers)
	defInt(&c.Shadow.ModelCallsPerMinute, 60)
	// Redaction lists stay zero: the shadow package's defaults apply.
	defInt(&c.Shadow.Store.RingSize, 1000)
	def(&c.Shadow.Store.JSONLPath, DefaultJSONLPath)
	def(&c.Shadow.Store.RedisStream, "cutover:diffs")
	if c.Shadow.Store.RedisMaxLen == 0 {
		c.Shadow.Store.RedisMaxLen = 10000
	}
	if c.Shadow.Store.RingMaxBytes == 0 {
		c.Shadow.Store.RingMaxBytes = 64 << 20
	}
	if c.Shadow.Store.RedisMaxBytes == 0 {
		c.Shadow.Store.RedisMaxBytes = 64 << 20
	}
	if c.Shadow.Store.JSONLMaxBytes == 0 {
		c.Shadow.Store.JSONLMaxBytes = 64 << 20
	}
	defInt(&c.Shadow.Noise.MinSamples, 5)
	if c.Shadow.Noise.Relative == 0 {
		c.Shadow.Noise.Relative = 0.2
	}
	if c.Shadow.Noise.Absolute == 0 {
		c.Shadow.Noise.Absolute = 0.03
	}
	def(&c.Log.Level, "info")
	defInt(&c.Runtime.GCPercent, 400)
	if c.Runtime.MemoryLimitRatio == 0 {
		c.Runtime.MemoryLimitRatio = 0.9
	}
	c.Fleet.setDefaults(c.Listen.Addr)
	c.Rollout.setDefaults()
	c.LegacyBreaker.setDefaults()
	for i := range c.Routes {
		r := &c.Routes[i]
		if len(r.Methods) == 0 {
			r.Methods = []string{"GET"}
		}
		for j, m := range r.Methods {
			r.Methods[j] = strings.ToUpper(strings.TrimSpace(m))
		}
		def(&r.Salt, r.Name)
		b := &r.Breaker
		if b.ConsecutiveFailures == 0 {
			b.ConsecutiveFailures = 5
		}
		if b.MinRequests == 0 {
			b.MinRequests = 20
		}
		defDur(&b.Interval, 60*time.Second)
		defDur(&b.OpenTimeout, 30*time.Second)
		if b.HalfOpenRequests == 0 {
			b.HalfOpenRequests = 1
		}
		def(&r.Shadow.Compare, "bytes")
		if len(r.Shadow.Headers) == 0 {
			r.Shadow.Headers = []string{"Content-Type"}
		}
	}
}

func (c *Config) validateListeners(add func(string, ...any)) {
	if !strings.HasPrefix(c.Listen.HealthPath, "/") {
		add("listen: health_path %q must start with /", c.Listen.HealthPath)
	}
	for name, d := range map[string]time.Duration{
		"listen: read_header_timeout": c.Listen.ReadHeaderTimeout, "listen: read_timeout": c.Listen.ReadTimeout,
		"listen: idle_timeout": c.Listen.IdleTimeout, "shutdown: drain_delay": c.Shutdown.DrainDelay,
		"shutdown: timeout": c.Shutdown.Timeout, "legacy: dial_timeout": c.Legacy.DialTimeout,
		"legacy: response_header_timeout": c.Legacy.ResponseHeaderTimeout, "legacy: idle_conn_timeout": c.Legacy.IdleConnTimeout,
		"native: bedrock_timeout": c.Native.BedrockTimeout, "shadow: timeout": c.Shadow.Timeout,
	} {
		if d < 0 {
			add("%s %s is negative", name, d)
		}
	}
	if c.Listen.MaxHeaderBytes < 0 {
		add("listen: max_header_bytes %d is negative", c.Listen.MaxHeaderBytes)
	}
	if h := c.Listen.ServedByHeader; h != "" && !validToken(h) {
		add("listen: served_by_header %q is not a valid header name", h)
	}
	u, err := url.Parse(c.Legacy.URL)
	switch {
	case err != nil:
		add("legacy: url %q: %w", c.Legacy.URL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		add("legacy: url %q must be http or https", c.Legacy.URL)
	case u.Host == "":
		add("legacy: url %q has no host", c.Legacy.URL)
	case u.RawQuery != "" || u.Fragment != "":
		add("legacy: url %q must not have a query or fragment", c.Legacy.URL)
	}
	if c.Legacy.MaxIdleConnsPerHost < 0 || c.Legacy.MaxConnsPerHost < 0 {
		add("legacy: max_idle_conns_per_host and max_conns_per_host must not be negative")
	}
	if !validToken(c.Override.Header) {
		add("override: header %q is not a valid header name", c.Override.Header)
	}
	if c.Override.Enabled && c.Override.Token == "" && !c.Override.AllowWithoutToken {
		add("override: enabled without a token lets any client force a backend: set override.token " +
			"(CUTOVER_OVERRIDE_TOKEN), or override.allow_without_token: true to accept that")
	}
	c.validateAdmin(add)
	if !validToken(c.Override.TokenHeader) {
		add("override: token_header %q is not a valid header name", c.Override.TokenHeader)
	}
	if c.Runtime.GCPercent < -1 || c.Runtime.MemoryLimitRatio < 0 || c.Runtime.MemoryLimitRatio > 1 {
		add("runtime: gc_percent %d must be -1 (off) or more, memory_limit_ratio %g from 0 to 1", c.Runtime.GCPercent, c.Runtime.MemoryLimitRatio)
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		add("log: level %q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Native.MaxMessageChars < 0 || c.Native.MaxContentLength < 0 || c.Native.BedrockMaxAttempts < 0 {
		add("native: max_message_chars, max_content_length and bedrock_max_attempts must not be negative")
	}
	if c.Native.BedrockMaxIdleConns < 0 {
		add("native: bedrock_max_idle_conns %d must not be negative", c.Native.BedrockMaxIdleConns)
	}
	if c.Native.RedisPoolSize < 0 {
		add("native: redis_pool_size %d must not be negative", c.Native.RedisPoolSize)
	}
	if c.Native.RedisPoolTimeout < 0 {
		add("native: redis_pool_timeout %s must not be negative", c.Native.RedisPoolTimeout)
	}
	if err := validFieldValue(c.Native.Headers.Server); err != nil {
		add("native: headers.server %q %w", c.Native.Headers.Server, err)
	}
	if e := c.Tracing.OTLPEndpoint; e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("tracing: otlp_endpoint %q is not an http(s) URL", e)
		}
	}
	if r := c.Tracing.Ratio(); r < 0 || r > 1 || r != r {
		add("tracing: sample_ratio %v is not in [0, 1]", r)
	}
}

// validFieldValue reports why s cannot be sent unchanged as a header field
// value: net/http would rewrite a CR or LF, and clients strip surrounding
// whitespace, so the client would not see s.
func validFieldValue(s string) error {
	if strings.TrimSpace(s) != s {
		return errors.New("has leading or trailing whitespace, which clients strip")
	}
	for i := 0; i < len(s); i++ {
		if ch := s[i]; ch < ' ' || ch > '~' {
			return fmt.Errorf("has byte %#02x at offset %d: a header value here must be printable ASCII", ch, i)
		}
	}
	return nil
}

func (r *Route) validate(label string, global []Source, sessionCookie string, add func(string, ...any)) {
	if r.Path == "" {
		add("%s: path is required", label)
	} else if !strings.HasPrefix(r.Path, "/") {
		add("%s: path %q must start with /", label, r.Path)
	}
	for _, m := range r.Methods {
		if !validToken(m) {
			add("%s: method %q is not a valid HTTP method", label, m)
		}
	}
	share, err := resolveBP(r.NativePercent, r.NativeBP, "native_percent", "native_bp")
	if err != nil {
		add("%s: %w", label, err)
	}
	r.Share = share
	r.Sources = global
	if len(r.Stickiness) > 0 {
		r.Sources = parseSourcesInto(label+": stickiness", r.Stickiness, sessionCookie, add)
	}
	b := r.Breaker
	if b.FailureRatio < 0 || b.FailureRatio > 1 {
		add("%s: breaker: failure_ratio %v is not in [0, 1]", label, b.FailureRatio)
	}
	if b.NativeTimeout < 0 {
		add("%s: breaker: native_timeout %s is negative", label, b.NativeTimeout)
	}
	if b.Interval < 0 || b.OpenTimeout < 0 {
		add("%s: breaker: interval and open_timeout must not be negative", label)
	}
	for _, s := range b.FailureStatuses {
		if s < 500 || s > 599 {
			add("%s: breaker: failure_statuses: %d is not a 5xx status", label, s)
		}
	}
}

func (c *Config) validateShadow(r *Route, label string, add func(string, ...any)) {
	s := &r.Shadow
	rate, err := resolveBP(s.RatePercent, s.RateBP, "rate_percent", "rate_bp")
	if err != nil {
		add("%s: shadow: %w", label, err)
	}
	s.Rate = rate
	noise, err := resolveBP(s.NoiseRatePercent, s.NoiseRateBP, "noise_rate_percent", "noise_rate_bp")
	if err != nil {
		add("%s: shadow: %w", label, err)
	}
	s.NoiseRate = noise
	for _, m := range s.Methods {
		if !validToken(strings.ToUpper(m)) {
			add("%s: shadow: method %q is not a valid HTTP method", label, m)
		}
	}
	switch s.Compare {
	case "bytes", "json":
	default:
		add("%s: shadow: compare %q is not bytes or json", label, s.Compare)
	}
	for _, p := range s.Ignore {
		if !strings.HasPrefix(p, "$") {
			add("%s: shadow: ignore %q is not a JSONPath (must start with $)", label, p)
		}
	}
	for i, n := range s.Normalize {
		if n.Regex == "" {
			add("%s: shadow: normalize #%d: regex is required", label, i+1)
		} else if _, err := compileRegex(n.Regex); err != nil {
			add("%s: shadow: normalize #%d: %w", label, i+1, err)
		}
	}
	if s.Safe && s.Rate > 0 && c.Shadow.IsolatedLegacyURL == "" {
		add("%s: shadow: safe with a rate needs shadow.isolated_legacy_url (writes never go to production legacy)", label)
	}
}

func (c *Config) validateShadowGlobal(add func(string, ...any)) {
	s := c.Shadow
	if s.Workers < 0 || s.QueueSize < 0 || s.MaxInFlight < 0 || s.ModelCallsPerMinute < 0 ||
		s.MaxBodyBytes < 0 || s.MaxCaptureBytes < 0 || s.Store.RingSize < 0 || s.Store.RedisMaxLen < 0 ||
		s.Store.JSONLMaxBytes < 0 || s.Store.RingMaxBytes < 0 || s.Store.RedisMaxBytes < 0 || s.Noise.MinSamples < 0 {
		add("shadow: sizes and limits must not be negative")
	}
	if s.MaxInFlight > s.Workers {
		add("shadow: max_in_flight %d is above workers %d, so it would never apply (raise workers or lower max_in_flight)", s.MaxInFlight, s.Workers)
	}
	for i, p := range s.RedactPatterns {
		if _, err := compileRegex(p); err != nil {
			add("shadow: redact_patterns #%d: %w", i+1, err)
		}
	}
	if s.Noise.Relative < 0 || s.Noise.Absolute < 0 || s.Noise.Absolute > 1 {
		add("shadow: noise: relative must not be negative and absolute must be in [0, 1]")
	}
	if u := s.Store.RedisURL; u != "" && !strings.HasPrefix(u, "redis://") && !strings.HasPrefix(u, "rediss://") && !strings.HasPrefix(u, "unix://") {
		add("shadow: store: redis_url %q is not a redis:// URL", u)
	}
	c.validateIsolation(add)
}

// validateAdmin refuses an admin listener reachable from other hosts without
// a token, and checks the names of admin.allowed_hosts and metrics_addr.
func (c *Config) validateAdmin(add func(string, ...any)) {
	a := c.Admin
	host, _, err := net.SplitHostPort(a.Addr)
	switch {
	case err != nil:
		add("admin: addr %q is not host:port", a.Addr)
	case a.Token == "" && !loopbackListen(host):
		add("admin: addr %q is not loopback and admin.token is empty: the admin API (diff records, shares) "+
			"would answer other hosts; set admin.token (CUTOVER_ADMIN_TOKEN) or listen on 127.0.0.1", a.Addr)
	}
	if a.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(a.MetricsAddr); err != nil {
			add("admin: metrics_addr %q is not host:port", a.MetricsAddr)
		}
	}
	for _, h := range a.AllowedHosts {
		if h == "" || strings.ContainsAny(h, ":/ []") {
			add("admin: allowed_hosts entry %q is not a host name (no port, no scheme)", h)
		}
	}
}

// loopbackListen says whether a listener on host answers this host only:
// localhost or a loopback address (not "" or 0.0.0.0, every interface).
func loopbackListen(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// validateIsolation refuses isolated shadow targets that are the production
// ones under another spelling: the same server (host compared after
// normalisation, every loopback spelling alike, default ports filled in)
// and, for Redis, the same database. URLs are not echoed: they may hold
// passwords. cutover serve also proves it at start (resolved names, and a
// canary key in the isolated Redis).
func (c *Config) validateIsolation(add func(string, ...any)) {
	s := c.Shadow
	if s.IsolatedLegacyURL != "" {
		iso, err := httpServer(s.IsolatedLegacyURL)
		if err != nil {
			add("shadow: isolated_legacy_url: %w", err)
		} else if prod, err := httpServer(c.Legacy.URL); err == nil && iso == prod {
			add("shadow: isolated_legacy_url is the production legacy app (server %s, as legacy.url): shadowed writes would reach production", iso)
		}
		if s.IsolatedRedisURL == "" {
			add("shadow: isolated_redis_url is required with isolated_legacy_url")
		}
	}
	if s.IsolatedRedisURL != "" {
		iso, err := parseRedisTarget(s.IsolatedRedisURL)
		if err != nil {
			add("shadow: isolated_redis_url: %w", err)
		} else if prod, err := parseRedisTarget(c.Native.RedisURL); err == nil && iso == prod {
			add("shadow: isolated_redis_url is the production Redis (%s, as native.redis_url): shadowed writes would rewrite users' conversations", iso)
		}
	}
}

// parseSourcesInto parses a stickiness list, reporting bad entries to add.
// cookie:<session cookie> is refused: the raw Flask session cookie carries a
// timestamp and signature that change on every refresh, so bucketing on it
// would move a user between backends (issue 3); its payload is the stable part.
func parseSourcesInto(label string, list []string, sessionCookie string, add func(string, ...any)) []Source {
	out := make([]Source, 0, len(list))
	for _, s := range list {
		src, err := ParseSource(s)
		if err != nil {
			add("%s: %w", label, err)
			continue
		}
		if src.Kind == SourceCookie && src.Name == sessionCookie {
			add("%s: source %q is the raw session cookie (identity.session_cookie), whose timestamp and signature change on every refresh; "+
				"use session:FIELD (e.g. session:conversation_id) or session to bucket on its decoded payload", label, s)
			continue
		}
		out = append(out, src)
	}
	return out
}

// resolveBP turns a percent-or-basis-points pair into basis points.
func resolveBP(pct *float64, bp *int, pctName, bpName string) (int, error) {
	switch {
	case pct != nil && bp != nil:
		p, err := PercentToBP(*pct)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", pctName, err)
		}
		if p != *bp {
			return 0, fmt.Errorf("%s %v and %s %d disagree; give one", pctName, *pct, bpName, *bp)
		}
		return p, nil
	case pct != nil:
		p, err := PercentToBP(*pct)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", pctName, err)
		}
		return p, nil
	case bp != nil:
		if *bp < 0 || *bp > MaxShare {
			return 0, fmt.Errorf("%s %d is not in [0, %d]", bpName, *bp, MaxShare)
		}
		return *bp, nil
	}
	return 0, nil
}

// PercentToBP converts a percentage with at most two decimals to basis points.
func PercentToBP(p float64) (int, error) {
	if math.IsNaN(p) || p < 0 || p > 100 {
		return 0, fmt.Errorf("%v is not in [0, 100]", p)
	}
	bp := math.Round(p * 100)
	if math.Abs(bp-p*100) > 1e-6 {
		return 0, fmt.Errorf("%v has more than two decimals", p)
	}
	return int(bp), nil
}

// BPToPercent formats basis points as a percentage (12.5 for 1250).
func BPToPercent(bp int) float64 { return float64(bp) / 100 }

// validToken reports whether s is a non-empty RFC 7230 token (header names, methods).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(ch)) {
			return false
		}
	}
	return true
}

// Clone returns a deep copy that may be changed freely.
func (c *Config) Clone() *Config {
	n := *c
	n.Stickiness = append([]string(nil), c.Stickiness...)
	n.Routes = make([]Route, len(c.Routes))
	for i, r := range c.Routes {
		r.Methods = append([]string(nil), r.Methods...)
		r.Stickiness = append([]string(nil), r.Stickiness...)
		r.Sources = append([]Source(nil), r.Sources...)
		r.Breaker.FailureStatuses = append([]int(nil), r.Breaker.FailureStatuses...)
		r.Shadow.Methods = append([]string(nil), r.Shadow.Methods...)
		r.Shadow.Ignore = append([]string(nil), r.Shadow.Ignore...)
		r.Shadow.Normalize = append([]Normalize(nil), r.Shadow.Normalize...)
		r.Shadow.Headers = append([]string(nil), r.Shadow.Headers...)
		if r.Rollout != nil {
			p := *r.Rollout
			p.Steps = append([]string(nil), p.Steps...)
			r.Rollout = &p
		}
		n.Routes[i] = r
	}
	n.Shadow.Redact = append([]string(nil), c.Shadow.Redact...)
	n.Shadow.RedactFields = append([]string(nil), c.Shadow.RedactFields...)
	n.Shadow.RedactPatterns = append([]string(nil), c.Shadow.RedactPatterns...)
	n.LegacyBreaker.FailureStatuses = append([]int(nil), c.LegacyBreaker.FailureStatuses...)
	n.Rollout.Webhooks = append([]Webhook(nil), c.Rollout.Webhooks...)
	return &n
}

// Route returns the route named name, or nil.
func (c *Config) Route(name string) *Route {
	for i := range c.Routes {
		if c.Routes[i].Name == name {
			return &c.Routes[i]
		}
	}
	return nil
}
