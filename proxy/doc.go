// Package proxy is cutover's front door: the ALB-facing server that routes
// each request, per route and by a sticky share, to the legacy Flask app or
// to the native Go handlers, plus the admin API and metrics.
//
// # Request path
//
// One pipeline, built once by newPipeline (pipeline.go); each stage holds
// only the stage inside it, and docs/ARCHITECTURE.md walks a request
// through it hop by hop:
//
//	Server (server.go)      framing checks, health check (503 while draining)
//	Router (router.go)      match the route, compute the request's facts once → *Decision
//	shadowing (shadow.go)   sample with Bucket under the shadow seed, tee the answer, queue a job
//	Fallback (fallback.go)  breakers (Allow → done), fallback to the other backend
//	backends (decision.go)  legacy: Passthrough (legacy.go) | native: NativeApp
//
// The Decision is the request's one record: its facts (route, backend and
// reason, identity key, bucket, method safety, the one bounded body buffer)
// and the outcome the stages write into it (Served, Fallback, Err). The
// Router turns it into one access log line and the metrics; StatusFor and
// ErrorKind are the one place an error becomes 502 / 503 / 504 / 408 / 499.
//
// # Extension points
//
//   - Metrics.Registry takes other collectors; Admin.Echo takes more admin
//     endpoints (guard mutating ones with Admin.RequireToken);
//     Admin.RouteStatus adds live state to GET /admin/routes.
//   - Router.SetShares is the audited way to change shares (the admin API and
//     the breakers' auto rollback both use it). With fleet.redis_url it
//     changes the whole fleet through internal/fleet instead of the file
//     (fleet.go): the Router then applies the file's config with each fleet
//     snapshot's shares laid over it, and the health check fails until the
//     first snapshot is applied.
//   - Bucket and Seed are the deterministic hash of the split; shadow
//     sampling uses the same Bucket under seeds of its own (decision.go).
package proxy
