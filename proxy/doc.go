// Package proxy is cutover's front door: the ALB-facing server that routes
// each request, per route and by a sticky share, to the legacy Flask app or
// to the native Go handlers, plus the admin API and metrics.
//
// # Request path
//
//	Server (Echo, traffic port)
//	  ├─ health check (listen.health_path; 503 while draining)
//	  └─ Router.ServeHTTP
//	       decide: compat route match → override header → sticky bucket vs share → *Decision
//	       Dispatcher.Dispatch(w, r, d)    ← decorators wrap here (Options.Wrap)
//	         ├─ legacy: http.Handler from NewLegacy (one httputil.ReverseProxy, one transport)
//	         └─ native: NativeApp (*handlers.App)
//	       finish: metrics by route/backend/status class, one JSON access log line
//
// # Seams for breakers, fallback and shadowing
//
//   - Options.Wrap decorates the base Dispatcher. A decorator sees the whole
//     Decision (route, chosen backend, reason, bucket, compat match and the
//     route's config, including Breaker, Shadow and Replayable) and may serve
//     from the other backend: it sets d.Served and d.Fallback so logs and
//     metrics report what actually happened.
//   - Options.LegacyTransport replaces the legacy http.RoundTripper (e.g. a
//     breaker round tripper around NewTransport(cfg.Legacy)).
//   - StatusFor and ErrorKind are the one place errors become 502 / 504 / 499.
//   - Metrics.Registry takes other collectors; Admin.Echo takes more admin
//     endpoints (guard mutating ones with Admin.RequireToken);
//     Admin.RouteStatus adds live state to GET /admin/routes.
//   - Router.SetShares is the audited way to change shares (the admin API and
//     an automatic rollback both use it).
//   - Bucket and Seed are the deterministic hash used for the split; sampling
//     (shadow rates) can reuse them with its own salt.
package proxy
