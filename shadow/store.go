package shadow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// ErrNotFound is returned by Store.Get for an unknown id.
var ErrNotFound = errors.New("diff record not found")

// Record is one stored comparison.
type Record struct {
	ID          string         `json:"id"`
	Time        time.Time      `json:"time"`
	Route       string         `json:"route"`
	PrimarySide string         `json:"primary_side"`
	Class       Class          `json:"class"`
	Request     RecordRequest  `json:"request"`
	Primary     RecordResponse `json:"primary"`
	Shadow      RecordResponse `json:"shadow"`
	Mismatches  []Mismatch     `json:"mismatches,omitempty"`
	Dropped     int            `json:"dropped,omitempty"`
}

// RecordRequest is the redacted request of a Record.
type RecordRequest struct {
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Query  string      `json:"query,omitempty"`
	Header http.Header `json:"header,omitempty"`
	Body   Body        `json:"body"`
}

// RecordResponse is one side's redacted response in a Record.
type RecordResponse struct {
	Status    int         `json:"status"`
	Header    http.Header `json:"header,omitempty"`
	Body      Body        `json:"body"`
	Truncated bool        `json:"truncated,omitempty"`
	Error     string      `json:"error,omitempty"`
}

// Body is a stored payload. A body that is valid UTF-8 is kept as redacted
// text. Any other body is not stored at all, because the secrets in it
// cannot be found to redact them: Binary records its size and SHA-256, so two
// records can still be told apart.
type Body struct {
	Text string `json:"text,omitempty"`
	// Binary describes a body that was not valid UTF-8; nil for text.
	Binary *BinaryBody `json:"binary,omitempty"`
	// Clipped says the stored text stops at the record's body limit.
	Clipped bool `json:"clipped,omitempty"`
}

// BinaryBody stands for a body that is not stored.
type BinaryBody struct {
	// Size is the body's length in bytes, whole (before any clipping).
	Size int `json:"size"`
	// SHA256 is the hex SHA-256 of the whole body.
	SHA256 string `json:"sha256"`
}

// Bytes returns the stored text (nil for a binary body, which is not stored).
func (b Body) Bytes() []byte {
	if b.Text == "" {
		return nil
	}
	return []byte(b.Text)
}

func newBody(p []byte, limit int) Body {
	if !utf8.Valid(p) {
		t := trimPartialRune(p)
		if !utf8.Valid(t) {
			sum := sha256.Sum256(p)
			return Body{Binary: &BinaryBody{Size: len(p), SHA256: hex.EncodeToString(sum[:])}}
		}
		p = t
	}
	var b Body
	if len(p) > limit {
		p, b.Clipped = trimPartialRune(p[:limit]), true
	}
	b.Text = string(p)
	return b
}

// trimPartialRune drops an incomplete UTF-8 sequence at the end of p, as left
// by clipping (or by a response truncated at the capture limit).
func trimPartialRune(p []byte) []byte {
	for i := 1; i <= utf8.UTFMax-1 && i <= len(p); i++ {
		c := p[len(p)-i]
		if !utf8.RuneStart(c) {
			continue
		}
		if !utf8.FullRune(p[len(p)-i:]) {
			return p[:len(p)-i]
		}
		break
	}
	return p
}

// Query selects records, newest first.
type Query struct {
	Route string // "" = any
	Class Class  // "" = any
	Since time.Time
	Until time.Time
	// Before is the pagination cursor: only records older than this id
	// (Page.Next of the previous page).
	Before string
	// Limit is the page size. Zero means 50; capped at 500.
	Limit int
}

func (q Query) limit() int {
	switch {
	case q.Limit <= 0:
		return 50
	case q.Limit > 500:
		return 500
	}
	return q.Limit
}

func (q Query) matches(r *Record) bool {
	return (q.Route == "" || r.Route == q.Route) &&
		(q.Class == "" || r.Class == q.Class) &&
		(q.Since.IsZero() || !r.Time.Before(q.Since)) &&
		(q.Until.IsZero() || !r.Time.After(q.Until))
}

// Page is one page of a query; Next is "" on the last page.
type Page struct {
	Records []Record `json:"records"`
	Next    string   `json:"next,omitempty"`
}

// dropCounts counts the records a store dropped to stay within its bounds:
// older records evicted for a new one, and records too large on their own.
type dropCounts struct {
	evicted, tooLarge atomic.Uint64
}

// storeDrops names a store's drop counts for the metrics ("memory", "redis").
type storeDrops struct {
	store  string
	counts *dropCounts
}

// dropReporter is a Store that counts what it drops.
type dropReporter interface{ storeDrops() []storeDrops }

// Store keeps diff records. Implementations are safe for concurrent use and
// bounded in size.
type Store interface {
	// Add stores r and sets r.ID.
	Add(ctx context.Context, r *Record) error
	Get(ctx context.Context, id string) (Record, error)
	List(ctx context.Context, q Query) (Page, error)
}

// ErrRecordTooLarge is returned by a Store's Add for a record larger, on its
// own, than the store's byte bound; the record is not stored and the store
// counts it as dropped ("too_large").
var ErrRecordTooLarge = errors.New("diff record larger than the store's byte bound")

// Defaults of the stores' byte bounds.
const (
	// DefaultRingMaxBytes bounds the records a Ring holds, as JSON.
	DefaultRingMaxBytes = 64 << 20
	// DefaultStreamMaxBytes bounds the records a StreamStore keeps, as JSON.
	DefaultStreamMaxBytes = 64 << 20
)

// Ring is an in-memory Store keeping the newest records within two bounds:
// a number of records and their total size, each record measured as its
// JSON encoding. Older records are evicted to make room for a new one; a
// record larger than the byte bound on its own is refused.
type Ring struct {
	mu       sync.Mutex
	buf      []Record
	sizes    []int // JSON size of buf[i]
	head     int   // index of the oldest record
	n        int   // records held
	bytes    int64 // sum of sizes held
	maxBytes int64
	seq      uint64
	drops    dropCounts
}

var _ Store = (*Ring)(nil)

// NewRing returns a ring of size records holding at most
// DefaultRingMaxBytes of them. size <= 0 means 1000.
func NewRing(size int) *Ring { return NewBoundedRing(size, 0) }

// NewBoundedRing returns a ring of size records holding at most maxBytes of
// them (as JSON). size <= 0 means 1000; maxBytes <= 0 means
// DefaultRingMaxBytes.
func NewBoundedRing(size int, maxBytes int64) *Ring {
	if size <= 0 {
		size = 1000
	}
	if maxBytes <= 0 {
		maxBytes = DefaultRingMaxBytes
	}
	return &Ring{buf: make([]Record, size), sizes: make([]int, size), maxBytes: maxBytes}
}

// ringID is "<unix ms>-<sequence>", ordered like a Redis stream id.
func ringID(t time.Time, seq uint64) string { return fmt.Sprintf("%d-%d", t.UnixMilli(), seq) }

func idSeq(id string) (uint64, bool) {
	_, s, ok := strings.Cut(id, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// Add implements Store.
func (r *Ring) Add(_ context.Context, rec *Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	rec.ID = ringID(rec.Time, r.seq)
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode diff record: %w", err)
	}
	return r.putLocked(*rec, len(data))
}

// load inserts a record that already has an id (JSONL replay); size is the
// length of its line.
func (r *Ring) load(rec Record, size int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := idSeq(rec.ID); ok && s > r.seq {
		r.seq = s
	}
	_ = r.putLocked(rec, size) // a record too large is counted and skipped
}

func (r *Ring) putLocked(rec Record, size int) error {
	if int64(size) > r.maxBytes {
		r.drops.tooLarge.Add(1)
		return ErrRecordTooLarge
	}
	for r.n == len(r.buf) || r.bytes+int64(size) > r.maxBytes {
		r.bytes -= int64(r.sizes[r.head])
		r.buf[r.head], r.sizes[r.head] = Record{}, 0
		r.head = (r.head + 1) % len(r.buf)
		r.n--
		r.drops.evicted.Add(1)
	}
	i := (r.head + r.n) % len(r.buf)
	r.buf[i], r.sizes[i] = rec, size
	r.n++
	r.bytes += int64(size)
	return nil
}

// Bytes returns the JSON size of the records the ring holds.
func (r *Ring) Bytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bytes
}

// each calls f on records newest first until f returns false.
func (r *Ring) eachLocked(f func(*Record) bool) {
	for i := r.n - 1; i >= 0; i-- {
		if !f(&r.buf[(r.head+i)%len(r.buf)]) {
			return
		}
	}
}

func (r *Ring) storeDrops() []storeDrops {
	return []storeDrops{{store: "memory", counts: &r.drops}}
}

// Get implements Store.
func (r *Ring) Get(_ context.Context, id string) (Record, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out Record
	found := false
	r.eachLocked(func(rec *Record) bool {
		if rec.ID == id {
			out, found = *rec, true
			return false
		}
		return true
	})
	if !found {
		return Record{}, ErrNotFound
	}
	return out, nil
}

// List implements Store.
func (r *Ring) List(_ context.Context, q Query) (Page, error) {
	var before uint64
	if q.Before != "" {
		s, ok := idSeq(q.Before)
		if !ok {
			return Page{}, fmt.Errorf("bad cursor %q", q.Before)
		}
		before = s
	}
	limit := q.limit()
	r.mu.Lock()
	defer r.mu.Unlock()
	var p Page
	r.eachLocked(func(rec *Record) bool {
		if s, _ := idSeq(rec.ID); before != 0 && s >= before {
			return true
		}
		if !q.matches(rec) {
			return true
		}
		if len(p.Records) == limit {
			p.Next = p.Records[limit-1].ID
			return false
		}
		p.Records = append(p.Records, *rec)
		return true
	})
	return p, nil
}

// MultiStore writes every record to Primary and then to each of Also (for
// example a FileStore answering queries plus a StreamStore for the fleet);
// Get and List are answered by Primary. Ids are Primary's.
type MultiStore struct {
	Primary Store
	Also    []Store
}

var _ Store = MultiStore{}

func (s MultiStore) storeDrops() []storeDrops {
	var out []storeDrops
	for _, st := range append([]Store{s.Primary}, s.Also...) {
		if d, ok := st.(dropReporter); ok {
			out = append(out, d.storeDrops()...)
		}
	}
	return out
}

// Add implements Store; it returns every failure joined, Primary's first.
func (s MultiStore) Add(ctx context.Context, r *Record) error {
	errs := []error{s.Primary.Add(ctx, r)}
	for _, o := range s.Also {
		cp := *r
		errs = append(errs, o.Add(ctx, &cp))
	}
	return errors.Join(errs...)
}

// Get implements Store.
func (s MultiStore) Get(ctx context.Context, id string) (Record, error) {
	return s.Primary.Get(ctx, id)
}

// List implements Store.
func (s MultiStore) List(ctx context.Context, q Query) (Page, error) { return s.Primary.List(ctx, q) }
