package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/handlers"
	"github.com/cutover/cutover/internal/tracing"
	"github.com/cutover/cutover/shadow"
)

// ShadowOptions are the parts of shadowing built outside the proxy.
type ShadowOptions struct {
	// IsolatedNative is a second native app whose Store is the isolated Redis
	// (shadow.isolated_redis_url). Unsafe requests of shadow-safe routes
	// served by legacy are shadowed to it, in dry-run, after the state they
	// read was copied there. Nil means such requests are not shadowed
	// (counted as no_target).
	IsolatedNative http.Handler
	// Now is the clock of diff record times. Nil means time.Now.
	Now func() time.Time
}

// shadowing is the pipeline stage that mirrors a sample of a route's
// requests to the other backend: legacy-decided requests to native and
// native-decided ones to legacy. It sits right after the Router, around the
// breakers and fallback, so it tees exactly what the client gets. It reads
// the request's facts from the Decision (identity key, method safety, the
// one body buffer) and samples with Bucket under the route's shadow seed
// (decision.go).
//
// Safe methods go to the production side (they only read). Unsafe methods
// are shadowed only on shadow-safe routes, and then only to a side that
// writes nowhere real: the isolated legacy app, or the isolated native app in
// dry-run, after the conversation the request reads has been snapshotted
// from production (before the primary runs) and staged into the isolated
// Redis (right before the shadow call).
type shadowing struct {
	next Dispatcher
	log  *slog.Logger
	opts shadow.Options

	native, legacy       shadow.Target // production sides (safe methods)
	isoNative, isoLegacy shadow.Target // isolated sides (unsafe methods of shadow-safe routes)
	nativeEndpoints      map[string]bool
	copierSrc, copierDst redis.Cmdable
	historyItems         int64
	sessionCookie        atomic.Pointer[string] // identity.session_cookie in force
	maxBody              int64
	maxCapture           int
	transports           []*http.Transport
	closers              []func() error
	mirror               atomic.Pointer[shadow.Mirror]
	mu                   sync.Mutex // orders a rules swap (prepare's commit) with start
	startOnce, closeOnce sync.Once
	startErr             error
	tracer               *tracing.Tracer // nil: off; else each shadow call is a trace linked to its request's
}

// newShadowing builds everything shadowing needs once, at start: the diff
// store, the transports to the production and isolated legacy apps and the
// Redis clients of the state copier (the process-wide shadow section; see
// shadowRestartKeys). The comparison rules come from the Router's config
// through prepare, at start and on every reload. The Mirror (its workers)
// starts with start.
func newShadowing(cfg *config.Config, native NativeApp, opts ShadowOptions, log *slog.Logger) (*shadowing, error) {
	sc := cfg.Shadow
	s := &shadowing{log: log, nativeEndpoints: map[string]bool{}, maxBody: sc.MaxBodyBytes, maxCapture: int(sc.MaxCaptureBytes),
		historyItems: int64(max(2*cfg.Native.HistoryTurns, 0)) + 2}
	s.sessionCookie.Store(&cfg.Identity.SessionCookie)
	ok := false
	defer func() {
		if !ok {
			s.closeResources()
		}
	}()
	store, fleet, err := s.newStore(sc.Store)
	if err != nil {
		return nil, err
	}
	s.opts = shadow.Options{
		Workers: sc.Workers, QueueSize: sc.QueueSize, Timeout: sc.Timeout, MaxBodyBytes: sc.MaxBodyBytes,
		MaxResponseBytes: s.maxCapture, Store: store, Fleet: fleet, RecordMatches: sc.RecordMatches,
		Redaction: redaction(cfg), Logger: log, Now: opts.Now,
		Guard: shadow.NewGuard(shadow.GuardConfig{MaxInFlight: sc.MaxInFlight, ModelCallsPerMinute: sc.ModelCallsPerMinute}),
	}
	// Always there (bounded, idle until a route sets noise_rate), so a reload
	// can turn noise sampling on.
	s.opts.Noise = shadow.NewNoise(shadow.NoiseConfig{MinSamples: sc.Noise.MinSamples, Relative: sc.Noise.Relative, Absolute: sc.Noise.Absolute})

	if native != nil {
		for _, e := range native.Endpoints() {
			s.nativeEndpoints[e] = true
		}
		s.native = shadow.HandlerTarget{Handler: native, Limit: s.maxCapture, Context: handlers.WithDryRun}
	}
	if s.legacy, err = s.legacyTarget(cfg.Legacy.URL, cfg.Legacy); err != nil {
		return nil, err
	}
	if sc.IsolatedLegacyURL != "" {
		if s.isoLegacy, err = s.legacyTarget(sc.IsolatedLegacyURL, cfg.Legacy); err != nil {
			return nil, err
		}
	}
	if sc.IsolatedRedisURL != "" {
		src, err := handlers.NewRedisClient(cfg.Native.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("shadow: production redis: %w", err)
		}
		s.closers = append(s.closers, src.Close)
		dst, err := handlers.NewRedisClient(sc.IsolatedRedisURL)
		if err != nil {
			return nil, fmt.Errorf("shadow: isolated_redis_url: %w", err)
		}
		s.closers = append(s.closers, dst.Close)
		s.copierSrc, s.copierDst = src, dst
		if opts.IsolatedNative != nil {
			s.isoNative = shadow.HandlerTarget{Handler: opts.IsolatedNative, Limit: s.maxCapture, Context: handlers.WithDryRun}
		}
	}
	ok = true
	return s, nil
}

// redaction is the config's redaction lists, which the shadow package adds
// to its defaults (always applied), plus the override token header (the
// router strips it before any backend or shadow sees it; this keeps it out
// of records even so).
func redaction(cfg *config.Config) shadow.Redaction {
	sc := cfg.Shadow
	return shadow.Redaction{
		Headers:  append(slices.Clip(sc.Redact), cfg.Override.TokenHeader),
		Fields:   sc.RedactFields,
		Patterns: sc.RedactPatterns,
	}
}

// newComparator compiles every route's comparison rules.
func newComparator(cfg *config.Config) (*shadow.Comparator, error) {
	routes := make(map[string]shadow.Rules, len(cfg.Routes))
	for _, r := range cfg.Routes {
		sh := r.Shadow
		rules := shadow.Rules{Headers: sh.Headers, JSON: sh.Compare == "json", Ignore: sh.Ignore}
		for _, n := range sh.Normalize {
			rules.Normalize = append(rules.Normalize, shadow.Normalize{Path: n.Path, Pattern: n.Regex, Replace: n.Replace})
		}
		routes[r.Name] = rules
	}
	cmp, err := shadow.NewComparator(shadow.ComparatorConfig{Routes: routes})
	if err != nil {
		return nil, fmt.Errorf("shadow: %w", err)
	}
	return cmp, nil
}

// prepare is the Router's Prepare hook: it compiles cfg's comparison rules
// (a bad rule rejects the whole config, naming its route) and returns the
// commit that makes them, and cfg's identity.session_cookie, those of
// comparisons submitted from then on. Comparisons already submitted finish
// under the rules they started with.
func (s *shadowing) prepare(cfg *config.Config) (func(), error) {
	cmp, err := newComparator(cfg)
	if err != nil {
		return nil, err
	}
	cookie := cfg.Identity.SessionCookie
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.sessionCookie.Store(&cookie)
		s.opts.Comparator = cmp
		if m := s.mirror.Load(); m != nil {
			m.SetComparator(cmp)
		}
	}, nil
}

// shadowRestartKeys names the settings of the process-wide shadow section
// (workers, limits, isolated targets, redaction, store.*, noise.*) that
// differ between running and next: they are built once, at start, so they
// take effect on restart. A route's shadow block hot-reloads whole.
func shadowRestartKeys(running, next config.Shadow) []string {
	return changedKeys("shadow.", reflect.ValueOf(running), reflect.ValueOf(next), nil)
}

// changedKeys appends the dotted mapstructure keys of the fields that
// differ between a and b (structs of the same type), descending into
// nested sections.
func changedKeys(prefix string, a, b reflect.Value, out []string) []string {
	for i := range a.NumField() {
		f := a.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		key := prefix + strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if f.Type.Kind() == reflect.Struct {
			out = changedKeys(key+".", a.Field(i), b.Field(i), out)
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			out = append(out, key)
		}
	}
	return out
}

// CheckShadow reports every shadow comparison rule of cfg that does not
// compile (JSONPaths, regexes), each naming its route.
func CheckShadow(cfg *config.Config) error {
	_, err := newComparator(cfg)
	return err
}

// newStore opens the diff store: the in-memory ring, plus the JSONL file
// unless jsonl_path is "-", plus a capped Redis stream when configured (then
// the stream, shared by the fleet, answers queries, and the summary's
// counters are summed in the hash "<redis_stream>:summary" beside it).
func (s *shadowing) newStore(c config.DiffStore) (shadow.Store, *shadow.FleetTally, error) {
	ring := shadow.NewBoundedRing(c.RingSize, c.RingMaxBytes)
	var local shadow.Store = ring
	if path := c.JSONLFile(); path != "" {
		fs, err := shadow.OpenFileStoreRing(path, ring, c.JSONLMaxBytes)
		if err != nil {
			return nil, nil, fmt.Errorf("shadow: store: jsonl_path: %w", err)
		}
		s.closers = append(s.closers, fs.Close)
		local = fs
	}
	if c.RedisURL == "" {
		return local, nil, nil
	}
	rc, err := handlers.NewRedisClient(c.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("shadow: store: redis_url: %w", err)
	}
	s.closers = append(s.closers, rc.Close)
	return shadow.MultiStore{Primary: &shadow.StreamStore{Client: rc, Key: c.RedisStream, MaxLen: c.RedisMaxLen, MaxBytes: c.RedisMaxBytes}, Also: []shadow.Store{local}},
		&shadow.FleetTally{Client: rc, Key: c.RedisStream + ":summary"}, nil
}

// legacyTarget is a Target sending shadow requests to a legacy app at base
// over a transport of its own (shadow traffic never takes the primary's
// connections).
func (s *shadowing) legacyTarget(base string, lc config.Legacy) (shadow.Target, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("shadow: legacy url %q: %w", base, err)
	}
	t := NewTransport(lc)
	s.transports = append(s.transports, t)
	return &legacySide{base: u, transport: t, rewriteHost: lc.RewriteHost}, nil
}

// legacySide is a legacy app as a shadow Target.
type legacySide struct {
	base        *url.URL
	transport   http.RoundTripper
	rewriteHost bool
}

var _ shadow.Target = (*legacySide)(nil)

// RoundTrip fills in the legacy app's scheme and host and sends r.
func (l *legacySide) RoundTrip(r *http.Request) (*http.Response, error) {
	r.URL.Scheme, r.URL.Host = l.base.Scheme, l.base.Host
	if l.rewriteHost {
		r.Host = ""
	}
	return l.transport.RoundTrip(r)
}

// start starts the Mirror's workers and registers its metrics on reg.
// Requests dispatched before start are served without shadowing.
func (s *shadowing) start(reg prometheus.Registerer) error {
	s.startOnce.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		o := s.opts
		o.Registerer = reg
		m, err := shadow.NewMirror(o)
		if err != nil {
			s.startErr = err
			return
		}
		s.mirror.Store(m)
	})
	return s.startErr
}

// close stops the Mirror (queued shadows finish until ctx ends, then are
// cancelled) and releases transports, clients and the store file.
func (s *shadowing) close(ctx context.Context) {
	s.closeOnce.Do(func() {
		if m := s.mirror.Load(); m != nil {
			if err := m.Close(ctx); err != nil {
				s.log.Warn("shadow: queued shadows cut at shutdown", "error", err)
			}
		}
		s.closeResources()
	})
}

func (s *shadowing) closeResources() {
	for _, t := range s.transports {
		t.CloseIdleConnections()
	}
	for _, c := range s.closers {
		_ = c()
	}
}

// Mirror returns the running shadow mirror, or nil before Run.
func (s *Server) Mirror() *shadow.Mirror {
	if s.shadow == nil {
		return nil
	}
	return s.shadow.mirror.Load()
}

// mount adds GET /admin/diffs, /admin/diffs/{id} and /admin/shadow/summary
// (the Mirror's admin API) to the admin Echo, and DELETE
// /admin/shadow/summary (token required, audited), which resets the fleet
// summary.
func (s *shadowing) mount(a *Admin) {
	e := a.Echo()
	h := echo.WrapHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := s.mirror.Load()
		if m == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"shadowing is not running"}` + "\n"))
			return
		}
		m.Admin().ServeHTTP(w, r)
	}))
	e.GET("/admin/diffs", h)
	e.GET("/admin/diffs/:id", h)
	e.GET("/admin/shadow/summary", h)
	e.DELETE("/admin/shadow/summary", func(c echo.Context) error { return s.resetSummary(c, a) }, a.RequireToken)
}

// resetSummary serves DELETE /admin/shadow/summary: the fleet summary in
// Redis starts again from zero. Without a Redis store there is no fleet
// summary (409); each process's own figures start at zero when it starts.
func (s *shadowing) resetSummary(c echo.Context, a *Admin) error {
	m := s.mirror.Load()
	if m == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "shadowing is not running")
	}
	key := m.FleetKey()
	err := m.ResetFleet(c.Request().Context())
	switch {
	case errors.Is(err, shadow.ErrNoFleet):
		return echo.NewHTTPError(http.StatusConflict,
			"no fleet summary to reset: shadow.store.redis_url is not set (a process's summary starts at zero when it starts)")
	case err != nil:
		return echo.NewHTTPError(http.StatusBadGateway, err.Error())
	}
	a.rt.auditAction(a.actor(c, "reset_shadow_summary"), "audit: shadow summary reset", "key", key)
	return c.JSON(http.StatusOK, map[string]any{"reset": true, "key": key})
}

var _ Dispatcher = (*shadowing)(nil)

// Dispatch serves r with the next stage and, when the route shadows this
// request, submits a comparison job. Nothing here blocks on the shadow side:
// the added work is a bucket hash, the bounded body buffer, for shadow-safe
// writes one Redis read, the tee copy and a non-blocking send.
func (s *shadowing) Dispatch(w http.ResponseWriter, r *http.Request, d *Decision) {
	m := s.mirror.Load()
	rc := d.Config
	if m == nil || rc == nil || rc.Shadow.Rate <= 0 {
		s.next.Dispatch(w, r, d)
		return
	}
	sh := &rc.Shadow
	route := d.Route
	safe := d.Safe
	if reason := methodSkip(r.Method, safe, sh); reason != "" {
		m.Skip(route, reason)
		s.next.Dispatch(w, r, d)
		return
	}
	primary := d.Backend
	target, replay := s.targets(primary, safe, route)
	if target == nil {
		m.Skip(route, shadow.SkipNoTarget)
		s.next.Dispatch(w, r, d)
		return
	}

	body, ok, err := d.bodyUpTo(r, s.maxBody)
	if !ok {
		reason := shadow.SkipBodyTooLarge
		if err != nil {
			reason = shadow.SkipClientGone
		}
		m.Skip(route, reason)
		s.next.Dispatch(w, r, d)
		return
	}
	key := d.Key
	if key == "" {
		// No identity: sample by the request itself, still deterministically.
		key = r.Method + " " + r.RequestURI + " " + strconv.FormatUint(xxhash.Sum64(body), 16)
	}
	if !sampled(d.rte.shadow, key, sh.Rate) {
		m.Skip(route, shadow.SkipNotSampled)
		s.next.Dispatch(w, r, d)
		return
	}
	req := shadow.NewRequest(r, body) // before the primary can touch r
	chunked := r.ContentLength < 0 && len(body) > 0
	var snap shadow.Snapshot
	if !safe {
		// The state the shadow reads, as it is before the primary writes.
		snap, err = s.copier(d).Snapshot(r.Context(), r, body)
		if err != nil {
			s.log.Warn("shadow snapshot failed", "route", route, "error", err)
			m.Skip(route, shadow.SkipSnapshot)
			s.next.Dispatch(w, r, d)
			return
		}
	}

	tee := shadow.NewTee(w, s.maxCapture)
	s.next.Dispatch(tee, r, d)
	switch {
	case r.Context().Err() != nil:
		m.Skip(route, shadow.SkipClientGone)
		return
	case d.Err != nil || d.Served != primary:
		// The primary failed, or a fallback made the shadow's side answer:
		// there is nothing meaningful to compare.
		m.Skip(route, shadow.SkipPrimaryError)
		return
	}
	if !safe && snap == nil {
		target, replay = s.dropNewConversation(target), s.dropNewConversation(replay)
	}
	if chunked {
		target, replay = keepChunked(target), keepChunked(replay)
	}
	if s.tracer != nil {
		target = s.tracer.LinkedTransport(target, "shadow "+route)
		if replay != nil {
			replay = s.tracer.LinkedTransport(replay, "noise "+route)
		}
	}
	j := shadow.Job{Route: route, Request: req, Primary: tee.Captured(), PrimarySide: primary.String(), Target: target,
		Snapshot: snap, ModelCall: modelCall(sh, r.Method), Context: r.Context()}
	if replay != nil && sampled(d.rte.noise, key, sh.NoiseRate) {
		j.Replay = replay
	}
	m.Submit(j)
}

// keepChunked sends the shadow request with a chunked body, as the client
// sent it: the backends answer a chunked body and a sized one differently
// at the size limits (400 vs 413).
func keepChunked(t shadow.Target) shadow.Target {
	if t == nil {
		return nil
	}
	return shadow.TargetFunc(func(r *http.Request) (*http.Response, error) {
		r.ContentLength = -1
		r.TransferEncoding = []string{"chunked"}
		return t.RoundTrip(r)
	})
}

// dropNewConversation wraps an isolated legacy target for a write that had
// nothing to snapshot (it starts a new conversation): the isolated app saves
// that conversation under an id of its own, which no release would delete,
// so it is deleted from the isolated Redis once the answer is read. Other
// targets (the dry-run native app writes nothing) are returned as they are.
func (s *shadowing) dropNewConversation(t shadow.Target) shadow.Target {
	if l, ok := t.(*legacySide); !ok || t != s.isoLegacy || l == nil {
		return t
	}
	limit := int64(s.maxCapture) + 1 // the mirror reads as much, to see truncation
	return shadow.TargetFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := t.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read shadow body: %w", err)
		}
		if id := answeredConversation(resp.Header, body); id != "" {
			if err := s.copierDst.Del(r.Context(), "conversation:"+id).Err(); err != nil {
				s.log.Warn("shadow: delete new conversation from the isolated redis", "id", id, "error", err)
			}
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, nil
	})
}

// answeredConversation is the conversation_id of a chat answer: the JSON
// body's, or the data of a stream's done event.
func answeredConversation(h http.Header, body []byte) string {
	data := body
	if shadow.IsEventStream(h) {
		data = nil
		for _, ev := range shadow.ParseEvents(body) {
			if ev.Name == "done" {
				data = []byte(ev.Data)
			}
		}
	}
	var v struct {
		ID any `json:"conversation_id"`
	}
	if json.Unmarshal(data, &v) != nil {
		return ""
	}
	id, _ := v.ID.(string)
	if !conversationIDRE.MatchString(id) {
		return ""
	}
	return id
}

var conversationIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// targets picks the shadow side (the other backend) and the noise replay side
// (the primary's backend again, side-effect free) for a request.
func (s *shadowing) targets(primary Backend, safe bool, route string) (target, replay shadow.Target) {
	native, legacy := s.native, s.legacy
	if !safe {
		native, legacy = s.isoNative, s.isoLegacy
		if s.copierSrc == nil {
			return nil, nil
		}
	}
	if !s.nativeEndpoints[route] {
		native = nil
	}
	if primary == Legacy {
		return nilTarget(native), nilTarget(legacy)
	}
	return nilTarget(legacy), nilTarget(native)
}

// nilTarget turns a nil HandlerTarget-in-interface into a true nil.
func nilTarget(t shadow.Target) shadow.Target {
	if h, ok := t.(shadow.HandlerTarget); ok && h.Handler == nil {
		return nil
	}
	return t
}

// copier snapshots the conversation a write request reads: the matched
// route's conversation_id URL parameter, else the JSON body's, else the
// Flask session cookie's.
func (s *shadowing) copier(d *Decision) *shadow.RedisCopier {
	c := &shadow.RedisCopier{Source: s.copierSrc, Dest: s.copierDst, MaxItems: s.historyItems}
	if id, ok := d.Match.Params["conversation_id"].(string); ok && id != "" {
		c.ConversationID = func(*http.Request, []byte) string { return id }
	} else {
		cookie := *s.sessionCookie.Load()
		c.ConversationID = func(r *http.Request, body []byte) string {
			return shadow.DefaultConversationID(r, body, cookie, nil)
		}
	}
	return c
}

// methodSkip returns why method is not shadowed on a route, or "".
func methodSkip(method string, safe bool, sh *config.RouteShadow) string {
	if sh.Methods != nil && !containsFold(sh.Methods, method) {
		return shadow.SkipMethodExcluded
	}
	if !safe && !sh.Safe {
		return shadow.SkipUnsafeMethod
	}
	return ""
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if len(v) == len(s) && (v == s || equalFoldASCII(v, s)) {
			return true
		}
	}
	return false
}

func equalFoldASCII(a, b string) bool {
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// modelCall reports whether a shadow of this request calls the model.
func modelCall(sh *config.RouteShadow, method string) bool {
	if sh.ModelCall != nil {
		return *sh.ModelCall
	}
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		return true
	}
	return false
}
