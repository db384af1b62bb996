package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The one body buffer: every stage gets the body only when it fits its own
// limit, the backend always reads every byte (and every read error) the
// client sent, and the body is read at most once.
func TestBodyUpTo(t *testing.T) {
	big := strings.Repeat("x", 100)
	tests := []struct {
		name    string
		body    string
		chunked bool // unknown length: the buffer has to read to find out
		max     int64
		wantOK  bool
	}{
		{"fits", "hello", false, 10, true},
		{"exactly max", "0123456789", false, 10, true},
		{"one over", "0123456789a", false, 10, false},
		{"much larger", big, false, 10, false},
		{"zero max empty", "", false, 0, true},
		{"chunked fits", "hello", true, 10, true},
		{"chunked one over", "0123456789a", true, 10, false},
		{"chunked much larger", big, true, 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest("POST", "http://x/", strings.NewReader(tt.body))
			if tt.chunked {
				r.ContentLength = -1
			}
			d := &Decision{body: requestBody{limit: tt.max}}
			got, ok, err := d.bodyUpTo(r, tt.max)
			if err != nil || ok != tt.wantOK {
				t.Fatalf("ok = %v, err = %v, want ok %v", ok, err, tt.wantOK)
			}
			if ok && string(got) != tt.body {
				t.Errorf("got %q, want %q", got, tt.body)
			}
			// The backend still reads the whole body either way.
			all, _ := io.ReadAll(r.Body)
			if string(all) != tt.body {
				t.Errorf("backend read %d bytes, want %d", len(all), len(tt.body))
			}
		})
	}
	t.Run("read error reaches the backend", func(t *testing.T) {
		boom := errors.New("client reset")
		r, _ := http.NewRequest("POST", "http://x/", io.NopCloser(&failingReader{data: []byte("abc"), err: boom}))
		d := &Decision{body: requestBody{limit: 100}}
		if _, ok, err := d.bodyUpTo(r, 100); ok || !errors.Is(err, boom) {
			t.Fatalf("ok = %v, err = %v", ok, err)
		}
		got, err := io.ReadAll(r.Body)
		if !errors.Is(err, boom) || !bytes.Equal(got, []byte("abc")) {
			t.Errorf("backend got %q, %v", got, err)
		}
	})
	t.Run("no body", func(t *testing.T) {
		r, _ := http.NewRequest("GET", "http://x/", nil)
		d := &Decision{}
		if b, ok, err := d.bodyUpTo(r, 10); b != nil || !ok || err != nil {
			t.Errorf("got %q, %v, %v", b, ok, err)
		}
	})
	t.Run("read once, each stage under its own limit, replayable", func(t *testing.T) {
		body := strings.Repeat("y", 50)
		counting := &countingReader{r: strings.NewReader(body)}
		r, _ := http.NewRequest("POST", "http://x/", io.NopCloser(counting))
		r.ContentLength = -1
		d := &Decision{body: requestBody{limit: 64}}
		if _, ok, _ := d.bodyUpTo(r, 10); ok { // identity: too large for it
			t.Fatal("a 50-byte body fits a 10-byte limit")
		}
		got, ok, _ := d.bodyUpTo(r, 64) // shadow: fits
		if !ok || string(got) != body {
			t.Fatalf("second stage got %q, %v", got, ok)
		}
		if counting.n != int64(len(body)) {
			t.Errorf("read %d bytes from the client, want %d (once)", counting.n, len(body))
		}
		for range 2 { // the native attempt reads it, then the legacy replay
			all, _ := io.ReadAll(r.Body)
			if string(all) != body {
				t.Fatalf("backend read %q", all)
			}
			d.body.rewind(r)
		}
	})
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
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

// Sampling is deterministic, monotonic in the rate, bounded at 0 and 100 %,
// and independent of routing: a route's shadow seed and its routing seed
// pick different keys.
func TestSampled(t *testing.T) {
	const n = 20000
	seed := shadowSeed("chat")
	at := func(rate int) map[int]bool {
		s := map[int]bool{}
		for i := range n {
			if sampled(seed, fmt.Sprint("key-", i), rate) {
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
	// The hash over these keys is fixed, so this is deterministic; a fair
	// hash lands within ±1000 of 5000.
	if len(s25) < 4000 || len(s25) > 6000 {
		t.Errorf("25%% sampled %d of %d", len(s25), n)
	}
	if again := at(2500); len(again) != len(s25) {
		t.Errorf("not deterministic: %d then %d", len(s25), len(again))
	}
	if len(at(0)) != 0 || len(at(10000)) != n || len(at(-5)) != 0 || len(at(20000)) != n {
		t.Error("bounds: 0 must sample none and 10000 all")
	}
	sameRoute, sameRouting := 0, 0
	for i := range 1000 {
		k := fmt.Sprint("key-", i)
		if sampled(seed, k, 5000) == sampled(shadowSeed("models"), k, 5000) {
			sameRoute++
		}
		if sampled(seed, k, 5000) == (Bucket(Seed("chat"), k) < 5000) {
			sameRouting++
		}
	}
	if sameRoute == 1000 {
		t.Error("routes sample identical keys: salt ignored")
	}
	if sameRouting == 1000 {
		t.Error("shadow sampling picks exactly the routed keys: the shadow seed is not its own")
	}
}
