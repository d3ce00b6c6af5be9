package api

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are one Server's HTTP collectors, registered on its system's
// registry (system.System.Metrics).
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec   // route, code
	duration      *prometheus.HistogramVec // route
	appendLatency prometheus.Histogram
	appended      prometheus.Counter
	waiters       prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_http_requests_total", Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cairn_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"route"}),
		appendLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cairn_append_duration_seconds", Help: "Latency of successful appends, from request to ack.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_appended_messages_total", Help: "Messages acknowledged by appends (duplicates included).",
		}),
		waiters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cairn_read_waiters", Help: "Reads waiting at the tail now.",
		}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.appendLatency, m.appended, m.waiters)
	return m
}

// observeAppend records a successful append.
func (m *metrics) observeAppend(d time.Duration, n int) {
	m.appendLatency.Observe(d.Seconds())
	m.appended.Add(float64(n))
}
