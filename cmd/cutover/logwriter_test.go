package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// writes records each Write call the logWriter makes.
type writes struct {
	mu    sync.Mutex
	calls []string
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, string(p))
	return len(p), nil
}

func (w *writes) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.calls...)
}

// TestBufferedLogger: INFO lines are batched (fewer writes than lines, never
// a line split across writes), WARN and above reach the writer at once, and
// Close flushes everything in order.
func TestBufferedLogger(t *testing.T) {
	sink := &writes{}
	log, lw := newBufferedLogger(sink, "info")
	const n = 2000 // > logMaxBuffered bytes, so some flushes happen on size
	for i := range n {
		log.Info("request", "i", i, "pad", strings.Repeat("x", 40))
	}
	log.Warn("problem")
	calls := sink.all()
	if len(calls) == 0 || !strings.Contains(calls[len(calls)-1], `"msg":"problem"`) {
		t.Fatalf("WARN record not written at once; last write %.100q", calls)
	}
	log.Info("after")
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	calls = sink.all()
	if len(calls) >= n/10 {
		t.Errorf("%d writes for %d lines: not batched", len(calls), n)
	}
	var all bytes.Buffer
	for _, c := range calls {
		if !strings.HasSuffix(c, "\n") {
			t.Errorf("write does not end a line: ...%q", c[max(0, len(c)-40):])
		}
		all.WriteString(c)
	}
	lines := strings.Split(strings.TrimSuffix(all.String(), "\n"), "\n")
	if len(lines) != n+2 {
		t.Fatalf("%d lines, want %d", len(lines), n+2)
	}
	for i := range n {
		if want := fmt.Sprintf(`"i":%d,`, i); !strings.Contains(lines[i], want) {
			t.Fatalf("line %d = %.80q, want %s", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[n+1], `"msg":"after"`) {
		t.Errorf("last line %q: Close did not flush", lines[n+1])
	}
}
