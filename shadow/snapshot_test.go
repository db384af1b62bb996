package shadow

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cutover/cutover/internal/testenv"
)

// historyApp is a stand-in for the legacy chat endpoint: it reads the
// conversation's history from its Redis, answers from it, and appends both
// turns (the schema of docs/ARCHITECTURE.md).
func historyApp(rdb *redis.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			ConversationID string `json:"conversation_id"`
			Message        string `json:"message"`
		}
		json.NewDecoder(r.Body).Decode(&in)
		id := in.ConversationID
		if id == "" {
			id = DefaultConversationID(r, nil, "session", nil)
		}
		key := "conversation:" + id
		hist, err := rdb.LRange(r.Context(), key, 0, -1).Result()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		reply := fmt.Sprintf("turn %d, you said %s", len(hist)/2+1, in.Message)
		for _, turn := range [][2]string{{"user", in.Message}, {"assistant", reply}} {
			b, _ := json.Marshal(map[string]string{"role": turn[0], "content": turn[1], "created_at": "2024-01-01T00:00:00+00:00"})
			rdb.RPush(r.Context(), key, b)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"conversation_id": id, "reply": reply, "history": len(hist)})
	})
}

func seed(t *testing.T, rdb *redis.Client, key string, n int) {
	t.Helper()
	for i := range n {
		if err := rdb.RPush(context.Background(), key, fmt.Sprintf(`{"role": "user", "content": "old %d", "created_at": "x"}`, i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSnapshotShadowSafeWriteRoute(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	prodSrv, shadowSrv := testenv.StartRedis(t), testenv.StartRedis(t)
	prod := redis.NewClient(&redis.Options{Addr: prodSrv.Addr()})
	baseline := redis.NewClient(&redis.Options{Addr: prodSrv.Addr(), DB: 1}) // the unshadowed run
	isolated := redis.NewClient(&redis.Options{Addr: shadowSrv.Addr()})
	for _, c := range []*redis.Client{prod, baseline, isolated} {
		defer c.Close()
	}
	for _, c := range []*redis.Client{prod, baseline} {
		seed(t, c, "conversation:abc", 4)
	}
	copier := &RedisCopier{Source: prod, Dest: isolated}
	cmp := mustComparator(t, ComparatorConfig{Default: Rules{JSON: true}})
	m := newMirror(t, Options{Comparator: cmp, RecordMatches: true})

	primary, shadow := historyApp(prod), HandlerTarget{Handler: historyApp(isolated)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := bufferBody(r, 1<<16)
		if err != nil {
			t.Error(err)
			return
		}
		snap, err := copier.Snapshot(r.Context(), r, body) // before the primary writes
		if err != nil {
			t.Error(err)
			return
		}
		tee := NewTee(w, 1<<16)
		primary.ServeHTTP(tee, r)
		m.Submit(Job{Route: "chat", Request: NewRequest(r, body), Primary: tee.Captured(), Target: shadow, Snapshot: snap})
	}))
	defer srv.Close()
	unshadowed := httptest.NewServer(historyApp(baseline))
	defer unshadowed.Close()

	// The simple session cookie vector of the reference (conversation_id "abc").
	const cookie = "eyJjb252ZXJzYXRpb25faWQiOiJhYmMifQ.ZVPxAA.g6JNnFIRNIGfOCpyhkurx_FOSgI"
	reqs := []struct{ body, cookie string }{
		{`{"conversation_id":"abc","message":"one"}`, ""},
		{`{"conversation_id":"abc","message":"two"}`, ""},
		{`{"message":"three"}`, "session=" + cookie},
		{`{"conversation_id":"new1","message":"hello"}`, ""},
	}
	for _, rq := range reqs {
		for _, base := range []string{srv.URL, unshadowed.URL} {
			if st, body := post(t, base, "/api/chat", rq.body, "Cookie", rq.cookie); st != 200 {
				t.Fatalf("%s: %d %s", base, st, body)
			}
		}
	}
	drain(t, m)

	if s := summaryOf(m, "chat"); s.Compared != 4 || s.Matched != 4 {
		page, _ := m.Store().List(context.Background(), Query{})
		t.Fatalf("summary %+v; records %+v", s, page.Records)
	}
	ctx := context.Background()
	for _, key := range []string{"conversation:abc", "conversation:new1"} {
		got, _ := prod.LRange(ctx, key, 0, -1).Result()
		want, _ := baseline.LRange(ctx, key, 0, -1).Result()
		if strings.Join(got, "\n") != strings.Join(want, "\n") || len(got) == 0 {
			t.Errorf("%s: production has %d items, unshadowed run %d", key, len(got), len(want))
		}
	}
	if n, _ := prod.DBSize(ctx).Result(); n != 2 {
		t.Errorf("production has %d keys, want 2", n)
	}
	if n, _ := isolated.DBSize(ctx).Result(); n != 0 {
		t.Errorf("isolated store keeps %d keys after release, want 0", n)
	}
}

func TestRedisCopierSnapshotIsPreWrite(t *testing.T) {
	prodSrv, shadowSrv := testenv.StartRedis(t), testenv.StartRedis(t)
	prod := redis.NewClient(&redis.Options{Addr: prodSrv.Addr()})
	isolated := redis.NewClient(&redis.Options{Addr: shadowSrv.Addr()})
	defer prod.Close()
	defer isolated.Close()
	ctx := context.Background()
	seed(t, prod, "conversation:c1", 3)
	isolated.RPush(ctx, "conversation:c1", "stale leftover")

	c := &RedisCopier{Source: prod, Dest: isolated, MaxItems: 5, KeepAfter: false}
	r := httptest.NewRequest("POST", "/api/chat", nil)
	snap, err := c.Snapshot(ctx, r, []byte(`{"conversation_id":"c1"}`))
	if err != nil || snap == nil || snap.Key() != "conversation:c1" {
		t.Fatalf("snapshot %v %v", snap, err)
	}
	prod.RPush(ctx, "conversation:c1", "the primary's write")
	release, err := snap.Stage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	staged, _ := isolated.LRange(ctx, "conversation:c1", 0, -1).Result()
	want, _ := prod.LRange(ctx, "conversation:c1", 0, 2).Result()
	if strings.Join(staged, "|") != strings.Join(want, "|") {
		t.Errorf("staged %q, want the 3 pre-write items %q", staged, want)
	}
	if err := release(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := isolated.Exists(ctx, "conversation:c1").Result(); n != 0 {
		t.Error("release left the copy behind")
	}
	if n, _ := prod.LLen(ctx, "conversation:c1").Result(); n != 4 {
		t.Errorf("production list touched: %d items", n)
	}

	// An absent conversation stages as absent (clearing any leftover).
	isolated.RPush(ctx, "conversation:none", "leftover")
	snap, _ = c.Snapshot(ctx, r, []byte(`{"conversation_id":"none"}`))
	release, err = snap.Stage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := isolated.Exists(ctx, "conversation:none").Result(); n != 0 {
		t.Error("absent conversation staged as present")
	}
	release(ctx)

	// A long history: only the newest MaxItems are copied (the app reads only
	// the last 2×HISTORY_TURNS).
	seed(t, prod, "conversation:big", 8)
	snap, err = c.Snapshot(ctx, r, []byte(`{"conversation_id":"big"}`))
	if err != nil {
		t.Fatal(err)
	}
	release, _ = snap.Stage(ctx)
	tail, _ := isolated.LRange(ctx, "conversation:big", 0, -1).Result()
	wantTail, _ := prod.LRange(ctx, "conversation:big", -5, -1).Result()
	if strings.Join(tail, "|") != strings.Join(wantTail, "|") || len(tail) != 5 {
		t.Errorf("big: staged %q, want the newest 5", tail)
	}
	release(ctx)
	for _, bad := range []string{`"a b"`, `"x\n"`, `"` + strings.Repeat("a", 65) + `"`, `"../x"`} {
		if s, err := c.Snapshot(ctx, r, []byte(`{"conversation_id":`+bad+`}`)); s != nil || err != nil {
			t.Errorf("id %s (rejected by both apps): %v %v", bad, s, err)
		}
	}
	if s, err := c.Snapshot(ctx, r, []byte(`{"message":"new chat"}`)); s != nil || err != nil {
		t.Errorf("no id: %v %v", s, err)
	}
	prod.Set(ctx, "conversation:str", "x", 0)
	if _, err := c.Snapshot(ctx, r, []byte(`{"conversation_id":"str"}`)); err == nil {
		t.Error("WRONGTYPE not reported")
	}
}

func TestDefaultConversationID(t *testing.T) {
	const compressed = ".eJyrVkrOzytLLSpOLMnMz4vPTFGyUkpMSlbSUcrILC7JL6pUsoquBqkpSc0rAcplpObk5ANli_JzUoHc0uLUIqVaHWQVHpmKCh755QrJiXkKngpA9QX2CPWJxcVAYxOBClE1DXpjY2sBUiNjJg.ZVPxAA.dUoQT68fZ_dyJ_g1QsnzcXM5d14"
	tests := []struct {
		name, body, cookie, want string
	}{
		{"body", `{"conversation_id":"b1"}`, "", "b1"},
		{"body wins over cookie", `{"conversation_id":"b1"}`, "eyJjb252ZXJzYXRpb25faWQiOiJhYmMifQ.ZVPxAA.g6JNnFIRNIGfOCpyhkurx_FOSgI", "b1"},
		{"cookie", `{"message":"x"}`, "eyJjb252ZXJzYXRpb25faWQiOiJhYmMifQ.ZVPxAA.g6JNnFIRNIGfOCpyhkurx_FOSgI", "abc"},
		{"compressed cookie", ``, compressed, "abc"},
		{"non-string id", `{"conversation_id":5}`, "", ""},
		{"garbage cookie", ``, "!!!.x.y", ""},
		{"no id", `[1,2]`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", nil)
			if tt.cookie != "" {
				r.AddCookie(&http.Cookie{Name: "session", Value: tt.cookie})
			}
			if got := DefaultConversationID(r, []byte(tt.body), "session", nil); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
