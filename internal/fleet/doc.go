// Package fleet keeps the run-time traffic state of every cutover instance
// behind one load balancer in one place, a Redis server (issue 13): the
// native share of each route, rollbacks and auto-rollbacks (a share set to 0,
// audited as such), and an opaque per-route rollout blob that the rollout
// driver (issue 14) owns. Everything else (the route table, rules, limits)
// stays in each instance's config file.
//
// # State and changes
//
// The state is one JSON document under a generation number (the hash
// <prefix>state: fields gen and doc). A change is compare-and-set on the
// generation it was computed from, in one Lua script that also appends the
// audit record to a capped stream (<prefix>audit) and publishes the new
// generation (<prefix>changes): a change made from a generation that is no
// longer current fails with ErrConflict (an HTTP 409) and writes nothing, so
// no concurrent change is ever lost. A change that does not depend on what
// it replaces (an auto-rollback, seeding) uses ApplyLatest, which retries on
// conflict. A change may be fenced by a Lease: it is then written only while
// the lease is held with that token, so a paused or partitioned former
// holder cannot apply a stale step.
//
// # Propagation
//
// Every instance subscribes to the change channel and also reconciles every
// ReconcileInterval (1s by default), so a missed message costs at most one
// interval. A message only triggers a read of the store: instances always
// apply what the store holds, never a message's payload. The consumer gets
// whole immutable Snapshots, in generation order, through Options.OnApply,
// and swaps them in atomically, so a request sees one generation or the next,
// never half a change.
//
// # Which wins: the store or the file
//
// With a fleet store, shares come from the store. The config file's share of
// a route seeds the route when the store does not know it (action "seed").
// The store also remembers, per route, the file share it last took from a
// file (file_share). When an instance starts or its file is reloaded
// (SetFileShares), a route whose file share differs from that record is
// taken as an edit of the file and written to the store as an audited change
// (action "config_file", reason "config file"); a file share equal to the
// record is not an edit, and the store's share (set at run time by ops)
// stands. So an edited file reaches the whole fleet once, a change made
// through the admin API is never reverted by an unchanged file, and nothing
// is ignored silently. One case to know: an instance that restarts with an
// older file than the fleet's last edit (a rollback of the deployment) writes
// that older share back, audited as a config file change, as a redeploy
// would.
//
// # The store unreachable
//
// A running instance keeps serving on the last snapshot it applied (never the
// file's values), reports Healthy false and the LastError, and every change
// fails with ErrUnavailable naming the store (an HTTP 503). Reconciling goes
// on every interval; when the store answers again the instance applies what
// it holds. A store found empty or behind the instance's generation (a Redis
// restarted without persistence, a failover to a replica that lost recent
// writes) gets the instance's applied state back, written as generation
// applied+1 and audited as "restore"; several instances doing so at once
// race on the generation, the highest generation wins and the others apply
// it. An instance with no state of its own (just started) seeds an empty
// store from its file instead (action "seed"); a state that is only such a
// seed gives way to a running instance's fleet state, which restores over
// it. Each state written into an empty or behind store starts a new epoch,
// so two lives of the state that reach the same generation are told apart.
//
// An instance that starts while the store is unreachable is not Ready (its
// health check should fail, so the load balancer sends it nothing) until it
// has read the store once, for up to StartupBound (30s by default). Past the
// bound it starts on its config file's shares, logs an ERROR saying so, and
// reports Source "file" and the time of the fallback (FileFallback) in its
// Status and its heartbeats, until it reaches the store and applies the
// fleet's state. A negative StartupBound never falls back: the instance stays
// not ready until the store answers. The rule keeps a new instance from
// serving different shares from the fleet in the common case (a blip at
// start) and from never starting in the rare one (Redis down for long, when
// the fleet is degraded anyway and the file is the best available truth).
//
// # Heartbeats and the fleet view
//
// Each instance writes a heartbeat (<prefix>instance:<name>, expiring after
// HeartbeatTTL, indexed in the sorted set <prefix>instances) every third of
// the TTL and at once after applying a snapshot. View lists the live
// instances and flags one whose applied generation is not the store's.
//
// # Keys
//
// All keys start with KeyPrefix ("cutover:" by default). On Redis Cluster,
// give a prefix with a hash tag ("{cutover}:") so the scripts' keys share a
// slot. Use a Redis database or server apart from the application's
// conversations: a FLUSHDB there must not take the fleet's state with it.
package fleet
