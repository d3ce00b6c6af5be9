package bench

import (
	"context"
	"sync"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

// putMeter measures the PutIfAbsent calls made through it: how many were
// in flight on average, and how long each took. Both sides of an append
// comparison go through one, so its small cost weighs on both alike. Safe
// for concurrent use.
type putMeter struct {
	objstore.Store

	mu       sync.Mutex
	inflight int
	since    time.Time     // last change of inflight
	area     time.Duration // ∫ inflight dt
	done     int64         // calls finished
	busy     time.Duration // their summed latency
}

func newPutMeter(s objstore.Store) *putMeter { return &putMeter{Store: s, since: time.Now()} }

// putReading is a putMeter's counters at one moment; subtract two to get
// an interval's.
type putReading struct {
	at   time.Time
	area time.Duration
	done int64
	busy time.Duration
}

func (m *putMeter) read() putReading {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advanceLocked(time.Now())
	return putReading{at: m.since, area: m.area, done: m.done, busy: m.busy}
}

func (m *putMeter) advanceLocked(now time.Time) {
	m.area += time.Duration(m.inflight) * now.Sub(m.since)
	m.since = now
}

func (m *putMeter) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	start := time.Now()
	m.mu.Lock()
	m.advanceLocked(start)
	m.inflight++
	m.mu.Unlock()
	etag, err := m.Store.PutIfAbsent(ctx, key, body, meta)
	end := time.Now()
	m.mu.Lock()
	m.advanceLocked(end)
	m.inflight--
	m.done++
	m.busy += end.Sub(start)
	m.mu.Unlock()
	return etag, err
}

// putStats sums putMeter intervals.
type putStats struct {
	span time.Duration
	area time.Duration
	done int64
	busy time.Duration
}

func (s *putStats) add(a, b putReading) {
	s.span += b.at.Sub(a.at)
	s.area += b.area - a.area
	s.done += b.done - a.done
	s.busy += b.busy - a.busy
}

// inflight is the mean number of PUTs in flight.
func (s putStats) inflight() float64 { return float64(s.area) / float64(max(1, s.span)) }

// latencyMs is the mean PUT duration in ms.
func (s putStats) latencyMs() float64 { return ms(s.busy) / float64(max(1, s.done)) }
