package shadow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestRedactHeadersMergeDefaults(t *testing.T) {
	rd, err := newRedactor(Redaction{Headers: []string{"X-Custom-Key"}})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	for _, k := range []string{"Authorization", "Cookie", "X-Custom-Key", "X-Amzn-Oidc-Data",
		"X-Amzn-Oidc-Accesstoken", "X-Amzn-Oidc-Identity", "X-Auth-Token", "X-Api-Key"} {
		h.Set(k, "secret-"+k)
	}
	h.Set("Content-Type", "application/json")
	got := rd.header(h)
	for k, vs := range got {
		if k == "Content-Type" {
			if vs[0] != "application/json" {
				t.Errorf("Content-Type redacted: %q", vs)
			}
			continue
		}
		if len(vs) != 1 || vs[0] != Redacted {
			t.Errorf("%s = %q, want redacted", k, vs)
		}
	}
	for _, path := range []string{"header.x-amzn-oidc-data", "header.Cookie", "header.X-Custom-Key"} {
		if !rd.secretPath(path) {
			t.Errorf("secretPath(%q) = false", path)
		}
	}
}

func TestRedactFieldsMergeDefaults(t *testing.T) {
	rd, err := newRedactor(Redaction{Fields: []string{"pin"}, Patterns: []string{`sk-[a-z0-9]+`}})
	if err != nil {
		t.Fatal(err)
	}
	got := rd.body(`{"pin":"1234","password":"hunter2","note":"key sk-abc1 and AKIAABCDEFGHIJKLMNOP"}`, "application/json")
	want := `{"pin":"[REDACTED]","password":"[REDACTED]","note":"key [REDACTED] and [REDACTED]"}`
	if got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
	if q := rd.query("token=a&pin=2&x=1"); strings.Contains(q, "a&") || strings.Contains(q, "pin=2") || !strings.Contains(q, "x=1") {
		t.Errorf("query %q", q)
	}
}

func TestRedactJSON(t *testing.T) {
	rd, err := newRedactor(Redaction{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, give, want string
	}{
		{"untouched", `{"message":"hi", "n": 1, "list":[1,{"a":"b"}]}`, `{"message":"hi", "n": 1, "list":[1,{"a":"b"}]}`},
		{"string", `{"token":"abc","x":1}`, `{"token":"[REDACTED]","x":1}`},
		{"number", `{"password": 123, "x": 1}`, `{"password": "[REDACTED]", "x": 1}`},
		{"literal", `{"secret":true,"api_key":null}`, `{"secret":"[REDACTED]","api_key":"[REDACTED]"}`},
		{"object", `{"token": {"value": "abc", "inner": {"k": "x}"}}, "x": 1}`, `{"token": "[REDACTED]", "x": 1}`},
		{"array", `{"api_key":["a","b"],"x":[1]}`, `{"api_key":"[REDACTED]","x":[1]}`},
		{"escaped key", `{"\u0074oken":"abc","pass\u0077ord":7}`, `{"\u0074oken":"[REDACTED]","pass\u0077ord":"[REDACTED]"}`},
		{"case", `{"Client_Secret":"s","ID_TOKEN":"t"}`, `{"Client_Secret":"[REDACTED]","ID_TOKEN":"[REDACTED]"}`},
		{"nested", `{"a":{"b":[{"refresh_token":"r"}]}}`, `{"a":{"b":[{"refresh_token":"[REDACTED]"}]}}`},
		{"pretty", "{\n  \"token\"\n  :\n  {\n    \"a\": 1\n  },\n  \"b\": 2\n}", "{\n  \"token\"\n  :\n  \"[REDACTED]\",\n  \"b\": 2\n}"},
		{"quoted value is not a key", `{"message":"token","x":"y"}`, `{"message":"token","x":"y"}`},
		{"escaped quote in value", `{"m":"say \"token\": 1","token":"t"}`, `{"m":"say \"token\": 1","token":"[REDACTED]"}`},
		{"clipped string", `{"x":1,"token":"abcdef`, `{"x":1,"token":"[REDACTED]"`},
		{"clipped object", `{"token":{"a":"abc","b":[1,2`, `{"token":"[REDACTED]"`},
		{"event stream", "event: done\ndata: {\"token\": \"t1\"}\n\nevent: x\ndata: {\"id_token\": 5}\n\n",
			"event: done\ndata: {\"token\": \"[REDACTED]\"}\n\nevent: x\ndata: {\"id_token\": \"[REDACTED]\"}\n\n"},
		{"stray quote on an earlier line", "it's \"odd\nval: {\"secret\": \"s\"}", "it's \"odd\nval: {\"secret\": \"[REDACTED]\"}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rd.body(tt.give, "application/json"); got != tt.want {
				t.Errorf("\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestRedactSecretPath(t *testing.T) {
	rd, err := newRedactor(Redaction{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		give string
		want bool
	}{
		{"$.token.value", true},
		{"$.auth.api_key", true},
		{"$['Token']", true},
		{"$.a[3].password", true},
		{"$.token[0]", true},
		{"events[2].data$.creds.client_secret.v", true},
		{"$.reply", false},
		{"$.tokens", false},
		{"$['a b'].x", false},
		{"status", false},
		{"header.X-Request-Id", false},
	}
	for _, tt := range tests {
		if got := rd.secretPath(tt.give); got != tt.want {
			t.Errorf("secretPath(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

func TestNewBody(t *testing.T) {
	bin := []byte("\xff\xfe token=hunter2 \x00\x01")
	sum := sha256.Sum256(bin)
	b := newBody(bin, 4)
	if b.Text != "" || b.Binary == nil || b.Binary.Size != len(bin) || b.Binary.SHA256 != hex.EncodeToString(sum[:]) || b.Bytes() != nil {
		t.Errorf("binary body: %+v", b)
	}
	raw, _ := json.Marshal(b)
	if strings.Contains(string(raw), "hunter2") || strings.Contains(string(raw), "aHVudGVy") {
		t.Errorf("binary body stored: %s", raw)
	}

	// Clipping inside a multi-byte rune keeps the text (not binary).
	b = newBody([]byte("héllo"), 2)
	if b.Binary != nil || b.Text != "h" || !b.Clipped {
		t.Errorf("clipped in a rune: %+v", b)
	}
	// A response truncated inside a rune is text too.
	b = newBody([]byte("ok \xe2\x82"), 100)
	if b.Binary != nil || b.Text != "ok " {
		t.Errorf("truncated in a rune: %+v", b)
	}
}

func TestMirrorRedactsBinaryAndJSON(t *testing.T) {
	m := newMirror(t, Options{Redaction: Redaction{Headers: []string{"X-Tenant-Key"}}})
	shadow := HandlerTarget{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("\xff\xfeshadow-secret"))
	})}
	m.Submit(Job{
		Route: "chat",
		Request: Request{Method: "POST", URL: &url.URL{Path: "/chat"},
			Header: http.Header{"Cookie": {"session=s1"}, "X-Tenant-Key": {"tk"}, "X-Amzn-Oidc-Data": {"jwt"},
				"Content-Type": {"application/json"}},
			Body: []byte(`{"message":"hi","password":1234567,"\u0074oken":"esc-secret","client_secret":{"v":"obj-secret"}}`)},
		Primary: Response{Status: 200, Body: []byte(`{"id_token":"id-secret"}`)},
		Target:  shadow,
	})
	drain(t, m)
	p, _ := m.Store().List(context.Background(), Query{})
	if len(p.Records) != 1 {
		t.Fatalf("%d records", len(p.Records))
	}
	raw, _ := json.Marshal(p.Records[0])
	for _, secret := range []string{"s1", "tk", "jwt", "1234567", "esc-secret", "obj-secret", "id-secret", "shadow-secret",
		"c2hhZG93LXNlY3JldA"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("record leaks %q: %s", secret, raw)
		}
	}
	if r := p.Records[0]; r.Shadow.Body.Binary == nil || r.Shadow.Body.Binary.Size != 15 || !strings.Contains(r.Request.Body.Text, `"message":"hi"`) {
		t.Errorf("record bodies: request %+v shadow %+v", r.Request.Body, r.Shadow.Body)
	}
}
