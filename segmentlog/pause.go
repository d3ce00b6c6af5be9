package segmentlog

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// PauseGate holds a node's scanners back for a startup delay, so that a
// node in a crash loop spends its short lives persisting fences rather than
// serving reads (write-only recovery, Milvus's ScannerStartupDelay). Writers
// are never paused. A consumer may ignore the pause
// (ScannerConfig.IgnorePause). Safe for concurrent use.
type PauseGate struct {
	mu    sync.Mutex
	until time.Time
	open  chan struct{} // closed when the pause ends
	timer *time.Timer

	paused      atomic.Int64 // scanners waiting now
	pausedNanos atomic.Int64 // total time scanners spent waiting
}

// NewPauseGate pauses scanners for delay from now (no pause if delay ≤ 0).
func NewPauseGate(delay time.Duration) *PauseGate {
	g := &PauseGate{open: make(chan struct{})}
	if delay <= 0 {
		close(g.open)
		return g
	}
	g.mu.Lock() // Resume, on the timer's goroutine, reads g.timer
	defer g.mu.Unlock()
	g.until = time.Now().Add(delay)
	g.timer = time.AfterFunc(delay, g.Resume)
	return g
}

// Resume ends the pause now.
func (g *PauseGate) Resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
		if g.timer != nil {
			g.timer.Stop()
		}
	}
}

// Paused reports whether the pause is still on.
func (g *PauseGate) Paused() bool {
	select {
	case <-g.open:
		return false
	default:
		return true
	}
}

// PauseStats are the gate's metrics.
type PauseStats struct {
	Paused    bool          // the pause is on
	Waiting   int64         // scanners held back right now
	WaitTotal time.Duration // time all scanners spent held back
}

// Stats reads the gate's metrics.
func (g *PauseGate) Stats() PauseStats {
	return PauseStats{Paused: g.Paused(), Waiting: g.paused.Load(), WaitTotal: time.Duration(g.pausedNanos.Load())}
}

// Wait blocks until the pause ends or ctx does, counting the time in the
// gate's metrics. Scanners with ScannerConfig.Pause call it; a server that
// answers reads without a scanner of its own calls it directly.
func (g *PauseGate) Wait(ctx context.Context) error {
	if !g.Paused() {
		return nil
	}
	start := time.Now()
	g.paused.Add(1)
	defer func() {
		g.paused.Add(-1)
		g.pausedNanos.Add(int64(time.Since(start)))
	}()
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
