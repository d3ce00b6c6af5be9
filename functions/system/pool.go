package system

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnlog/cairn/cache"
	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/infra/backoff"
	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// openBackoff paces the retries of an open that failed on the store.
var openBackoff = backoff.Policy{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond}

// heldPoll bounds the pause between two acquire attempts while another
// holder's lease is live, so that a release is noticed within it (each
// attempt is one GET of the lease record).
const heldPoll = 250 * time.Millisecond

// Pool keeps one segmentlog.Writer per pchannel, opened on first use and
// kept warm with a shared write-ahead cache and tail notification, so that a
// long-running process — or a warm Lambda container between invocations —
// keeps its writers, leases and cache.
//
//   - A pchannel whose lease a live holder elsewhere has is never taken
//     over: the pool retries the acquire (after the holder's RetryAfter, and
//     at least every 250 ms to notice a release) for Config.LeaseWait, then
//     gives up with a *BusyError.
//   - A writer that stopped (Err() != nil: fenced, lease lost, failed) is
//     closed and a new one opened on the next request.
//   - A writer whose lease deadline passed without a renew (a Lambda
//     container thawed after a long freeze) gets a moment for its renew
//     loop to renew; if that fails it is replaced.
//   - An exclusive writer that took no request for Config.IdleRelease
//     (and holds no open transaction) is closed, releasing its lease with
//     its tail: the pchannel is parked. An idle pchannel then costs no
//     store request; the next request opens a writer again without an
//     expiry wait, and Hold of a parked pchannel costs nothing.
//   - Close closes every writer, releasing its lease with its tail.
//
// Appends run detached from the caller's context: a client that goes away
// does not cancel an append already handed to the writer (its outcome is
// unknown to that client, as with a lost reply).
//
// A Pool is safe for concurrent use.
type Pool struct {
	cfg    Config
	store  objstore.Store
	leases segmentlog.Leases
	cache  *cache.Cache[*segmentlog.Batch]
	tail   *cache.Tail
	log    *slog.Logger
	opens  func(result string) // metrics hook

	mu      sync.Mutex
	entries map[string]*poolEntry // live writers, by pchannel
	opening map[string]*openCall  // opens in progress, by pchannel
	// parked holds the pchannels whose idle writer the pool closed, with
	// the tail it released; an open or a Release forgets them.
	parked map[string]uint64
	closed bool
	quit   chan struct{}  // closed by Close: stops the idle release loop
	bg     sync.WaitGroup // detached appends, opens and retirements; Add under mu while !closed
}

// poolEntry is one warm writer: an exclusive segmentlog.Writer (ex) or a
// segmentlog.SharedWriter (sh); w is whichever it is.
type poolEntry struct {
	pchannel string
	w        walWriter
	ex       *segmentlog.Writer
	sh       *segmentlog.SharedWriter
	lastUse  atomic.Int64 // when a request last took this writer (Config.Now, unix ns)
}

func (e *poolEntry) touch(now time.Time) { e.lastUse.Store(now.UnixNano()) }

// idleSince reports whether the entry's writer took no request since t
// and holds no open transaction: the pool may park it.
func (e *poolEntry) idleSince(t time.Time) bool {
	return e.ex != nil && e.w.Err() == nil && e.lastUse.Load() <= t.UnixNano() && e.ex.OpenTxns() == 0
}

// walWriter is what both kinds of writer offer.
type walWriter interface {
	Term() uint64
	Err() error
	Append(ctx context.Context, msgs ...segmentlog.Message) ([]segmentlog.Ack, error)
	AppendAt(ctx context.Context, offset uint64, msgs ...segmentlog.Message) ([]segmentlog.Ack, error)
	Holds(key segmentlog.IdemKey) bool
	AppendControl(ctx context.Context, msgs ...segmentlog.Message) ([]segmentlog.Ack, error)
	Sync(ctx context.Context) (uint64, error)
	Close(ctx context.Context) error
}

// stats is the entry's writer's counters; a shared writer's frontier is
// the tail it last saw.
func (e *poolEntry) stats() segmentlog.WriterStats {
	if e.ex != nil {
		return e.ex.Stats()
	}
	s := e.sh.Stats()
	return segmentlog.WriterStats{
		Term: s.Term, FenceOffset: s.OpenAt - segmentlog.FenceWindow, Frontier: s.Tail,
		BatchesAcked: s.Batches, MessagesAcked: s.Messages, DedupHits: s.DedupHits, RecoveredSlots: s.Folded,
	}
}

// leaseDeadline is when the entry's lease needs a renew; a shared writer
// holds no lease.
func (e *poolEntry) leaseDeadline() (time.Time, bool) {
	if e.ex == nil {
		return time.Time{}, false
	}
	return e.ex.LeaseDeadline(), true
}

// openCall is one open in progress, shared by every request that waits
// for it.
type openCall struct {
	done     chan struct{}
	takeover bool // take the lease over even from a live holder
	e        *poolEntry
	err      error
}

// newPool builds a pool over store; leases is the coordinator's lease
// service.
func newPool(cfg Config, store objstore.Store, leases segmentlog.Leases, opens func(string)) (*Pool, error) {
	c, err := cache.New[*segmentlog.Batch](cache.Config{MaxBytes: cfg.CacheBytes})
	if err != nil {
		return nil, fmt.Errorf("system: cache: %w", err)
	}
	p := &Pool{
		cfg: cfg, store: store, leases: leases, cache: c, tail: &cache.Tail{},
		log: cfg.Logger, opens: opens,
		entries: map[string]*poolEntry{}, opening: map[string]*openCall{}, parked: map[string]uint64{},
		quit: make(chan struct{}),
	}
	if cfg.IdleRelease > 0 {
		p.bg.Add(1)
		go p.releaseIdleLoop()
	}
	return p, nil
}

// releaseIdleLoop parks idle writers every IdleRelease/4 until Close.
func (p *Pool) releaseIdleLoop() {
	defer p.bg.Done()
	t := time.NewTicker(p.cfg.IdleRelease / 4)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-t.C:
			p.releaseIdle()
		}
	}
}

// releaseIdle parks every writer idle for IdleRelease: it leaves the pool
// at once (a request that took it just before gets ErrClosed and retries
// on a fresh writer) and is closed in the background, which releases its
// lease with its tail.
func (p *Pool) releaseIdle() {
	before := p.cfg.Now().Add(-p.cfg.IdleRelease)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	for pchannel, e := range p.entries {
		if !e.idleSince(before) {
			continue
		}
		delete(p.entries, pchannel)
		p.parked[pchannel] = e.stats().Frontier
		p.bg.Add(1)
		go func() {
			defer p.bg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), p.cfg.OpenTimeout)
			defer cancel()
			err := e.w.Close(ctx)
			p.mu.Lock()
			if _, ok := p.parked[pchannel]; ok {
				p.parked[pchannel] = e.stats().Frontier // an append that was in flight may have moved it
			}
			p.mu.Unlock()
			if err != nil && !errors.Is(err, segmentlog.ErrFenced) {
				p.log.Warn("idle writer closed with an error", "pchannel", pchannel, "err", err)
				return
			}
			p.log.Info("idle writer closed, lease released", "pchannel", pchannel, "tail", e.stats().Frontier)
		}()
	}
}

// ParkedTail returns the tail the idle writer of pchannel released when
// the pool parked it; ok is false unless the pchannel is parked (no writer
// opened since, no Release).
func (p *Pool) ParkedTail(pchannel string) (tail uint64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	tail, ok = p.parked[pchannel]
	return tail, ok
}

// Cache is the pool's write-ahead cache, shared with readers.
func (p *Pool) Cache() *cache.Cache[*segmentlog.Batch] { return p.cache }

// Tail is the pool's tail notification, shared with readers.
func (p *Pool) Tail() *cache.Tail { return p.tail }

// writer returns the warm writer of pchannel, opening one if needed, for
// a request: the writer counts as used (Config.IdleRelease).
func (p *Pool) writer(ctx context.Context, pchannel string) (*poolEntry, error) {
	return p.entry(ctx, pchannel, true)
}

// entry is writer; use false (Hold's watchdog) leaves the writer's idle
// time running.
func (p *Pool) entry(ctx context.Context, pchannel string, use bool) (*poolEntry, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrShuttingDown
		}
		if e := p.entries[pchannel]; e != nil {
			if err := e.w.Err(); err != nil {
				p.log.Info("writer stopped; reopening on this request", "pchannel", pchannel, "err", err)
				p.retireLocked(e)
			} else if dl, ok := e.leaseDeadline(); ok && !p.cfg.Now().Before(dl) {
				p.mu.Unlock()
				if !p.awaitRenew(ctx, e, dl) {
					p.mu.Lock()
					if p.entries[pchannel] == e {
						p.log.Info("lease not renewed past its deadline; replacing the writer", "pchannel", pchannel)
						p.retireLocked(e)
					}
					p.mu.Unlock()
				}
				continue
			} else {
				p.mu.Unlock()
				if use {
					e.touch(p.cfg.Now())
				}
				return e, nil
			}
		}
		call := p.openingLocked(pchannel, false)
		p.mu.Unlock()
		select {
		case <-call.done:
			if call.err != nil {
				return nil, call.err
			}
			return call.e, nil // an open counts as a use
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// TakeOver opens the writer of pchannel taking its lease over even from a
// live holder (docs/protocol.md, Acquire 4) — for a restarted process
// taking back what its dead incarnation held, without waiting out that
// lease. A running writer of this pool is kept.
func (p *Pool) TakeOver(ctx context.Context, pchannel string) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrShuttingDown
	}
	if e := p.entries[pchannel]; e != nil && e.w.Err() == nil {
		p.mu.Unlock()
		return nil
	}
	call := p.openingLocked(pchannel, true)
	p.mu.Unlock()
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// openingLocked returns the open of pchannel in progress, starting one if
// there is none. p.mu must be held.
func (p *Pool) openingLocked(pchannel string, takeover bool) *openCall {
	call := p.opening[pchannel]
	if call == nil {
		call = &openCall{done: make(chan struct{}), takeover: takeover}
		p.opening[pchannel] = call
		p.bg.Add(1)
		go p.open(pchannel, call)
	}
	return call
}

// awaitRenew waits for e's renew loop to renew a lease whose deadline dl
// has passed — a container thawed after a freeze renews at once, keeping
// its term and cache if nobody acquired meanwhile. It reports whether the
// lease was renewed.
func (p *Pool) awaitRenew(ctx context.Context, e *poolEntry, dl time.Time) bool {
	limit := p.cfg.Now().Add(2*p.cfg.LeaseRequestTimeout() + p.cfg.RenewInterval)
	for p.cfg.Now().Before(limit) {
		if e.w.Err() != nil {
			return false
		}
		if cur, _ := e.leaseDeadline(); cur.After(dl) && p.cfg.Now().Before(cur) {
			return true
		}
		if backoff.Sleep(ctx, 5*time.Millisecond) != nil {
			return false
		}
	}
	return false
}

// retireLocked drops e from the pool and closes its writer in the
// background (releasing its lease unless it was fenced). p.mu must be held.
func (p *Pool) retireLocked(e *poolEntry) {
	if p.entries[e.pchannel] == e {
		delete(p.entries, e.pchannel)
	}
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.OpenTimeout)
		defer cancel()
		if err := e.w.Close(ctx); err != nil {
			p.log.Info("retired writer closed", "pchannel", e.pchannel, "err", err)
		}
	}()
}

// open opens a writer for pchannel, waiting up to LeaseWait for another
// holder's live lease to be released or to expire.
func (p *Pool) open(pchannel string, call *openCall) {
	defer p.bg.Done()
	start := p.cfg.Now()
	giveUp := start.Add(p.cfg.LeaseWait)
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.LeaseWait+p.cfg.OpenTimeout)
	defer cancel()
	var e *poolEntry
	var err error
	pauses := openBackoff.Start()
	for {
		e, err = p.openOnce(ctx, pchannel, call.takeover)
		if err == nil {
			break
		}
		var held *coordinator.HeldError
		now := p.cfg.Now()
		if errors.As(err, &held) {
			if !now.Before(giveUp) {
				err = &BusyError{PChannel: pchannel, Holder: held.Holder, RetryAfter: max(held.RetryAfter, time.Second)}
				break
			}
			_ = backoff.Sleep(ctx, min(max(held.RetryAfter, time.Millisecond), heldPoll, giveUp.Sub(now)))
			continue
		}
		if objstore.IsRetryable(err) && now.Before(giveUp) && ctx.Err() == nil {
			_ = backoff.Sleep(ctx, min(pauses.Next(), giveUp.Sub(now)))
			continue
		}
		break
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.opening, pchannel)
	switch {
	case err != nil:
		p.opens(openResult(err))
		call.err = err
	case p.closed:
		// Close ran meanwhile: hand the lease straight back.
		p.opens("shutdown")
		p.retireLocked(e)
		call.err = ErrShuttingDown
	default:
		p.opens("ok")
		e.touch(p.cfg.Now())
		p.entries[pchannel] = e
		delete(p.parked, pchannel)
		call.e = e
		p.log.Info("writer opened", "pchannel", pchannel, "term", e.w.Term(), "took_ms", p.cfg.Now().Sub(start).Milliseconds())
	}
	close(call.done)
}

// openOnce runs one OpenWriter, or OpenSharedWriter in shared mode.
func (p *Pool) openOnce(ctx context.Context, pchannel string, takeover bool) (*poolEntry, error) {
	cfg := segmentlog.WriterConfig{
		PChannel:         pchannel,
		Layout:           p.cfg.Layout,
		Holder:           p.cfg.Holder,
		MaxBatchBytes:    p.cfg.MaxBatchBytes,
		RenewInterval:    p.cfg.RenewInterval,
		TimeTickInterval: p.cfg.TimeTickInterval,
		Cache:            p.cache,
		Tail:             p.tail,
		Now:              p.cfg.Now,
		Logger:           p.log,
		Takeover:         takeover || p.cfg.WriteMode == WriteTakeover,
	}
	if p.cfg.WriteMode == WriteShared {
		shared, ok := p.leases.(segmentlog.SharedLeases)
		if !ok {
			return nil, fmt.Errorf("system: write mode %s: the lease service has no shared terms", WriteShared)
		}
		sw, err := segmentlog.OpenSharedWriter(ctx, cfg, p.store, shared)
		if err != nil {
			return nil, err
		}
		return &poolEntry{pchannel: pchannel, w: sw, sh: sw}, nil
	}
	w, err := segmentlog.OpenWriter(ctx, cfg, p.store, p.leases)
	if err != nil {
		return nil, err
	}
	return &poolEntry{pchannel: pchannel, w: w, ex: w}, nil
}

func openResult(err error) string {
	var busy *BusyError
	switch {
	case errors.As(err, &busy):
		return "busy"
	case errors.Is(err, segmentlog.ErrFenced):
		return "fenced"
	default:
		return "error"
	}
}

// appendResult is what one append got.
type appendResult struct {
	term uint64
	acks []segmentlog.Ack
	err  error
}

// Append appends msgs to pchannel as one batch. With expect set, the batch
// must land at exactly that offset: it fails with an *OffsetMismatchError, writing
// nothing, unless the pchannel's tail is expect once every earlier append of
// this process has resolved. With after set, the batch is written only if
// the writer holds that key (segmentlog.Writer.Holds: acked, or queued
// ahead of this batch), else it fails with ErrOutOfSequence, writing
// nothing; the check is made on every writer the append tries.
// An append that failed before anything of it
// could have landed (the writer was fenced or closing) is retried once on a
// fresh writer; so is one whose lease lapsed if every message carries an
// idempotency key. The append may outlive a cancelled ctx: msgs (and
// their payloads) must not change after the call.
func (p *Pool) Append(ctx context.Context, pchannel string, msgs []segmentlog.Message, expect *uint64, after *segmentlog.IdemKey) (uint64, []segmentlog.Ack, error) {
	var r appendResult
	for attempt := 0; attempt < 2; attempt++ {
		e, err := p.writer(ctx, pchannel)
		if err != nil {
			return 0, nil, err
		}
		r = p.appendTo(ctx, e, msgs, expect, after)
		if r.err == nil || !retryable(r.err, msgs) || ctx.Err() != nil {
			break
		}
		p.log.Info("append failed before landing; retrying on a fresh writer", "pchannel", pchannel, "err", r.err)
	}
	if errors.Is(r.err, segmentlog.ErrLeaseExpired) && !errors.Is(r.err, segmentlog.ErrOutcomeUnknown) {
		// A lapsed lease leaves unacknowledged appends undecided.
		r.err = fmt.Errorf("%w: %w", segmentlog.ErrOutcomeUnknown, r.err)
	}
	return r.term, r.acks, r.err
}

// Predecessor is the key an ordered append (Append's after) names by the
// seq afterSeq of its predecessor: the producer and epoch of msgs, which
// must all carry keys of that one producer and epoch (else ErrInvalid).
func Predecessor(msgs []segmentlog.Message, afterSeq uint64) (segmentlog.IdemKey, error) {
	first := msgs[0].Key
	for i := range msgs {
		if k := msgs[i].Key; k.IsZero() || k.Producer != first.Producer || k.Epoch != first.Epoch {
			return segmentlog.IdemKey{}, fmt.Errorf("%w: message %d: after_seq needs every message keyed by one producer and epoch", ErrInvalid, i)
		}
	}
	return segmentlog.IdemKey{Producer: first.Producer, Epoch: first.Epoch, Seq: afterSeq}, nil
}

// retryable reports whether an append that failed with err certainly did
// not land, or carries keys that make a second try safe.
func retryable(err error, msgs []segmentlog.Message) bool {
	if errors.Is(err, segmentlog.ErrOutcomeUnknown) {
		return false
	}
	if errors.Is(err, segmentlog.ErrFenced) || errors.Is(err, segmentlog.ErrClosed) || errors.Is(err, segmentlog.ErrContended) {
		return true // never delivered (segmentlog.ErrFenced), or never taken
	}
	if errors.Is(err, segmentlog.ErrLeaseExpired) {
		for i := range msgs {
			if msgs[i].Key.IsZero() {
				return false
			}
		}
		return true
	}
	return false
}

// appendTo runs one append on e, detached from ctx once it enters the
// writer.
func (p *Pool) appendTo(ctx context.Context, e *poolEntry, msgs []segmentlog.Message, expect *uint64, after *segmentlog.IdemKey) appendResult {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return appendResult{err: ErrShuttingDown}
	}
	p.bg.Add(1)
	p.mu.Unlock()
	res := make(chan appendResult, 1)
	go func() {
		defer p.bg.Done()
		if err := ctx.Err(); err != nil {
			res <- appendResult{err: err} // the caller left before anything was sent
			return
		}
		term := e.w.Term()
		// No copy of msgs: both writers validate and stamp a copy of their
		// own (checkAppend), and leave the caller's as it was.
		var acks []segmentlog.Ack
		var err error
		if after != nil && !holdsWithin(ctx, e.w, *after) {
			res <- appendResult{err: fmt.Errorf("%w: the message keyed %s/%d/%d is neither acked nor queued on %s; nothing was written",
				ErrOutOfSequence, after.Producer, after.Epoch, after.Seq, e.pchannel)}
			return
		}
		if expect != nil {
			acks, err = e.w.AppendAt(context.WithoutCancel(ctx), *expect, msgs...)
			if errors.Is(err, segmentlog.ErrOffsetMismatch) {
				res <- appendResult{err: &OffsetMismatchError{PChannel: e.pchannel, Expected: *expect, Tail: e.stats().Frontier}}
				return
			}
		} else {
			acks, err = e.w.Append(context.WithoutCancel(ctx), msgs...)
		}
		res <- appendResult{term: term, acks: acks, err: err}
	}()
	select {
	case r := <-res:
		return r
	case <-ctx.Done():
		return appendResult{err: fmt.Errorf("%w: %w", segmentlog.ErrOutcomeUnknown, ctx.Err())}
	}
}

// sequenceWait bounds how long an append with after_seq waits for the
// message it must follow to reach the writer before it is refused: that
// message is usually in a request a moment behind on another connection,
// and waiting here spares the client sending the batch again.
const sequenceWait = 100 * time.Millisecond

// holdsWithin reports whether w holds key now or within sequenceWait,
// checking at growing intervals (50 µs to 2 ms).
func holdsWithin(ctx context.Context, w walWriter, key segmentlog.IdemKey) bool {
	if w.Holds(key) {
		return true
	}
	deadline := time.Now().Add(sequenceWait)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for pause := 50 * time.Microsecond; time.Now().Before(deadline) && w.Err() == nil; pause = min(2*pause, 2*time.Millisecond) {
		t.Reset(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		}
		if w.Holds(key) {
			return true
		}
	}
	return false
}

// Sync returns a timetick below which nothing more will be written to
// pchannel (segmentlog.Writer.Sync).
func (p *Pool) Sync(ctx context.Context, pchannel string) (uint64, uint64, error) {
	e, err := p.writer(ctx, pchannel)
	if err != nil {
		return 0, 0, err
	}
	t, err := e.w.Sync(ctx)
	return e.w.Term(), t, err
}

// RaiseTickFloor makes every later timetick of pchannel greater than t
// (segmentlog.Writer.RaiseTickFloor).
func (p *Pool) RaiseTickFloor(ctx context.Context, pchannel string, t uint64) error {
	e, err := p.writer(ctx, pchannel)
	if err != nil {
		return err
	}
	if e.sh != nil {
		return e.sh.RaiseTickFloor(ctx, t)
	}
	return e.ex.RaiseTickFloor(t)
}

// WriterState is one warm writer's state.
type WriterState struct {
	PChannel string
	Stats    segmentlog.WriterStats
	Err      error
}

// Writers lists the warm writers.
func (p *Pool) Writers() []WriterState {
	p.mu.Lock()
	entries := make([]*poolEntry, 0, len(p.entries))
	for _, e := range p.entries {
		entries = append(entries, e)
	}
	p.mu.Unlock()
	out := make([]WriterState, len(entries))
	for i, e := range entries {
		out[i] = WriterState{PChannel: e.pchannel, Stats: e.stats(), Err: e.w.Err()}
	}
	return out
}

// Frontier returns the ack frontier of pchannel's writer if this process
// holds a running one.
func (p *Pool) Frontier(pchannel string) (frontier, term uint64, ok bool) {
	p.mu.Lock()
	e := p.entries[pchannel]
	p.mu.Unlock()
	if e == nil || e.w.Err() != nil {
		return 0, 0, false
	}
	s := e.stats()
	return s.Frontier, s.Term, true
}

// Closed reports whether Close was called.
func (p *Pool) Closed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Close stops taking appends, closes every writer (each waits for its
// appends in flight, then releases its lease with its tail) and the cache.
// It returns the first error; a writer that had been fenced is not an
// error.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.quit)
	entries := p.entries
	p.entries = map[string]*poolEntry{}
	p.mu.Unlock()

	var wg sync.WaitGroup
	errs := make(chan error, len(entries))
	for _, e := range entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := e.w.Close(ctx)
			if err != nil && !errors.Is(err, segmentlog.ErrFenced) {
				errs <- err
				return
			}
			p.log.Info("writer closed, lease released", "pchannel", e.pchannel)
		}()
	}
	wg.Wait()
	close(errs)
	waited := make(chan struct{})
	go func() { p.bg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
	}
	p.cache.Close()
	return <-errs // nil once drained
}
