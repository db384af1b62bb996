package proxy

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/cutover/cutover/config"
)

// within5Sigma reports whether got of n trials is within five standard
// deviations of a binomial with probability p (false-failure odds ~ 1 in 1.7 million).
func within5Sigma(got, n int, p float64) (bool, float64, float64) {
	mean := float64(n) * p
	sd := math.Sqrt(float64(n) * p * (1 - p))
	return math.Abs(float64(got)-mean) <= 5*sd+1e-9, mean, sd
}

func TestBucketDistribution(t *testing.T) {
	const n = 100000
	seed := Seed("chat")
	counts := make([]int, 10) // deciles of the bucket space
	for i := range n {
		b := Bucket(seed, "user-"+strconv.Itoa(i))
		if b < 0 || b >= Buckets {
			t.Fatalf("bucket %d out of range", b)
		}
		counts[b/1000]++
	}
	for i, c := range counts {
		if ok, mean, sd := within5Sigma(c, n, 0.1); !ok {
			t.Errorf("decile %d holds %d of %d keys; want %.0f ± %.0f", i, c, n, mean, 5*sd)
		}
	}
	for _, share := range []int{1, 100, 1250, 5000, 9999} {
		native := 0
		for i := range n {
			if Bucket(seed, "k"+strconv.Itoa(i)) < share {
				native++
			}
		}
		if ok, mean, sd := within5Sigma(native, n, float64(share)/Buckets); !ok {
			t.Errorf("share %d bp: %d of %d native; want %.1f ± %.1f", share, native, n, mean, 5*sd)
		}
	}
}

// Routes are salted independently: being native on one route says nothing
// about another at the same share.
func TestBucketRoutesIndependent(t *testing.T) {
	const n = 40000
	a, b := Seed("chat"), Seed("chat_stream")
	both, onA := 0, 0
	for i := range n {
		k := "u" + strconv.Itoa(i)
		if Bucket(a, k) < 5000 {
			onA++
			if Bucket(b, k) < 5000 {
				both++
			}
		}
	}
	if ok, mean, sd := within5Sigma(both, onA, 0.5); !ok {
		t.Errorf("%d of %d keys native on chat are native on chat_stream; want %.0f ± %.0f (independent)", both, onA, mean, 5*sd)
	}
	if Bucket(a, "same") != Bucket(a, "same") {
		t.Error("bucket is not a pure function")
	}
}

// The split over real listeners: distinct users land on native in
// proportion to the share, the same user always on the same backend, and the
// backend that served is what the bucket says.
func TestSplitMatchesShareOverHTTP(t *testing.T) {
	legacy := newBackend(t, echoHandler("legacy"))
	yaml := strings.Replace(baseConfig(legacy.URL), "    path: /models\n", "    path: /models\n    native_percent: 30\n", 1)
	ts := startServer(t, yaml, newFakeNative("models", "health"))
	c := newClient(t)
	const n = 3000
	seed := Seed("models")
	native := 0
	first := make([]string, n)
	for i := range n {
		id := fmt.Sprintf("user-%d", i)
		resp, body := do(t, c, "GET", ts.URL+"/models", "", map[string]string{"X-User-Id": id})
		served := resp.Header.Get("X-Cutover-Served-By")
		if got := decodeSeen(t, body).Backend; got != served {
			t.Fatalf("served-by says %s but %s answered", served, got)
		}
		want := "legacy"
		if Bucket(seed, id) < 3000 {
			want = "native"
		}
		if served != want {
			t.Fatalf("user %s served by %s; its bucket says %s", id, served, want)
		}
		if served == "native" {
			native++
		}
		first[i] = served
	}
	if ok, mean, sd := within5Sigma(native, n, 0.30); !ok {
		t.Errorf("%d of %d users native at 30 %%; want %.0f ± %.0f", native, n, mean, 5*sd)
	}
	// Stickiness: every user again, same backend.
	for i := 0; i < n; i += 7 {
		resp, _ := do(t, c, "GET", ts.URL+"/models", "", map[string]string{"X-User-Id": fmt.Sprintf("user-%d", i)})
		if got := resp.Header.Get("X-Cutover-Served-By"); got != first[i] {
			t.Fatalf("user-%d moved from %s to %s at an unchanged share", i, first[i], got)
		}
	}
	// The route without a share and the unmatched path stay legacy.
	resp, _ := do(t, c, "GET", ts.URL+"/health", "", map[string]string{"X-User-Id": "user-1"})
	if got := resp.Header.Get("X-Cutover-Served-By"); got != "legacy" {
		t.Errorf("/health at 0 %% served by %s", got)
	}
	resp, _ = do(t, c, "GET", ts.URL+"/nowhere", "", nil)
	if got := resp.Header.Get("X-Cutover-Served-By"); got != "legacy" {
		t.Errorf("unmatched path served by %s", got)
	}
}

// Raising a share only moves users legacy → native; lowering only back.
func TestShareChangesAreMonotone(t *testing.T) {
	legacy := newBackend(t, echoHandler("legacy"))
	ts := startServer(t, baseConfig(legacy.URL), newFakeNative("get_conversation"))
	c := newClient(t)
	const n = 800
	served := func() []bool {
		out := make([]bool, n)
		for i := range n {
			resp, _ := do(t, c, "GET", fmt.Sprintf("%s/conversations/conv-%d", ts.URL, i), "", nil)
			out[i] = resp.Header.Get("X-Cutover-Served-By") == "native"
		}
		return out
	}
	setShare := func(bp int) {
		resp, body := do(t, c, "PUT", ts.AdminURL+"/admin/routes/get_conversation", fmt.Sprintf(`{"native_bp": %d}`, bp),
			map[string]string{"Authorization": "Bearer admin-secret", "Content-Type": "application/json"})
		if resp.StatusCode != 200 {
			t.Fatalf("set share %d: %d %s", bp, resp.StatusCode, body)
		}
	}
	prev := served()
	for i, v := range prev {
		if v {
			t.Fatalf("conv-%d native at 0 %%", i)
		}
	}
	steps := []int{100, 1000, 2500, 5000, 7500, 9999, 10000, 6000, 2000, 0}
	for si, bp := range steps {
		setShare(bp)
		cur := served()
		count := 0
		for i := range n {
			if cur[i] {
				count++
			}
			raising := si == 0 || bp > steps[si-1]
			if raising && prev[i] && !cur[i] {
				t.Fatalf("raising to %d bp moved conv-%d back to legacy", bp, i)
			}
			if !raising && !prev[i] && cur[i] {
				t.Fatalf("lowering to %d bp moved conv-%d to native", bp, i)
			}
		}
		if ok, mean, sd := within5Sigma(count, n, float64(bp)/Buckets); !ok {
			t.Errorf("share %d bp: %d of %d native; want %.0f ± %.0f", bp, count, n, mean, 5*sd)
		}
		prev = cur
	}
}

// sessionCookie builds an itsdangerous-style cookie around payload (the
// signature is not checked by the bucketing, so any bytes do).
func sessionCookie(payload string, compressed bool, ts, sig string) string {
	if compressed {
		var b bytes.Buffer
		zw := zlib.NewWriter(&b)
		zw.Write([]byte(payload))
		zw.Close()
		return "." + base64.RawURLEncoding.EncodeToString(b.Bytes()) + "." + ts + "." + sig
	}
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + ts + "." + sig
}

func TestIdentitySources(t *testing.T) {
	opts := &identityOpts{sessionCookie: "session", trustedHops: 1, maxBody: 64}
	tests := []struct {
		name    string
		sources []string
		req     func() *http.Request
		want    string
	}{
		{"header", []string{"header:X-User-Id"}, func() *http.Request {
			r, _ := http.NewRequest("GET", "/x", nil)
			r.Header.Set("X-User-Id", " alice ")
			return r
		}, "alice"},
		{"first source wins", []string{"header:X-Missing", "header:X-User-Id"}, func() *http.Request {
			r, _ := http.NewRequest("GET", "/x", nil)
			r.Header.Set("X-User-Id", "bob")
			return r
		}, "bob"},
		{"json body", []string{"json:conversation_id"}, func() *http.Request {
			r, _ := http.NewRequest("POST", "/chat", strings.NewReader(`{"message":"hi","conversation_id":"c-42"}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, "c-42"},
		{"json body too large", []string{"json:conversation_id"}, func() *http.Request {
			r, _ := http.NewRequest("POST", "/chat", strings.NewReader(`{"conversation_id":"c-42","message":"`+strings.Repeat("x", 100)+`"}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, ""},
		{"json body of unknown length", []string{"json:conversation_id"}, func() *http.Request {
			r, _ := http.NewRequest("POST", "/chat", strings.NewReader(`{"conversation_id":7}`))
			r.ContentLength = -1
			r.Header.Set("Content-Type", "application/json")
			return r
		}, "7"},
		{"json needs a JSON content type", []string{"json:conversation_id"}, func() *http.Request {
			r, _ := http.NewRequest("POST", "/chat", strings.NewReader(`{"conversation_id":"c"}`))
			r.Header.Set("Content-Type", "text/plain")
			return r
		}, ""},
		{"session payload field", []string{"session:conversation_id"}, func() *http.Request {
			r, _ := http.NewRequest("GET", "/x", nil)
			r.Header.Set("Cookie", "other=1; session="+sessionCookie(`{"conversation_id":"abc"}`, false, "ZVPxAA", "sig1"))
			return r
		}, "abc"},
		{"compressed session payload field", []string{"session:conversation_id"}, func() *http.Request {
			r, _ := http.NewRequest("GET", "/x", nil)
			r.Header.Set("Cookie", "session="+sessionCookie(`{"conversation_id":"abc","history":[]}`, true, "ZVPxAA", "sig2"))
			return r
		}, "abc"},
		{"whole session payload", []string{"session"}, func() *http.Request {
			r, _ := http.NewRequest("GET", "/x", nil)
			r.Header.Set("Cookie", "session="+sessionCookie(`{"user":"u1"}`, false, "ZVPxAA", "sig"))
			return r
		}, `{"user":"u1"}`},
		{"garbage session", []string{"session:conversation_id"}, func() *http.Request {
			r, _ := http.NewRequest("GET", "/x", nil)
			r.Header.Set("Cookie", "session=%%%.x.y")
			return r
		}, ""},
		{"raw cookie", []string{"cookie:uid"}, func() *http.Request {
			r, _ := http.NewRequest("GET", "/x", nil)
			r.Header.Set("Cookie", "a=b; uid=\"u-9\"")
			return r
		}, "u-9"},
		{"client ip from the ALB's entry", []string{"client_ip"}, func() *http.Request {
			r, _ := http.NewRequest("GET", "/x", nil)
			r.Header.Add("X-Forwarded-For", "6.6.6.6, 1.2.3.4")
			r.RemoteAddr = "10.0.0.1:5555"
			return r
		}, "1.2.3.4"},
		{"client ip across several headers", []string{"client_ip"}, func() *http.Request {
			r, _ := http.NewRequest("GET", "/x", nil)
			r.Header.Add("X-Forwarded-For", "6.6.6.6")
			r.Header.Add("X-Forwarded-For", "1.2.3.4")
			return r
		}, "1.2.3.4"},
		{"client ip without XFF", []string{"client_ip"}, func() *http.Request {
			r, _ := http.NewRequest("GET", "/x", nil)
			r.RemoteAddr = "10.0.0.1:5555"
			return r
		}, "10.0.0.1"},
		{"nothing", []string{"header:X-User-Id", "session:conversation_id"}, func() *http.Request {
			r, _ := http.NewRequest("GET", "/x", nil)
			return r
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := config.ParseSources(tt.sources)
			if err != nil {
				t.Fatal(err)
			}
			r := tt.req()
			var before []byte
			if r.Body != nil {
				before, _ = readAllAndRestore(r)
			}
			got, _ := identity(r, &Decision{body: requestBody{limit: opts.maxBody}}, compileSources(src), opts)
			if got != tt.want {
				t.Errorf("identity = %q, want %q", got, tt.want)
			}
			if r.Body != nil {
				after, _ := readAllAndRestore(r)
				if !bytes.Equal(before, after) {
					t.Errorf("body changed by identity: %q -> %q", before, after)
				}
			}
		})
	}
	// A refreshed session (new timestamp and signature, same payload) keeps the identity.
	a := sessionField(sessionCookie(`{"conversation_id":"abc"}`, false, "ZVPxAA", "s1"), "")
	b := sessionField(sessionCookie(`{"conversation_id":"abc"}`, false, "ZVPxBB", "s2"), "")
	if a == "" || a != b {
		t.Errorf("session identity changed with the timestamp/signature: %q vs %q", a, b)
	}
}

func readAllAndRestore(r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(r.Body)
	r.Body = ioNopCloser{bytes.NewReader(buf.Bytes())}
	return buf.Bytes(), err
}

type ioNopCloser struct{ *bytes.Reader }

func (ioNopCloser) Close() error { return nil }
