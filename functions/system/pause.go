package system

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairnlog/cairn/segmentlog"
)

// HoldReads holds a read back while the scanner startup delay
// (Config.ScannerStartupDelay: write-only recovery) lasts, at most wait,
// before the read touches the store. It reports whether the delay still
// holds; then the read reads nothing.
func (s *System) HoldReads(ctx context.Context, wait time.Duration) (bool, error) {
	if !s.pause.Paused() {
		return false, nil
	}
	pctx, cancel := context.WithTimeout(ctx, wait)
	err := s.pause.Wait(pctx)
	cancel()
	switch {
	case err == nil:
		return false, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	}
	return true, nil
}

// registerPause registers the gauges of the startup delay on reg.
func registerPause(reg *prometheus.Registry, pause *segmentlog.PauseGate) {
	on := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cairn_scanner_pause_active", Help: "1 while the scanner startup delay holds reads back, else 0.",
	}, func() float64 {
		if pause.Paused() {
			return 1
		}
		return 0
	})
	waiting := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cairn_scanner_pause_waiting", Help: "Reads held back by the startup delay now.",
	}, func() float64 { return float64(pause.Stats().Waiting) })
	seconds := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "cairn_scanner_pause_wait_seconds_total", Help: "Time reads spent held back by the startup delay.",
	}, func() float64 { return pause.Stats().WaitTotal.Seconds() })
	reg.MustRegister(on, waiting, seconds)
}
