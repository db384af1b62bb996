package conformance

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/testenv"
)

func TestDiff(t *testing.T) {
	base := func() *Capture {
		return &Capture{
			Status: 405,
			Header: http.Header{"Allow": {"GET, HEAD, OPTIONS"}, "Date": {"a"}, "Set-Cookie": {"x=1", "y=2"}},
			Body:   []byte("same body"),
			Redis:  []string{"k = v"},
		}
	}
	tests := []struct {
		name   string
		change func(c *Capture)
		want   string // "" means no difference
	}{
		{"identical", func(*Capture) {}, ""},
		{"allow order", func(c *Capture) { c.Header.Set("Allow", "OPTIONS, GET, HEAD") }, ""},
		{"date and framing", func(c *Capture) {
			c.Header.Set("Date", "b")
			c.Header.Set("Connection", "close")
			c.Header.Set("Transfer-Encoding", "chunked")
		}, ""},
		{"status", func(c *Capture) { c.Status = 404 }, "status: legacy 405, native 404"},
		{"allow set", func(c *Capture) { c.Header.Set("Allow", "GET, HEAD") }, "header Allow"},
		{"cookie order", func(c *Capture) { c.Header["Set-Cookie"] = []string{"y=2", "x=1"} }, "header Set-Cookie"},
		{"extra header", func(c *Capture) { c.Header.Set("Server", "gunicorn") }, "header Server"},
		{"body", func(c *Capture) { c.Body = []byte("same bodY") }, "first difference at byte 8"},
		{"redis", func(c *Capture) { c.Redis = nil }, "redis after"},
		{"bedrock", func(c *Capture) { c.Bedrock = []string{"/model/x/invoke {}"} }, "bedrock requests"},
		{"aborted stream", func(c *Capture) { c.ReadErr = "unexpected EOF" }, "body read error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := base()
			tt.change(n)
			d := strings.Join(Diff(base(), n), "\n")
			if tt.want == "" && d != "" || tt.want != "" && !strings.Contains(d, tt.want) {
				t.Errorf("Diff = %q, want %q", d, tt.want)
			}
		})
	}
}

func TestRawRequest(t *testing.T) {
	body := `{"message": "hi"}`
	c := &Case{Method: "POST", Target: "/chat?x=1", Headers: [][2]string{{"Content-Type", "application/json"}, {"Cookie", "a=1; session={cookie:garbage}"}}, Body: &body, Chunked: true}
	b, err := c.Payload()
	if err != nil {
		t.Fatal(err)
	}
	req, err := RawRequest(c, b, "", [][2]string{{"X-Cutover-Backend", "native"}}, func(kind string) (string, error) {
		return SessionCookie(kind, "", "k", 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "POST /chat?x=1 HTTP/1.1\r\nHost: cutover.test\r\nContent-Type: application/json\r\nCookie: a=1; session=not.a.cookie\r\n" +
		"X-Cutover-Backend: native\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
		"7\r\n{\"messa\r\n7\r\nge\": \"h\r\n3\r\ni\"}\r\n0\r\n\r\n"
	if string(req) != want {
		t.Errorf("RawRequest\n got %q\nwant %q", req, want)
	}
}

func TestPayloadEncodings(t *testing.T) {
	text := "é😀"
	tests := []struct {
		encoding string
		want     string
	}{
		{"", "\xc3\xa9\xf0\x9f\x98\x80"},
		{"utf-16-le", "\xe9\x00\x3d\xd8\x00\xde"},
		{"utf-16", "\xff\xfe\xe9\x00\x3d\xd8\x00\xde"},
	}
	for _, tt := range tests {
		c := &Case{Body: &text, Encoding: tt.encoding}
		got, err := c.Payload()
		if err != nil || string(got) != tt.want {
			t.Errorf("Payload(%q) = %q, %v; want %q", tt.encoding, got, err, tt.want)
		}
	}
	parts := &Case{BodyParts: []BodyPart{{"ab", 2}, {"c", 3}}}
	if got, _ := parts.Payload(); string(got) != "ababccc" {
		t.Errorf("body parts = %q", got)
	}
}

func TestCorpusLoads(t *testing.T) {
	path, err := CorpusPath()
	if err != nil {
		t.Fatal(err)
	}
	cases, err := LoadCorpus(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.Name] {
			t.Errorf("duplicate case %s", c.Name)
		}
		seen[c.Name] = true
		if _, err := c.Payload(); err != nil {
			t.Errorf("case %s: %v", c.Name, err)
		}
		if _, err := SessionCookie(c.Cookie, c.SessionID, "k", 1); err != nil {
			t.Errorf("case %s: %v", c.Name, err)
		}
	}
	if len(cases) < 200 {
		t.Errorf("corpus has %d cases", len(cases))
	}
}

func TestRelaxCompressedCookies(t *testing.T) {
	// session/chat-large-no-id as the legacy app and a CGO_ENABLED=0 native
	// build answered it (testenv.LegacySecretKey, the suite's clock).
	const (
		secret = testenv.LegacySecretKey
		clock  = 1795726800.25
		attrs  = "; HttpOnly; Path=/"
		legacy = "session=.eJyrVkrOzytLLSpOLMnMz4vPTFGyUjI1T0w2Nbcw0E01MkjRNbFMTNO1TLQ017W0MDBPMTc2MLdMNVPSUcpTsjLUMwXS-SWpxUBtyYlpMaUGBqmWCjZqdgqjvFEefp5SLQB6Kq-v.awid0A.abhheAQhDfgOduTuOn6ebcBeoGE"
		goZlib = "session=.eJzsx0sKwkAMBuCrlH_hqpH4GNMM4kkECTMpdJMBW92Id_cGnmCW3welxdufq21Li8dSkZHESpKJyY9c6aw2k5oK6cRS5cSifsGIQD7s04hom6_IKDbfX8yuw3V3G7q6_gvfXwAAAP__eiqvrw.awid0A.B_ioqOxVT254NneBRV84hEF0iRM"
	)
	other, err := SessionCookie("large-no-id", "", secret, clock) // a different compressed session
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		native  string
		wantErr string // "" means accepted
	}{
		{"same", legacy + attrs, ""},
		{"deflate bytes only", goZlib + attrs, ""},
		{"attributes", goZlib + "; HttpOnly; Path=/; Secure", "attributes differ"},
		{"other session", "session=" + other + attrs, "differ"},
		{"bad signature", goZlib[:len(goZlib)-2] + "AA" + attrs, "does not verify"},
		{"uncompressed", "session=eyJhIjoxfQ.awid0A.x" + attrs, "not both compressed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &Capture{Header: http.Header{"Set-Cookie": {legacy + attrs}}}
			n := &Capture{Header: http.Header{"Set-Cookie": {tt.native}}}
			_, err := relaxCompressedCookies(secret, clock, l, n)
			if tt.wantErr == "" {
				if err != nil || len(Diff(l, n)) != 0 {
					t.Errorf("not accepted: %v %q", err, Diff(l, n))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
			if len(Diff(l, n)) == 0 {
				t.Error("a refused cookie must still show in Diff")
			}
		})
	}
}
