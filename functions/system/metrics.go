package system

import (
	"context"
	"errors"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cairnlog/cairn/infra/objstore"
)

// metrics are one System's Prometheus collectors, on a registry of its own
// (no package globals).
type metrics struct {
	reg          *prometheus.Registry
	opens        *prometheus.CounterVec   // result
	storeOps     *prometheus.CounterVec   // component, op, result
	storeBytes   *prometheus.CounterVec   // component, op
	storeLatency *prometheus.HistogramVec // op
}

func newMetrics(pool func() *Pool) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		opens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_writer_opens_total", Help: "Writer opens by result (ok, busy, fenced, error, shutdown).",
		}, []string{"result"}),
		storeOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_store_requests_total", Help: "Object-store requests by component, operation and result.",
		}, []string{"component", "op", "result"}),
		storeBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_store_bytes_total", Help: "Object bodies read (get) or written (put*) by component and operation.",
		}, []string{"component", "op"}),
		storeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cairn_store_request_duration_seconds", Help: "Object-store request latency by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"op"}),
	}
	m.reg.MustRegister(m.opens, m.storeOps, m.storeBytes, m.storeLatency, newWriterCollector(pool),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// countOpen counts a writer open by its result.
func (m *metrics) countOpen(result string) { m.opens.WithLabelValues(result).Inc() }

// writerStats names the per-writer series, in the order writerCollector
// reads them from segmentlog.WriterStats.
var writerStats = [...]struct {
	name, help string
	counter    bool
}{
	{"cairn_writer_term", "Lease term of the writer.", false},
	{"cairn_writer_frontier", "Ack frontier: every offset below is acknowledged.", false},
	{"cairn_writer_batches_acked_total", "Batch objects acknowledged.", true},
	{"cairn_writer_messages_acked_total", "Messages acknowledged.", true},
	{"cairn_writer_bytes_acked_total", "Encoded batch bytes acknowledged.", true},
	{"cairn_writer_put_attempts_total", "Batch PUT attempts, retries included.", true},
	{"cairn_writer_dedup_hits_total", "Messages answered from the idempotency window.", true},
	{"cairn_writer_recovered_slots", "Slots read during the writer's recovery.", false},
	{"cairn_writer_garbage_slots", "Lower-term slots skipped by the writer.", false},
}

// writerCollector reports the warm writers' stats and the cache's at scrape
// time.
type writerCollector struct {
	pool       func() *Pool
	writer     [len(writerStats)]*prometheus.Desc
	cacheBytes *prometheus.Desc
	cacheEvict *prometheus.Desc
}

func newWriterCollector(pool func() *Pool) *writerCollector {
	c := &writerCollector{
		pool:       pool,
		cacheBytes: prometheus.NewDesc("cairn_cache_bytes", "Bytes held by the write-ahead cache.", nil, nil),
		cacheEvict: prometheus.NewDesc("cairn_cache_evictions_total", "Write-ahead cache evictions.", nil, nil),
	}
	for i, s := range writerStats {
		c.writer[i] = prometheus.NewDesc(s.name, s.help, []string{"pchannel"}, nil)
	}
	return c
}

func (c *writerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.writer {
		ch <- d
	}
	ch <- c.cacheBytes
	ch <- c.cacheEvict
}

func (c *writerCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.pool()
	if p == nil {
		return
	}
	for _, w := range p.Writers() {
		s := w.Stats
		vals := [len(writerStats)]int64{int64(s.Term), int64(s.Frontier), s.BatchesAcked, s.MessagesAcked, s.BytesAcked,
			s.PutAttempts, s.DedupHits, s.RecoveredSlots, s.GarbageSlots}
		for i, st := range writerStats {
			t := prometheus.GaugeValue
			if st.counter {
				t = prometheus.CounterValue
			}
			ch <- prometheus.MustNewConstMetric(c.writer[i], t, float64(vals[i]), w.PChannel)
		}
	}
	cs := p.cache.Stats()
	ch <- prometheus.MustNewConstMetric(c.cacheBytes, prometheus.GaugeValue, float64(cs.Bytes))
	ch <- prometheus.MustNewConstMetric(c.cacheEvict, prometheus.CounterValue, float64(cs.Evictions))
}

// storeFor returns store counting every request of component in the
// store metrics: requests by operation and result, body bytes, latency.
func (m *metrics) storeFor(store objstore.Store, component string) objstore.Store {
	return objstore.Observe(store, func(r objstore.Request) {
		op := strings.ReplaceAll(r.Op.String(), "-", "_")
		m.storeOps.WithLabelValues(component, op, storeResult(r.Err)).Inc()
		if r.Bytes > 0 {
			m.storeBytes.WithLabelValues(component, op).Add(float64(r.Bytes))
		}
		m.storeLatency.WithLabelValues(op).Observe(r.Duration.Seconds())
	})
}

// storeResult is the result label of a store request.
func storeResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, objstore.ErrNotFound):
		return "not_found"
	case errors.Is(err, objstore.ErrExists):
		return "exists"
	case errors.Is(err, objstore.ErrConflict):
		return "conflict"
	case errors.Is(err, objstore.ErrNotModified):
		return "not_modified"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	default:
		return "error"
	}
}
