package shadow

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// StreamStore keeps records in one Redis stream, so a fleet of proxies
// writes to one place. Each entry has fields route, class and r (the Record
// as JSON); the entry id is the record id. The stream is bounded both in
// entries (MaxLen) and in bytes (MaxBytes, the sum of the entries' r fields,
// kept in the counter key <Key>:bytes): every add, in one Lua script, appends
// the entry and deletes the oldest entries until both bounds hold again. A
// record larger than MaxBytes on its own is refused (ErrRecordTooLarge).
//
// Diff records hold chat text; keep them in a Redis of their own, not the
// production one, so that neither can fill the other's memory.
type StreamStore struct {
	// Client is the Redis holding the stream. Required.
	Client redis.Cmdable
	// Key is the stream key. Empty means "cutover:shadow:diffs".
	Key string
	// MaxLen caps the entries. Zero means 10000.
	MaxLen int64
	// MaxBytes caps the entries' record JSON, summed. Zero means
	// DefaultStreamMaxBytes (64 MiB).
	MaxBytes int64
	// ScanLimit bounds the entries one List call reads while filtering. Zero
	// means 5000; a page cut short by it still returns Next.
	ScanLimit int

	drops dropCounts
}

var _ Store = (*StreamStore)(nil)

func (s *StreamStore) key() string {
	if s.Key == "" {
		return "cutover:shadow:diffs"
	}
	return s.Key
}

// streamAdd appends one entry and trims the oldest until the stream holds at
// most ARGV[2] entries and ARGV[1] bytes of r fields. The byte counter
// (KEYS[2]) restarts when the stream is gone (deleted, or lost with a
// restart), so it cannot drift from an empty stream. ARGV[4] is the id
// ("<ms>-*"; on an id at or below the stream's last, Redis picks one).
// Returns {id, evicted}.
var streamAdd = redis.NewScript(`
local stream, counter = KEYS[1], KEYS[2]
local maxBytes, maxLen, size = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', stream) == 0 then redis.call('DEL', counter) end
local id = redis.pcall('XADD', stream, ARGV[4], 'route', ARGV[5], 'class', ARGV[6], 'r', ARGV[7])
if type(id) == 'table' and id.err then
  id = redis.call('XADD', stream, '*', 'route', ARGV[5], 'class', ARGV[6], 'r', ARGV[7])
end
local total = redis.call('INCRBY', counter, size)
local n = redis.call('XLEN', stream)
local evicted = 0
while n > 1 and (total > maxBytes or n > maxLen) do
  local e = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
  local f, sz = e[2], 0
  for i = 1, #f, 2 do
    if f[i] == 'r' then sz = #f[i + 1] end
  end
  redis.call('XDEL', stream, e[1])
  total = redis.call('DECRBY', counter, sz)
  n = n - 1
  evicted = evicted + 1
end
return {id, evicted}
`)

// Add implements Store.
func (s *StreamStore) Add(ctx context.Context, r *Record) error {
	r.ID = ""
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode diff record: %w", err)
	}
	maxLen, maxBytes := s.MaxLen, s.MaxBytes
	if maxLen <= 0 {
		maxLen = 10000
	}
	if maxBytes <= 0 {
		maxBytes = DefaultStreamMaxBytes
	}
	if int64(len(data)) > maxBytes {
		s.drops.tooLarge.Add(1)
		return ErrRecordTooLarge
	}
	res, err := streamAdd.Run(ctx, s.Client, []string{s.key(), s.key() + ":bytes"},
		maxBytes, maxLen, len(data), strconv.FormatInt(r.Time.UnixMilli(), 10)+"-*",
		r.Route, string(r.Class), data).Slice()
	if err != nil {
		return fmt.Errorf("xadd diff record: %w", err)
	}
	id, _ := res[0].(string)
	evicted, _ := res[1].(int64)
	s.drops.evicted.Add(uint64(evicted))
	r.ID = id
	return nil
}

func (s *StreamStore) storeDrops() []storeDrops {
	return []storeDrops{{store: "redis", counts: &s.drops}}
}

func decodeEntry(m redis.XMessage) (Record, error) {
	raw, _ := m.Values["r"].(string)
	var r Record
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return Record{}, fmt.Errorf("decode diff record %s: %w", m.ID, err)
	}
	r.ID = m.ID
	return r, nil
}

// Get implements Store.
func (s *StreamStore) Get(ctx context.Context, id string) (Record, error) {
	if !validStreamID(id) {
		return Record{}, ErrNotFound
	}
	msgs, err := s.Client.XRange(ctx, s.key(), id, id).Result()
	if err != nil {
		return Record{}, fmt.Errorf("xrange: %w", err)
	}
	if len(msgs) == 0 {
		return Record{}, ErrNotFound
	}
	return decodeEntry(msgs[0])
}

func validStreamID(id string) bool {
	ms, seq, ok := cutDash(id)
	if !ok {
		return false
	}
	_, e1 := strconv.ParseUint(ms, 10, 64)
	_, e2 := strconv.ParseUint(seq, 10, 64)
	return e1 == nil && e2 == nil
}

func cutDash(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == '-' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

// List implements Store, reading newest first with XREVRANGE in batches and
// filtering route and class client-side (time bounds map to id bounds).
func (s *StreamStore) List(ctx context.Context, q Query) (Page, error) {
	end, start := "+", "-"
	if !q.Until.IsZero() {
		end = strconv.FormatInt(q.Until.UnixMilli(), 10)
	}
	if !q.Since.IsZero() {
		start = strconv.FormatInt(q.Since.UnixMilli(), 10)
	}
	if q.Before != "" {
		if !validStreamID(q.Before) {
			return Page{}, fmt.Errorf("bad cursor %q", q.Before)
		}
		end = "(" + q.Before
	}
	limit, scanLimit := q.limit(), s.ScanLimit
	if scanLimit <= 0 {
		scanLimit = 5000
	}
	var p Page
	scanned := 0
	for scanned < scanLimit {
		batch := int64(min(200, scanLimit-scanned))
		msgs, err := s.Client.XRevRangeN(ctx, s.key(), end, start, batch).Result()
		if err != nil {
			return Page{}, fmt.Errorf("xrevrange: %w", err)
		}
		for _, m := range msgs {
			scanned++
			end = "(" + m.ID
			if (q.Route != "" && m.Values["route"] != q.Route) || (q.Class != "" && m.Values["class"] != string(q.Class)) {
				continue
			}
			r, err := decodeEntry(m)
			if err != nil {
				continue
			}
			if !q.matches(&r) {
				continue
			}
			p.Records = append(p.Records, r)
			if len(p.Records) == limit {
				p.Next = r.ID
				return p, nil
			}
		}
		if int64(len(msgs)) < batch {
			return p, nil
		}
	}
	// Scan budget spent: hand back a cursor so the caller can continue.
	p.Next = end[1:]
	return p, nil
}
