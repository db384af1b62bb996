package handlers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cutover/cutover/internal/testenv"
)

// lrangeLog is the real Redis client with every LRANGE range recorded, and
// an optional action run before the n-th LRANGE (to change the list between
// the handler's two passes).
type lrangeLog struct {
	Store
	mu     sync.Mutex
	ranges [][2]int64
	before map[int]func()
}

func (l *lrangeLog) LRange(ctx context.Context, key string, start, stop int64) *redis.StringSliceCmd {
	l.mu.Lock()
	l.ranges = append(l.ranges, [2]int64{start, stop})
	f := l.before[len(l.ranges)]
	l.mu.Unlock()
	if f != nil {
		f()
	}
	return l.Store.LRange(ctx, key, start, stop)
}

func (l *lrangeLog) reset(before map[int]func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ranges, l.before = nil, before
}

// fillConversation stores n turns under conversation:<id>: most as the
// legacy app writes them, some written another way (non-ASCII kept raw,
// other spacing, a number as content) so both decoding paths run.
func fillConversation(t *testing.T, rdb *redis.Client, id string, n int) {
	t.Helper()
	ctx := context.Background()
	var batch []any
	flush := func() {
		if len(batch) > 0 {
			if err := rdb.RPush(ctx, conversationKey(id), batch...).Err(); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	for i := range n {
		switch i % 7 {
		case 3:
			batch = append(batch, fmt.Sprintf(`{"role":"user","content":"héllo \"%d\" 🎉 <&>","created_at":"2026-11-26T21:00:00+00:00"}`, i))
		case 5:
			batch = append(batch, fmt.Sprintf(`{"created_at": 1.5e3, "content": %d, "role": "assistant", "extra": [1]}`, i))
		default:
			batch = append(batch, storedTurn("user", fmt.Sprintf("turn %d: naïve \u2028 line\nnext \\ %s", i, strings.Repeat("x", i%50))))
		}
		if len(batch) == 500 {
			flush()
		}
	}
	flush()
}

type rawAnswer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func fetch(method, url string) rawAnswer { return fetchWith(http.DefaultClient, method, url) }

func fetchWith(c *http.Client, method, url string) rawAnswer {
	req, _ := http.NewRequest(method, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return rawAnswer{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return rawAnswer{status: resp.StatusCode, header: resp.Header, body: body, err: err}
}

// GET /conversations/<id> on a long conversation reads it in bounded pages
// and answers byte for byte what legacy (gunicorn) answers, HEAD included.
func TestGetConversationPagedMatchesLegacy(t *testing.T) {
	rs := testenv.StartRedis(t)
	legacy := testenv.StartLegacy(t, map[string]string{"REDIS_URL": rs.URL(), "GUNICORN_LOGLEVEL": "warning"})
	rdb, err := NewRedisClient(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	const page = 100
	logged := &lrangeLog{Store: rdb}
	h := newHarness(t, harnessOpts{redis: rs, cfg: Config{ConversationPage: page}})
	h.app.store = logged

	for _, n := range []int{1, page - 1, page, page + 1, 2 * page, 3000} {
		id := fmt.Sprintf("conv-%d", n)
		fillConversation(t, rdb, id, n)
		for _, method := range []string{"GET", "HEAD"} {
			logged.reset(nil)
			want := fetch(method, legacy.URL()+"/conversations/"+id)
			got := fetch(method, h.srv.URL+"/conversations/"+id)
			if want.err != nil || got.err != nil {
				t.Fatalf("%s %d turns: legacy %v, native %v", method, n, want.err, got.err)
			}
			if got.status != want.status || got.header.Get("Content-Type") != want.header.Get("Content-Type") ||
				got.header.Get("Content-Length") != want.header.Get("Content-Length") || string(got.body) != string(want.body) {
				t.Errorf("%s %d turns: native %d %q len %s (%d bytes), legacy %d %q len %s (%d bytes)", method, n,
					got.status, got.header.Get("Content-Type"), got.header.Get("Content-Length"), len(got.body),
					want.status, want.header.Get("Content-Type"), want.header.Get("Content-Length"), len(want.body))
				if len(got.body) < 300 {
					t.Logf("native %s\nlegacy %s", got.body, want.body)
				}
			}
			for _, r := range logged.ranges {
				if r[0] < 0 || r[1] < r[0] || r[1]-r[0]+1 > page {
					t.Errorf("%s %d turns: LRANGE %d %d reads more than a page of %d", method, n, r[0], r[1], page)
				}
			}
		}
	}
	if got, want := fetch("GET", h.srv.URL+"/conversations/none"), fetch("GET", legacy.URL()+"/conversations/none"); got.status != 404 || string(got.body) != string(want.body) {
		t.Errorf("unknown conversation: native %d %s, legacy %d %s", got.status, got.body, want.status, want.body)
	}
}

// Between the two passes: turns appended are not part of the answer (it is
// the conversation as the first pass measured it); a conversation deleted
// cuts the connection instead of sending a body shorter than its length.
func TestGetConversationChangedWhileSent(t *testing.T) {
	const page = 10
	h := newHarness(t, harnessOpts{cfg: Config{ConversationPage: page}})
	logged := &lrangeLog{Store: h.rdb}
	h.app.store = logged
	fillConversation(t, h.rdb, "c1", 35)
	before := fetch("GET", h.srv.URL+"/conversations/c1")
	if before.err != nil || before.status != 200 {
		t.Fatalf("GET: %d %v", before.status, before.err)
	}
	passOne := len(logged.ranges) // LRANGE calls of the first pass, plus the second's
	if passOne != 4+4 {
		t.Fatalf("%d LRANGE calls for 35 turns in pages of 10, want 8: %v", passOne, logged.ranges)
	}

	ctx := context.Background()
	logged.reset(map[int]func(){5: func() { h.rdb.RPush(ctx, conversationKey("c1"), storedTurn("user", "late")) }})
	got := fetch("GET", h.srv.URL+"/conversations/c1")
	if got.err != nil || got.status != 200 || string(got.body) != string(before.body) {
		t.Errorf("turn appended between the passes: %d %v, body changed: %v", got.status, got.err, string(got.body) != string(before.body))
	}

	logged.reset(map[int]func(){6: func() { h.rdb.Del(ctx, conversationKey("c1")) }})
	// A new connection: Go's client would silently retry a GET on a reused
	// one that was cut before any byte arrived (and get the 404).
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	got = fetchWith(&http.Client{Transport: tr}, "GET", h.srv.URL+"/conversations/c1")
	if got.err == nil {
		t.Errorf("conversation deleted between the passes: %d, %d bytes, no error; want the connection cut (%v)", got.status, len(got.body), logged.ranges)
	}
}
