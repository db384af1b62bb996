package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
)

// Sentinel errors callers branch on.
var (
	// ErrConflict is a change computed from a generation that is no longer
	// the store's (HTTP 409): another change landed first; nothing was written.
	ErrConflict = errors.New("fleet state changed concurrently")
	// ErrUnavailable is a store that cannot be reached or answered with an
	// error (HTTP 503); the error names the store.
	ErrUnavailable = errors.New("fleet store unavailable")
	// ErrFenced is a fenced change whose lease is no longer held with its token.
	ErrFenced = errors.New("lease no longer held: change fenced off")
)

// Options configures a Store. URL and Instance are required; every other
// zero value means the default its comment gives.
type Options struct {
	// URL is the fleet store, a redis:// (or rediss://, unix://) URL.
	URL string
	// Instance is this instance's name in the fleet (heartbeats, audit).
	Instance string
	// Version is this instance's build, shown in its heartbeat. Zero means "".
	Version string
	// KeyPrefix starts every key. Zero means "cutover:".
	KeyPrefix string
	// ReconcileInterval is how often the store is read even without a change
	// message, and the retry pace while it is unreachable. Zero means 1s.
	ReconcileInterval time.Duration
	// HeartbeatTTL is how long a heartbeat lives; one is written every third
	// of it. Zero means 15s.
	HeartbeatTTL time.Duration
	// StartupBound is how long an instance that cannot reach the store at
	// start stays not Ready before it starts on FileShares (see the package
	// doc). Zero means 30s; negative means never.
	StartupBound time.Duration
	// Timeout bounds each command, dialling included. Zero means 2s.
	Timeout time.Duration
	// AuditMaxLen caps the audit stream (exactly). Zero means 10000.
	AuditMaxLen int64
	// FileShares are the config file's shares in basis points, by route:
	// they seed routes the store does not know, and are checked for edits at
	// the first sync (see SetFileShares).
	FileShares map[string]int
	// Report, when not nil, fills the load figures of each heartbeat; it is
	// called from the heartbeat goroutine and must not block.
	Report func() Report
	// OnApply, when not nil, is called with every snapshot the instance
	// applies, one at a time and in generation order, from whichever
	// goroutine applied it, before Current returns it (so Ready implies the
	// consumer has the first one); it must be quick (swap a pointer) and
	// must not call the Store's changing methods.
	OnApply func(*Snapshot)
	// Now is the clock for timestamps, uptime and the startup bound. Zero
	// means time.Now.
	Now func() time.Time
	// Log receives the store's log lines. Zero means slog.Default().
	Log *slog.Logger
}

// Store is one instance's handle on the fleet store: it applies the fleet's
// state (Run), changes it (Apply, ApplyLatest), heartbeats, and reads the
// fleet view and the audit log. Its methods are safe for concurrent use.
type Store struct {
	opt  Options
	rdb  *redis.Client
	name string // the store as error messages name it, without credentials

	started time.Time
	current atomic.Pointer[Snapshot]
	synced  atomic.Bool // a store snapshot was applied at least once
	// startChecked: the file shares given at start were compared with the
	// store (seeded, or written as an edit) once, so a change made after
	// this instance reports Ready is never overwritten by its start's file.
	startChecked atomic.Bool
	// fallback is the time the instance started on the file's shares (zero: never).
	fallback atomic.Pointer[time.Time]

	installMu sync.Mutex // orders installs and OnApply calls

	errMu   sync.Mutex
	lastErr error

	fileMu    sync.Mutex
	fileVer   int // bumped by SetFileShares
	fileShare map[string]int
	fileCheck bool // the file shares are still to be compared with the store's record

	syncNow chan struct{} // a change message or a file reload: sync at once
	beatNow chan struct{} // a snapshot was applied: heartbeat at once
}

// New checks opt and builds the client; it does not contact the store (Run
// and every call do).
func New(opt Options) (*Store, error) {
	var errs []error
	if opt.URL == "" {
		errs = append(errs, errors.New("fleet: url is required"))
	}
	if opt.Instance == "" {
		errs = append(errs, errors.New("fleet: instance is required"))
	}
	for name, d := range map[string]time.Duration{"reconcile_interval": opt.ReconcileInterval, "heartbeat_ttl": opt.HeartbeatTTL, "timeout": opt.Timeout} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("fleet: %s %s is negative", name, d))
		}
	}
	if opt.AuditMaxLen < 0 {
		errs = append(errs, fmt.Errorf("fleet: audit_max_len %d is negative", opt.AuditMaxLen))
	}
	for name, bp := range opt.FileShares {
		if bp < 0 || bp > MaxShare {
			errs = append(errs, fmt.Errorf("fleet: route %q: file share %d bp is not in [0, %d]", name, bp, MaxShare))
		}
	}
	var ro *redis.Options
	if opt.URL != "" {
		var err error
		if ro, err = redis.ParseURL(opt.URL); err != nil {
			errs = append(errs, fmt.Errorf("fleet: url: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opt.KeyPrefix == "" {
		opt.KeyPrefix = "cutover:"
	}
	if opt.ReconcileInterval == 0 {
		opt.ReconcileInterval = time.Second
	}
	if opt.HeartbeatTTL == 0 {
		opt.HeartbeatTTL = 15 * time.Second
	}
	if opt.StartupBound == 0 {
		opt.StartupBound = 30 * time.Second
	}
	if opt.Timeout == 0 {
		opt.Timeout = 2 * time.Second
	}
	if opt.AuditMaxLen == 0 {
		opt.AuditMaxLen = 10000
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	// Fail fast: one dial attempt, no command retries; the loops retry on
	// their own pace and a change is better refused at once than late.
	ro.DialTimeout = opt.Timeout
	ro.ReadTimeout = opt.Timeout
	ro.WriteTimeout = opt.Timeout
	ro.PoolTimeout = opt.Timeout
	ro.DialerRetries = 1
	ro.MaxRetries = -1
	ro.PoolSize = 8
	ro.DisableIdentity = true
	s := &Store{
		opt:       opt,
		rdb:       redis.NewClient(ro),
		name:      storeName(ro),
		started:   opt.Now(),
		fileShare: maps.Clone(opt.FileShares),
		fileCheck: true,
		syncNow:   make(chan struct{}, 1),
		beatNow:   make(chan struct{}, 1),
	}
	return s, nil
}

func storeName(ro *redis.Options) string {
	if ro.Network == "unix" {
		return "unix://" + ro.Addr + "?db=" + strconv.Itoa(ro.DB)
	}
	return "redis://" + ro.Addr + "/" + strconv.Itoa(ro.DB)
}

// Name is the store's address as errors name it (no credentials).
func (s *Store) Name() string { return s.name }

// Instance is this instance's name in the fleet.
func (s *Store) Instance() string { return s.opt.Instance }

// Close releases the store's connections. Call it after Run has returned.
func (s *Store) Close() error { return s.rdb.Close() }

func (s *Store) key(parts ...string) string {
	k := s.opt.KeyPrefix
	for i, p := range parts {
		if i > 0 {
			k += ":"
		}
		k += p
	}
	return k
}

func (s *Store) unavailable(err error) error {
	return fmt.Errorf("fleet store %s: %w: %w", s.name, ErrUnavailable, err)
}

func (s *Store) setErr(err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if err != nil && s.lastErr == nil {
		s.opt.Log.Error("fleet store unreachable: serving on the last applied state, changes refused", "store", s.name, "error", err)
	} else if err == nil && s.lastErr != nil {
		s.opt.Log.Warn("fleet store reachable again", "store", s.name)
	}
	s.lastErr = err
}

// Healthy reports whether the last exchange with the store succeeded.
func (s *Store) Healthy() bool { return s.LastError() == nil }

// LastError is the error of the last failed exchange with the store, or nil
// once one succeeded again.
func (s *Store) LastError() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.lastErr
}

// Current is the snapshot the instance applies, or nil before the first one
// (not Ready).
func (s *Store) Current() *Snapshot { return s.current.Load() }

// Ready reports whether the instance has state to serve: the store's, with
// the config file it started with compared to the store's record (seeded or
// written as an edit: package doc), or the file's past the startup bound.
// Until then its health check should fail, so an operator's change made once
// every instance is ready is never overwritten by a late start's file.
func (s *Store) Ready() bool {
	if s.current.Load() == nil {
		return false
	}
	return s.startChecked.Load() || s.opt.StartupBound < 0 || s.opt.Now().Sub(s.started) >= s.opt.StartupBound
}

// Status is an instance's view of its own link to the store.
type Status struct {
	Store    string `json:"store"`
	Instance string `json:"instance"`
	// Healthy is false while the store cannot be reached; Error says why.
	Healthy bool   `json:"healthy"`
	Error   string `json:"error,omitempty"`
	// Ready is true once the instance has state to serve.
	Ready bool `json:"ready"`
	// Synced is true once the store's state was applied at least once.
	Synced bool `json:"synced"`
	// Source is where the applied shares come from ("" before Ready).
	Source Source `json:"source,omitempty"`
	// Generation is the applied generation.
	Generation uint64 `json:"generation"`
	// FileFallback is when the instance started on the file's shares
	// because the store could not be reached within the startup bound.
	FileFallback *time.Time `json:"file_fallback,omitempty"`
}

// Status reports the instance's link to the store.
func (s *Store) Status() Status {
	st := Status{Store: s.name, Instance: s.opt.Instance, Synced: s.synced.Load(), FileFallback: s.fallback.Load()}
	if err := s.LastError(); err != nil {
		st.Error = err.Error()
	} else {
		st.Healthy = true
	}
	if cur := s.current.Load(); cur != nil {
		st.Ready, st.Source, st.Generation = true, cur.source, cur.gen
	}
	return st
}

// fetch reads the store's state; an empty store is generation 0 with no routes.
func (s *Store) fetch(ctx context.Context) (document, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	vals, err := s.rdb.HMGet(ctx, s.key("state"), "gen", "doc").Result()
	if err != nil {
		return document{}, s.unavailable(err)
	}
	d := document{Routes: map[string]RouteState{}}
	if vals[0] == nil {
		return d, nil
	}
	genStr, _ := vals[0].(string)
	docStr, _ := vals[1].(string)
	gen, err := strconv.ParseUint(genStr, 10, 64)
	if err == nil {
		err = json.Unmarshal([]byte(docStr), &d)
	}
	if err == nil && d.Generation != gen {
		err = fmt.Errorf("doc is generation %d, gen field %d", d.Generation, gen)
	}
	if err != nil {
		return document{}, s.unavailable(fmt.Errorf("state unreadable: %w", err))
	}
	if d.Routes == nil {
		d.Routes = map[string]RouteState{}
	}
	return d, nil
}

// commitScript writes the state doc (ARGV[2], generation ARGV[7]) if the
// store is at generation ARGV[1] and, when ARGV[6] is not empty, the lease
// KEYS[3] holds token ARGV[6]; it appends the audit record ARGV[5] (when
// not empty) to the stream KEYS[2] capped at ARGV[4] and publishes the new
// generation on channel ARGV[3]. It returns {1, gen} on success, {0, current}
// on a generation conflict and {-1, current} on a fenced-off lease.
var commitScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
if cur ~= tonumber(ARGV[1]) then return {0, cur} end
if ARGV[6] ~= '' and redis.call('HGET', KEYS[3], 'token') ~= ARGV[6] then return {-1, cur} end
redis.call('HSET', KEYS[1], 'gen', ARGV[7], 'doc', ARGV[2])
if ARGV[5] ~= '' then redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], '*', 'record', ARGV[5]) end
redis.call('PUBLISH', ARGV[3], ARGV[7])
return {1, tonumber(ARGV[7])}
`)

// commit writes next over the store's generation base, with its audit record.
func (s *Store) commit(ctx context.Context, base uint64, next document, rec *AuditRecord, fence *Lease) error {
	doc, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("encode fleet state: %w", err)
	}
	var recJSON []byte
	if rec != nil {
		if recJSON, err = json.Marshal(rec); err != nil {
			return fmt.Errorf("encode audit record: %w", err)
		}
	}
	leaseKey, token := s.key("state"), ""
	if fence != nil {
		leaseKey, token = fence.key, strconv.FormatUint(fence.token, 10)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	res, err := commitScript.Run(ctx, s.rdb, []string{s.key("state"), s.key("audit"), leaseKey},
		base, doc, s.key("changes"), s.opt.AuditMaxLen, recJSON, token, next.Generation).Int64Slice()
	if err != nil {
		return s.unavailable(err)
	}
	if len(res) != 2 {
		return s.unavailable(fmt.Errorf("commit script answered %v", res))
	}
	switch res[0] {
	case 1:
		return nil
	case -1:
		return fmt.Errorf("lease %q token %d: %w", fence.name, fence.token, ErrFenced)
	}
	return fmt.Errorf("%w: the fleet is at generation %d, the change was made from %d", ErrConflict, res[1], base)
}

// Apply makes ch on top of generation base (the generation the caller's
// decision was made from, usually Current().Generation()): if the store has
// moved on, it fails with ErrConflict and writes nothing. A change that
// changes nothing writes nothing and is not audited. On success the new
// snapshot is applied locally before Apply returns, and returned.
func (s *Store) Apply(ctx context.Context, base uint64, ch Change) (*Snapshot, error) {
	if err := ch.validate(); err != nil {
		return nil, err
	}
	d, err := s.fetch(ctx)
	if err != nil {
		s.setErr(err)
		return nil, err
	}
	if d.Generation != base {
		return nil, fmt.Errorf("%w: the fleet is at generation %d, the change was made from %d", ErrConflict, d.Generation, base)
	}
	return s.write(ctx, d, ch)
}

// ApplyLatest makes ch on top of whatever the store holds, retrying (up to
// 5 times) when another change lands in between: for changes that do not
// depend on what they replace (an auto-rollback, seeding).
func (s *Store) ApplyLatest(ctx context.Context, ch Change) (*Snapshot, error) {
	if err := ch.validate(); err != nil {
		return nil, err
	}
	var err error
	for range 5 {
		var d document
		if d, err = s.fetch(ctx); err != nil {
			s.setErr(err)
			return nil, err
		}
		var snap *Snapshot
		if snap, err = s.write(ctx, d, ch); !errors.Is(err, ErrConflict) {
			return snap, err
		}
	}
	return nil, err
}

func (s *Store) write(ctx context.Context, d document, ch Change) (*Snapshot, error) {
	now := s.opt.Now().UTC()
	info := ChangeInfo{Generation: d.Generation + 1, Time: now, Who: ch.Actor.Who, Instance: s.opt.Instance,
		Action: ch.Actor.Action, Reason: ch.Actor.Reason}
	next, changes := apply(d, ch, info)
	if len(changes) == 0 {
		snap := newSnapshot(d, SourceStore)
		s.install(snap)
		return snap, nil
	}
	rec := &AuditRecord{Time: now, Instance: s.opt.Instance, Actor: ch.Actor, Generation: next.Generation, Changes: changes}
	if err := s.commit(ctx, d.Generation, next, rec, ch.Fence); err != nil {
		if errors.Is(err, ErrUnavailable) {
			s.setErr(err)
		}
		return nil, err
	}
	s.setErr(nil)
	snap := newSnapshot(next, SourceStore)
	s.install(snap)
	return snap, nil
}

// install applies snap if it is newer than the current snapshot: a store
// snapshot replaces a file one, and generations only move forward.
func (s *Store) install(snap *Snapshot) bool {
	s.installMu.Lock()
	defer s.installMu.Unlock()
	cur := s.current.Load()
	switch {
	case cur == nil:
	case snap.source == SourceFile:
		return false
	case cur.source == SourceStore && (snap.gen < cur.gen || (snap.gen == cur.gen && snap.epoch == cur.epoch)):
		return false
	}
	// The consumer first, then Current: Ready (the health check) must not
	// pass before the consumer serves the snapshot.
	if s.opt.OnApply != nil {
		s.opt.OnApply(snap)
	}
	s.current.Store(snap)
	if snap.source == SourceStore {
		s.synced.Store(true)
	}
	if cur != nil && cur.source == SourceFile && snap.source == SourceStore {
		s.opt.Log.Warn("fleet store reached: now serving the fleet's shares instead of the config file's",
			"generation", snap.gen, "shares", snap.Shares())
	}
	select {
	case s.beatNow <- struct{}{}:
	default:
	}
	return true
}

// SetFileShares gives the shares of a reloaded config file: routes the store
// does not know are seeded with them, and a share that differs from the
// store's record of the file is written to the store at the next sync (an
// edit of the file; see the package doc). It does not block.
func (s *Store) SetFileShares(shares map[string]int) {
	s.fileMu.Lock()
	s.fileShare = maps.Clone(shares)
	s.fileCheck = true
	s.fileVer++
	s.fileMu.Unlock()
	s.Poke()
}

// Poke makes Run read the store at once instead of at the next interval.
func (s *Store) Poke() {
	select {
	case s.syncNow <- struct{}{}:
	default:
	}
}

// Run applies the fleet state until ctx ends: it listens for change
// messages, reconciles every ReconcileInterval, heartbeats, and falls back
// to the file's shares past the startup bound. On return it has removed its
// heartbeat (best effort) and every goroutine it started has ended.
func (s *Store) Run(ctx context.Context) error {
	ps := s.rdb.Subscribe(ctx, s.key("changes"))
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { s.listen(gctx, ps); return nil })
	g.Go(func() error { s.reconcile(gctx); return nil })
	g.Go(func() error { s.heartbeat(gctx); return nil })
	<-gctx.Done()
	_ = ps.Close() // unblocks listen
	err := g.Wait()
	s.deregister()
	return err
}

// listen turns change messages into syncs. After a reconnection (a new
// subscription confirmation) it syncs too, since messages were missed.
func (s *Store) listen(ctx context.Context, ps *redis.PubSub) {
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, min(s.opt.ReconcileInterval, time.Second))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// A quiet channel or a dead connection: a ping tells them
				// apart (its failure makes the next receive reconnect).
				_ = ps.Ping(ctx)
				continue
			}
			// Down or closed: reconcile covers it; wait before retrying so a
			// dead store does not spin this loop, at most a second so the
			// subscription is back soon after the store.
			select {
			case <-ctx.Done():
			case <-time.After(min(s.opt.ReconcileInterval, time.Second)):
			}
			continue
		}
		switch msg.(type) {
		case *redis.Message, *redis.Subscription:
			s.Poke()
		}
	}
}

func (s *Store) reconcile(ctx context.Context) {
	t := time.NewTicker(s.opt.ReconcileInterval)
	defer t.Stop()
	for {
		if err := s.sync(ctx); err != nil && ctx.Err() == nil {
			s.maybeFallback()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.syncNow:
		}
	}
}

// maybeFallback starts the instance on the file's shares once the startup
// bound has passed without reaching the store.
func (s *Store) maybeFallback() {
	if s.current.Load() != nil || s.opt.StartupBound < 0 || s.opt.Now().Sub(s.started) < s.opt.StartupBound {
		return
	}
	d := document{Routes: map[string]RouteState{}}
	for name, bp := range s.fileShares() {
		d.Routes[name] = RouteState{Share: bp, FileShare: bp}
	}
	if s.install(newSnapshot(d, SourceFile)) {
		now := s.opt.Now().UTC()
		s.fallback.Store(&now)
		s.opt.Log.Error("FLEET STORE UNREACHABLE AT START: serving the config file's shares, which may differ from the fleet's, until it is reached",
			"store", s.name, "startup_bound", s.opt.StartupBound, "error", s.LastError(), "shares", d.Routes)
	}
}

func (s *Store) fileShares() map[string]int {
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	return maps.Clone(s.fileShare)
}

// sync reads the store and applies it, restores it when it is behind, then
// seeds the routes it does not know and writes edits of the file.
func (s *Store) sync(ctx context.Context) error {
	var err error
	for range 3 {
		var d document
		if d, err = s.fetch(ctx); err != nil {
			s.setErr(err)
			return err
		}
		s.setErr(nil)
		cur := s.current.Load()
		// Behind: empty, older than what this instance applied, or only a
		// file's seed in another life than the (not only seeded) fleet
		// state it applied. Generations only grow, so restores end.
		own := cur != nil && cur.source == SourceStore && cur.gen > 0
		behind := d.Generation == 0 ||
			(own && (d.Generation < cur.gen || (d.Seeded && !cur.seeded && d.Epoch != cur.epoch)))
		if !behind {
			s.install(newSnapshot(d, SourceStore))
			return s.syncFile(ctx)
		}
		if err = s.restore(ctx, d, cur); !errors.Is(err, ErrConflict) {
			if err != nil {
				return err
			}
			return s.syncFile(ctx)
		}
	}
	return err
}

// restore writes the instance's applied state (or the file's shares when it
// has none from the store) to a store that is empty or behind it.
func (s *Store) restore(ctx context.Context, d document, cur *Snapshot) error {
	action, reason := "seed", "fleet store empty: seeded from the config file"
	var local document
	if cur != nil && cur.source == SourceStore && cur.gen > 0 {
		action = "restore"
		switch {
		case d.Generation == 0:
			reason = fmt.Sprintf("fleet store empty (restarted without its data?): restored this instance's generation %d", cur.gen)
		case d.Generation < cur.gen:
			reason = fmt.Sprintf("fleet store at generation %d, behind this instance's %d (failed over to a replica that missed writes?): restored this instance's", d.Generation, cur.gen)
		default:
			reason = fmt.Sprintf("fleet store holds only a config file's seed (generation %d), not the fleet state this instance applied: restored this instance's generation %d", d.Generation, cur.gen)
		}
		local = cur.document()
	} else {
		local = document{Routes: map[string]RouteState{}}
		for name, bp := range s.fileShares() {
			local.Routes[name] = RouteState{Share: bp, FileShare: bp}
		}
	}
	gen := d.Generation
	if cur != nil && cur.gen > gen {
		gen = cur.gen
	}
	next := document{Generation: gen + 1, Epoch: newEpoch(), Seeded: action == "seed" || local.Seeded, Routes: d.Routes}
	now := s.opt.Now().UTC()
	info := ChangeInfo{Generation: next.Generation, Time: now, Who: "cutover", Instance: s.opt.Instance, Action: action, Reason: reason}
	var changes []RouteChange
	for _, name := range slices.Sorted(maps.Keys(local.Routes)) {
		r := local.Routes[name]
		if r.Changed.Action == "" {
			r.Changed = info
		}
		rc := RouteChange{Route: name, New: valueOf(r)}
		if old, ok := d.Routes[name]; ok {
			v := valueOf(old)
			rc.Old = &v
		}
		next.Routes[name] = r
		changes = append(changes, rc)
	}
	if len(next.Routes) == 0 {
		// Nothing to write: an empty store is an empty fleet.
		s.install(newSnapshot(d, SourceStore))
		return nil
	}
	rec := &AuditRecord{Time: now, Instance: s.opt.Instance, Actor: Actor{Who: "cutover", Action: action, Reason: reason},
		Generation: next.Generation, Changes: changes}
	if err := s.commit(ctx, d.Generation, next, rec, nil); err != nil {
		if errors.Is(err, ErrUnavailable) {
			s.setErr(err)
		}
		return err
	}
	s.opt.Log.Warn("fleet store "+action, "store", s.name, "reason", reason, "generation", next.Generation)
	s.install(newSnapshot(next, SourceStore))
	return nil
}

// syncFile seeds the routes of the file the store does not know and, once
// after each start or reload, writes the file's edited shares (package doc).
func (s *Store) syncFile(ctx context.Context) error {
	s.fileMu.Lock()
	shares, check, ver := maps.Clone(s.fileShare), s.fileCheck, s.fileVer
	s.fileMu.Unlock()
	cur := s.current.Load()
	seed, edits := map[string]Edit{}, map[string]Edit{}
	for _, name := range slices.Sorted(maps.Keys(shares)) {
		bp := shares[name]
		r, ok := cur.routes[name]
		switch {
		case !ok:
			seed[name] = Edit{Share: &bp, FileShare: &bp}
		case check && r.FileShare != bp:
			s.opt.Log.Warn("fleet: the config file's share of a route was edited: writing it to the fleet store",
				"route", name, "file_share_bp", bp, "previous_file_share_bp", r.FileShare, "fleet_share_bp", r.Share)
			edits[name] = Edit{Share: &bp, FileShare: &bp}
		case check && r.Share != bp:
			s.opt.Log.Info("fleet: the fleet store's share stands; the config file's is unchanged since it was last written",
				"route", name, "fleet_share_bp", r.Share, "file_share_bp", bp)
		}
	}
	if len(seed) > 0 {
		if _, err := s.ApplyLatest(ctx, Change{Edits: seed, Actor: Actor{Who: "cutover", Action: "seed", Reason: "config file"}}); err != nil {
			return err
		}
	}
	if len(edits) > 0 {
		if _, err := s.ApplyLatest(ctx, Change{Edits: edits, Actor: Actor{Who: "cutover", Action: "config_file", Reason: "config file"}}); err != nil {
			return err
		}
	}
	if check {
		s.fileMu.Lock()
		if s.fileVer == ver {
			s.fileCheck = false
		}
		s.fileMu.Unlock()
	}
	s.startChecked.Store(true)
	return nil
}

// Redis returns the store's client and key prefix, for packages that keep
// keys of their own beside the state (the rollout's windowed counters); they
// must use keys under the prefix that the fleet does not use ("rollout:...").
func (s *Store) Redis() (*redis.Client, string) { return s.rdb, s.opt.KeyPrefix }
