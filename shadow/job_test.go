package shadow

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

// A shadow replays the request the primary answered: a request-target's
// "#fragment" (kept in the path by net/http, dropped by gunicorn and compat)
// is not sent.
func TestNewRequestDropsFragment(t *testing.T) {
	tests := []struct {
		target, wantPath, wantQuery, wantURI string
	}{
		{"/health#x", "/health", "", "/health"},
		{"/conversations//seeded?x=1#frag", "/conversations//seeded", "x=1", "/conversations//seeded?x=1"},
		{"/a?b=1", "/a", "b=1", "/a?b=1"},
		{"/a%23b?c=%23", "/a#b", "c=%23", "/a%23b?c=%23"},
	}
	for _, tt := range tests {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + tt.target + " HTTP/1.1\r\nHost: x\r\n\r\n")))
		if err != nil {
			t.Fatalf("%s: %v", tt.target, err)
		}
		got := NewRequest(r, nil).HTTP(t.Context())
		if got.URL.Path != tt.wantPath || got.URL.RawQuery != tt.wantQuery || got.URL.RequestURI() != tt.wantURI {
			t.Errorf("%s: path %q query %q uri %q, want %q %q %q", tt.target, got.URL.Path, got.URL.RawQuery, got.URL.RequestURI(),
				tt.wantPath, tt.wantQuery, tt.wantURI)
		}
	}
}
