package compat

import (
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"testing"
	"time"
)

func TestSessionFlags(t *testing.T) {
	tests := []struct {
		name         string
		do           func(s *Session)
		wantAccessed bool
		wantModified bool
	}{
		{"untouched", func(s *Session) {}, false, false},
		{"get", func(s *Session) { s.Get("a") }, true, false},
		{"permanent read", func(s *Session) { s.Permanent() }, true, false},
		{"set", func(s *Session) { s.Set("a", int64(2)) }, true, true},
		{"pop missing", func(s *Session) { s.Pop("missing") }, true, false},
		{"pop present", func(s *Session) { s.Pop("a") }, true, true},
		{"clear", func(s *Session) { s.Clear() }, true, true},
		{"mark modified", func(s *Session) { s.MarkModified() }, true, true},
		{"touch", func(s *Session) { s.Touch() }, true, false},
	}
	for _, tt := range tests {
		s := NewSession(Object{{"a", int64(1)}})
		tt.do(s)
		if s.Accessed() != tt.wantAccessed || s.Modified() != tt.wantModified {
			t.Errorf("%s: accessed=%v modified=%v, want %v %v", tt.name, s.Accessed(), s.Modified(), tt.wantAccessed, tt.wantModified)
		}
	}
}

func TestSessionTagsNestedGoTypes(t *testing.T) {
	c := &SessionCodec{SecretKey: "k", Now: func() time.Time { return time.Unix(1700000000, 0) }}
	// A one-key dict whose key is a tag must be escaped wherever it sits,
	// whatever Go type holds the list.
	a, err := c.Encode(Object{{"l", []Object{{{" t", int64(1)}}}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Encode(Object{{"l", []any{Object{{" t", int64(1)}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("typed slice encodes as %s, []any as %s", a, b)
	}
	got, err := c.Decode(a)
	want := Object{{"l", []any{Object{{" t", int64(1)}}}}}
	if err != nil || !pyEqual(got, want) {
		t.Errorf("round trip: %#v, %v", got, err)
	}
}

func TestSessionOpenOutcomes(t *testing.T) {
	now := time.Unix(1700000000, 0)
	c := &SessionCodec{SecretKey: "k", Now: func() time.Time { return now }}
	good, err := c.Encode(Object{{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	payload := "W10" // base64url("[]"): a list, which dict() turns into {}
	value := payload + "." + FormatTimestamp(now.Unix())
	emptyList := value + "." + b64url(sign(deriveKey("k"), value))
	value = "bm9wZQ." + FormatTimestamp(now.Unix()) // "nope": not JSON
	badPayload := value + "." + b64url(sign(deriveKey("k"), value))

	tests := []struct {
		cookie  string
		wantLen int
		wantErr error
	}{
		{"", 0, nil},
		{good, 1, nil},
		{good + "x", 0, nil},
		{emptyList, 0, nil},
		{badPayload, 0, ErrBadPayload},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		if tt.cookie != "" {
			r.Header.Set("Cookie", "session="+tt.cookie)
		}
		s, err := c.Open(r)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Open(%q) error %v, want %v", tt.cookie, err, tt.wantErr)
			}
			continue
		}
		if err != nil || s.Len() != tt.wantLen {
			t.Errorf("Open(%q) = %v, %v; want %d values", tt.cookie, s, err, tt.wantLen)
		}
	}
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
