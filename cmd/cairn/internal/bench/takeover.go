package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
	"github.com/cairnlog/cairn/snapshot"
)

// Lease timing of the takeover phase: a short TTL, so that a dead holder's
// lease lapses within seconds. The request timeout stays below the margin,
// and renewals come often enough to keep a live holder's lease.
const (
	takeoverTTL            = 2 * time.Second
	takeoverMargin         = 500 * time.Millisecond
	takeoverRequestTimeout = 250 * time.Millisecond
	takeoverRenew          = 300 * time.Millisecond
	// takeoverMessages are appended (and flushed) before each holder dies.
	takeoverMessages = 256
)

// takeoverRun is one measured takeover.
type takeoverRun struct {
	took  time.Duration
	count requestCount
}

// takeover kills a holder (its renewals stop; it never releases), waits
// until its lease is takeable — expiry plus margin by the coordinator's
// clock, excluded from the figures — and then times a new holder from
// OpenWriter to its first acked append, counting every store request it
// makes. Each holder appends and flushes first, so recovery starts at the
// tail as a flushed pchannel's does. It repeats up to three times (one
// per second of Duration) and reports the median.
func (r *runner) takeover(ctx context.Context) error {
	runs := min(3, max(1, int(r.cfg.Duration/time.Second)))
	r.progress("takeover: %d run(s), each waiting out a %v lease", runs, takeoverTTL)
	const pch = "takeover"
	leaseCfg := coordinator.LeaseConfig{TTL: takeoverTTL, Margin: takeoverMargin}
	newLeases := func(store objstore.Store) (*killableLeases, *coordinator.Leases, error) {
		l, err := coordinator.NewLeases(store, r.layout, leaseCfg, coordinator.WithRequestTimeout(takeoverRequestTimeout))
		return &killableLeases{Leases: l}, l, err
	}
	writerCfg := func(i int) segmentlog.WriterConfig {
		return segmentlog.WriterConfig{PChannel: pch, Layout: r.layout, Holder: fmt.Sprintf("bench-takeover-%d", i),
			RenewInterval: takeoverRenew, TimeTickInterval: -1, Logger: r.log}
	}
	holderLeases, describe, err := newLeases(r.store)
	if err != nil {
		return err
	}
	holder, err := segmentlog.OpenWriter(ctx, writerCfg(0), r.store, holderLeases)
	if err != nil {
		return err
	}
	defer func() { closeWriters(holder) }()

	var results []takeoverRun
	for i := 1; i <= runs; i++ {
		if err := r.appendAndFlush(ctx, holder, pch, i); err != nil {
			return err
		}
		holderLeases.kill()
		rec, err := describe.Describe(ctx, pch)
		if err != nil {
			return err
		}
		if d := time.Until(rec.Expires.Add(takeoverMargin)); d > 0 {
			time.Sleep(d + time.Millisecond) // taken only strictly after expiry + margin
		}

		counting := newCountingStore(r.store, r.layout, pch)
		nextLeases, _, err := newLeases(counting)
		if err != nil {
			return err
		}
		counting.start()
		t0 := time.Now()
		w, err := segmentlog.OpenWriter(ctx, writerCfg(i), counting, nextLeases)
		if err != nil {
			return fmt.Errorf("run %d: take over: %w", i, err)
		}
		_, err = w.Append(ctx, segmentlog.Message{Type: segmentlog.TypeData, VChannel: "v", Payload: []byte("first")})
		took := time.Since(t0)
		count := counting.stop(w.Stats().FenceOffset + window)
		if err != nil {
			closeWriters(w)
			return fmt.Errorf("run %d: first append: %w", i, err)
		}
		results = append(results, takeoverRun{took, count})
		closeWriters(holder) // dead: its release fails, and that is the point
		holder, holderLeases = w, nextLeases
	}
	backlog, err := r.takeoverBacklog(ctx, holder, holderLeases, newLeases, writerCfg(runs+1))
	if err != nil {
		return err
	}

	times := make([]time.Duration, len(results))
	for i, res := range results {
		times[i] = res.took
	}
	mid := median(times)
	var res takeoverRun
	for _, x := range results {
		if x.took == mid {
			res = x
		}
	}
	c := res.count
	r.rep.set("takeover_ms", ms(res.took))
	r.rep.set("takeover_round_trips", float64(c.roundTrips))
	r.rep.set("takeover_requests", float64(c.total()))
	r.rep.set("takeover_lease_get", float64(c.leaseGet))
	r.rep.set("takeover_lease_put", float64(c.leasePut))
	r.rep.set("takeover_checkpoint_get", float64(c.checkpointGet))
	r.rep.set("takeover_slot_get", float64(c.slotGet))
	r.rep.set("takeover_window_put", float64(c.windowPut))
	r.rep.set("takeover_append_put", float64(c.appendPut))
	r.rep.set("takeover_other", float64(c.other))
	r.rep.set("takeover_backlog_ms", ms(backlog.took))
	r.rep.set("takeover_backlog_slot_get", float64(backlog.count.slotGet))
	return nil
}

// takeoverBacklog measures what a restart after kill -9 costs `cairn
// serve` at its worst: the holder leaves snapshot.DefaultMinSlots slots of
// small batches unflushed (the most its flusher lets pile up before it
// flushes) and dies holding its lease, and a new holder takes the live
// lease over at once (WriterConfig.Takeover, as a restarted process does
// for its dead incarnation's pchannels), replays the backlog, and appends.
// The holder is closed (dead) when it returns.
func (r *runner) takeoverBacklog(ctx context.Context, holder *segmentlog.Writer, holderLeases *killableLeases,
	newLeases func(objstore.Store) (*killableLeases, *coordinator.Leases, error), cfg segmentlog.WriterConfig) (takeoverRun, error) {
	defer closeWriters(holder)
	payload := randomBytes(1 << 10)
	for i := range snapshot.DefaultMinSlots {
		// One at a time: each append is a batch of its own, a slot.
		m := segmentlog.Message{Type: segmentlog.TypeData, VChannel: "v", Payload: payload,
			Key: segmentlog.IdemKey{Producer: "backlog", Epoch: 1, Seq: uint64(i + 1)}}
		if _, err := holder.Append(ctx, m); err != nil {
			return takeoverRun{}, err
		}
	}
	holderLeases.kill()
	counting := newCountingStore(r.store, r.layout, cfg.PChannel)
	leases, _, err := newLeases(counting)
	if err != nil {
		return takeoverRun{}, err
	}
	cfg.Takeover = true
	counting.start()
	t0 := time.Now()
	w, err := segmentlog.OpenWriter(ctx, cfg, counting, leases)
	if err != nil {
		return takeoverRun{}, fmt.Errorf("backlog: take over: %w", err)
	}
	defer closeWriters(w)
	_, err = w.Append(ctx, segmentlog.Message{Type: segmentlog.TypeData, VChannel: "v", Payload: []byte("first")})
	took := time.Since(t0)
	count := counting.stop(w.Stats().FenceOffset + window)
	if err != nil {
		return takeoverRun{}, fmt.Errorf("backlog: first append: %w", err)
	}
	return takeoverRun{took, count}, nil
}

// appendAndFlush appends takeoverMessages keyed 1 KiB messages to w from 8
// goroutines and flushes the pchannel, so that its checkpoint is at the
// tail.
func (r *runner) appendAndFlush(ctx context.Context, w *segmentlog.Writer, pch string, run int) error {
	payload := randomBytes(1 << 10)
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Go(func() {
			for i := range takeoverMessages / 8 {
				m := segmentlog.Message{Type: segmentlog.TypeData, VChannel: "v", Payload: payload,
					Key: segmentlog.IdemKey{Producer: fmt.Sprintf("p%d", p), Epoch: uint64(run), Seq: uint64(i + 1)}}
				if _, err := w.Append(ctx, m); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	f, err := snapshot.NewFlusher(snapshot.FlushConfig{PChannel: pch, Layout: r.layout, Logger: r.log}, r.store)
	if err != nil {
		return err
	}
	_, err = f.FlushNow(ctx)
	return err
}

// errDead is what a killed holder's lease calls return.
var errDead = fmt.Errorf("bench: holder killed: %w", objstore.ErrTransient)

// killableLeases passes lease calls through until kill; then Renew and
// Release fail (as if the process had died) without reaching the store.
// Safe for concurrent use.
type killableLeases struct {
	*coordinator.Leases
	mu   sync.RWMutex // held for reading by calls in flight
	dead bool
}

// kill waits for the calls in flight, so that no renewal lands afterwards.
func (k *killableLeases) kill() {
	k.mu.Lock()
	k.dead = true
	k.mu.Unlock()
}

func (k *killableLeases) Renew(ctx context.Context, pchannel string, term uint64, nonce string) (segmentlog.LeaseGrant, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.dead {
		return segmentlog.LeaseGrant{}, errDead
	}
	return k.Leases.Renew(ctx, pchannel, term, nonce)
}

func (k *killableLeases) Release(ctx context.Context, pchannel string, term uint64, nonce string, tail, lastTick uint64) error {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.dead {
		return errDead
	}
	return k.Leases.Release(ctx, pchannel, term, nonce, tail, lastTick)
}

// requestCount is the store traffic of one takeover.
type requestCount struct {
	leaseGet, leasePut, checkpointGet, slotGet, windowPut, appendPut, other int
	// roundTrips counts the periods in which at least one request was in
	// flight: requests that overlap in time share one round trip.
	roundTrips int
}

func (c requestCount) total() int {
	return c.leaseGet + c.leasePut + c.checkpointGet + c.slotGet + c.windowPut + c.appendPut + c.other
}

// countingStore counts the requests to one pchannel's records and slots
// between start and stop, by kind. Safe for concurrent use.
type countingStore struct {
	objstore.Store
	lease, checkpoint, walPrefix string
	layout                       segmentlog.Layout
	pch                          string

	mu       sync.Mutex
	on       bool
	inflight int
	count    requestCount
	walPuts  []uint64 // offsets of WAL PutIfAbsent calls
}

func newCountingStore(s objstore.Store, l segmentlog.Layout, pch string) *countingStore {
	return &countingStore{Store: s, lease: l.Lease(pch), checkpoint: l.Checkpoint(pch), walPrefix: l.WALPrefix(pch), layout: l, pch: pch}
}

func (s *countingStore) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.on = true
}

// stop ends counting and returns the counts; WAL PUTs at or above
// firstData are the append's, those below the fence window's.
func (s *countingStore) stop(firstData uint64) requestCount {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.on = false
	c := s.count
	for _, off := range s.walPuts {
		if off >= firstData {
			c.appendPut++
		} else {
			c.windowPut++
		}
	}
	return c
}

// begin counts one request and returns the func that ends it.
func (s *countingStore) begin(op, key string) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.on {
		return func() {}
	}
	if s.inflight == 0 {
		s.count.roundTrips++
	}
	s.inflight++
	switch {
	case key == s.lease && op == "get":
		s.count.leaseGet++
	case key == s.lease && op == "put":
		s.count.leasePut++
	case key == s.checkpoint && op == "get":
		s.count.checkpointGet++
	case op == "get" && strings.HasPrefix(key, s.walPrefix):
		s.count.slotGet++
	case op == "put-if-absent":
		if off, ok := s.layout.ParseWALOffset(s.pch, key); ok {
			s.walPuts = append(s.walPuts, off)
			break
		}
		s.count.other++
	default:
		s.count.other++
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.inflight--
	}
}

func (s *countingStore) Get(ctx context.Context, key string) (objstore.Object, error) {
	defer s.begin("get", key)()
	return s.Store.Get(ctx, key)
}

func (s *countingStore) GetIfNoneMatch(ctx context.Context, key, etag string) (objstore.Object, error) {
	defer s.begin("get", key)()
	return s.Store.GetIfNoneMatch(ctx, key, etag)
}

func (s *countingStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	defer s.begin("get", key)()
	return s.Store.GetRange(ctx, key, off, n)
}

func (s *countingStore) PutIfAbsent(ctx context.Context, key string, body []byte, meta map[string]string) (string, error) {
	op := "put-if-absent"
	if key == s.lease {
		op = "put"
	}
	defer s.begin(op, key)()
	return s.Store.PutIfAbsent(ctx, key, body, meta)
}

func (s *countingStore) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	op := "other"
	if key == s.lease {
		op = "put"
	}
	defer s.begin(op, key)()
	return s.Store.PutIfMatch(ctx, key, body, etag)
}

func (s *countingStore) Put(ctx context.Context, key string, body []byte) (string, error) {
	defer s.begin("other", key)()
	return s.Store.Put(ctx, key, body)
}

func (s *countingStore) Head(ctx context.Context, key string) (objstore.Attrs, error) {
	defer s.begin("other", key)()
	return s.Store.Head(ctx, key)
}

func (s *countingStore) List(ctx context.Context, prefix, startAfter string, fn func(objstore.Attrs) error) error {
	defer s.begin("other", prefix)()
	return s.Store.List(ctx, prefix, startAfter, fn)
}

func (s *countingStore) Delete(ctx context.Context, key string) error {
	defer s.begin("other", key)()
	return s.Store.Delete(ctx, key)
}
