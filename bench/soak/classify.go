package main

import (
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// faultKind is what a fault window broke.
type faultKind int

const (
	// faultLegacy: the legacy app SIGKILLed, until its restart answers /health.
	faultLegacy faultKind = iota + 1
	// faultRedis: Redis stopped, until it is restarted. Both backends need it
	// on the conversation routes.
	faultRedis
)

// route is what the classifier knows of a route the soak drives. Every one
// has a native handler, so a legacy failure is routed around once the
// breakers open.
type route struct {
	name string
	// redis: both backends need Redis to answer it (503 store_unavailable
	// from either while Redis is down); /health and /models do not.
	redis bool
}

// kindRoute maps a request kind (see stack.one) to its route.
var kindRoute = [6]route{
	{"health", false},
	{"models", false},
	{"chat", true},
	{"chat_stream", true},
	{"get_conversation", true},
	{"get_conversation", true}, // an unknown conversation: 404 from either backend
}

// nativeRoutes is the number of distinct routes the soak drives, each with a
// native handler and its own legacy breaker.
const nativeRoutes = 5

// span is one fault window.
type span struct {
	kind  faultKind
	start time.Time // just before the fault was injected
	// injected is when the fault had been injected (legacy: the SIGKILL
	// returned), zero until then.
	injected time.Time
	end      time.Time // when the fault cleared; zero while active
	// spent counts legacy failures (502/504 pages) charged to this window.
	spent int
}

// window records the fault windows and judges answers against them. Safe
// for concurrent use.
type window struct {
	mu    sync.Mutex
	spans []*span
	log   []string
	// grace extends each window after the fault cleared: breakers stay open
	// up to open_timeout, then probe.
	grace time.Duration
	// conc is the number of concurrent clients.
	conc int
	now  func() time.Time
}

func newWindow(grace time.Duration, conc int) *window {
	return &window{grace: grace, conc: conc, now: time.Now}
}

func (w *window) note(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log = append(w.log, w.now().UTC().Format("15:04:05")+" "+msg)
}

// begin opens a window of kind, named in the fault log, and returns its index.
func (w *window) begin(kind faultKind, name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	w.spans = append(w.spans, &span{kind: kind, start: now})
	w.log = append(w.log, now.UTC().Format("15:04:05")+" "+name)
	return len(w.spans) - 1
}

// injected marks window i's fault as in force.
func (w *window) injected(i int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.spans[i].injected = w.now()
}

// end closes window i.
func (w *window) end(i int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.spans[i].end = w.now()
}

// overlaps reports whether [start, end] overlaps sp extended by grace.
func (w *window) overlaps(sp *span, start, end time.Time) bool {
	e := sp.end
	if e.IsZero() {
		e = w.now()
	}
	return start.Before(e.Add(w.grace)) && end.After(sp.start)
}

// legacyBudget is how many legacy failures (the proxy's 502/504 page for a
// refused or timed-out legacy round trip) clients may see during a legacy
// fault window of length d, on routes that all have a native handler:
//
//   - consecutive_failures: the failures that trip the legacy-wide breaker
//     (it counts every route's transport errors, so it trips no later than a
//     route's own);
//   - conc: requests admitted alongside those, before the trip registered
//     (one per other client at most);
//   - per half-open period while legacy stays down (⌈(d + grace) /
//     open_timeout⌉ of them), half_open_requests probes for each breaker that
//     may probe (every route's legacy breaker and the legacy-wide one), each
//     answered with legacy's failure.
//
// Requests already in flight when legacy was killed are judged apart (they
// are cut or get the 502 page; see classify). Any legacy failure beyond this
// means the fallback did not serve a request it should have.
func (w *window) legacyBudget(d time.Duration) int {
	periods := int(math.Ceil(float64(d+w.grace) / float64(openTimeout)))
	return consecutiveFailures + w.conc + (nativeRoutes+1)*halfOpenRequests*periods
}

// answer is what one soak request got.
type answer struct {
	kind   int64  // request kind: the index into kindRoute
	marker string // the stub fault marker the request carried ("" none)
	// status is the HTTP status; 0 when no response came (connection error).
	status     int
	cut        bool // the response body broke off
	retryAfter bool // the response had Retry-After
	body       string
	start, end time.Time
}

// Outcome classes.
const (
	classOK         = "ok"
	classIntended   = "intended"
	classDegraded   = "degraded"
	classUnintended = "unintended"
)

// classify sorts an answer into a class, with the rule that decided it:
//
//   - ok: the healthy answer for the request kind, without a marker;
//   - intended: the app's documented answer to the request's stub fault
//     marker (429 throttled, 502 bedrock_error, a stream ending in
//     event: error), whichever backend served it;
//   - degraded, only as the design promises it:
//     1. a broken connection or the 502 page for a request in flight when
//     legacy was killed (started before the kill had returned, ended
//     after the window opened);
//     2. the 502/504 page during a legacy fault window (plus grace), within
//     that window's legacyBudget (the breakers' trip and probes);
//     3. 503 store_unavailable (JSON, or a stream's error event) on a route
//     that needs Redis, during a Redis fault window (plus grace);
//     4. the 503 page with Retry-After (no backend available: both of the
//     route's breakers open) on a route that needs Redis, during a Redis
//     fault window (plus grace): both backends are down for that route;
//   - unintended: everything else. In particular a 502/504 page beyond the
//     budget or outside a legacy fault (the fallback should have served it),
//     a 503 page on a route whose native side was up, store_unavailable
//     outside a Redis fault, and a broken connection not explained by a kill.
func (w *window) classify(a answer) (class, rule string) {
	rt := kindRoute[a.kind]
	if a.status != 0 && !a.cut {
		switch {
		case a.marker == "throttle" && a.status == 429 && strings.Contains(a.body, `"code":"throttled"`):
			return classIntended, "marker: 429 throttled"
		case a.marker == "unavailable" && a.status == 502 && strings.Contains(a.body, `"code":"bedrock_error"`):
			return classIntended, "marker: 502 bedrock_error"
		case a.marker == "stream-error" && a.kind == 2 && a.status == 502 && strings.Contains(a.body, `"code":"bedrock_error"`):
			return classIntended, "marker: 502 bedrock_error" // ModelErrorException on InvokeModel
		case a.marker == "stream-error" && a.kind == 3 && a.status == 200 &&
			strings.HasSuffix(a.body, "event: error\ndata: {\"error\": \"the model stream failed\", \"code\": \"bedrock_error\"}\n\n"):
			return classIntended, "marker: stream event: error"
		}
		if a.marker == "" && healthy(a) {
			return classOK, "healthy"
		}
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	legacy := func(fn func(*span) bool) bool {
		for _, sp := range w.spans {
			if sp.kind == faultLegacy && fn(sp) {
				return true
			}
		}
		return false
	}
	// In flight when legacy was killed: started before the kill had returned.
	atKill := legacy(func(sp *span) bool {
		k := sp.injected
		if k.IsZero() {
			k = w.now()
		}
		return a.start.Before(k) && a.end.After(sp.start)
	})
	redisDown := false
	for _, sp := range w.spans {
		if sp.kind == faultRedis && w.overlaps(sp, a.start, a.end) {
			redisDown = true
		}
	}
	page502 := (a.status == 502 || a.status == 504) && page(a.status, a.body)

	switch {
	case a.status == 0 || a.cut:
		if atKill {
			return classDegraded, "cut: in flight when legacy was killed"
		}
		return classUnintended, "broken connection not explained by a legacy kill"
	case page502 && atKill:
		return classDegraded, "legacy failure: in flight when legacy was killed"
	case page502:
		for _, sp := range w.spans {
			if sp.kind != faultLegacy || !w.overlaps(sp, a.start, a.end) {
				continue
			}
			e := sp.end
			if e.IsZero() {
				e = w.now()
			}
			if sp.spent < w.legacyBudget(e.Sub(sp.start)) {
				sp.spent++
				return classDegraded, "legacy failure: within the breakers' trip and probe budget"
			}
			return classUnintended, "legacy failure beyond the breakers' budget: the fallback should have served it"
		}
		return classUnintended, "legacy failure outside a legacy fault"
	case a.status == 503 && strings.Contains(a.body, `"code":"store_unavailable"`),
		a.kind == 3 && a.status == 200 && strings.Contains(a.body, `"code": "store_unavailable"`):
		if rt.redis && redisDown {
			return classDegraded, "store_unavailable while Redis was down"
		}
		return classUnintended, "store_unavailable outside a Redis fault"
	case a.status == 503 && a.retryAfter && page(503, a.body):
		if rt.redis && redisDown {
			return classDegraded, "503 page: both backends down for the route (Redis)"
		}
		return classUnintended, "503 page while the route's native side was up"
	}
	return classUnintended, "unexpected answer"
}

// healthy reports whether a is the healthy answer for its kind.
func healthy(a answer) bool {
	b, code := a.body, a.status
	switch a.kind {
	case 0:
		return code == 200 && b == "{\"status\":\"ok\"}\n"
	case 1:
		return code == 200 && strings.Contains(b, `"default"`)
	case 2:
		return code == 200 && strings.Contains(b, `"reply"`)
	case 3:
		return code == 200 && strings.Contains(b, "event: done\n")
	case 4:
		return code == 200 && strings.Contains(b, `"messages"`) || code == 404 && strings.Contains(b, `"code":"not_found"`)
	default:
		return code == 404 && strings.Contains(b, `"code":"not_found"`)
	}
}

// page reports whether body is Werkzeug's HTML error page for code.
func page(code int, body string) bool {
	return strings.Contains(body, "<title>"+strconv.Itoa(code)+" ")
}

// inWindow reports whether [start, end] overlapped any fault window (plus
// grace), for the steady / fault-window split of the summary.
func (w *window) inWindow(start, end time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, sp := range w.spans {
		if w.overlaps(sp, start, end) {
			return true
		}
	}
	return false
}
