package config

import "time"

// setDefaults fills a breaker's zero values with the documented defaults
// (the same as a route's breaker).
func (b *Breaker) setDefaults() {
	if b.ConsecutiveFailures == 0 {
		b.ConsecutiveFailures = 5
	}
	if b.MinRequests == 0 {
		b.MinRequests = 20
	}
	if b.Interval == 0 {
		b.Interval = 60 * time.Second
	}
	if b.OpenTimeout == 0 {
		b.OpenTimeout = 30 * time.Second
	}
	if b.HalfOpenRequests == 0 {
		b.HalfOpenRequests = 1
	}
}

// validateLegacyBreaker checks legacy_breaker like a route's breaker, and
// rejects the settings that only make sense for a route's native side.
func (c *Config) validateLegacyBreaker(add func(string, ...any)) {
	b := c.LegacyBreaker
	if b.FailureRatio < 0 || b.FailureRatio > 1 {
		add("legacy_breaker: failure_ratio %v is not in [0, 1]", b.FailureRatio)
	}
	if b.Interval < 0 || b.OpenTimeout < 0 {
		add("legacy_breaker: interval and open_timeout must not be negative")
	}
	for _, s := range b.FailureStatuses {
		if s < 500 || s > 599 {
			add("legacy_breaker: failure_statuses: %d is not a 5xx status", s)
		}
	}
	if b.AutoRollback {
		add("legacy_breaker: auto_rollback applies to a route's native breaker only")
	}
	if b.NativeTimeout != 0 {
		add("legacy_breaker: native_timeout applies to a route's breaker only")
	}
}
