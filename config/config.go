// Package config is cutover's typed configuration: a YAML file plus CUTOVER_*
// environment overrides, defaults, validation that reports every problem at
// once, hot reload and atomic persistence of traffic shares. It is the only
// package of the project that imports viper.
//
// Every field documents its default; a zero value always means "use the
// default", which Load fills in, so code reading a loaded Config sees the
// effective values.
package config

import (
	"time"
)

// Config is the whole configuration of one cutover process. A *Config
// returned by Load or Parse is never mutated afterwards; callers that want a
// changed copy use Clone.
type Config struct {
	// Listen is the traffic port that the ALB targets.
	Listen Listen `mapstructure:"listen" json:"listen"`
	// Shutdown controls the graceful drain on SIGTERM.
	Shutdown Shutdown `mapstructure:"shutdown" json:"shutdown"`
	// Admin is the separate admin/metrics listener.
	Admin Admin `mapstructure:"admin" json:"admin"`
	// Legacy is the Flask backend under gunicorn.
	Legacy Legacy `mapstructure:"legacy" json:"legacy"`
	// Native configures the native Go handlers (mirrors the legacy app's env).
	Native Native `mapstructure:"native" json:"native"`
	// Override is the QA header that forces a backend.
	Override Override `mapstructure:"override" json:"override"`
	// Stickiness lists, in order, where the bucket identity is taken from.
	// Each entry is one of:
	//   header:NAME        value of request header NAME
	//   path:PARAM         URL parameter PARAM of the matched route (e.g. path:conversation_id)
	//   json:FIELD         top-level FIELD of a JSON request body (string or number)
	//   session:FIELD      FIELD of the Flask session cookie's payload (never the raw cookie)
	//   session            the whole Flask session payload (its JSON)
	//   cookie:NAME        raw value of cookie NAME (only for cookies that do not change per response)
	//   client_ip          the client address from X-Forwarded-For (see ClientIP), else the peer address
	// The first source that yields a non-empty value wins. Zero means
	// [header:X-User-Id, path:conversation_id, json:conversation_id,
	// session:conversation_id, client_ip]. A route may override it.
	Stickiness []string `mapstructure:"stickiness" json:"stickiness"`
	// Identity tunes how identity sources read the request.
	Identity Identity `mapstructure:"identity" json:"identity"`
	// Routes is the route table. Requests that match none go to legacy.
	Routes []Route `mapstructure:"routes" json:"routes"`
	// LegacyBreaker guards the legacy backend as a whole (every route and
	// unmatched requests), besides each route's own legacy breaker. Zero
	// values mean the same defaults as a route's breaker, except that zero
	// failure_statuses means transport errors and timeouts only (one route's
	// application 5xx must not take the healthy routes down); native_timeout
	// and auto_rollback do not apply to it.
	LegacyBreaker Breaker `mapstructure:"legacy_breaker" json:"legacy_breaker"`
	// Shadow holds process-wide shadowing limits (per-route settings live in Route.Shadow).
	Shadow Shadow `mapstructure:"shadow" json:"shadow"`
	// Log configures logging.
	Log Log `mapstructure:"log" json:"log"`
	// Tracing configures OpenTelemetry tracing (off unless an endpoint is set).
	Tracing Tracing `mapstructure:"tracing" json:"tracing"`
	// Fleet connects the instances behind one load balancer through a Redis
	// store that holds their shares. Zero means a single instance.
	Fleet Fleet `mapstructure:"fleet" json:"fleet"`
	// Rollout holds the rollout driver's settings (docs/rollout.md).
	Rollout Rollouts `mapstructure:"rollout" json:"rollout"`
	// Runtime tunes the Go runtime's garbage collector for a proxy.
	Runtime Runtime `mapstructure:"runtime" json:"runtime"`

	// file is the path the config was loaded from ("" when none).
	file string
	// raw is the file content the config was parsed from.
	raw []byte
}

// File reports the path this config was read from, or "" when it came from
// the environment and defaults only.
func (c *Config) File() string { return c.file }

// Raw returns the file content this config was parsed from (nil when none).
func (c *Config) Raw() []byte { return c.raw }

// Listen configures the traffic listener.
type Listen struct {
	// Addr is the traffic address. Zero means ":8080".
	Addr string `mapstructure:"addr" json:"addr"`
	// HealthPath is the ALB health check path on the traffic port; it must not
	// collide with a route. Zero means "/_cutover/health".
	HealthPath string `mapstructure:"health_path" json:"health_path"`
	// ReadHeaderTimeout bounds reading request headers. Zero means 10s.
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout" json:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included. Zero means no limit
	// (uploads are bounded by the backends' own limits).
	ReadTimeout time.Duration `mapstructure:"read_timeout" json:"read_timeout"`
	// BodyReadTimeout bounds the time a client may take to send a request
	// body, counted from the end of its headers (slowloris uploads); past it
	// the request fails with 408 (Werkzeug's page) and the connection is
	// closed. It stops counting once the body is read, so it never cuts a
	// long streamed response. Zero means 60s; negative means no limit.
	BodyReadTimeout time.Duration `mapstructure:"body_read_timeout" json:"body_read_timeout"`
	// IdleTimeout is how long an idle keep-alive connection is kept. It must
	// exceed the ALB's idle timeout (60s), or the ALB reuses connections the
	// proxy just closed, the classic ALB 502. Zero means 75s.
	IdleTimeout time.Duration `mapstructure:"idle_timeout" json:"idle_timeout"`
	// MaxHeaderBytes bounds request headers. Zero means 1 MiB (Go's default).
	MaxHeaderBytes int `mapstructure:"max_header_bytes" json:"max_header_bytes"`
	// ServedByHeader, when set, names a response header telling which backend
	// served (legacy or native). Zero means off, since it changes the bytes.
	ServedByHeader string `mapstructure:"served_by_header" json:"served_by_header"`
}

// Shutdown configures the graceful drain on SIGTERM: the health check fails at
// once, traffic is still served for DrainDelay (the ALB's deregistration
// delay), then in-flight requests, streams included, get Timeout to finish.
type Shutdown struct {
	// DrainDelay is how long to keep serving after the health check starts
	// failing. Zero means 15s.
	DrainDelay time.Duration `mapstructure:"drain_delay" json:"drain_delay"`
	// Timeout bounds the wait for in-flight requests after DrainDelay; what
	// is still running then is cut. Zero means 60s.
	Timeout time.Duration `mapstructure:"timeout" json:"timeout"`
}

// Admin configures the admin listener (routes, rollback, metrics).
type Admin struct {
	// Addr is the admin address. Zero means "127.0.0.1:9090" (loopback only).
	// An address that is not loopback needs a Token.
	Addr string `mapstructure:"addr" json:"addr"`
	// Token is the bearer token every admin call needs, except GET /metrics
	// (diff records hold chat text and conversation ids). Zero means every
	// call but /metrics is refused. Usually set through CUTOVER_ADMIN_TOKEN.
	Token string `mapstructure:"token" json:"-"`
	// MetricsAddr, when set, also serves GET /metrics on a listener of its
	// own (no token, no Host check), so Prometheus can scrape it while Addr
	// stays on loopback. Zero means /metrics on the admin listener only.
	MetricsAddr string `mapstructure:"metrics_addr" json:"metrics_addr"`
	// AllowedHosts are the Host names the admin listener answers besides IP
	// literals and localhost, against DNS rebinding from a browser on the
	// same host (a page whose name resolves to 127.0.0.1). Zero means none.
	AllowedHosts []string `mapstructure:"allowed_hosts" json:"allowed_hosts,omitempty"`
	// AuditLog is a file that every share change is appended to (JSON lines).
	// Zero means changes are audited in the process log only.
	AuditLog string `mapstructure:"audit_log" json:"audit_log"`
	// Persist writes share changes back to the config file. Zero means true;
	// set "false" to keep admin changes in memory only. With a fleet store
	// (fleet.redis_url) it does not apply: the store keeps the shares.
	Persist *bool `mapstructure:"persist" json:"persist"`
	// Pprof serves net/http/pprof under /debug/pprof/ on the admin listener
	// (never on the traffic port), for profiling under load. Zero means off.
	Pprof bool `mapstructure:"pprof" json:"pprof"`
}

// Legacy configures the legacy backend and the transport to it. The transport
// is built once at start; changes here take effect on restart.
type Legacy struct {
	// URL is the legacy app's base URL. Zero means "http://127.0.0.1:8000".
	URL string `mapstructure:"url" json:"url"`
	// DialTimeout bounds connecting. Zero means 5s.
	DialTimeout time.Duration `mapstructure:"dial_timeout" json:"dial_timeout"`
	// ResponseHeaderTimeout bounds the wait for the response headers (the time
	// to first byte); past it the client gets a 504. Streams are not cut once
	// headers arrived. Zero means 120s.
	ResponseHeaderTimeout time.Duration `mapstructure:"response_header_timeout" json:"response_header_timeout"`
	// IdleConnTimeout is how long an idle pooled connection is kept. Keep it
	// below the backend's keep-alive timeout. Zero means 30s.
	IdleConnTimeout time.Duration `mapstructure:"idle_conn_timeout" json:"idle_conn_timeout"`
	// MaxIdleConnsPerHost bounds pooled idle connections. Zero means 256.
	MaxIdleConnsPerHost int `mapstructure:"max_idle_conns_per_host" json:"max_idle_conns_per_host"`
	// MaxConnsPerHost bounds all connections to legacy. Zero means no limit.
	MaxConnsPerHost int `mapstructure:"max_conns_per_host" json:"max_conns_per_host"`
	// FlushInterval is the periodic flush of buffered response bytes. Zero
	// means none: bodies of known length are written through buffered, while
	// SSE and bodies of unknown length are flushed on every write anyway.
	// Negative means flush on every write for all responses.
	FlushInterval time.Duration `mapstructure:"flush_interval" json:"flush_interval"`
	// RewriteHost sends the legacy URL's host as Host instead of the client's.
	// Zero means false: the client's Host reaches legacy unchanged.
	RewriteHost bool `mapstructure:"rewrite_host" json:"rewrite_host"`
}

// Native configures the native handlers. The fields mirror the legacy app's
// environment so both backends are configured alike.
type Native struct {
	// RedisURL is the conversation store (shared with legacy). Zero means "redis://127.0.0.1:6379/0".
	RedisURL string `mapstructure:"redis_url" json:"redis_url"`
	// BedrockEndpointURL overrides the Bedrock endpoint. Zero means real AWS.
	BedrockEndpointURL string `mapstructure:"bedrock_endpoint_url" json:"bedrock_endpoint_url"`
	// AWSRegion is the Bedrock region. Zero means "us-east-1".
	AWSRegion string `mapstructure:"aws_region" json:"aws_region"`
	// ModelID is the default Bedrock model. Zero means "anthropic.claude-3-5-sonnet-20240620-v1:0".
	ModelID string `mapstructure:"model_id" json:"model_id"`
	// SecretKey signs the Flask session cookie; must equal the legacy app's
	// SECRET_KEY. Usually set through CUTOVER_NATIVE_SECRET_KEY.
	SecretKey string `mapstructure:"secret_key" json:"-"`
	// SystemPrompt is the system prompt. Zero means the handlers' default (the legacy app's).
	SystemPrompt string `mapstructure:"system_prompt" json:"system_prompt"`
	// MaxMessageChars bounds a chat message. Zero means 4000.
	MaxMessageChars int `mapstructure:"max_message_chars" json:"max_message_chars"`
	// HistoryTurns is how many turns of history are sent. Zero means 10;
	// negative means none (as the legacy HISTORY_TURNS <= 0).
	HistoryTurns int `mapstructure:"history_turns" json:"history_turns"`
	// MaxContentLength bounds request bodies. Zero means 1 MiB.
	MaxContentLength int64 `mapstructure:"max_content_length" json:"max_content_length"`
	// BedrockTimeout bounds one Bedrock call. Zero means 60s.
	BedrockTimeout time.Duration `mapstructure:"bedrock_timeout" json:"bedrock_timeout"`
	// BedrockMaxAttempts is the SDK retry budget. Zero means 3.
	BedrockMaxAttempts int `mapstructure:"bedrock_max_attempts" json:"bedrock_max_attempts"`
	// BedrockMaxIdleConns is how many idle connections to Bedrock are kept
	// for reuse; each call in flight holds one. Zero means 1024.
	BedrockMaxIdleConns int `mapstructure:"bedrock_max_idle_conns" json:"bedrock_max_idle_conns"`
	// RedisPoolSize bounds the native handlers' connections to Redis; a
	// command that finds none free within RedisPoolTimeout is answered 503
	// store_unavailable. Zero means 256.
	RedisPoolSize int `mapstructure:"redis_pool_size" json:"redis_pool_size"`
	// RedisPoolTimeout is the longest wait for a free Redis connection. Zero means 6s.
	RedisPoolTimeout time.Duration `mapstructure:"redis_pool_timeout" json:"redis_pool_timeout"`
	// Headers is the legacy server stack's header profile, added to every
	// native response.
	Headers NativeHeaders `mapstructure:"headers" json:"headers"`
}

// NativeHeaders is the header profile native responses carry so their header
// set matches legacy's: the fields the legacy server stack adds besides Date
// and the connection framing (Connection, Transfer-Encoding), which net/http
// sets itself and which may differ anyway. Like every native setting it is
// read at start: a change takes effect on restart.
type NativeHeaders struct {
	// Server is the Server header's value. Zero means "gunicorn", what
	// gunicorn 20.1 (legacy/requirements.txt) sends; NoServerHeader ("-")
	// means none. Set it to what legacy's responses carry when they differ:
	// another server in front of gunicorn, or a gunicorn before 20.1, which
	// sends its version ("gunicorn/20.0.4").
	Server string `mapstructure:"server" json:"server"`
}

// NoServerHeader as native.headers.server sends no Server header.
const NoServerHeader = "-"

// Override configures the QA override header.
type Override struct {
	// Enabled turns the override on. Zero means off: the header is stripped and ignored.
	Enabled bool `mapstructure:"enabled" json:"enabled"`
	// Header names the override header; its value is "legacy" or "native".
	// Zero means "X-Cutover-Backend".
	Header string `mapstructure:"header" json:"header"`
	// Token, when set, must be presented in TokenHeader for the override to be
	// honoured. Enabled without a Token is refused unless AllowWithoutToken.
	Token string `mapstructure:"token" json:"-"`
	// AllowWithoutToken lets Enabled work without a Token: any client can then
	// force a backend, past shares, auto rollback and breakers. Zero means
	// false; when set, serve logs a WARN at start.
	AllowWithoutToken bool `mapstructure:"allow_without_token" json:"allow_without_token"`
	// TokenHeader names the header carrying Token. Zero means "X-Cutover-Token".
	TokenHeader string `mapstructure:"token_header" json:"token_header"`
	// Fallback lets the breakers and fallback apply to overridden requests as
	// to any other (useful to drive a backend's breaker on purpose). Zero
	// means false: an override gets exactly the named backend's answer,
	// failure included, which is what QA asks it for.
	Fallback bool `mapstructure:"fallback" json:"fallback"`
}

// Identity tunes the identity sources.
type Identity struct {
	// SessionCookie is the Flask session cookie name. Zero means "session".
	SessionCookie string `mapstructure:"session_cookie" json:"session_cookie"`
	// TrustedHops is how many proxies in front of cutover append to
	// X-Forwarded-For (the ALB is one): the client address is that many
	// entries from the right. Entries further left are client-supplied and
	// spoofable. Zero means 1.
	TrustedHops int `mapstructure:"trusted_hops" json:"trusted_hops"`
	// MaxBodyBytes bounds how much of a request body is read to find a json:
	// identity; larger bodies skip that source. Zero means 64 KiB.
	MaxBodyBytes int64 `mapstructure:"max_body_bytes" json:"max_body_bytes"`
}

// Route is one entry of the route table: a Flask endpoint, its URL rule and
// its traffic share.
type Route struct {
	// Name is the Flask endpoint name, also the native handler's endpoint name
	// and the metrics label. Required, unique.
	Name string `mapstructure:"name" json:"name"`
	// Path is the Werkzeug URL rule, e.g. "/conversations/<conversation_id>". Required.
	Path string `mapstructure:"path" json:"path"`
	// Methods are the rule's methods. Zero means [GET] (Flask's default;
	// HEAD and OPTIONS are implied as in Flask).
	Methods []string `mapstructure:"methods" json:"methods"`
	// NativePercent is the native share in percent, up to two decimals.
	// Give either this or NativeBP; zero means 0 % (all legacy).
	NativePercent *float64 `mapstructure:"native_percent" json:"-"`
	// NativeBP is the native share in basis points (0-10000).
	NativeBP *int `mapstructure:"native_bp" json:"-"`
	// Salt seeds this route's bucketing so routes ramp independently. Zero
	// means the route name. Changing it reshuffles which users are native.
	Salt string `mapstructure:"salt" json:"salt"`
	// Stickiness overrides the global identity sources for this route. Zero
	// means the global list.
	Stickiness []string `mapstructure:"stickiness" json:"stickiness,omitempty"`
	// Replayable marks a non-idempotent route as safe to replay on legacy
	// when the native side fails (safe methods always are). Zero means false.
	Replayable bool `mapstructure:"replayable" json:"replayable"`
	// Breaker configures this route's circuit breakers.
	Breaker Breaker `mapstructure:"breaker" json:"breaker"`
	// Shadow configures shadowing of this route.
	Shadow RouteShadow `mapstructure:"shadow" json:"shadow"`
	// Rollout is the route's rollout plan, the defaults of a rollout
	// started on it (docs/rollout.md). Nil means the rollout package's.
	Rollout *RoutePlan `mapstructure:"rollout" json:"rollout,omitempty"`

	// Share is the effective native share in basis points, resolved from
	// NativePercent or NativeBP by Load.
	Share int `mapstructure:"-" json:"native_bp"`
	// Sources is Stickiness (or the global list) parsed, filled by Load.
	Sources []Source `mapstructure:"-" json:"-"`
}

// Breaker configures the circuit breakers of a route (gobreaker semantics).
type Breaker struct {
	// Disabled turns the route's breakers off. Zero means breakers are on.
	Disabled bool `mapstructure:"disabled" json:"disabled"`
	// ConsecutiveFailures trips the breaker after that many failures in a row.
	// Zero means 5.
	ConsecutiveFailures uint32 `mapstructure:"consecutive_failures" json:"consecutive_failures"`
	// FailureRatio, when above zero, also trips the breaker once the share of
	// failures within Interval reaches it over at least MinRequests. Zero means off.
	FailureRatio float64 `mapstructure:"failure_ratio" json:"failure_ratio"`
	// MinRequests is the sample size FailureRatio needs. Zero means 20.
	MinRequests uint32 `mapstructure:"min_requests" json:"min_requests"`
	// Interval is the cyclic period after which counts in the closed state are
	// cleared. Zero means 60s.
	Interval time.Duration `mapstructure:"interval" json:"interval"`
	// OpenTimeout is how long the breaker stays open before half-open probes. Zero means 30s.
	OpenTimeout time.Duration `mapstructure:"open_timeout" json:"open_timeout"`
	// HalfOpenRequests is how many probes pass in the half-open state. Zero means 1.
	HalfOpenRequests uint32 `mapstructure:"half_open_requests" json:"half_open_requests"`
	// FailureStatuses are the response codes that count as failures, besides
	// transport errors and timeouts. Zero means every 5xx. 4xx are never allowed here.
	FailureStatuses []int `mapstructure:"failure_statuses" json:"failure_statuses,omitempty"`
	// AutoRollback drops the route's share to 0 % when its native breaker
	// trips (audited like an ops change). Zero means false.
	AutoRollback bool `mapstructure:"auto_rollback" json:"auto_rollback"`
	// NativeTimeout bounds a native attempt until its response starts (a
	// stream, once started, is not cut); past it the attempt counts as a
	// failure and is answered by legacy when safe to replay, else 504. Zero
	// means none (the handlers' own bedrock_timeout applies).
	NativeTimeout time.Duration `mapstructure:"native_timeout" json:"native_timeout"`
}

// RouteShadow configures shadowing of one route.
type RouteShadow struct {
	// RatePercent is the share of requests shadowed, in percent (two decimals).
	// Give either this or RateBP; zero means not shadowed.
	RatePercent *float64 `mapstructure:"rate_percent" json:"-"`
	// RateBP is the share of requests shadowed, in basis points (0-10000).
	RateBP *int `mapstructure:"rate_bp" json:"-"`
	// Safe marks the route shadow-safe: writes are shadowed too, natively in
	// dry-run mode and on legacy against the isolated target (Shadow.IsolatedLegacyURL).
	// Zero means false: only safe methods are shadowed.
	Safe bool `mapstructure:"safe" json:"safe"`
	// Methods restricts which methods are shadowed. Zero means GET, HEAD and
	// OPTIONS, plus the route's methods when Safe.
	Methods []string `mapstructure:"methods" json:"methods,omitempty"`
	// Compare is "bytes" (byte-exact) or "json" (structural). Zero means "bytes".
	Compare string `mapstructure:"compare" json:"compare"`
	// Ignore lists JSONPaths (e.g. "$.usage") left out of the comparison.
	Ignore []string `mapstructure:"ignore" json:"ignore,omitempty"`
	// Normalize rewrites text before comparison (regex replacements).
	Normalize []Normalize `mapstructure:"normalize" json:"normalize,omitempty"`
	// Headers is the allowlist of response headers compared. Zero means
	// Content-Type only.
	Headers []string `mapstructure:"headers" json:"headers,omitempty"`
	// NoiseRatePercent is the share of shadowed requests also replayed on the
	// primary side to learn noisy fields, in percent. Give either this or
	// NoiseRateBP; zero means no noise sampling.
	NoiseRatePercent *float64 `mapstructure:"noise_rate_percent" json:"-"`
	// NoiseRateBP is NoiseRatePercent in basis points (0-10000).
	NoiseRateBP *int `mapstructure:"noise_rate_bp" json:"-"`
	// ModelCall says whether a shadow of this route calls the model (cost
	// guard, shadow model-call metrics). Zero means true for POST, PUT and
	// PATCH requests, the methods of the endpoints that call Bedrock.
	ModelCall *bool `mapstructure:"model_call" json:"model_call,omitempty"`

	// Rate is the effective rate in basis points, resolved by Load.
	Rate int `mapstructure:"-" json:"rate_bp"`
	// NoiseRate is the effective noise sampling rate in basis points, resolved by Load.
	NoiseRate int `mapstructure:"-" json:"noise_rate_bp"`
}

// Normalize is one regex replacement applied to both bodies before comparing.
type Normalize struct {
	// Path limits the rule to a JSONPath. Zero means the whole body text.
	Path string `mapstructure:"path" json:"path,omitempty"`
	// Regex is an RE2 expression. Required.
	Regex string `mapstructure:"regex" json:"regex"`
	// Replace is the replacement (with $1 references). Zero means "".
	Replace string `mapstructure:"replace" json:"replace"`
}

// Shadow holds process-wide shadowing limits.
type Shadow struct {
	// Workers is the size of the shadow worker pool. Zero means 4.
	Workers int `mapstructure:"workers" json:"workers"`
	// QueueSize bounds queued shadow calls; a full queue drops (and counts). Zero means 256.
	QueueSize int `mapstructure:"queue_size" json:"queue_size"`
	// MaxBodyBytes bounds the buffered request body; larger ones are not shadowed. Zero means 1 MiB.
	MaxBodyBytes int64 `mapstructure:"max_body_bytes" json:"max_body_bytes"`
	// MaxCaptureBytes bounds each captured response (streams are teed up to it). Zero means 1 MiB.
	MaxCaptureBytes int64 `mapstructure:"max_capture_bytes" json:"max_capture_bytes"`
	// Timeout bounds one shadow call. Zero means 30s.
	Timeout time.Duration `mapstructure:"timeout" json:"timeout"`
	// MaxInFlight bounds shadow calls running at once across the workers
	// (the Bedrock cost cap on concurrency): past it a worker waits for a
	// slot, within the job's timeout, instead of dropping the job. It cannot
	// exceed Workers (it would never apply). Zero means Workers.
	MaxInFlight int `mapstructure:"max_in_flight" json:"max_in_flight"`
	// ModelCallsPerMinute caps shadow calls that reach Bedrock. Zero means 60.
	ModelCallsPerMinute int `mapstructure:"model_calls_per_minute" json:"model_calls_per_minute"`
	// IsolatedLegacyURL is the isolated legacy app (with its own Redis) used
	// for shadow-safe write routes. Required when such a route is shadowed.
	IsolatedLegacyURL string `mapstructure:"isolated_legacy_url" json:"isolated_legacy_url"`
	// IsolatedRedisURL is the isolated legacy app's Redis, seeded with the
	// state a shadowed request reads. Required with IsolatedLegacyURL.
	IsolatedRedisURL string `mapstructure:"isolated_redis_url" json:"isolated_redis_url"`
	// Redact lists the request and response headers whose values are
	// replaced in diff records, in addition to shadow.DefaultRedactHeaders
	// (Authorization, Proxy-Authorization, Cookie, Set-Cookie, X-Api-Key,
	// X-Auth-Token, X-Amz-Security-Token, X-Amzn-Oidc-*), which always apply;
	// a name ending in "*" is a prefix. The override token header is redacted
	// either way.
	Redact []string `mapstructure:"redact" json:"redact,omitempty"`
	// RedactFields lists names (case-insensitive) whose values are replaced
	// in recorded query strings, form bodies and JSON bodies (the whole value,
	// of any type, at any depth), in addition to shadow.DefaultRedactFields
	// (api_key, apikey, password, secret, token, access_token, refresh_token,
	// id_token, client_secret, aws_secret_access_key, aws_session_token).
	RedactFields []string `mapstructure:"redact_fields" json:"redact_fields,omitempty"`
	// RedactPatterns lists RE2 expressions whose matches are replaced
	// anywhere in recorded bodies, in addition to
	// shadow.DefaultRedactPatterns (AWS access key ids and bearer tokens).
	RedactPatterns []string `mapstructure:"redact_patterns" json:"redact_patterns,omitempty"`
	// Store configures where diff records go.
	Store DiffStore `mapstructure:"store" json:"store"`
	// RecordMatches also stores comparisons that matched. Zero means false:
	// only mismatches and shadow errors are stored (matches are counted).
	RecordMatches bool `mapstructure:"record_matches" json:"record_matches"`
	// Noise tunes noise learning (routes opt in with noise_rate_percent).
	Noise ShadowNoise `mapstructure:"noise" json:"noise"`
}

// ShadowNoise tunes noise learning: a field that differs between two runs of
// the primary is reported as noise, unless the shadow differs on it clearly
// more often (both thresholds exceeded).
type ShadowNoise struct {
	// MinSamples is the primary-vs-primary comparisons a route needs before
	// any field is called noise. Zero means 5.
	MinSamples int `mapstructure:"min_samples" json:"min_samples"`
	// Relative is the relative threshold on (raw rate - noise rate) / noise rate. Zero means 0.2.
	Relative float64 `mapstructure:"relative" json:"relative"`
	// Absolute is the absolute threshold on raw rate - noise rate. Zero means 0.03.
	Absolute float64 `mapstructure:"absolute" json:"absolute"`
}

// DiffStore configures the diff record store.
type DiffStore struct {
	// RingSize is the in-memory ring's capacity. Zero means 1000.
	RingSize int `mapstructure:"ring_size" json:"ring_size"`
	// RingMaxBytes bounds the ring's records, measured as JSON: the oldest
	// are evicted past it (counted in cutover_shadow_store_dropped_total).
	// Zero means 64 MiB.
	RingMaxBytes int64 `mapstructure:"ring_max_bytes" json:"ring_max_bytes"`
	// JSONLPath is the file records are appended to (created with the first
	// record; relative to the working directory). NoJSONL ("-") means no
	// file: the in-memory ring only. Zero means DefaultJSONLPath.
	JSONLPath string `mapstructure:"jsonl_path" json:"jsonl_path"`
	// RedisURL, when set, also writes records to a Redis stream.
	RedisURL string `mapstructure:"redis_url" json:"redis_url"`
	// RedisStream is the stream key. Zero means "cutover:diffs".
	RedisStream string `mapstructure:"redis_stream" json:"redis_stream"`
	// RedisMaxLen caps the stream's entries. Zero means 10000.
	RedisMaxLen int64 `mapstructure:"redis_max_len" json:"redis_max_len"`
	// RedisMaxBytes bounds the stream's records, measured as JSON: the
	// oldest are deleted past it (counted in
	// cutover_shadow_store_dropped_total). Zero means 64 MiB. Use a Redis of
	// its own for diffs, not the production one.
	RedisMaxBytes int64 `mapstructure:"redis_max_bytes" json:"redis_max_bytes"`
	// JSONLMaxBytes rotates the JSONL file (to path.1) past this size. Zero means 64 MiB.
	JSONLMaxBytes int64 `mapstructure:"jsonl_max_bytes" json:"jsonl_max_bytes"`
}

// DefaultJSONLPath and NoJSONL are the defaults and the "off" value of
// DiffStore.JSONLPath.
const (
	DefaultJSONLPath = "cutover-diffs.jsonl"
	NoJSONL          = "-"
)

// JSONLFile returns the JSONL file records go to, or "" for none.
func (d DiffStore) JSONLFile() string {
	if d.JSONLPath == NoJSONL {
		return ""
	}
	return d.JSONLPath
}

// Fleet configures the fleet store (package internal/fleet): with RedisURL
// set, every instance sharing it follows one set of shares, rollbacks and
// rollout state, changed from any instance; the file's share of a route only
// seeds the store, and an edit of it in the file is written to the store
// (audited, reason "config file"). Fleet settings take effect on restart.
type Fleet struct {
	// RedisURL is the fleet store (redis://, rediss:// or unix://). Use a
	// database or server apart from the conversations (native.redis_url).
	// Zero means no fleet: this instance alone, its shares in this file. It
	// may hold a password, so it is never rendered (the fleet status shows
	// the store's address).
	RedisURL string `mapstructure:"redis_url" json:"-"`
	// Instance names this instance in the fleet view and the audit log.
	// Zero means the host name and the traffic port ("ip-10-0-1-7:8080").
	Instance string `mapstructure:"instance" json:"instance"`
	// KeyPrefix starts every key of the fleet store. Zero means "cutover:".
	KeyPrefix string `mapstructure:"key_prefix" json:"key_prefix"`
	// ReconcileInterval is how often the store is read besides change
	// messages (the bound on applying a change whose message was missed).
	// Zero means 1s.
	ReconcileInterval time.Duration `mapstructure:"reconcile_interval" json:"reconcile_interval"`
	// HeartbeatTTL is how long an instance stays in the fleet view without a
	// heartbeat (sent every third of it). Zero means 15s.
	HeartbeatTTL time.Duration `mapstructure:"heartbeat_ttl" json:"heartbeat_ttl"`
	// StartupSyncBound is how long an instance that cannot reach the store at
	// start fails its health check before it starts on this file's shares
	// (logged as an ERROR, flagged in the fleet view). Zero means 30s;
	// negative means never: it stays unhealthy until the store answers.
	StartupSyncBound time.Duration `mapstructure:"startup_sync_bound" json:"startup_sync_bound"`
	// AuditMaxLen caps the fleet-wide audit stream (entries). Zero means 10000.
	AuditMaxLen int64 `mapstructure:"audit_max_len" json:"audit_max_len"`
}

// Enabled reports whether a fleet store is configured.
func (f Fleet) Enabled() bool { return f.RedisURL != "" }

// Runtime tunes the Go runtime's garbage collector, once at start. The
// environment wins: GOGC set leaves GCPercent alone, GOMEMLIMIT (or
// AUTOMEMLIMIT) set leaves MemoryLimitRatio alone.
type Runtime struct {
	// GCPercent is the collector's target, as GOGC: a collection starts when
	// the heap has grown by this percentage of the live heap. A proxy's live
	// heap is small (a few MiB of connections and config) and nearly all
	// its garbage is per request, so the runtime's 100 collects far more
	// often than it needs to. Zero means 400: a few MiB more heap for about
	// a quarter of the collections, bounded by the memory limit below. -1
	// means no collection until the memory limit is near.
	GCPercent int `mapstructure:"gc_percent" json:"gc_percent"`
	// MemoryLimitRatio is the runtime's soft memory limit (GOMEMLIMIT) as a
	// share of the container's memory limit (cgroup memory.max, e.g. an ECS
	// task's memory), from 0 to 1: near it the collector runs harder instead
	// of the container being killed. Zero means 0.9. Without a container
	// limit no limit is set.
	MemoryLimitRatio float64 `mapstructure:"memory_limit_ratio" json:"memory_limit_ratio"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Zero means "info".
	Level string `mapstructure:"level" json:"level"`
	// Access turns the per-request access log on or off. Zero means on.
	Access *bool `mapstructure:"access" json:"access"`
}

// Tracing configures OpenTelemetry tracing, exported over OTLP/HTTP. It is
// built at start: a change takes effect on restart. The exporter also reads
// the standard OTEL_EXPORTER_OTLP_HEADERS and OTEL_EXPORTER_OTLP_TRACES_HEADERS
// (e.g. a collector's auth header), OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES.
type Tracing struct {
	// OTLPEndpoint is the OTLP/HTTP receiver, e.g. "http://127.0.0.1:4318"
	// (a collector beside the process): spans are posted to its /v1/traces,
	// or to the URL as given when it has a path. Zero means tracing is off:
	// no span is made, no header is added, nothing is exported.
	OTLPEndpoint string `mapstructure:"otlp_endpoint" json:"otlp_endpoint"`
	// SampleRatio is the share of requests traced among those that arrive
	// without a sampling decision, from 0 to 1 (by trace id, so every
	// instance agrees); a sampled or unsampled parent (traceparent, or
	// X-Amzn-Trace-Id's Sampled) is always followed. Nil means 1: every
	// such request.
	SampleRatio *float64 `mapstructure:"sample_ratio" json:"sample_ratio"`
}

// Enabled reports whether tracing is on.
func (t Tracing) Enabled() bool { return t.OTLPEndpoint != "" }

// Ratio is the effective SampleRatio.
func (t Tracing) Ratio() float64 {
	if t.SampleRatio == nil {
		return 1
	}
	return *t.SampleRatio
}

// AccessLog reports whether the per-request access log is on.
func (l Log) AccessLog() bool { return l.Access == nil || *l.Access }

// PersistShares reports whether admin share changes are written back to the file.
func (a Admin) PersistShares() bool { return a.Persist == nil || *a.Persist }
