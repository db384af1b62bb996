package rollout

import "time"

// LatencyBounds are the upper bounds (seconds) of the latency histogram
// buckets Counts.Latency holds, the same as the proxy's
// cutover_request_duration_seconds; the last bucket is +Inf.
var LatencyBounds = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Counts are one backend's measurements in a window.
type Counts struct {
	// Requests answered by (or failed at) the backend.
	Requests int64 `json:"requests"`
	// Errors are 5xx answers and transport failures.
	Errors int64 `json:"errors"`
	// Latency counts requests per bucket of LatencyBounds (not
	// cumulative), with one more for +Inf; nil means none.
	Latency []int64 `json:"latency,omitempty"`
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Requests += o.Requests
	c.Errors += o.Errors
	if len(o.Latency) > 0 && len(c.Latency) < len(o.Latency) {
		c.Latency = append(c.Latency, make([]int64, len(o.Latency)-len(c.Latency))...)
	}
	for i, n := range o.Latency {
		c.Latency[i] += n
	}
}

// Zero reports whether c counts nothing.
func (c Counts) Zero() bool {
	if c.Requests != 0 || c.Errors != 0 {
		return false
	}
	for _, n := range c.Latency {
		if n != 0 {
			return false
		}
	}
	return true
}

// Quantile estimates the q quantile of the latency (like PromQL's
// histogram_quantile: linear within the bucket); -1 without samples. A
// quantile in the +Inf bucket is the largest finite bound.
func (c Counts) Quantile(q float64) time.Duration {
	var total int64
	for _, n := range c.Latency {
		total += n
	}
	if total == 0 {
		return -1
	}
	rank := q * float64(total)
	var cum int64
	for i, n := range c.Latency {
		if float64(cum+n) >= rank && n > 0 {
			if i >= len(LatencyBounds) {
				return secs(LatencyBounds[len(LatencyBounds)-1])
			}
			lo := 0.0
			if i > 0 {
				lo = LatencyBounds[i-1]
			}
			hi := LatencyBounds[i]
			return secs(lo + (hi-lo)*(rank-float64(cum))/float64(n))
		}
		cum += n
	}
	return secs(LatencyBounds[len(LatencyBounds)-1])
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// Window is what the fleet measured for one route in one window: each
// instance adds its counts (see Counters).
type Window struct {
	Legacy Counts `json:"legacy"`
	Native Counts `json:"native"`
	// Compared and Mismatched are shadow comparisons and those with a
	// semantic difference.
	Compared   int64 `json:"compared"`
	Mismatched int64 `json:"mismatched"`
	// NativeTrips counts native breaker trips (to open) of the route.
	NativeTrips int64 `json:"native_trips"`
}

// Add adds o to w.
func (w *Window) Add(o Window) {
	w.Legacy.Add(o.Legacy)
	w.Native.Add(o.Native)
	w.Compared += o.Compared
	w.Mismatched += o.Mismatched
	w.NativeTrips += o.NativeTrips
}

// Zero reports whether w counts nothing.
func (w Window) Zero() bool {
	return w.Legacy.Zero() && w.Native.Zero() && w.Compared == 0 && w.Mismatched == 0 && w.NativeTrips == 0
}
