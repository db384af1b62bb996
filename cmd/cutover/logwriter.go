package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// logWriter batches log lines into few writes. The access log writes one
// JSON line per request; written straight to stdout that is one write
// syscall per request, the largest single cost of a proxied request (see
// bench/README.md). Lines are appended to a buffer flushed every
// flushEvery, when it reaches maxBuffered, by Flush (records at WARN and
// above, see flushHandler) and by Close. A line is never split across
// writes. Safe for concurrent use.
type logWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte

	stop chan struct{}
	done chan struct{}
}

const (
	logFlushEvery  = 100 * time.Millisecond
	logMaxBuffered = 64 << 10
)

// newLogWriter starts the periodic flush; Close stops it.
func newLogWriter(w io.Writer) *logWriter {
	lw := &logWriter{w: w, buf: make([]byte, 0, logMaxBuffered), stop: make(chan struct{}), done: make(chan struct{})}
	go lw.run()
	return lw
}

func (lw *logWriter) run() {
	defer close(lw.done)
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-lw.stop:
			return
		case <-t.C:
			lw.Flush()
		}
	}
}

// Write buffers p (one slog record: slog handlers write each record with a
// single Write); past maxBuffered it writes through, so a burst applies
// back-pressure exactly as an unbuffered writer would.
func (lw *logWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if len(lw.buf)+len(p) > logMaxBuffered {
		if err := lw.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > logMaxBuffered {
			return lw.w.Write(p)
		}
	}
	lw.buf = append(lw.buf, p...)
	return len(p), nil
}

// Flush writes what is buffered.
func (lw *logWriter) Flush() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.flushLocked()
}

func (lw *logWriter) flushLocked() error {
	if len(lw.buf) == 0 {
		return nil
	}
	_, err := lw.w.Write(lw.buf)
	lw.buf = lw.buf[:0]
	return err
}

// Close stops the periodic flush and flushes. Writes after Close go
// through the buffer and need a Flush.
func (lw *logWriter) Close() error {
	select {
	case <-lw.stop:
	default:
		close(lw.stop)
	}
	<-lw.done
	return lw.Flush()
}

// flushHandler flushes the logWriter after every record at WARN or above,
// so problems reach the log at once (and before a crash) while the
// per-request INFO lines are batched.
type flushHandler struct {
	slog.Handler
	lw *logWriter
}

func (h flushHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		_ = h.lw.Flush()
	}
	return err
}

func (h flushHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return flushHandler{h.Handler.WithAttrs(as), h.lw}
}

func (h flushHandler) WithGroup(name string) slog.Handler {
	return flushHandler{h.Handler.WithGroup(name), h.lw}
}

// newBufferedLogger is newLogger writing through a logWriter; close the
// returned writer (it flushes) when the command ends.
func newBufferedLogger(w io.Writer, level string) (*slog.Logger, *logWriter) {
	lw := newLogWriter(w)
	h := newLogger(lw, level).Handler()
	return slog.New(flushHandler{h, lw}), lw
}
