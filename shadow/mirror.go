package shadow

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Mirror. The zero value works: 4 workers, a queue of 64,
// 10s per shadow call, 1 MiB captured per response, default comparison rules,
// a 1000-record in-memory ring, no cost caps, no metrics.
type Options struct {
	// Workers is the number of shadow calls run at once. Zero means 4.
	Workers int
	// QueueSize bounds jobs waiting for a worker; Submit drops beyond it.
	// Zero means 64.
	QueueSize int
	// Timeout bounds one shadow job (waiting for the Guard's in-flight slot,
	// staging, the shadow call, a noise replay). Zero means 10s.
	Timeout time.Duration
	// MaxResponseBytes caps the shadow (and replay) body read; a longer body
	// is counted as SkipResponseTooLarge. Zero means 1 MiB. Use the same
	// value as the primary's Tee limit.
	MaxResponseBytes int
	// MaxBodyBytes caps the request body Wrap buffers for the shadow; a larger
	// body is not shadowed (SkipBodyTooLarge) and reaches the primary intact.
	// Zero means 1 MiB.
	MaxBodyBytes int64
	// MaxRecordBody caps each body kept in a diff record. Zero means 64 KiB.
	MaxRecordBody int
	// Comparator compares responses. Nil means default rules for every route.
	// SetComparator replaces it while the Mirror runs.
	Comparator *Comparator
	// Store keeps diff records. Nil means NewRing(1000).
	Store Store
	// RecordMatches also stores comparisons that matched; false stores only
	// records with a mismatch or error (matches are still counted).
	RecordMatches bool
	// Guard caps shadow cost. Nil means no caps.
	Guard *Guard
	// Fleet sums the summary across every Mirror sharing its Redis hash (set
	// it with a Redis diff store). Nil means the summary is this process's.
	Fleet *FleetTally
	// Noise learns noisy fields from jobs with a Replay target. Nil means no
	// noise learning (replays are not made).
	Noise *Noise
	// Redaction lists secrets kept out of records, besides the defaults
	// (cookies, Authorization, API keys, tokens), which always apply.
	Redaction Redaction
	// ShadowHeader is set to "1" on every shadow and replay request so the
	// other side (and logs) can tell shadow traffic from user traffic. Empty
	// means "X-Cutover-Shadow".
	ShadowHeader string
	// Registerer receives the Prometheus collectors. Nil means no metrics.
	Registerer prometheus.Registerer
	// Logger logs store and release failures. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock for record times. Nil means time.Now.
	Now func() time.Time
}

// Mirror runs shadow jobs on a bounded pool, off the request path: Submit
// never blocks, each job runs on a context detached from the client's with
// its own timeout, and memory is bounded by (QueueSize + Workers) jobs.
// Safe for concurrent use. Close stops it.
type Mirror struct {
	opts   Options
	cmp    atomic.Pointer[Comparator] // stamped on each job by Submit
	store  Store
	red    *redactor
	mt     *metrics
	log    *slog.Logger
	queue  chan Job
	mu     sync.RWMutex // guards closed against Submit racing Close
	closed bool
	stop   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	busy   atomic.Int64
	locks  [64]sync.Mutex

	tally tally

	fleetMu sync.Mutex              // serialises fleet flushes and resets
	flushed map[string]RouteSummary // this process's tally as the fleet hash has it
	bg      sync.WaitGroup          // the fleet flusher
}

// NewMirror validates opts, registers metrics and starts the workers.
func NewMirror(opts Options) (*Mirror, error) {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 64
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = 1 << 20
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.MaxRecordBody <= 0 {
		opts.MaxRecordBody = 64 << 10
	}
	if opts.ShadowHeader == "" {
		opts.ShadowHeader = "X-Cutover-Shadow"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Mirror{opts: opts, store: opts.Store, log: opts.Logger,
		queue: make(chan Job, opts.QueueSize)}
	m.SetComparator(opts.Comparator)
	if m.store == nil {
		m.store = NewRing(1000)
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	red, err := newRedactor(opts.Redaction)
	if err != nil {
		return nil, fmt.Errorf("shadow: %w", err)
	}
	m.red = red
	if m.mt, err = newMetrics(opts.Registerer, m); err != nil {
		return nil, fmt.Errorf("shadow metrics: %w", err)
	}
	m.stop, m.cancel = context.WithCancel(context.Background())
	m.wg.Add(opts.Workers)
	for range opts.Workers {
		go m.worker()
	}
	if opts.Fleet != nil {
		m.bg.Add(1)
		go m.flusher()
	}
	return m, nil
}

// ErrClosed is returned by Close when called twice.
var ErrClosed = errors.New("shadow mirror closed")

// SetComparator makes c the comparison rules of jobs submitted from now on
// (a config reload); jobs already submitted finish under the rules they were
// submitted with. Nil means default rules for every route. Safe to call
// concurrently with Submit.
func (m *Mirror) SetComparator(c *Comparator) {
	if c == nil {
		c, _ = NewComparator(ComparatorConfig{})
	}
	m.cmp.Store(c)
}

// Submit queues j and returns true, or counts a skip and returns false when
// the queue is full, the mirror is closed, or the job cannot be compared
// (primary truncated or failed, no target). It never blocks. The job is
// compared under the rules in force now (see SetComparator).
func (m *Mirror) Submit(j Job) bool {
	switch {
	case j.Target == nil:
		m.Skip(j.Route, SkipNoTarget)
		return false
	case j.Primary.Err != "":
		m.Skip(j.Route, SkipPrimaryError)
		return false
	case j.Primary.Truncated:
		m.Skip(j.Route, SkipResponseTooLarge)
		return false
	}
	j.cmp = m.cmp.Load()
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		m.Skip(j.Route, SkipClosed)
		return false
	}
	select {
	case m.queue <- j:
		return true
	default:
		m.Skip(j.Route, SkipQueueFull)
		return false
	}
}

// Skip counts a request not shadowed for reason (one of the Skip* constants,
// e.g. SkipNotSampled, SkipUnsafeMethod, SkipBodyTooLarge decided by the
// proxy), in the summary and the metrics. Lock-free after a route's first
// use of a reason.
func (m *Mirror) Skip(route, reason string) {
	m.tally.route(route).skip(reason).Add(1)
	m.mt.skipped(route, reason)
}

// QueueDepth returns the jobs waiting for a worker.
func (m *Mirror) QueueDepth() int { return len(m.queue) }

// Store returns the diff store.
func (m *Mirror) Store() Store { return m.store }

// Noise returns the noise learner (nil when noise learning is off).
func (m *Mirror) Noise() *Noise { return m.opts.Noise }

// Summary returns this process's per-route tallies, sorted by route. A
// comparison is counted after its record (if any) is stored, so a caller
// that saw the count can query the record.
func (m *Mirror) Summary() []RouteSummary { return m.tally.summary() }

// FleetSummary flushes this process's new counts to the fleet hash, then
// returns the fleet's per-route tallies, sorted by route (other instances'
// counts lag by up to their flush interval). It returns ErrNoFleet without a
// FleetTally.
func (m *Mirror) FleetSummary(ctx context.Context) ([]RouteSummary, error) {
	f := m.opts.Fleet
	if f == nil {
		return nil, ErrNoFleet
	}
	m.flushFleet()
	ctx, cancel := context.WithTimeout(ctx, f.timeout())
	defer cancel()
	return f.read(ctx)
}

// ResetFleet sets the fleet summary to zero by deleting its hash; this
// process's counts made before the reset are not flushed to it (its own
// Summary keeps them). It returns ErrNoFleet without a FleetTally.
func (m *Mirror) ResetFleet(ctx context.Context) error {
	f := m.opts.Fleet
	if f == nil {
		return ErrNoFleet
	}
	m.fleetMu.Lock()
	defer m.fleetMu.Unlock()
	now := m.tally.summary()
	ctx, cancel := context.WithTimeout(ctx, f.timeout())
	defer cancel()
	if err := f.Client.Del(ctx, f.key()).Err(); err != nil {
		return fmt.Errorf("reset fleet summary: del %s: %w", f.key(), err)
	}
	m.flushed = byRoute(now)
	return nil
}

// FleetKey returns the fleet hash's key, or "" without a FleetTally.
func (m *Mirror) FleetKey() string {
	if m.opts.Fleet == nil {
		return ""
	}
	return m.opts.Fleet.key()
}

// flusher adds this process's new counts to the fleet hash every interval
// until the Mirror stops (Close then flushes what is left).
func (m *Mirror) flusher() {
	defer m.bg.Done()
	t := time.NewTicker(m.opts.Fleet.interval())
	defer t.Stop()
	for {
		select {
		case <-t.C:
			m.flushFleet()
		case <-m.stop.Done():
			return
		}
	}
}

// flushFleet adds the counts made since the last successful flush to the
// fleet hash; on failure it logs, counts, and leaves them for the next one.
func (m *Mirror) flushFleet() {
	f := m.opts.Fleet
	m.fleetMu.Lock()
	defer m.fleetMu.Unlock()
	now := m.tally.summary()
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout())
	defer cancel()
	added, err := f.add(ctx, now, m.flushed)
	if err != nil {
		m.mt.fleetFlushFailed()
		m.log.Warn("shadow fleet summary flush failed", "err", err)
		return
	}
	if added {
		m.flushed = byRoute(now)
	}
}

func byRoute(s []RouteSummary) map[string]RouteSummary {
	out := make(map[string]RouteSummary, len(s))
	for _, r := range s {
		out[r.Route] = r
	}
	return out
}

// Close stops accepting jobs and lets the workers finish the queue. If ctx
// ends first, running shadow calls are cancelled and queued jobs dropped
// (counted as SkipClosed); Close still waits for every worker to return.
// With a FleetTally it then flushes the last counts (bounded by its Timeout).
func (m *Mirror) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	m.closed = true
	close(m.queue)
	m.mu.Unlock()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		m.cancel()
		<-done
		err = ctx.Err()
	}
	m.cancel()
	m.bg.Wait()
	if m.opts.Fleet != nil {
		m.flushFleet()
	}
	return err
}

func (m *Mirror) worker() {
	defer m.wg.Done()
	for j := range m.queue {
		if m.stop.Err() != nil {
			m.Skip(j.Route, SkipClosed)
			continue
		}
		m.busy.Add(1)
		m.run(j)
		m.busy.Add(-1)
	}
}

func (m *Mirror) lock(key string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(key))
	return &m.locks[h.Sum32()%uint32(len(m.locks))]
}

// run executes one job; it is the only place a shadow call is made.
func (m *Mirror) run(j Job) {
	parent := j.Context
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), m.opts.Timeout)
	defer cancel()
	stop := context.AfterFunc(m.stop, cancel)
	defer stop()

	// Waiting for an in-flight slot counts against the job's timeout.
	release, reason := m.opts.Guard.Acquire(ctx, j.ModelCall)
	if release == nil {
		if m.stop.Err() != nil {
			reason = SkipClosed
		}
		m.Skip(j.Route, reason)
		return
	}
	defer release()

	replay := j.Replay != nil && m.opts.Noise != nil && (!j.ModelCall || m.opts.Guard.TakeModelCall())
	var shadow, again Response
	var took time.Duration
	if j.Snapshot != nil {
		// Stage, call, release, under a per-key lock: two shadows of one
		// conversation must not see each other's copy.
		mu := m.lock(j.Snapshot.Key())
		mu.Lock()
		ok := m.staged(ctx, j, func() { shadow, took = m.call(ctx, j, j.Target, "shadow") })
		if ok && replay {
			replay = m.staged(ctx, j, func() { again, _ = m.call(ctx, j, j.Replay, "noise") })
		}
		mu.Unlock()
		if !ok {
			return
		}
	} else {
		shadow, took = m.call(ctx, j, j.Target, "shadow")
		if replay {
			again, _ = m.call(ctx, j, j.Replay, "noise")
		}
	}
	m.mt.observe(j.Route, took.Seconds())

	rec := m.record(j, shadow)
	switch {
	case shadow.Err != "":
		// Stored, then counted: a caller that sees the count can query the record.
		rec.Class = ClassError
		m.save(ctx, rec)
		m.count(j.Route, ClassError)
		return
	case shadow.Truncated:
		m.Skip(j.Route, SkipResponseTooLarge)
		return
	}
	cmp := j.cmp // the rules in force when the job was submitted
	res := cmp.Compare(j.Route, j.Primary, shadow)
	if n := m.opts.Noise; n != nil {
		if replay && again.Err == "" && !again.Truncated {
			n.ObserveNoise(j.Route, semanticPaths(cmp.Compare(j.Route, j.Primary, again)))
		}
		n.ObserveRaw(j.Route, semanticPaths(res))
		n.apply(j.Route, &res)
	}
	rec.Class, rec.Mismatches, rec.Dropped = res.Class, m.red.mismatches(res.Mismatches), res.Dropped
	if res.Class != ClassMatch || m.opts.RecordMatches {
		m.save(ctx, rec)
	}
	m.count(j.Route, res.Class)
}

// staged stages the snapshot, runs f, and releases. It reports false (and
// counts SkipSnapshot) when staging failed, in which case f did not run.
func (m *Mirror) staged(ctx context.Context, j Job, f func()) bool {
	release, err := j.Snapshot.Stage(ctx)
	if err != nil {
		m.log.Warn("shadow snapshot stage failed", "route", j.Route, "err", err)
		m.Skip(j.Route, SkipSnapshot)
		return false
	}
	f()
	// Release on a fresh short context: the job's may have expired, and a
	// copy left behind would leak into the isolated store.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := release(rctx); err != nil {
		m.log.Warn("shadow snapshot release failed", "route", j.Route, "err", err)
	}
	return true
}

// call sends one replay of the request to t and reads a bounded response.
func (m *Mirror) call(ctx context.Context, j Job, t Target, purpose string) (out Response, took time.Duration) {
	defer func() {
		// A panicking target must not take the process down with the worker.
		if p := recover(); p != nil {
			out, took = Response{Err: fmt.Sprintf("shadow target panic: %v", p)}, 0
		}
	}()
	req := j.Request.HTTP(ctx)
	req.Header.Set(m.opts.ShadowHeader, "1")
	if j.ModelCall {
		m.mt.modelCall(j.Route, purpose)
	}
	start := time.Now()
	resp, err := t.RoundTrip(req)
	if err != nil {
		return Response{Err: err.Error()}, time.Since(start)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(m.opts.MaxResponseBytes)+1))
	out = Response{Status: resp.StatusCode, Header: resp.Header}
	switch {
	case err != nil:
		out.Err = fmt.Sprintf("read shadow body: %v", err)
	case len(body) > m.opts.MaxResponseBytes:
		out.Truncated = true
		body = body[:m.opts.MaxResponseBytes]
	}
	out.Body = body
	return out, time.Since(start)
}

func (m *Mirror) count(route string, c Class) {
	m.tally.route(route).count(c)
	m.mt.compared(route, c)
}

func (m *Mirror) record(j Job, shadow Response) *Record {
	lim := m.opts.MaxRecordBody
	req := j.Request
	path, query := "", ""
	if req.URL != nil {
		path, query = req.URL.Path, req.URL.RawQuery
	}
	ct := req.Header.Get("Content-Type")
	return &Record{
		Time:        m.opts.Now().UTC(),
		Route:       j.Route,
		PrimarySide: j.PrimarySide,
		Request: RecordRequest{
			Method: req.Method,
			Path:   path,
			Query:  m.red.query(query),
			Header: m.red.header(req.Header),
			Body:   m.redactBody(req.Body, ct, lim),
		},
		Primary: m.recordResponse(j.Primary, lim),
		Shadow:  m.recordResponse(shadow, lim),
	}
}

func (m *Mirror) recordResponse(r Response, lim int) RecordResponse {
	return RecordResponse{
		Status:    r.Status,
		Header:    m.red.header(r.Header),
		Body:      m.redactBody(r.Body, r.Header.Get("Content-Type"), lim),
		Truncated: r.Truncated,
		Error:     r.Err,
	}
}

func (m *Mirror) redactBody(b []byte, ct string, lim int) Body {
	if len(b) == 0 {
		return Body{}
	}
	body := newBody(b, lim)
	if body.Text != "" {
		body.Text = m.red.body(body.Text, ct)
	}
	return body
}

func (m *Mirror) save(ctx context.Context, r *Record) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	err := m.store.Add(sctx, r)
	switch {
	case err == nil:
	case onlyTooLarge(err): // counted by the store as dropped
		m.log.Warn("shadow diff record dropped: larger than the store's byte bound", "route", r.Route)
	default:
		m.mt.storeFailed(r.Route)
		m.log.Warn("shadow diff store failed", "route", r.Route, "err", err)
	}
}

// onlyTooLarge says whether err (possibly a MultiStore's joined errors) is
// ErrRecordTooLarge and nothing else.
func onlyTooLarge(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !onlyTooLarge(e) {
				return false
			}
		}
		return true
	}
	return errors.Is(err, ErrRecordTooLarge)
}
