package config

import (
	"net/url"
	"time"
)

// Rollouts are the rollout driver's process-wide settings (`rollout:`);
// each route's plan is its own `rollout:` block (RoutePlan). Zero values
// mean the defaults the comments give.
type Rollouts struct {
	// Interval is the pace of the driver's evaluations. Zero means 5s.
	Interval time.Duration `mapstructure:"interval" json:"interval"`
	// FlushInterval is how often each instance adds its counts to the
	// fleet's windows. Zero means 1s.
	FlushInterval time.Duration `mapstructure:"flush_interval" json:"flush_interval"`
	// LeaseTTL is the time to live of the driver's lease: another instance
	// takes over within it when the driver dies. Zero means 15s; it must be
	// at least three intervals.
	LeaseTTL time.Duration `mapstructure:"lease_ttl" json:"lease_ttl"`
	// Webhooks are told every rollout event. Zero means none.
	Webhooks []Webhook `mapstructure:"webhooks" json:"webhooks,omitempty"`
	// WebhookQueue bounds the events waiting to be sent; more are dropped
	// and counted. Zero means 100.
	WebhookQueue int `mapstructure:"webhook_queue" json:"webhook_queue"`
}

// Webhook is an HTTP endpoint told every rollout event.
type Webhook struct {
	// URL receives a POST per event. Required (http or https).
	URL string `mapstructure:"url" json:"url"`
	// Format is "json" (the event as cutover's JSON) or "slack" (an
	// incoming-webhook message: {"text": ...}). Zero means "json".
	Format string `mapstructure:"format" json:"format"`
	// Timeout bounds one attempt. Zero means 5s.
	Timeout time.Duration `mapstructure:"timeout" json:"timeout"`
	// Retries is how many times a failed event is sent again (with a
	// doubling pause from 100ms). Zero means 3; negative means none.
	Retries int `mapstructure:"retries" json:"retries"`
}

// RoutePlan is a route's rollout plan (`routes[].rollout`), the defaults
// of `cutover rollout start ROUTE`; see internal/rollout.Plan for each
// field's default. The proxy checks it (Check, and every config it
// applies), since its rules are the rollout package's.
type RoutePlan struct {
	// Steps are "shadow" (first only) then growing percentages ending at 100.
	Steps       []string      `mapstructure:"steps" json:"steps,omitempty"`
	Interval    time.Duration `mapstructure:"interval" json:"interval,omitempty"`
	MinRequests int64         `mapstructure:"min_requests" json:"min_requests,omitempty"`
	MaxHold     time.Duration `mapstructure:"max_hold" json:"max_hold,omitempty"`
	Gates       RolloutGates  `mapstructure:"gates" json:"gates"`
}

// RolloutGates are a plan's gate thresholds (internal/rollout.Gates).
type RolloutGates struct {
	MaxErrorRate     float64       `mapstructure:"max_error_rate" json:"max_error_rate,omitempty"`
	MaxErrorExcess   float64       `mapstructure:"max_error_excess" json:"max_error_excess,omitempty"`
	MaxP99Ratio      float64       `mapstructure:"max_p99_ratio" json:"max_p99_ratio,omitempty"`
	P99Floor         time.Duration `mapstructure:"p99_floor" json:"p99_floor,omitempty"`
	MaxMismatchRate  float64       `mapstructure:"max_mismatch_rate" json:"max_mismatch_rate,omitempty"`
	AllowBreakerTrip bool          `mapstructure:"allow_breaker_trip" json:"allow_breaker_trip,omitempty"`
}

func (r *Rollouts) setDefaults() {
	def := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	def(&r.Interval, 5*time.Second)
	def(&r.FlushInterval, time.Second)
	def(&r.LeaseTTL, 15*time.Second)
	if r.WebhookQueue == 0 {
		r.WebhookQueue = 100
	}
	for i := range r.Webhooks {
		w := &r.Webhooks[i]
		if w.Format == "" {
			w.Format = "json"
		}
		def(&w.Timeout, 5*time.Second)
		if w.Retries == 0 {
			w.Retries = 3
		}
	}
}

func (c *Config) validateRollouts(add func(string, ...any)) {
	r := c.Rollout
	if r.Interval < 10*time.Millisecond || r.FlushInterval < 10*time.Millisecond {
		add("rollout: interval %s and flush_interval %s must be at least 10ms", r.Interval, r.FlushInterval)
	}
	if r.LeaseTTL < 3*r.Interval {
		add("rollout: lease_ttl %s is below three intervals (%s): the driver renews its lease once per interval", r.LeaseTTL, 3*r.Interval)
	}
	if r.WebhookQueue < 1 {
		add("rollout: webhook_queue %d is below 1", r.WebhookQueue)
	}
	for i, w := range r.Webhooks {
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("rollout: webhooks[%d]: url %q is not an http(s) URL", i, w.URL)
		}
		if w.Format != "json" && w.Format != "slack" {
			add("rollout: webhooks[%d]: format %q is not json or slack", i, w.Format)
		}
		if w.Timeout < 0 {
			add("rollout: webhooks[%d]: timeout %s is negative", i, w.Timeout)
		}
	}
}
