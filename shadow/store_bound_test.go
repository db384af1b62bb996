package shadow

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/cutover/cutover/internal/testenv"
)

// bigRec is a record whose JSON is a little over size bytes.
func bigRec(i int, size int) *Record {
	r := rec("chat", ClassSemantic, time.Unix(1700000000+int64(i), 0))
	r.Primary.Body = Body{Text: strings.Repeat("x", size)}
	return r
}

func jsonSize(t *testing.T, r Record) int {
	t.Helper()
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return len(data)
}

// The ring of the default size holds at most DefaultRingMaxBytes, however
// large its records: 700 records of 100 KiB would be 70 MiB.
func TestRingDefaultByteBound(t *testing.T) {
	ctx := context.Background()
	ring := NewRing(1000)
	var first string
	body := strings.Repeat("y", 100<<10)
	for i := range 700 {
		r := rec("chat", ClassSemantic, time.Unix(1700000000+int64(i), 0))
		r.Primary.Body = Body{Text: body}
		if err := ring.Add(ctx, r); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = r.ID
		}
	}
	if _, err := ring.Get(ctx, first); !errors.Is(err, ErrNotFound) {
		t.Errorf("oldest of 70 MiB of records still held (%v): the ring is not bounded in bytes", err)
	}
}

func TestRingByteBound(t *testing.T) {
	ctx := context.Background()
	ring := NewBoundedRing(1000, 50_000)
	var ids []string
	var sizes []int
	for i := range 30 {
		r := bigRec(i, 4000)
		if err := ring.Add(ctx, r); err != nil {
			t.Fatal(err)
		}
		ids, sizes = append(ids, r.ID), append(sizes, jsonSize(t, *r))
		if b := ring.Bytes(); b > 50_000 {
			t.Fatalf("after %d records the ring holds %d bytes, above 50000", i+1, b)
		}
	}
	// Exactly the newest records that fit are kept.
	kept, total := 0, 0
	for i := len(sizes) - 1; i >= 0 && total+sizes[i] <= 50_000; i-- {
		total += sizes[i]
		kept++
	}
	if ring.Bytes() != int64(total) {
		t.Errorf("ring holds %d bytes, want %d (the newest %d records)", ring.Bytes(), total, kept)
	}
	for i, id := range ids {
		_, err := ring.Get(ctx, id)
		if held := i >= len(ids)-kept; held != (err == nil) {
			t.Errorf("record %d: held %v, Get error %v", i, held, err)
		}
	}
	if got := ring.drops.evicted.Load(); got != uint64(30-kept) {
		t.Errorf("evicted %d, want %d", got, 30-kept)
	}

	// A record larger than the bound on its own is refused and counted;
	// what the ring held stays.
	before := ring.Bytes()
	if err := ring.Add(ctx, bigRec(99, 60_000)); !errors.Is(err, ErrRecordTooLarge) {
		t.Errorf("oversized record: %v, want ErrRecordTooLarge", err)
	}
	if ring.Bytes() != before || ring.drops.tooLarge.Load() != 1 {
		t.Errorf("after the oversized record: %d bytes (want %d), too_large %d", ring.Bytes(), before, ring.drops.tooLarge.Load())
	}
}

// The Redis stream is bounded in bytes: the counter key matches the entries
// held, it stays under MaxBytes, the newest entries are kept, and an emptied
// stream restarts the count.
func TestStreamStoreByteBound(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	s := &StreamStore{Client: c, Key: "diffs-bytes", MaxBytes: 50_000}
	var last string
	for i := range 40 {
		r := bigRec(i, 4000)
		if err := s.Add(ctx, r); err != nil {
			t.Fatal(err)
		}
		last = r.ID
	}
	held := func() (n int, sum int64) {
		msgs, err := c.XRange(ctx, "diffs-bytes", "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			sum += int64(len(m.Values["r"].(string)))
		}
		return len(msgs), sum
	}
	n, sum := held()
	counter, err := c.Get(ctx, "diffs-bytes:bytes").Int64()
	if err != nil || counter != sum || sum > 50_000 || n < 10 || n == 40 {
		t.Errorf("stream holds %d entries, %d bytes; counter %d (%v); want at most 50000 bytes, counted exactly", n, sum, counter, err)
	}
	if got, err := s.Get(ctx, last); err != nil || got.ID != last {
		t.Errorf("newest record: %v", err)
	}
	if got := s.drops.evicted.Load(); got != uint64(40-n) {
		t.Errorf("evicted %d, want %d", got, 40-n)
	}
	if err := s.Add(ctx, bigRec(50, 60_000)); !errors.Is(err, ErrRecordTooLarge) || s.drops.tooLarge.Load() != 1 {
		t.Errorf("oversized record: %v, too_large %d", err, s.drops.tooLarge.Load())
	}

	// The stream deleted by hand: the counter starts again from this record.
	if err := c.Del(ctx, "diffs-bytes").Err(); err != nil {
		t.Fatal(err)
	}
	r := bigRec(60, 100)
	if err := s.Add(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, sum := held(); mustInt(t, c.Get(ctx, "diffs-bytes:bytes")) != sum {
		t.Errorf("counter %d after the stream was deleted, want %d", mustInt(t, c.Get(ctx, "diffs-bytes:bytes")), sum)
	}
}

func mustInt(t *testing.T, cmd *redis.StringCmd) int64 {
	t.Helper()
	n, err := cmd.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// What a store drops is counted in cutover_shadow_store_dropped_total.
func TestMirrorCountsStoreDrops(t *testing.T) {
	reg := prometheus.NewRegistry()
	ring := NewBoundedRing(3, 1<<20)
	m := newMirror(t, Options{Workers: 1, Registerer: reg, Store: MultiStore{Primary: ring, Also: []Store{NewRing(10)}}})
	submitN(t, m, "chat", "other", 5)
	drain(t, m)
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "cutover_shadow_store_dropped_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			got[strings.Join(labels, ",")] = mt.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"reason=evicted,store=memory": 2, "reason=too_large,store=memory": 0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cutover_shadow_store_dropped_total = %v, want %v", got, want)
	}
}
