// Package load drives the chatbot workload against a base URL with a fixed number of concurrent
// users in a closed loop: each user sends its next request as soon as the previous one finished,
// keeps its own conversation id and identity header, and draws each request from the mix
// (POST /chat, POST /chat/stream, GET /conversations/<id>). Latencies are recorded in HdrHistograms.
package load

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Mode says what each user does.
type Mode string

const (
	// ModeMix runs the chat mix in a closed loop.
	ModeMix Mode = "mix"
	// ModeHoldStream has each user keep one POST /chat/stream open at a time (for memory per stream).
	ModeHoldStream Mode = "hold-stream"
	// ModeHoldChat has each user keep one POST /chat in flight at a time (for memory per request).
	ModeHoldChat Mode = "hold-chat"
	// ModeOpen sends the mix in an open loop: arrivals at Rate per second, whatever the target's
	// state, over at most Pool connections (as a load balancer sends them).
	ModeOpen Mode = "open"
)

// Arrival processes of the open loop.
const (
	// ArrivalsPoisson spaces arrivals by exponential gaps of mean 1/Rate (a Poisson process).
	ArrivalsPoisson = "poisson"
	// ArrivalsUniform spaces arrivals evenly, 1/Rate apart.
	ArrivalsUniform = "uniform"
)

// Config describes one load run. Zero values take the defaults named on each field.
type Config struct {
	BaseURL string // e.g. http://127.0.0.1:8080, no trailing slash
	// Users is the number of concurrent users (closed loop), or in ModeOpen the population each
	// arrival is drawn from; there zero means ⌈Rate × 11⌉ (a user every 10 s of thinking plus
	// about 1 s of answer).
	Users int
	Mode  Mode // zero means ModeMix
	// Rate is ModeOpen's arrivals per second (required there, ignored otherwise).
	Rate float64
	// Pool bounds ModeOpen's connections to the target; an arrival finding every connection busy
	// waits for one, and the wait counts in its latency. Zero means 1024.
	Pool int
	// Arrivals is ModeOpen's arrival process, ArrivalsPoisson or ArrivalsUniform; zero means Poisson.
	Arrivals string
	// Ramp spreads the users' starts evenly (in ModeOpen: arrivals at the full rate, not
	// recorded); the measurement window opens when it ends.
	Ramp time.Duration
	// Duration is the measurement window after Ramp.
	Duration time.Duration
	// Timeout bounds one request (until its last byte). Zero means 30s.
	Timeout time.Duration
	// ChatPct and StreamPct are the mix's shares in percent; the rest is GET /conversations/<id>.
	// Both zero means 70 and 20.
	ChatPct, StreamPct int
	// TTFT and TPS are the stub's latency model, used to compute each answer's model latency from
	// its output token count (TTFT + tokens/TPS). TPS zero means generation takes no time.
	TTFT time.Duration
	TPS  float64
	// Salt makes conversation ids and identities differ between runs sharing one Redis.
	Salt string
	// UserHeader carries the user's identity for sticky routing. Empty means X-User-Id.
	UserHeader string
}

func (c *Config) defaults() error {
	if c.Mode == ModeOpen {
		if c.Rate <= 0 || math.IsInf(c.Rate, 0) || math.IsNaN(c.Rate) {
			return fmt.Errorf("open loop: rate %v is not a positive number", c.Rate)
		}
		if c.Users <= 0 {
			c.Users = int(math.Ceil(c.Rate * 11))
		}
		if c.Pool <= 0 {
			c.Pool = 1024
		}
		switch c.Arrivals {
		case "":
			c.Arrivals = ArrivalsPoisson
		case ArrivalsPoisson, ArrivalsUniform:
		default:
			return fmt.Errorf("open loop: arrivals %q is neither %s nor %s", c.Arrivals, ArrivalsPoisson, ArrivalsUniform)
		}
	}
	if c.Users <= 0 {
		return errors.New("users must be positive")
	}
	if c.Duration <= 0 {
		return errors.New("duration must be positive")
	}
	if c.Mode == "" {
		c.Mode = ModeMix
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.ChatPct == 0 && c.StreamPct == 0 {
		c.ChatPct, c.StreamPct = 70, 20
	}
	if c.ChatPct < 0 || c.StreamPct < 0 || c.ChatPct+c.StreamPct > 100 {
		return fmt.Errorf("mix %d/%d is not within 100%%", c.ChatPct, c.StreamPct)
	}
	if c.UserHeader == "" {
		c.UserHeader = "X-User-Id"
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	return nil
}

// Stats summarises one latency histogram, in milliseconds.
type Stats struct {
	Count  int64   `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P95MS  float64 `json:"p95_ms"`
	P99MS  float64 `json:"p99_ms"`
	MaxMS  float64 `json:"max_ms"`
}

// Result is what one run measured inside its window.
type Result struct {
	Mode    Mode    `json:"mode"`
	Users   int     `json:"users"`
	WindowS float64 `json:"window_s"`
	// OK counts requests completed successfully inside the window; Errors those that failed there.
	OK     int64            `json:"ok"`
	Errors int64            `json:"errors"`
	Kinds  map[string]int64 `json:"error_kinds,omitempty"`
	// Unfinished counts requests still in flight when the window closed (not errors).
	Unfinished int64   `json:"unfinished"`
	RPS        float64 `json:"rps"`
	ErrorRate  float64 `json:"error_rate"`
	// All covers every successful request (a stream counts until its last event).
	All         Stats `json:"all"`
	Chat        Stats `json:"chat"`
	StreamFirst Stats `json:"stream_first_event"`
	StreamLast  Stats `json:"stream_last_event"`
	Get         Stats `json:"get_conversation"`
	// OverModel is latency minus the stub's modelled latency, over every successful request
	// (a GET's model latency is zero); ChatOverModel the same for POST /chat alone.
	OverModel     Stats `json:"over_model"`
	ChatOverModel Stats `json:"chat_over_model"`
	// ModelMeanMS is the mean modelled latency over successful requests (GETs count as 0), and
	// TheoreticalRPS = Users / ModelMeanMS: the rate a zero-overhead server would sustain.
	ModelMeanMS    float64 `json:"model_mean_ms"`
	TheoreticalRPS float64 `json:"theoretical_rps"`
	// MaxOpen is the largest number of requests seen in flight at once (after headers for streams).
	MaxOpen int64 `json:"max_open"`
	// OpenAtEnd is the number in flight when the window closed.
	OpenAtEnd int64 `json:"open_at_end"`
	// CPUSeconds and MaxRSSKiB are the load generator's own usage over the whole run, filled by the
	// process that ran it (getrusage), since it has exited before anyone else can sample it.
	CPUSeconds float64 `json:"loadgen_cpu_seconds,omitempty"`
	MaxRSSKiB  int64   `json:"loadgen_max_rss_kib,omitempty"`
	ElapsedS   float64 `json:"loadgen_elapsed_s,omitempty"`
	// Arrivals counts ModeOpen's arrivals scheduled inside the window, OfferedRPS is them over the
	// window, and LagP99MS is how late the generator sent them (p99 of send time minus scheduled
	// time): a large lag means the generator, not the target, set the pace.
	Arrivals   int64   `json:"arrivals,omitempty"`
	OfferedRPS float64 `json:"offered_rps,omitempty"`
	LagP99MS   float64 `json:"generator_lag_p99_ms,omitempty"`
	// WindowCPUSeconds is the generator's own CPU time (user + system, every thread) inside the
	// measurement window: getrusage when the window opened and when it closed.
	WindowCPUSeconds float64 `json:"loadgen_window_cpu_seconds,omitempty"`
}

// selfCPU is this process's user and system time so far, every thread included.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

type hist struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

func newHist() *hist {
	// 1 µs to 10 min at 3 significant digits.
	return &hist{h: hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)}
}

func (h *hist) record(d time.Duration) {
	us := max(1, d.Microseconds())
	h.mu.Lock()
	_ = h.h.RecordValue(us) // above the range only for requests longer than 10 min, which Timeout forbids
	h.mu.Unlock()
}

func (h *hist) stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Stats{
		Count:  h.h.TotalCount(),
		MeanMS: h.h.Mean() / 1000,
		P50MS:  ms(h.h.ValueAtQuantile(50)),
		P95MS:  ms(h.h.ValueAtQuantile(95)),
		P99MS:  ms(h.h.ValueAtQuantile(99)),
		MaxMS:  ms(h.h.Max()),
	}
}

// runner holds one run's shared state.
type runner struct {
	cfg    Config
	client *http.Client
	// window bounds, set before any user starts
	start, end time.Time

	all, chat, first, last, get, over, chatOver *hist
	ok, errs, unfinished                        atomic.Int64
	modelSumUS                                  atomic.Int64
	open, maxOpen                               atomic.Int64
	kindMu                                      sync.Mutex
	kinds                                       map[string]int64
}

// Run executes cfg and returns what it measured. It stops by itself after Ramp+Duration, or
// earlier when ctx ends.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.Users + 16,
		MaxIdleConnsPerHost: cfg.Users + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	if cfg.Mode == ModeOpen {
		tr.MaxConnsPerHost, tr.MaxIdleConns, tr.MaxIdleConnsPerHost = cfg.Pool, cfg.Pool, cfg.Pool
	}
	defer tr.CloseIdleConnections()
	r := &runner{
		cfg:    cfg,
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		all:    newHist(), chat: newHist(), first: newHist(), last: newHist(), get: newHist(),
		over: newHist(), chatOver: newHist(),
		kinds: map[string]int64{},
	}
	now := time.Now()
	r.start = now.Add(cfg.Ramp)
	r.end = r.start.Add(cfg.Duration)
	var openAtEnd int64
	var windowCPU float64
	var ol openStats
	if cfg.Mode == ModeOpen {
		openAtEnd, windowCPU, ol = r.runOpen(ctx)
	} else {
		openAtEnd, windowCPU = r.runClosed(ctx)
	}

	window := time.Since(r.start)
	if w := r.end.Sub(r.start); window > w {
		window = w
	}
	res := Result{
		Mode: cfg.Mode, Users: cfg.Users, WindowS: window.Seconds(),
		OK: r.ok.Load(), Errors: r.errs.Load(), Unfinished: r.unfinished.Load(),
		All: r.all.stats(), Chat: r.chat.stats(), StreamFirst: r.first.stats(), StreamLast: r.last.stats(),
		Get: r.get.stats(), OverModel: r.over.stats(), ChatOverModel: r.chatOver.stats(),
		MaxOpen: r.maxOpen.Load(), OpenAtEnd: openAtEnd, WindowCPUSeconds: windowCPU,
		Arrivals: ol.arrivals, LagP99MS: ol.lagP99MS,
	}
	r.kindMu.Lock()
	if len(r.kinds) > 0 {
		res.Kinds = r.kinds
	}
	r.kindMu.Unlock()
	if res.WindowS > 0 {
		res.RPS = float64(res.OK) / res.WindowS
		res.OfferedRPS = float64(res.Arrivals) / res.WindowS
	}
	if n := res.OK + res.Errors; n > 0 {
		res.ErrorRate = float64(res.Errors) / float64(n)
	}
	if res.OK > 0 {
		res.ModelMeanMS = float64(r.modelSumUS.Load()) / float64(res.OK) / 1000
		if res.ModelMeanMS > 0 {
			res.TheoreticalRPS = float64(cfg.Users) / (res.ModelMeanMS / 1000)
		}
	}
	return res, ctx.Err()
}

// waitCPU waits until at (or ctx's end) and returns this process's CPU time then.
func waitCPU(ctx context.Context, at time.Time) float64 {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return selfCPU()
}

// runClosed runs the closed loop: every user sends its next request when the last one ended.
// It returns the number in flight when the window closed and the generator's CPU in the window.
func (r *runner) runClosed(ctx context.Context) (openAtEnd int64, windowCPU float64) {
	// The window's end is a timer, not a context deadline: the number in
	// flight is read before the users' requests are cancelled, so none of
	// them can leave between the end and the count.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i := range r.cfg.Users {
		wg.Add(1)
		delay := time.Duration(0)
		if r.cfg.Users > 1 {
			delay = r.cfg.Ramp * time.Duration(i) / time.Duration(r.cfg.Users)
		}
		go func() {
			defer wg.Done()
			r.user(runCtx, i, delay)
		}()
	}
	openAtEnd, windowCPU = r.window(ctx)
	cancel()
	wg.Wait()
	return openAtEnd, windowCPU
}

// window waits for the measurement window to pass (or ctx to end) and returns the number in flight
// when it closed and the generator's CPU time inside it.
func (r *runner) window(ctx context.Context) (openAtEnd int64, windowCPU float64) {
	cpuStart := waitCPU(ctx, r.start)
	endTimer := time.NewTimer(time.Until(r.end))
	select {
	case <-endTimer.C:
	case <-ctx.Done():
		endTimer.Stop()
	}
	return r.open.Load(), selfCPU() - cpuStart
}

// messages are what users ask; they mix ASCII, non-ASCII, emoji and HTML specials like real traffic.
var messages = []string{
	"Hello! Can you summarise our conversation so far?",
	"What is the difference between a process and a thread?",
	"Écris-moi un haïku sur la migration d'une API 🚀",
	"Explain <b>HTML</b> escaping & why it matters in JSON.",
	"How do I roll back a deployment safely at 3am?",
	"日本語で短く答えてください：キャッシュとは何ですか？",
	"Give me three ideas for a team offsite, one sentence each.",
	"Is 0.1 + 0.2 == 0.3 in floating point? Why or why not?",
}

// conversationID is uuid4-shaped and stable for (salt, user).
func conversationID(salt string, user int) string {
	sum := sha256.Sum256([]byte(salt + "/" + strconv.Itoa(user)))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

func (r *runner) user(ctx context.Context, id int, delay time.Duration) {
	if delay > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
	cid := conversationID(r.cfg.Salt, id)
	identity := "bench-" + r.cfg.Salt + "-" + strconv.Itoa(id)
	rng := rand.New(rand.NewPCG(uint64(id), 0x5eed)) // the mix is a workload choice, not a routing decision
	wrote := false
	for ctx.Err() == nil {
		op := "chat"
		switch r.cfg.Mode {
		case ModeHoldStream:
			op = "stream"
		case ModeHoldChat:
			op = "chat"
		default:
			n := rng.IntN(100)
			switch {
			case n < r.cfg.ChatPct:
				op = "chat"
			case n < r.cfg.ChatPct+r.cfg.StreamPct:
				op = "stream"
			default:
				op = "get"
			}
			if op == "get" && !wrote {
				op = "chat" // a conversation must exist before it is read
			}
		}
		msg := messages[rng.IntN(len(messages))]
		ok := r.do(ctx, op, cid, identity, msg)
		if ok && op != "get" {
			wrote = true
		}
		if !ok && ctx.Err() == nil {
			// A failing target must not turn the loop into a busy spin.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// outcome of one request, reported by do's helpers.
type outcome struct {
	kind     string        // "" = success, else an error kind
	tokens   int           // output tokens reported by the answer (model latency)
	firstEvt time.Duration // streams: time to the first complete event
}

// do sends one request and records it; it reports whether it succeeded.
func (r *runner) do(ctx context.Context, op, cid, identity, msg string) bool {
	began := time.Now()
	out := r.exchange(ctx, op, cid, identity, msg, began)
	elapsed := time.Since(began)
	finished := time.Now()

	if ctx.Err() != nil && (out.kind != "" || finished.After(r.end)) {
		// The run ended while this request was in flight: it neither failed nor completed in the window.
		r.unfinished.Add(1)
		return false
	}
	if finished.Before(r.start) {
		return out.kind == "" // warm-up: not recorded
	}
	r.record(op, out, elapsed)
	return out.kind == ""
}

// exchange sends one request (bounded by Timeout) and reads its answer; latencies inside the
// outcome (a stream's first event) count from began.
func (r *runner) exchange(ctx context.Context, op, cid, identity, msg string, began time.Time) outcome {
	reqCtx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	var req *http.Request
	var err error
	switch op {
	case "get":
		req, err = http.NewRequestWithContext(reqCtx, http.MethodGet, r.cfg.BaseURL+"/conversations/"+cid, nil)
	default:
		body, _ := json.Marshal(map[string]string{"message": msg, "conversation_id": cid})
		path := "/chat"
		if op == "stream" {
			path = "/chat/stream"
		}
		req, err = http.NewRequestWithContext(reqCtx, http.MethodPost, r.cfg.BaseURL+path, bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if err != nil {
		return outcome{kind: "build_request"}
	}
	req.Header.Set(r.cfg.UserHeader, identity)
	return r.send(req, op, began)
}

// record counts one request of the window: a failure by kind, a success in the histograms with
// its latency over the model.
func (r *runner) record(op string, out outcome, elapsed time.Duration) {
	if out.kind != "" {
		r.fail(out.kind)
		return
	}
	r.ok.Add(1)
	model := time.Duration(0)
	if op != "get" {
		model = r.cfg.TTFT
		if r.cfg.TPS > 0 {
			model += time.Duration(float64(out.tokens) / r.cfg.TPS * float64(time.Second))
		}
	}
	r.modelSumUS.Add(model.Microseconds())
	r.all.record(elapsed)
	r.over.record(elapsed - model)
	switch op {
	case "chat":
		r.chat.record(elapsed)
		r.chatOver.record(elapsed - model)
	case "stream":
		r.first.record(out.firstEvt)
		r.last.record(elapsed)
	case "get":
		r.get.record(elapsed)
	}
}

func (r *runner) fail(kind string) {
	r.errs.Add(1)
	r.kindMu.Lock()
	r.kinds[kind]++
	r.kindMu.Unlock()
}

func (r *runner) enter() {
	n := r.open.Add(1)
	for {
		m := r.maxOpen.Load()
		if n <= m || r.maxOpen.CompareAndSwap(m, n) {
			return
		}
	}
}

func (r *runner) send(req *http.Request, op string, began time.Time) outcome {
	if op == "chat" {
		r.enter() // a /chat is in flight from the moment it is sent
	}
	defer func() {
		if op != "get" {
			r.open.Add(-1)
		}
	}()
	resp, err := r.client.Do(req)
	if op == "stream" {
		r.enter()
	}
	if err != nil {
		return outcome{kind: transportKind(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return outcome{kind: "status_" + strconv.Itoa(resp.StatusCode)}
	}
	switch op {
	case "stream":
		return readStream(resp.Body, began)
	case "chat":
		var body struct {
			Reply *string `json:"reply"`
			Usage struct {
				OutputTokens int `json:"output_tokens"`
			} `json:"usage"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return outcome{kind: transportKindOr(err, "bad_body")}
		}
		if body.Reply == nil {
			return outcome{kind: "bad_body"}
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return outcome{tokens: body.Usage.OutputTokens}
	default:
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return outcome{kind: transportKind(err)}
		}
		return outcome{}
	}
}

// readStream reads an SSE body until its terminal event: done is success, error or EOF before it is not.
func readStream(body io.Reader, began time.Time) outcome {
	br := bufio.NewReaderSize(body, 4096)
	var out outcome
	event, data := "", ""
	events := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if err == io.EOF {
				return outcome{kind: "stream_truncated"}
			}
			return outcome{kind: transportKind(err)}
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if event == "" && data == "" {
				continue
			}
			events++
			if events == 1 {
				out.firstEvt = time.Since(began)
			}
			switch event {
			case "done":
				var d struct {
					Usage struct {
						OutputTokens int `json:"output_tokens"`
					} `json:"usage"`
				}
				if json.Unmarshal([]byte(data), &d) != nil {
					return outcome{kind: "bad_body"}
				}
				out.tokens = d.Usage.OutputTokens
				_, _ = io.Copy(io.Discard, br)
				return out
			case "error":
				return outcome{kind: "stream_error_event"}
			}
			event, data = "", ""
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(line[len("event:"):])
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimPrefix(line[len("data:"):], " ")
		}
	}
}

// transportKindOr names a body-decoding failure: fallback for malformed JSON, else the transport's kind.
func transportKindOr(err error, fallback string) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	if errors.As(err, &se) || errors.As(err, &te) {
		return fallback
	}
	return transportKind(err)
}

// transportKind names a transport failure for the error table.
func transportKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case strings.Contains(err.Error(), "connection refused"):
		return "conn_refused"
	case strings.Contains(err.Error(), "connection reset"):
		return "conn_reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	default:
		return "transport"
	}
}
