package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/internal/rollout"
)

// RolloutEvent is the generic JSON body a webhook receives for each
// rollout event (format "json").
type RolloutEvent struct {
	Event  rollout.Event  `json:"event"`
	Route  string         `json:"route"`
	Status rollout.Status `json:"status"`
	Step   int            `json:"step"`
	// StepName is the step ("shadow", "5%") and ShareBP its native share.
	StepName string              `json:"step_name"`
	ShareBP  int                 `json:"share_bp"`
	Time     time.Time           `json:"time"`
	Who      string              `json:"who,omitempty"`
	Reason   string              `json:"reason,omitempty"`
	Gates    []rollout.GateValue `json:"gates,omitempty"`
}

// webhooks tell the configured endpoints every rollout event, each from
// its own goroutine behind its own bounded queue: a slow or dead endpoint
// delays only its own later notifications (bounded retries per event),
// never the rollout or another endpoint, and a full queue drops the event
// (counted).
type webhooks struct {
	hooks   []config.Webhook
	queues  []chan RolloutEvent
	client  *http.Client
	log     *slog.Logger
	dropped prometheus.Counter
	failed  prometheus.Counter
	// pause is the first pause between retries (doubling). Zero means 100ms.
	pause time.Duration
}

func newWebhooks(hooks []config.Webhook, size int, log *slog.Logger) *webhooks {
	if size <= 0 {
		size = 100
	}
	queues := make([]chan RolloutEvent, len(hooks))
	for i := range queues {
		queues[i] = make(chan RolloutEvent, size)
	}
	return &webhooks{
		hooks: hooks, queues: queues, log: log, pause: 100 * time.Millisecond,
		client: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cutover_rollout_webhook_dropped_total", Help: "Rollout events not sent to a webhook because its queue was full.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cutover_rollout_webhook_failures_total", Help: "Rollout events a webhook did not accept after every retry.",
		}),
	}
}

// send queues the event of e for every webhook; it never blocks.
func (w *webhooks) send(st rollout.State, e rollout.Entry) {
	if len(w.hooks) == 0 {
		return
	}
	ev := RolloutEvent{Event: e.Event, Route: st.Route, Status: st.Status, Step: e.Step, StepName: st.CurrentStep().String(),
		ShareBP: e.Share, Time: e.Time, Who: e.Who, Reason: e.Reason, Gates: e.Gates}
	for i, q := range w.queues {
		select {
		case q <- ev:
		default:
			w.dropped.Inc()
			w.log.Warn("rollout webhook queue full: event dropped", "url", redactURL(w.hooks[i].URL), "route", st.Route, "event", string(e.Event))
		}
	}
}

// run sends the queued events, one goroutine per webhook, until ctx ends;
// then it closes its idle connections.
func (w *webhooks) run(ctx context.Context) {
	var wg sync.WaitGroup
	for i, q := range w.queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case ev := <-q:
					w.deliver(ctx, w.hooks[i], ev)
				}
			}
		}()
	}
	wg.Wait()
	w.client.CloseIdleConnections()
}

// deliver posts ev to h, retrying a failure (transport error or non-2xx)
// h.Retries times with a doubling pause.
func (w *webhooks) deliver(ctx context.Context, h config.Webhook, ev RolloutEvent) {
	body, err := w.body(h, ev)
	if err != nil {
		w.failed.Inc()
		return
	}
	pause := w.pause
	for attempt := 0; ; attempt++ {
		err = w.post(ctx, h, body)
		if err == nil {
			return
		}
		if attempt >= h.Retries || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause *= 2
	}
	w.failed.Inc()
	w.log.Warn("rollout webhook failed", "url", redactURL(h.URL), "event", string(ev.Event), "route", ev.Route, "error", err)
}

func (w *webhooks) post(ctx context.Context, h config.Webhook, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("answered %d", resp.StatusCode)
	}
	return nil
}

// body is ev as h's format wants it: the event, or a Slack message.
func (w *webhooks) body(h config.Webhook, ev RolloutEvent) ([]byte, error) {
	if h.Format != "slack" {
		return json.Marshal(ev)
	}
	return json.Marshal(map[string]string{"text": slackText(ev)})
}

// slackText renders ev as one Slack message, gate values included.
func slackText(ev RolloutEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cutover rollout of *%s*: %s (%s, step %d %s, native %s)", ev.Route, ev.Event, ev.Status, ev.Step, ev.StepName,
		rollout.Step{Share: ev.ShareBP})
	if ev.Reason != "" {
		fmt.Fprintf(&b, "\n%s", ev.Reason)
	}
	if ev.Who != "" && ev.Who != "cutover" {
		fmt.Fprintf(&b, " (by %s)", ev.Who)
	}
	for _, g := range ev.Gates {
		fmt.Fprintf(&b, "\n• %s: %s (%s)", g.Gate, g.Result, g.Detail)
	}
	return b.String()
}

// redactURL keeps a webhook's secret path out of logs: scheme and host only.
func redactURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.IndexByte(u[i+3:], '/'); j >= 0 {
			return u[:i+3+j] + "/…"
		}
	}
	return u
}
