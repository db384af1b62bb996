package shadow

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the mirror's collectors. A nil *metrics records nothing.
type metrics struct {
	comparisons *prometheus.CounterVec
	skips       *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	modelCalls  *prometheus.CounterVec
	fleetFails  prometheus.Counter
	storeFails  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, m *Mirror) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	mt := &metrics{
		comparisons: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_shadow_comparisons_total",
			Help: "Shadow comparisons by route and result class (match, encoding_only, semantic, noise, error).",
		}, []string{"route", "class"}),
		skips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_shadow_skips_total",
			Help: "Requests not shadowed or not compared, by route and reason.",
		}, []string{"route", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cutover_shadow_duration_seconds",
			Help:    "Duration of the shadow call (to the non-primary side), by route.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"route"}),
		modelCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_shadow_model_calls_total",
			Help: "Model calls made by shadow traffic (never user usage), by route and purpose (shadow, noise).",
		}, []string{"route", "purpose"}),
		fleetFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cutover_shadow_fleet_flush_failures_total",
			Help: "Failed flushes of this process's shadow counts to the fleet summary in Redis (retried with the next).",
		}),
		storeFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_shadow_store_failures_total",
			Help: "Diff records the store failed to write (file or Redis stream), by route; the record is lost.",
		}, []string{"route"}),
	}
	cs := []prometheus.Collector{
		mt.comparisons, mt.skips, mt.duration, mt.modelCalls, mt.fleetFails, mt.storeFails,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cutover_shadow_queue_depth",
			Help: "Shadow jobs waiting for a worker.",
		}, func() float64 { return float64(m.QueueDepth()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cutover_shadow_inflight",
			Help: "Shadow jobs being run by a worker.",
		}, func() float64 { return float64(m.busy.Load()) }),
	}
	if d, ok := m.store.(dropReporter); ok {
		cs = append(cs, dropCollector{d.storeDrops()})
	}
	var errs []error
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return mt, nil
}

func (mt *metrics) compared(route string, c Class) {
	if mt != nil {
		mt.comparisons.WithLabelValues(route, string(c)).Inc()
	}
}

func (mt *metrics) skipped(route, reason string) {
	if mt != nil {
		mt.skips.WithLabelValues(route, reason).Inc()
	}
}

func (mt *metrics) observe(route string, seconds float64) {
	if mt != nil {
		mt.duration.WithLabelValues(route).Observe(seconds)
	}
}

func (mt *metrics) modelCall(route, purpose string) {
	if mt != nil {
		mt.modelCalls.WithLabelValues(route, purpose).Inc()
	}
}

func (mt *metrics) storeFailed(route string) {
	if mt != nil {
		mt.storeFails.WithLabelValues(route).Inc()
	}
}

func (mt *metrics) fleetFlushFailed() {
	if mt != nil {
		mt.fleetFails.Inc()
	}
}

var storeDroppedDesc = prometheus.NewDesc("cutover_shadow_store_dropped_total",
	"Diff records a store dropped to stay within its bounds (shadow.store.*_max_bytes, ring_size, redis_max_len), "+
		"by store (memory, redis) and reason: evicted (an older record removed for a newer one), "+
		"too_large (a record larger than the byte bound on its own, not stored).",
	[]string{"store", "reason"}, nil)

// dropCollector reads the stores' drop counts at scrape time.
type dropCollector struct{ stores []storeDrops }

func (c dropCollector) Describe(ch chan<- *prometheus.Desc) { ch <- storeDroppedDesc }

func (c dropCollector) Collect(ch chan<- prometheus.Metric) {
	type sums struct{ evicted, tooLarge uint64 }
	by := map[string]*sums{}
	var names []string
	for _, s := range c.stores {
		if by[s.store] == nil {
			by[s.store] = &sums{}
			names = append(names, s.store)
		}
		by[s.store].evicted += s.counts.evicted.Load()
		by[s.store].tooLarge += s.counts.tooLarge.Load()
	}
	for _, n := range names {
		ch <- prometheus.MustNewConstMetric(storeDroppedDesc, prometheus.CounterValue, float64(by[n].evicted), n, "evicted")
		ch <- prometheus.MustNewConstMetric(storeDroppedDesc, prometheus.CounterValue, float64(by[n].tooLarge), n, "too_large")
	}
}
