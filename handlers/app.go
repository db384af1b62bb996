// Package handlers serves the legacy Flask chatbot's endpoints natively, byte
// for byte: the same validation (rules, order, messages), the same Redis
// schema, the same Bedrock request body, the same error mapping and the same
// SSE events as legacy/app.py, with Flask's routing, JSON, error pages and
// session cookie from compat.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/cutover/cutover/compat"
)

// Config mirrors the legacy app's environment. Zero values mean the legacy
// defaults.
type Config struct {
	// ModelID is BEDROCK_MODEL_ID, the model used when a request names none.
	// Empty means DefaultModelID. It must be one the legacy app accepts (GET /models).
	ModelID string
	// SystemPrompt is SYSTEM_PROMPT. Empty means DefaultSystemPrompt.
	SystemPrompt string
	// MaxMessageChars is MAX_MESSAGE_CHARS, in code points. Zero means 4000.
	MaxMessageChars int
	// HistoryTurns is HISTORY_TURNS: how many past question/answer pairs are
	// sent to the model. Zero means 10; negative means none (the legacy app's
	// HISTORY_TURNS <= 0).
	HistoryTurns int
	// MaxContentLength is MAX_CONTENT_LENGTH in bytes. Zero means 1 MiB.
	MaxContentLength int64
	// SecretKey is SECRET_KEY, which signs the session cookie; it must equal
	// the legacy app's. Empty means the legacy built-in development key.
	SecretKey string
	// BedrockTimeout is BEDROCK_TIMEOUT, the longest wait for the next event
	// of a Bedrock response stream (NewBedrockClient applies it to response
	// headers). Zero means 60s.
	BedrockTimeout time.Duration
	// ConversationPage bounds the stored turns GET /conversations/<id> reads
	// (LRANGE) and holds at once: a longer conversation is encoded page by
	// page, never whole in memory. Zero means 256.
	ConversationPage int
	// Headers are added to every response: the header fields the legacy
	// server stack adds and net/http does not. Nil means GunicornHeaders().
	// Date and the connection framing are net/http's.
	Headers http.Header
}

// DevSecretKey is the legacy app's built-in SECRET_KEY.
const DevSecretKey = "dev-only-secret-change-me"

// GunicornHeaders is the header profile of gunicorn 20.1 (sync workers):
// "Server: gunicorn" besides Date and Connection.
func GunicornHeaders() http.Header { return http.Header{"Server": {"gunicorn"}} }

func (c Config) withDefaults() Config {
	if c.ModelID == "" {
		c.ModelID = DefaultModelID
	}
	if c.SystemPrompt == "" {
		c.SystemPrompt = DefaultSystemPrompt
	}
	if c.MaxMessageChars == 0 {
		c.MaxMessageChars = 4000
	}
	if c.HistoryTurns == 0 {
		c.HistoryTurns = 10
	}
	if c.MaxContentLength == 0 {
		c.MaxContentLength = 1 << 20
	}
	if c.SecretKey == "" {
		c.SecretKey = DevSecretKey
	}
	if c.BedrockTimeout == 0 {
		c.BedrockTimeout = 60 * time.Second
	}
	if c.ConversationPage <= 0 {
		c.ConversationPage = 256
	}
	if c.Headers == nil {
		c.Headers = GunicornHeaders()
	}
	canonical := make(http.Header, len(c.Headers))
	for k, vs := range c.Headers {
		canonical[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	c.Headers = canonical
	return c
}

// Deps are the App's collaborators, built once by the caller.
type Deps struct {
	// Bedrock makes the model calls, usually a *bedrockruntime.Client from
	// NewBedrockClient. Required.
	Bedrock Bedrock
	// Store is the Redis client shared with the legacy app. Required.
	Store Store
	// Now is the clock for created_at and session cookie timestamps. Nil
	// means time.Now. FixedClock reproduces the legacy CUTOVER_TEST_CLOCK.
	Now func() time.Time
	// NewID makes a new conversation id from the raw request body. Nil means
	// a random uuid4. HashedID reproduces the legacy CUTOVER_TEST_IDS=1.
	NewID func(body []byte) string
	// Logger receives what the legacy app logs. Nil means slog.Default().
	Logger *slog.Logger
}

// ErrMissingDep is returned by New when a required dependency is nil.
var ErrMissingDep = errors.New("missing dependency")

// App serves every legacy endpoint. It is an http.Handler, safe for
// concurrent use. The http.Server in front of it should set
// DisableGeneralOptionsHandler, or net/http answers "OPTIONS *" itself (200)
// where Flask answers 404. The status line's reason phrase ("Not Found" vs
// Werkzeug's "NOT FOUND") is net/http's.
type App struct {
	cfg     Config
	bedrock Bedrock
	store   Store
	now     func() time.Time
	newID   func([]byte) string
	log     *slog.Logger
	codec   *compat.SessionCodec
	router  http.Handler
}

var _ http.Handler = (*App)(nil)

// endpoints are the legacy app's routes in its declaration order.
var endpoints = []compat.Rule{
	{Endpoint: "health", Pattern: "/health", Methods: []string{"GET"}},
	{Endpoint: "models", Pattern: "/models", Methods: []string{"GET"}},
	{Endpoint: "chat", Pattern: "/chat", Methods: []string{"POST"}},
	{Endpoint: "chat_stream", Pattern: "/chat/stream", Methods: []string{"POST"}},
	{Endpoint: "get_conversation", Pattern: "/conversations/<conversation_id>", Methods: []string{"GET"}},
	{Endpoint: "delete_conversation", Pattern: "/conversations/<conversation_id>", Methods: []string{"DELETE"}},
}

// staticRule is the route Flask registers for its static folder; the legacy
// app has no static files, so it only answers 404 (but it decides 405 vs 404
// and OPTIONS for /static/...).
var staticRule = compat.Rule{Endpoint: "static", Pattern: "/static/<path:filename>", Methods: []string{"GET"}}

// New validates cfg and builds the App.
func New(cfg Config, deps Deps) (*App, error) {
	devKey := cfg.SecretKey == ""
	cfg = cfg.withDefaults()
	var problems []error
	if _, ok := modelLimit(cfg.ModelID); !ok {
		problems = append(problems, fmt.Errorf("model id %q is not one of %v", cfg.ModelID, modelIDs()))
	}
	if cfg.MaxMessageChars < 0 {
		problems = append(problems, fmt.Errorf("max message chars %d is negative", cfg.MaxMessageChars))
	}
	if cfg.MaxContentLength < 0 {
		problems = append(problems, fmt.Errorf("max content length %d is negative", cfg.MaxContentLength))
	}
	if cfg.BedrockTimeout < 0 {
		problems = append(problems, fmt.Errorf("bedrock timeout %s is negative", cfg.BedrockTimeout))
	}
	if deps.Bedrock == nil {
		problems = append(problems, fmt.Errorf("bedrock client: %w", ErrMissingDep))
	}
	if deps.Store == nil {
		problems = append(problems, fmt.Errorf("redis store: %w", ErrMissingDep))
	}
	if err := errors.Join(problems...); err != nil {
		return nil, fmt.Errorf("handlers: %w", err)
	}

	a := &App{
		cfg:     cfg,
		bedrock: deps.Bedrock,
		store:   deps.Store,
		now:     deps.Now,
		newID:   deps.NewID,
		log:     deps.Logger,
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.newID == nil {
		a.newID = randomID
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if devKey {
		a.log.Warn("SecretKey is not set: using the built-in development key")
	}
	a.codec = &compat.SessionCodec{SecretKey: cfg.SecretKey, Now: a.now}

	m, err := compat.NewMap(append([]compat.Rule{staticRule}, endpoints...)...)
	if err != nil {
		return nil, fmt.Errorf("handlers: routes: %w", err)
	}
	views := map[string]http.HandlerFunc{
		"static":              a.static,
		"health":              a.health,
		"models":              a.models,
		"chat":                a.chat,
		"chat_stream":         a.chatStream,
		"get_conversation":    a.getConversation,
		"delete_conversation": a.deleteConversation,
	}
	handlers := make(map[string]http.Handler, len(views))
	for name, f := range views {
		handlers[name] = a.recoverer(f)
	}
	a.router = m.Handler(handlers)
	return a, nil
}

// Endpoints names the Flask endpoints the App implements.
func (a *App) Endpoints() []string {
	out := make([]string, len(endpoints))
	for i, e := range endpoints {
		out[i] = e.Endpoint
	}
	return out
}

type sessionKey struct{}

// session is flask.session for the request.
func session(r *http.Request) *compat.Session {
	s, _ := r.Context().Value(sessionKey{}).(*compat.Session)
	if s == nil {
		s = compat.NewSession(nil)
	}
	return s
}

// ServeHTTP answers like the Flask app under gunicorn: the session is opened
// before routing (a cookie that verifies but does not decode is a 500, as in
// Flask), saved into the response header (Vary, Set-Cookie) when the header
// is written, whatever the outcome, and the header profile is added.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &responseWriter{w: w, app: a}
	defer a.recoverPanic(rw, r)
	sess, err := a.codec.Open(r)
	if err != nil {
		a.log.Error("session cookie does not decode", "err", err)
		compat.WriteError(rw, &compat.HTTPError{Code: http.StatusInternalServerError, Err: err})
		return
	}
	rw.session = sess
	a.router.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
}

// recoverer turns a panic in a view into Werkzeug's 500 page, as Flask's
// handle_exception does, while the response has not started; after that
// the connection is aborted (gunicorn drops it when a body iterator fails).
func (a *App) recoverer(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer a.recoverPanic(w, r)
		next(w, r)
	})
}

func (a *App) recoverPanic(w http.ResponseWriter, r *http.Request) {
	p := recover()
	if p == nil {
		return
	}
	if p == http.ErrAbortHandler {
		panic(p)
	}
	a.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", p)
	if started(w) {
		panic(http.ErrAbortHandler)
	}
	h := w.Header()
	for k := range h {
		delete(h, k)
	}
	compat.WriteError(w, &compat.HTTPError{Code: http.StatusInternalServerError, Err: fmt.Errorf("panic: %v", p)})
}

// started reports whether the response header went out through w.
func started(w http.ResponseWriter) bool {
	for {
		switch x := w.(type) {
		case *responseWriter:
			return x.wroteHeader
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return false
		}
	}
}

// responseWriter adds the header profile and saves the session when the
// header is written, as Flask's process_response does before the WSGI
// server sends anything.
type responseWriter struct {
	w           http.ResponseWriter
	app         *App
	session     *compat.Session
	wroteHeader bool
}

func (rw *responseWriter) Header() http.Header { return rw.w.Header() }

func (rw *responseWriter) WriteHeader(code int) {
	if rw.wroteHeader {
		return
	}
	if code >= 100 && code < 200 {
		rw.w.WriteHeader(code)
		return
	}
	rw.wroteHeader = true
	h := rw.w.Header()
	for k, vs := range rw.app.cfg.Headers {
		h[k] = append([]string(nil), vs...)
	}
	if rw.session != nil {
		if err := rw.app.codec.SaveSession(rw.w, rw.session); err != nil {
			rw.app.log.Error("save session", "err", err)
		}
	}
	rw.w.WriteHeader(code)
}

func (rw *responseWriter) Write(p []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	return rw.w.Write(p)
}

func (rw *responseWriter) Flush() { _ = rw.FlushError() }

// FlushError is Flush reporting a failed write (the client went away);
// http.ResponseController uses it.
func (rw *responseWriter) FlushError() error {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(rw.w).Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.w }

var _ http.Flusher = (*responseWriter)(nil)

// static is Flask's static view for an app without static files.
func (a *App) static(w http.ResponseWriter, r *http.Request) {
	compat.WriteError(w, compat.ErrNotFound)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	_ = compat.WriteJSON(w, status, v)
}

// writeAPIError is the legacy error(message, code, status): jsonify(error=..., code=...).
func writeAPIError(w http.ResponseWriter, message, code string, status int) {
	writeJSON(w, status, compat.Object{{Key: "error", Value: message}, {Key: "code", Value: code}})
}
