package shadow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cutover/cutover/internal/testenv"
)

func rec(route string, class Class, t time.Time) *Record {
	return &Record{Time: t, Route: route, Class: class, Request: RecordRequest{Method: "GET", Path: "/" + route}}
}

// exerciseStore is the contract every Store meets: ids, get, filters, time
// range, newest-first pagination that visits each record once.
func exerciseStore(t *testing.T, s Store) {
	t.Helper()
	ctx := context.Background()
	base := time.Unix(1700000000, 0).UTC()
	var ids []string
	for i := range 30 {
		route, class := "chat", ClassSemantic
		if i%3 == 0 {
			route, class = "models", ClassEncoding
		}
		r := rec(route, class, base.Add(time.Duration(i)*time.Second))
		if err := s.Add(ctx, r); err != nil {
			t.Fatal(err)
		}
		if r.ID == "" {
			t.Fatal("Add did not set an id")
		}
		ids = append(ids, r.ID)
	}
	got, err := s.Get(ctx, ids[7])
	if err != nil || got.Route != "chat" || !got.Time.Equal(base.Add(7*time.Second)) {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if _, err := s.Get(ctx, "1-999999"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get unknown = %v", err)
	}
	if _, err := s.Get(ctx, "not an id"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get junk = %v", err)
	}

	// Paginate through route=chat, 7 at a time: 20 records, newest first, none twice.
	var seen []string
	q := Query{Route: "chat", Limit: 7}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		p, err := s.List(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			if r.Route != "chat" {
				t.Fatalf("filter leaked %s", r.Route)
			}
			seen = append(seen, r.ID)
		}
		if p.Next == "" {
			break
		}
		q.Before = p.Next
	}
	if len(seen) != 20 {
		t.Fatalf("paginated %d chat records, want 20", len(seen))
	}
	if seen[0] != ids[29] || seen[19] != ids[1] {
		t.Errorf("order: first %s last %s, want %s .. %s", seen[0], seen[19], ids[29], ids[1])
	}

	p, _ := s.List(ctx, Query{Class: ClassEncoding, Since: base.Add(10 * time.Second), Until: base.Add(20 * time.Second)})
	var want []string
	for i := 20; i >= 10; i-- {
		if i%3 == 0 {
			want = append(want, ids[i])
		}
	}
	var gotIDs []string
	for _, r := range p.Records {
		gotIDs = append(gotIDs, r.ID)
	}
	if strings.Join(gotIDs, ",") != strings.Join(want, ",") {
		t.Errorf("class+time filter = %v, want %v", gotIDs, want)
	}
}

func TestRingStore(t *testing.T) {
	exerciseStore(t, NewRing(100))

	r := NewRing(5)
	for i := range 12 {
		r.Add(context.Background(), rec(fmt.Sprint("r", i), ClassSemantic, time.Unix(int64(i), 0)))
	}
	p, _ := r.List(context.Background(), Query{})
	if len(p.Records) != 5 || p.Records[0].Route != "r11" || p.Records[4].Route != "r7" {
		t.Errorf("ring keeps %d, newest %s", len(p.Records), p.Records[0].Route)
	}
}

func TestFileStorePersistsAndRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "diffs.jsonl")
	s, err := OpenFileStore(path, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	exerciseStore(t, s)
	s.Close()

	// Reopen: the records come back from the file, and new ids keep increasing.
	s2, err := OpenFileStore(path, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s2.List(context.Background(), Query{Limit: 500})
	if len(p.Records) != 30 {
		t.Fatalf("reloaded %d records, want 30", len(p.Records))
	}
	newest := p.Records[0].ID
	r := rec("chat", ClassSemantic, time.Unix(1700000100, 0))
	s2.Add(context.Background(), r)
	if a, _ := idSeq(r.ID); a <= mustSeq(t, newest) {
		t.Errorf("id %s after reload not after %s", r.ID, newest)
	}
	s2.Close()

	// Rotation keeps disk use bounded: current file + one previous.
	rot := filepath.Join(dir, "rot.jsonl")
	s3, err := OpenFileStore(rot, 10, 2000)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	for i := range 100 {
		if err := s3.Add(context.Background(), rec("chat", ClassSemantic, time.Unix(int64(i), 0))); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{rot, rot + ".1"} {
		st, err := os.Stat(f)
		if err != nil || st.Size() > 2000 {
			t.Errorf("%s: %v size %d", f, err, st.Size())
		}
	}
	// A torn last line is skipped on reload.
	os.WriteFile(path, append(mustRead(t, path), []byte(`{"id":"9-9","rou`)...), 0o600)
	s4, err := OpenFileStore(path, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	s4.Close()
}

// The file appears with the first record (a process that records nothing
// leaves none), but a path whose directory is missing fails at open.
func TestFileStoreCreatedWithFirstRecord(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "diffs.jsonl")
	s, err := OpenFileStore(path, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("file before any record: %v", err)
	}
	if err := s.Add(context.Background(), rec("chat", ClassSemantic, time.Unix(1700000000, 0))); err != nil {
		t.Fatal(err)
	}
	if b := mustRead(t, path); bytes.Count(b, []byte("\n")) != 1 {
		t.Errorf("file after one record:\n%s", b)
	}
	s.Close()
	if err := s.Add(context.Background(), rec("chat", ClassSemantic, time.Unix(1700000001, 0))); err == nil {
		t.Error("Add after Close succeeded")
	}
	if _, err := OpenFileStore(filepath.Join(dir, "missing", "diffs.jsonl"), 10, 0); err == nil {
		t.Error("open under a missing directory succeeded")
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustSeq(t *testing.T, id string) uint64 {
	s, ok := idSeq(id)
	if !ok {
		t.Fatalf("bad id %q", id)
	}
	return s
}

func TestStreamStore(t *testing.T) {
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	exerciseStore(t, &StreamStore{Client: c, Key: "diffs-a"})

	// Capped: exactly MaxLen entries are kept.
	s := &StreamStore{Client: c, Key: "diffs-b", MaxLen: 50}
	for i := range 1000 {
		if err := s.Add(context.Background(), rec("chat", ClassSemantic, time.Unix(1700000000+int64(i), 0))); err != nil {
			t.Fatal(err)
		}
	}
	n, err := c.XLen(context.Background(), "diffs-b").Result()
	if err != nil || n != 50 {
		t.Errorf("stream length %d (%v), want 50", n, err)
	}
	// MultiStore: queries from the primary, every record in both.
	ring := NewRing(10)
	multi := MultiStore{Primary: ring, Also: []Store{&StreamStore{Client: c, Key: "diffs-c"}}}
	r1 := rec("chat", ClassSemantic, time.Unix(1700000000, 0))
	if err := multi.Add(context.Background(), r1); err != nil {
		t.Fatal(err)
	}
	if got, err := multi.Get(context.Background(), r1.ID); err != nil || got.Route != "chat" {
		t.Errorf("multi get %v %v", got, err)
	}
	if n, _ := c.XLen(context.Background(), "diffs-c").Result(); n != 1 {
		t.Errorf("stream got %d records", n)
	}

	// A record older than the stream's last id still gets stored.
	old := rec("chat", ClassSemantic, time.Unix(1000, 0))
	if err := s.Add(context.Background(), old); err != nil || old.ID == "" {
		t.Errorf("old record: %v", err)
	}
}

func TestMirrorRedactsRecords(t *testing.T) {
	m := newMirror(t, Options{Redaction: Redaction{Fields: append([]string{"conversation_secret"}, DefaultRedactFields...)}})
	shadow := HandlerTarget{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "shadow-session"})
		w.Write([]byte("different " + r.Header.Get("Authorization")))
	})}
	body := []byte(`{"message":"hi","api_key":"sk-live-123","nested":{"Password":"hunter2"},"conversation_secret":"c"}`)
	m.Submit(Job{
		Route: "chat",
		Request: Request{Method: "POST", URL: &url.URL{Path: "/api/chat", RawQuery: "token=abc&x=1"},
			Header: http.Header{"Authorization": {"Bearer sk-xyz"}, "Cookie": {"session=s1"}, "Content-Type": {"application/json"}},
			Body:   body},
		Primary: Response{Status: 200, Header: http.Header{"Set-Cookie": {"session=primary-session"}},
			Body: []byte("key AKIAABCDEFGHIJKLMNOP here")},
		Target: shadow,
	})
	drain(t, m)
	p, _ := m.Store().List(context.Background(), Query{})
	if len(p.Records) != 1 {
		t.Fatalf("%d records", len(p.Records))
	}
	raw, _ := json.Marshal(p.Records[0])
	for _, secret := range []string{"sk-xyz", "s1", "sk-live-123", "hunter2", `"c"`, "abc", "AKIAABCDEFGHIJKLMNOP", "shadow-session", "primary-session"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("record leaks %q: %s", secret, raw)
		}
	}
	r := p.Records[0]
	if r.Request.Header.Get("Authorization") != Redacted || !strings.Contains(r.Request.Body.Text, `"message":"hi"`) ||
		!strings.Contains(r.Request.Query, "x=1") {
		t.Errorf("redaction removed too much or too little: %+v", r.Request)
	}
}

func TestAdmin(t *testing.T) {
	m := newMirror(t, Options{Noise: NewNoise(NoiseConfig{})})
	base := time.Unix(1700000000, 0).UTC()
	var ids []string
	for i := range 6 {
		class := ClassSemantic
		if i%2 == 0 {
			class = ClassEncoding
		}
		r := rec("chat", class, base.Add(time.Duration(i)*time.Minute))
		r.Mismatches = []Mismatch{{Path: "$.a", Class: class}}
		m.Store().Add(context.Background(), r)
		ids = append(ids, r.ID)
	}
	m.Skip("chat", SkipNotSampled)
	m.Skip("chat", SkipNotSampled)
	m.Skip("models", SkipUnsafeMethod)
	srv := httptest.NewServer(m.Admin())
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()

	get := func(path string, v any) int {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", path, ct)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return resp.StatusCode
	}
	var list struct {
		Records []DiffSummary
		Next    string
	}
	if st := get("/admin/diffs?class=semantic&limit=2", &list); st != 200 || len(list.Records) != 2 || list.Next == "" {
		t.Fatalf("list: %d %+v", st, list)
	}
	if list.Records[0].ID != ids[5] || list.Records[1].ID != ids[3] || list.Records[0].Paths[0] != "$.a" {
		t.Errorf("list page 1: %+v", list.Records)
	}
	next := list.Next
	list.Records, list.Next = nil, ""
	if get("/admin/diffs?class=semantic&limit=2&before="+next, &list); len(list.Records) != 1 || list.Records[0].ID != ids[1] || list.Next != "" {
		t.Errorf("list page 2: %+v", list)
	}
	since := url.QueryEscape(base.Add(2 * time.Minute).Format(time.RFC3339))
	if get(fmt.Sprintf("/admin/diffs?since=%s&until=%d", since, base.Add(4*time.Minute).Unix()), &list); len(list.Records) != 3 {
		t.Errorf("time range: %+v", list.Records)
	}
	var one Record
	if st := get("/admin/diffs/"+ids[2], &one); st != 200 || one.ID != ids[2] || one.Class != ClassEncoding {
		t.Errorf("get: %d %+v", st, one)
	}
	var e map[string]string
	for path, want := range map[string]int{
		"/admin/diffs/1-424242":       404,
		"/admin/diffs?class=bogus":    400,
		"/admin/diffs?limit=0":        400,
		"/admin/diffs?since=tomorrow": 400,
		"/admin/diffs?before=zzz":     400,
	} {
		if st := get(path, &e); st != want || e["error"] == "" {
			t.Errorf("%s: %d %v, want %d with an error", path, st, e, want)
		}
	}
	var sum struct {
		Scope      string `json:"scope"`
		QueueDepth int    `json:"queue_depth"`
		Routes     []RouteSummary
		Process    []RouteSummary
	}
	// Without a FleetTally the summary is this process's, said so.
	if st := get("/admin/shadow/summary", &sum); st != 200 || sum.Scope != ScopeProcess || sum.Process != nil || len(sum.Routes) != 2 ||
		sum.Routes[0].Route != "chat" || sum.Routes[0].Skipped[SkipNotSampled] != 2 || sum.Routes[1].Skipped[SkipUnsafeMethod] != 1 {
		t.Errorf("summary: %+v", sum)
	}
	resp, err := http.Post(srv.URL+"/admin/diffs", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /admin/diffs: %d", resp.StatusCode)
	}
}

func TestRedactMismatches(t *testing.T) {
	rd, err := newRedactor(Redaction{})
	if err != nil {
		t.Fatal(err)
	}
	got := rd.mismatches([]Mismatch{
		{Path: "$.auth.api_key", Primary: `"k1"`, Shadow: `"k2"`},
		{Path: "$['Token']", Primary: `"t1"`, Shadow: `"t2"`},
		{Path: "header.Set-Cookie", Primary: "a=1", Shadow: "a=2"},
		{Path: "$.reply", Primary: `"hello"`, Shadow: `"Bearer abc.def"`},
	})
	want := []string{Redacted, Redacted, Redacted, `"hello"`}
	for i, m := range got {
		if m.Primary != want[i] || strings.Contains(m.Shadow, "abc.def") || strings.Contains(m.Shadow, "2") {
			t.Errorf("%s: %q / %q", m.Path, m.Primary, m.Shadow)
		}
	}
}
