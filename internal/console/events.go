package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"net/http"
	"sort"
	"sync"
	"time"
)

// The event stream (GET /admin/events, text/event-stream) says what changed,
// never the data itself: the page re-reads the admin API for it.
//
//	retry: 2000
//	event: hello                     once connected; re-read everything
//	data: {"topics":["audit","diffs","fleet","routes"]}
//
//	event: change                    something of these topics changed
//	data: {"topics":["routes"]}
//
//	: heartbeat                      every Heartbeat while idle
//
// Changes are noticed by reading each topic's admin paths in process every
// Interval while at least one page is connected, and comparing a hash of the
// status and body with the previous read. A stream that falls behind gets
// the union of what changed meanwhile in one event (a page never needs
// more), so a slow page costs one pending set, not a queue.

// writeTimeout bounds one write to a stream; a page that does not read for
// that long is dropped (it reconnects and re-reads).
const writeTimeout = 10 * time.Second

// readTimeout bounds one in-process read of a topic path.
const readTimeout = 5 * time.Second

// hub fans change signals out to the connected pages. Its poller runs only
// while at least one page is connected; it is stopped by the last page
// leaving or by close, which also ends every stream.
type hub struct {
	opts   Options
	topics []string // sorted names of opts.Topics

	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
	done   chan struct{} // closed by close: every stream ends
	poll   *poller       // running poller, nil when no page is connected

	hashMu sync.Mutex        // serialises reads, guards last
	last   map[string]uint64 // topic → hash of its last read
	once   sync.Once
}

// subscriber is one connected page: the topics changed since its last event.
type subscriber struct {
	mu      sync.Mutex
	pending map[string]bool
	wake    chan struct{} // capacity 1: "pending is not empty"
}

// poller is one run of the change detector. ready is closed after its first
// read, so a page's hello (after which it re-reads everything) never comes
// before the state it compares against.
type poller struct {
	cancel context.CancelFunc
	ready  chan struct{}
	done   chan struct{}
}

func newHub(opts Options) *hub {
	h := &hub{opts: opts, subs: map[*subscriber]struct{}{}, done: make(chan struct{}), last: map[string]uint64{}}
	for name := range opts.Topics {
		h.topics = append(h.topics, name)
	}
	sort.Strings(h.topics)
	return h
}

// errFull and errClosed refuse a stream.
var (
	errFull   = errors.New("too many open console pages on this instance; close one and retry")
	errClosed = errors.New("the admin listener is shutting down")
)

// subscribe registers a page, starting the poller for the first one, and
// returns the running poller's ready channel.
func (h *hub) subscribe() (*subscriber, <-chan struct{}, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return nil, nil, errClosed
	case len(h.subs) >= h.opts.MaxSubscribers:
		return nil, nil, errFull
	}
	s := &subscriber{pending: map[string]bool{}, wake: make(chan struct{}, 1)}
	h.subs[s] = struct{}{}
	if h.poll == nil {
		ctx, cancel := context.WithCancel(context.Background())
		p := &poller{cancel: cancel, ready: make(chan struct{}), done: make(chan struct{})}
		h.poll = p
		go h.run(ctx, p)
	}
	return s, h.poll.ready, nil
}

// unsubscribe removes a page; the last one out stops the poller and waits
// for it.
func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	var p *poller
	if len(h.subs) == 0 && h.poll != nil {
		p, h.poll = h.poll, nil
	}
	h.mu.Unlock()
	if p != nil {
		p.cancel()
		<-p.done
	}
}

// close ends every stream and stops the poller, waiting for it.
func (h *hub) close() {
	h.once.Do(func() {
		h.mu.Lock()
		h.closed = true
		close(h.done)
		p := h.poll
		h.poll = nil
		h.mu.Unlock()
		if p != nil {
			p.cancel()
			<-p.done
		}
	})
}

// run reads the topics every Interval until ctx ends, publishing changes.
func (h *hub) run(ctx context.Context, p *poller) {
	defer close(p.done)
	h.publish(h.read(ctx))
	close(p.ready)
	t := time.NewTicker(h.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.publish(h.read(ctx))
		}
	}
}

// read reads every topic and returns those whose answers changed since the
// previous read (a topic read for the first time is not a change).
func (h *hub) read(ctx context.Context) []string {
	h.hashMu.Lock()
	defer h.hashMu.Unlock()
	var changed []string
	for _, name := range h.topics {
		sum := fnv.New64a()
		for _, path := range h.opts.Topics[name] {
			if ctx.Err() != nil {
				return nil
			}
			h.fingerprint(ctx, path, sum)
		}
		v := sum.Sum64()
		if old, seen := h.last[name]; seen && old != v {
			changed = append(changed, name)
		}
		h.last[name] = v
	}
	return changed
}

// fingerprint adds the status and body of GET path on the admin API to sum.
func (h *hub) fingerprint(ctx context.Context, path string, sum hash.Hash64) {
	if h.opts.API == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	if err != nil {
		fmt.Fprintf(sum, "bad path %q", path)
		return
	}
	// In process, from this host: an IP literal Host passes an admin Host
	// allow-list, as a call from the loopback would.
	r.RemoteAddr, r.Host = "127.0.0.1:0", "127.0.0.1"
	if h.opts.Token != nil {
		if tok := h.opts.Token(); tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	w := &hashWriter{sum: sum, header: http.Header{}}
	h.opts.API.ServeHTTP(w, r)
	fmt.Fprintf(sum, "\n%d\n", w.status)
}

// hashWriter is an http.ResponseWriter that keeps only a hash of the body.
type hashWriter struct {
	sum    hash.Hash64
	header http.Header
	status int
}

func (w *hashWriter) Header() http.Header { return w.header }

func (w *hashWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *hashWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.sum.Write(p)
}

// publish marks topics as pending for every page and wakes them.
func (h *hub) publish(topics []string) {
	if len(topics) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.mu.Lock()
		for _, t := range topics {
			s.pending[t] = true
		}
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// take returns and clears the pending topics, sorted.
func (s *subscriber) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.pending))
	for t := range s.pending {
		out = append(out, t)
	}
	clear(s.pending)
	sort.Strings(out)
	return out
}

// serve is GET /admin/events. It runs on the request's goroutine and
// returns when the page goes away, a write fails or times out, or the hub
// closes.
func (h *hub) serve(w http.ResponseWriter, r *http.Request) {
	s, ready, err := h.subscribe()
	if err != nil {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	defer h.unsubscribe(s)
	select {
	case <-ready:
	case <-r.Context().Done():
		return
	case <-h.done:
		return
	}
	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(text string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write([]byte(text)); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("retry: 2000\n\n" + event("hello", h.topics)) {
		return
	}
	beat := time.NewTicker(h.opts.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		case <-beat.C:
			if !send(": heartbeat\n\n") {
				return
			}
		case <-s.wake:
			if topics := s.take(); len(topics) > 0 && !send(event("change", topics)) {
				return
			}
		}
	}
}

func event(name string, topics []string) string {
	data, _ := json.Marshal(map[string][]string{"topics": topics})
	return "event: " + name + "\ndata: " + string(data) + "\n\n"
}
