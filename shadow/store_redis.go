package shadow

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// StreamStore keeps records in one capped Redis stream, so a fleet of proxies
// writes to one place. Each entry has fields route, class and r (the Record
// as JSON); the entry id is the record id. The stream is trimmed on every add
// with XADD MAXLEN ~ MaxLen.
type StreamStore struct {
	// Client is the Redis holding the stream. Required.
	Client redis.Cmdable
	// Key is the stream key. Empty means "cutover:shadow:diffs".
	Key string
	// MaxLen caps the stream (approximately). Zero means 10000.
	MaxLen int64
	// ScanLimit bounds the entries one List call reads while filtering. Zero
	// means 5000; a page cut short by it still returns Next.
	ScanLimit int
}

var _ Store = (*StreamStore)(nil)

func (s *StreamStore) key() string {
	if s.Key == "" {
		return "cutover:shadow:diffs"
	}
	return s.Key
}

// Add implements Store.
func (s *StreamStore) Add(ctx context.Context, r *Record) error {
	r.ID = ""
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode diff record: %w", err)
	}
	maxLen := s.MaxLen
	if maxLen <= 0 {
		maxLen = 10000
	}
	id, err := s.Client.XAdd(ctx, &redis.XAddArgs{
		Stream: s.key(),
		MaxLen: maxLen,
		Approx: true,
		ID:     strconv.FormatInt(r.Time.UnixMilli(), 10) + "-*",
		Values: []any{"route", r.Route, "class", string(r.Class), "r", data},
	}).Result()
	if err != nil {
		// Record time may be behind the stream's last id (clock skew across
		// a fleet): let Redis choose.
		id, err = s.Client.XAdd(ctx, &redis.XAddArgs{
			Stream: s.key(), MaxLen: maxLen, Approx: true,
			Values: []any{"route", r.Route, "class", string(r.Class), "r", data},
		}).Result()
		if err != nil {
			return fmt.Errorf("xadd diff record: %w", err)
		}
	}
	r.ID = id
	return nil
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
