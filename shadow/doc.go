// Package shadow mirrors a share of a route's traffic to the other backend,
// compares the two answers, classifies every difference and reports it, with
// the client only ever seeing the primary's answer and the primary path never
// slowed, broken or made to write twice.
//
// # Wiring (what the proxy calls)
//
// Build once at start:
//
//	cmp, err := shadow.NewComparator(shadow.ComparatorConfig{Routes: map[string]shadow.Rules{
//		"chat":             {JSON: true},
//		"get_conversation": {JSON: true, Ignore: []string{"$..created_at"}},
//	}})
//	store, err := shadow.OpenFileStore("diffs.jsonl", 1000, 64<<20) // or &shadow.StreamStore{Client: rdb}
//	m, err := shadow.NewMirror(shadow.Options{
//		Comparator: cmp, Store: store, Registerer: reg,
//		Guard: shadow.NewGuard(shadow.GuardConfig{MaxInFlight: 2, ModelCallsPerMinute: 60}), // 2 of the 4 workers call at once
//		Noise: shadow.NewNoise(shadow.NoiseConfig{}),
//	})
//	defer m.Close(ctx) // drains the queue, or cancels the calls when ctx ends
//
// Then, per request, the caller (cutover's proxy/shadow.go) decides whether
// to shadow it (sampling is the caller's: the proxy samples with its own
// bucket hash), reads the body whole, takes a [StateCopier.Snapshot]
// (before the primary!), serves the primary through [NewTee], and hands
// [Mirror.Submit] a [Job] built with [NewRequest] and [Tee.Captured].
// Requests not shadowed are counted with [Mirror.Skip] and a Skip* reason.
// Mount [Mirror.Admin] on the admin listener for GET /admin/diffs,
// /admin/diffs/{id} and /admin/shadow/summary; with a [FleetTally] (Redis)
// the summary is the fleet's.
//
// # Targets and side effects
//
// A [Target] is anything with RoundTrip: an *http.Transport behind a URL
// rewrite for the legacy app, or [HandlerTarget] for the in-process native
// app (its Context hook applies handlers.WithDryRun). By default only safe
// methods are shadowed. For a shadow-safe write route the target must write
// nowhere the client's data lives: the isolated legacy app (its own Redis),
// or a native app in dry-run. Both must read the state as it was before the
// primary's write, so the proxy takes a [RedisCopier] snapshot before
// forwarding the primary; the mirror stages it into the isolated Redis right
// before the shadow call (serialised per conversation) and deletes it after.
// A native shadow therefore needs a handlers.App whose Store is the isolated
// Redis (plus dry-run): a dry-run app on the production Redis would read the
// primary's own write.
//
// # Bounds
//
// Submit never blocks: a full queue drops the job (SkipQueueFull). Workers,
// queue, request body (MaxBodyBytes), captured responses (MaxResponseBytes),
// record bodies, the store, noise fields and the per-minute model budget are
// all capped, so memory stays bounded however slow or dead the shadow side is.
// Each job runs on context.WithoutCancel of the request's context (values,
// no cancellation) with its own Timeout; Close cancels what is left.
//
// # Comparison
//
// [Comparator] compares status, an allowlist of headers and the body (byte
// exact by default; structural with JSONPaths when Rules.JSON is set). The
// per-route Ignore and Normalize rules apply in both modes: a difference only
// where they look away is a match. Event streams are compared event by
// event (names, data, the assembled text, the terminal event). Each mismatch
// is [ClassEncoding] (same value, different bytes) or [ClassSemantic];
// [Noise] relabels differences on fields that differ between two runs of the
// primary as [ClassNoise]. Shadow failures are [ClassError].
package shadow
