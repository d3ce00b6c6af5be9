package segmentlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/infra/objstore"
)

// DefaultPutTimeout is WriterConfig.PutTimeout's default: docs/protocol.md's R
// for one WAL PUT attempt.
const DefaultPutTimeout = 1500 * time.Millisecond

// FenceWindow is W: a new term claims W consecutive slots (a fence and W−1
// fillers) before its first data slot, and a writer keeps at most W PUTs in
// flight beyond its ack frontier, so a zombie's late PUT always meets a
// claimed slot (docs/protocol.md, Fence 3 and Append 1). Every writer,
// scanner and GC of a bucket must agree on it, so it is one constant, not a
// setting: were it ever to change per pchannel, the value would have to come
// from a record every reader sees (the checkpoint), never from a process's
// configuration.
const FenceWindow = 8

// WriterConfig configures a Writer. Zero fields take the documented
// defaults.
type WriterConfig struct {
	PChannel string // required
	Layout   Layout
	// Holder names this process in the lease record. Default: host-pid.
	Holder string
	// MaxBatchBytes bounds the payload bytes group commit puts in one batch
	// object. Default 1 MiB. One Append larger than this is refused;
	// AppendBatch refuses only a single message larger than this.
	MaxBatchBytes int
	// Linger is how long group commit waits for more appends before sending
	// a batch that is not full. 0 (the default) sends at once.
	Linger time.Duration
	// PutTimeout bounds one PUT attempt (docs/protocol.md R). Default
	// DefaultPutTimeout.
	PutTimeout time.Duration
	// GetTimeout bounds one GET attempt. Default 1 s.
	GetTimeout time.Duration
	// PutRetryLimit bounds how long one slot is retried while the lease
	// stays renewed; then the writer stops (docs/protocol.md "Append" rule 3:
	// a writer that cannot fill a slot stops and releases). Default 10 s.
	PutRetryLimit time.Duration
	// RenewInterval is how often the lease is renewed (I). Default 3 s.
	RenewInterval time.Duration
	// DedupWindow and DedupMaxKeys bound the idempotency window D: keys
	// are kept DedupWindow, and at most DedupMaxKeys runs of them (a run is
	// one producer epoch's consecutive keys acked together in one batch,
	// so an SDK producer's whole batch counts once). Defaults 10 min and
	// 100,000 runs.
	DedupWindow  time.Duration
	DedupMaxKeys int
	// ReadAhead bounds parallel GETs during recovery. Default 16.
	ReadAhead int
	// TimeTickInterval: after a run of data batches, one timetick-only
	// batch is persisted once the pchannel has been quiet this long, so
	// readers in other processes see time pass the last data. Runs of empty
	// timeticks are never persisted (Sync serves them from memory), so an
	// idle pchannel writes no objects. Default 1 s; negative disables.
	TimeTickInterval time.Duration

	// Takeover makes OpenWriter take the lease over even from a live holder
	// (docs/protocol.md, Acquire 4); the lease service must implement
	// Taker. The old holder's next append fails with ErrFenced.
	Takeover bool
	// FreshFor bounds, for a SharedWriter, how long after its last proof
	// that the tail slot was empty and not collected it may still send a
	// PUT there (docs/protocol.md, "Shared terms" rule 3). Default 10 s.
	FreshFor time.Duration

	// Cache, if set, is filled with every acked batch and dropped on lease
	// loss. Tail, if set, is told the ack frontier.
	Cache BatchCache
	Tail  TailPublisher

	Now      func() time.Time // default time.Now
	NewNonce func() string    // default UUIDv7
	Logger   *slog.Logger     // default slog.Default()
}

// BatchCache is the write-ahead cache as the Writer and Scanner use it;
// cache.Cache[*Batch] implements it. Entries are only ever the content of a
// landed slot, so a hit is always correct; a miss reads the store.
type BatchCache interface {
	Put(pchannel string, offset, term uint64, b *Batch, cost int64) bool
	Get(pchannel string, offset uint64) (*Batch, uint64, bool)
	DropTerm(pchannel string, term uint64)
}

// TailPublisher wakes in-process tail readers; cache.Tail implements it.
type TailPublisher interface {
	Publish(pchannel string, frontier uint64)
	Forget(pchannel string)
}

func (c *WriterConfig) withDefaults() {
	if c.Holder == "" {
		h, _ := os.Hostname()
		c.Holder = h + "-" + strconv.Itoa(os.Getpid())
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = 1 << 20
	}
	if c.PutTimeout == 0 {
		c.PutTimeout = DefaultPutTimeout
	}
	if c.GetTimeout == 0 {
		c.GetTimeout = time.Second
	}
	if c.PutRetryLimit == 0 {
		c.PutRetryLimit = 10 * time.Second
	}
	if c.RenewInterval == 0 {
		c.RenewInterval = 3 * time.Second
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.DedupMaxKeys == 0 {
		c.DedupMaxKeys = DefaultDedupMaxKeys
	}
	if c.ReadAhead == 0 {
		c.ReadAhead = 16
	}
	if c.FreshFor == 0 {
		c.FreshFor = 10 * time.Second
	}
	if c.TimeTickInterval == 0 {
		c.TimeTickInterval = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewNonce == nil {
		c.NewNonce = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a configuration the Writer cannot run with.
func (c *WriterConfig) Validate() error {
	if err := ValidateName("pchannel", c.PChannel); err != nil {
		return err
	}
	switch {
	case c.MaxBatchBytes < 1 || c.MaxBatchBytes > MaxBatchBytes/2:
		return fmt.Errorf("segmentlog: max batch bytes %d out of range 1..%d", c.MaxBatchBytes, MaxBatchBytes/2)
	case c.Linger < 0 || c.PutTimeout <= 0 || c.GetTimeout <= 0 || c.RenewInterval <= 0:
		return errors.New("segmentlog: linger must be ≥ 0 and timeouts and renew interval > 0")
	case c.DedupWindow < 0 || c.DedupMaxKeys < 1:
		return errors.New("segmentlog: dedup window must be ≥ 0 and max keys ≥ 1")
	}
	return nil
}

// Writer is the lease holder of one pchannel: the only process that appends
// to it (docs/protocol.md, "Fence" and "Append"). OpenWriter acquires the lease,
// recovers and fences; Append and Sync may then be called concurrently from
// any number of goroutines; Close releases the lease. Once the Writer stops
// (fenced, lease lost, closed) every later call fails with the cause.
//
// Appends are acknowledged strictly in offset order, with at most Window
// batch PUTs in flight beyond the ack frontier; group commit coalesces
// concurrent appends into one batch object.
type Writer struct {
	cfg    WriterConfig
	store  objstore.Store
	leases Leases
	log    *slog.Logger
	nonce  string
	nonceB [16]byte
	// checkpoints keeps the record recovery and a shared writer's
	// catch-ups read: a re-read finding it unchanged downloads nothing.
	checkpoints *CheckpointCache
	// takenUnread: a PUT that met another writer's object, with no attempt
	// of ours that may have landed, returns without reading it back (a
	// SharedWriter folds the slot from its HEAD instead, rule Shared 2).
	takenUnread bool

	wake       chan struct{} // batcher wake-up, capacity 1
	encodeBufs sync.Pool     // *[]byte: batch encodings of landed PUTs, to reuse
	done       chan struct{} // closed when the batcher has exited
	stopRenew  context.CancelFunc
	renewDone  chan struct{}

	mu       sync.Mutex
	grant    LeaseGrant
	clock    tickClock
	next     uint64 // next slot to assign
	frontier uint64 // every slot below is acked
	inflight []*putJob
	queue    []*appendReq
	queued   int           // payload bytes in queue
	blocked  error         // first failure at the frontier; nothing after is acked
	err      error         // terminal: why the writer stopped taking appends
	closing  bool          // Close called: drain, then release
	progress chan struct{} // closed and replaced whenever frontier or err changes
	dedup    *dedupWindow
	txns     map[uint64]*txnState // open transactions (txn.go)
	txnSeq   uint64
	// dataSinceTick: a data batch was acked after the last persisted
	// timetick batch; lastActivity: when the last batch was assigned.
	dataSinceTick bool
	lastActivity  time.Time
	stats         WriterStats
	// recoverTimes: where the open's recovery spent its time (logged).
	recoverTimes struct{ replay, window time.Duration }
}

// WriterStats counts what a Writer did. Read with Writer.Stats.
type WriterStats struct {
	Term            uint64
	FenceOffset     uint64 // first slot of this term
	Frontier        uint64
	BatchesAcked    int64
	TimeTickBatches int64 // timetick-only batches persisted
	TimeTickChecks  int64 // rounds of the timetick loop (TimeTickInterval/2 apart), due or not
	MessagesAcked   int64
	BytesAcked      int64
	PutAttempts     int64
	DedupHits       int64
	RecoveredSlots  int64 // slots read during recovery
	GarbageSlots    int64 // lower-term batches skipped (recovery and window)
}

// OpenWriter acquires the lease of cfg.PChannel, recovers the pchannel's
// state and places the fence window, then returns a Writer ready to append.
// It fails with an error wrapping the lease service's "held" error while
// another holder's lease is live, unless cfg.Takeover is set.
func OpenWriter(ctx context.Context, cfg WriterConfig, store objstore.Store, leases Leases) (*Writer, error) {
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := newWriter(cfg, store, leases)
	// The checkpoint read overlaps the acquire: a takeover costs one round
	// trip less (recover explains why an early read is safe).
	cp := w.readCheckpointAsync(ctx)
	acquire := leases.Acquire
	if cfg.Takeover {
		taker, ok := leases.(Taker)
		if !ok {
			cp.cancel()
			return nil, fmt.Errorf("open writer %s: the lease service cannot take a lease over", cfg.PChannel)
		}
		acquire = taker.Takeover
	}
	began := w.cfg.Now()
	grant, err := acquire(ctx, cfg.PChannel, cfg.Holder, w.nonce)
	acquired := w.cfg.Now()
	if err != nil {
		cp.cancel()
		return nil, fmt.Errorf("open writer %s: %w", cfg.PChannel, err)
	}
	if grant.Nonce != w.nonce {
		cp.cancel()
		return nil, fmt.Errorf("open writer %s: %w: lease service granted nonce %q, want %q", cfg.PChannel, ErrInvariant, grant.Nonce, w.nonce)
	}
	w.grant = grant
	w.clock = tickClock{last: grant.TickFloor, max: grant.TickMax}
	w.stats.Term = grant.Term

	renewCtx, stop := context.WithCancel(context.Background())
	w.stopRenew = stop
	go w.renewLoop(renewCtx)

	start, err := w.recover(ctx, cp)
	if err != nil {
		w.abandon(err)
		return nil, fmt.Errorf("open writer %s term %d: %w", cfg.PChannel, grant.Term, err)
	}
	w.mu.Lock()
	w.next, w.frontier = start, start
	w.stats.Frontier = start
	w.mu.Unlock()
	if cfg.Tail != nil {
		cfg.Tail.Publish(cfg.PChannel, start)
	}
	go w.batcher()
	if cfg.TimeTickInterval > 0 {
		go w.timeTickLoop(renewCtx)
	}
	w.log.Info("writer open", "term", grant.Term, "fence", w.stats.FenceOffset, "first_data_slot", start,
		"acquire_ms", acquired.Sub(began).Milliseconds(), "recover_ms", w.cfg.Now().Sub(acquired).Milliseconds(),
		"replay_ms", w.recoverTimes.replay.Milliseconds(), "replayed_slots", w.stats.RecoveredSlots, "window_ms", w.recoverTimes.window.Milliseconds())
	return w, nil
}

// newWriter builds a Writer that runs nothing yet, with a fresh nonce.
func newWriter(cfg WriterConfig, store objstore.Store, leases Leases) *Writer {
	w := &Writer{
		cfg: cfg, store: store, leases: leases, log: cfg.Logger.With("pchannel", cfg.PChannel),
		wake: make(chan struct{}, 1), done: make(chan struct{}), renewDone: make(chan struct{}),
		progress: make(chan struct{}),
		dedup:    newDedupWindow(cfg.DedupWindow, cfg.DedupMaxKeys),
		txns:     make(map[uint64]*txnState),
	}
	w.checkpoints = NewCheckpointCache(store, cfg.Layout)
	w.setNonce(cfg.NewNonce())
	return w
}

// setNonce makes nonce the writer's lease nonce.
func (w *Writer) setNonce(nonce string) {
	w.nonce = nonce
	if u, err := uuid.Parse(nonce); err == nil {
		w.nonceB = u
	} else {
		w.nonceB = [16]byte{}
		copy(w.nonceB[:], nonce)
	}
}

// Term is the writer's lease term.
func (w *Writer) Term() uint64 { return w.grant.Term }

// Stats returns a copy of the writer's counters.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	s.Frontier = w.frontier
	return s
}

// LeaseDeadline is the current lease's deadline (t_send + TTL − m of the
// last acquire or renew): no PUT is attempted past it.
func (w *Writer) LeaseDeadline() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.grant.Deadline
}

// Holds reports whether key is taken on this writer: acked within the
// idempotency window, or in an append already queued. The answer only ever
// turns from false to true while the writer runs, and a queued append lands
// only if every append queued before it does, so an append made after
// Holds(k) returned true lands behind k's message or not at all: this is
// how a caller keeps one producer's batches in order with several in flight.
// False may also mean k was evicted from the window. Safe for concurrent use.
func (w *Writer) Holds(key IdemKey) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.dedup.lookup(key)
	return ok && e.err == nil
}

// Err returns why the writer stopped, or nil while it runs.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// abandon stops a writer that never started appending.
func (w *Writer) abandon(cause error) {
	w.stopRenew()
	<-w.renewDone
	if !errors.Is(cause, ErrFenced) {
		rctx, cancel := context.WithTimeout(context.Background(), w.cfg.GetTimeout*2)
		defer cancel()
		_ = w.leases.Release(rctx, w.cfg.PChannel, w.grant.Term, w.nonce, w.grant.TailHint, w.clock.last)
	}
}

// renewLoop renews the lease every RenewInterval and raises tt_max. A lost
// lease stops the writer; a failing renew is retried until the lease
// deadline, after which the putters stop by themselves.
func (w *Writer) renewLoop(ctx context.Context) {
	defer close(w.renewDone)
	t := time.NewTicker(w.cfg.RenewInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		term, dl, stopped := w.grant.Term, w.grant.Deadline, w.err
		w.mu.Unlock()
		if stopped != nil {
			// A stopped writer must not keep its pchannel: stop renewing
			// and hand the lease back once its batches resolved.
			w.releaseStopped(ctx, stopped)
			return
		}
		rctx, cancel := context.WithTimeout(ctx, w.cfg.GetTimeout*2)
		g, err := w.leases.Renew(rctx, w.cfg.PChannel, term, w.nonce)
		cancel()
		switch {
		case err == nil:
			w.mu.Lock()
			w.grant.Deadline = g.Deadline
			w.clock.max = max(w.clock.max, g.TickMax)
			w.mu.Unlock()
		case ctx.Err() != nil:
			return
		default:
			if !w.cfg.Now().Before(dl) {
				w.stop(fmt.Errorf("%w: renew failed until the deadline: %v", ErrLeaseExpired, err))
				return
			}
			if !objstore.IsRetryable(err) && !errors.Is(err, context.DeadlineExceeded) {
				// The lease is gone (taken or released): a newer term may
				// already be fencing us.
				w.stop(fmt.Errorf("%w: renew: %v", ErrFenced, err))
				return
			}
			w.log.Warn("lease renew failed; retrying", "err", err)
		}
	}
}

// releaseStopped waits for the batches in flight to resolve, then releases
// the lease with the ack frontier as the tail (unless a newer term fenced
// us: the lease is not ours any more). Close releases again, harmlessly.
func (w *Writer) releaseStopped(ctx context.Context, cause error) {
	w.mu.Lock()
	for len(w.inflight) > 0 {
		ch := w.progress
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
		w.mu.Lock()
	}
	tail, lastTick, term := w.frontier, w.clock.last, w.grant.Term
	w.mu.Unlock()
	if errors.Is(cause, ErrFenced) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 4*w.cfg.GetTimeout)
	defer cancel()
	if err := w.leases.Release(rctx, w.cfg.PChannel, term, w.nonce, tail, lastTick); err != nil {
		w.log.Info("stopped writer could not release its lease; it will expire", "err", err)
	}
}

// stop records the terminal cause and wakes everyone. Batches in flight keep
// resolving; queued appends fail.
func (w *Writer) stop(cause error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopLocked(cause)
}

func (w *Writer) stopLocked(cause error) {
	if w.err == nil {
		w.err = cause
		if errors.Is(cause, ErrFenced) || errors.Is(cause, ErrLeaseExpired) {
			w.dropCacheLocked()
		}
	}
	w.signalLocked()
}

func (w *Writer) dropCacheLocked() {
	if w.cfg.Cache != nil {
		w.cfg.Cache.DropTerm(w.cfg.PChannel, w.grant.Term)
	}
	if w.cfg.Tail != nil {
		w.cfg.Tail.Forget(w.cfg.PChannel)
	}
}

// signalLocked wakes the batcher and every waiter on progress.
func (w *Writer) signalLocked() {
	close(w.progress)
	w.progress = make(chan struct{})
	select {
	case w.wake <- struct{}{}:
	default:
	}
}
