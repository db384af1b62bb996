package shadow

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestSampleDeterministicAndMonotonic(t *testing.T) {
	const n = 20000
	at := func(rate int) map[int]bool {
		s := map[int]bool{}
		for i := range n {
			if Sample("chat", fmt.Sprint("key-", i), rate) {
				s[i] = true
			}
		}
		return s
	}
	s10, s25 := at(1000), at(2500)
	for i := range s10 {
		if !s25[i] {
			t.Fatalf("key %d sampled at 10%% but not at 25%%", i)
		}
	}
	// A binomial(20000, 0.25) lies within ±1000 of 5000 with overwhelming probability;
	// FNV over these keys is fixed, so this is deterministic anyway.
	if len(s25) < 4000 || len(s25) > 6000 {
		t.Errorf("25%% sampled %d of %d", len(s25), n)
	}
	if again := at(2500); len(again) != len(s25) {
		t.Errorf("not deterministic: %d then %d", len(s25), len(again))
	}
	if len(at(0)) != 0 || len(at(10000)) != n || len(at(-5)) != 0 || len(at(20000)) != n {
		t.Error("bounds: 0 must sample none and 10000 all")
	}
	// Salt makes routes independent.
	same := 0
	for i := range 1000 {
		k := fmt.Sprint("key-", i)
		if Sample("chat", k, 5000) == Sample("models", k, 5000) {
			same++
		}
	}
	if same == 1000 {
		t.Error("routes sample identical keys: salt ignored")
	}
}

type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestBufferBody(t *testing.T) {
	big := strings.Repeat("x", 100)
	tests := []struct {
		name     string
		body     string
		max      int64
		wantErr  error
		wantKept string
	}{
		{"fits", "hello", 10, nil, "hello"},
		{"exactly max", "0123456789", 10, nil, "0123456789"},
		{"one over", "0123456789a", 10, ErrBodyTooLarge, ""},
		{"much larger", big, 10, ErrBodyTooLarge, ""},
		{"zero max empty", "", 0, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest("POST", "http://x/", strings.NewReader(tt.body))
			kept, err := BufferBody(r, tt.max)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if string(kept) != tt.wantKept {
				t.Errorf("kept %q, want %q", kept, tt.wantKept)
			}
			// The primary still reads the whole body either way.
			all, _ := io.ReadAll(r.Body)
			if string(all) != tt.body {
				t.Errorf("primary read %d bytes, want %d", len(all), len(tt.body))
			}
		})
	}
	t.Run("read error reaches the primary", func(t *testing.T) {
		boom := errors.New("client reset")
		r, _ := http.NewRequest("POST", "http://x/", io.NopCloser(&failingReader{data: []byte("abc"), err: boom}))
		if _, err := BufferBody(r, 100); !errors.Is(err, boom) {
			t.Fatalf("err = %v", err)
		}
		got, err := io.ReadAll(r.Body)
		if !errors.Is(err, boom) || !bytes.Equal(got, []byte("abc")) {
			t.Errorf("primary got %q, %v", got, err)
		}
	})
	t.Run("no body", func(t *testing.T) {
		r, _ := http.NewRequest("GET", "http://x/", nil)
		if b, err := BufferBody(r, 10); b != nil || err != nil {
			t.Errorf("got %q, %v", b, err)
		}
	})
}
