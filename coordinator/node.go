package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/infra/objstore"
	"github.com/cairnlog/cairn/segmentlog"
)

// Holder opens and closes the pchannel writers of a node process; the
// caller implements it (cmd/cairn over segmentlog.OpenWriter). Node calls
// Hold and Release of one pchannel one at a time; calls for different
// pchannels may run concurrently.
type Holder interface {
	// Hold makes sure the process has a running writer of pchannel: it
	// opens one with segmentlog.OpenWriter (WriterConfig.Holder must be the
	// node's ID, so that the lease names the node) unless one is running,
	// and closes and replaces one that stopped. It returns nil only with a
	// running writer; while another holder's lease is live it fails with an
	// error wrapping ErrLeaseHeld (a *HeldError says when to try again).
	//
	// Node calls Hold again after every poll (every PollInterval to
	// MaxPollInterval) for each pchannel it holds, as a watchdog: a Writer that stopped on its own (a PUT that missed
	// the lease deadline, say) keeps renewing its lease until it is
	// closed, so nobody else would take the pchannel over. Hold must
	// therefore cost no store request while the writer runs.
	Hold(ctx context.Context, pchannel string) error
	// TakeOver is Hold for a balancing move (an assignment with TakeOver):
	// it opens the writer taking the lease over even from a live holder
	// (segmentlog.WriterConfig.Takeover), whose writer the new term fences.
	// A running writer is kept. Node calls it once per assignment version,
	// never as the watchdog.
	TakeOver(ctx context.Context, pchannel string) error
	// Release closes the writer of pchannel, if there is one: Writer.Close
	// releases the lease, so the next node may take it at once.
	Release(ctx context.Context, pchannel string) error
}

// Node is the runtime of a long-running node (a `cairn serve` instance):
// it registers a session, heartbeats it, watches the assignment records,
// and calls its Holder to take the pchannels assigned to it and to let go
// of those that moved away. Only the lease acquire inside Hold confirms an
// assignment; the node never writes assignment records.
//
// Requests of an idle node: one conditional PUT per HeartbeatInterval (the
// session) and one LIST per poll (assignments, read only when their ETag
// changed); polls come every PollInterval while assignments change and
// back off to MaxPollInterval while they do not, and Kick brings one at
// once: 1/3 + 1/16 ≈ 0.4 requests/s at rest with the defaults, plus what
// its writers spend renewing their leases.
//
// Run may be called once. ID, Held, Stats and Kick are safe for concurrent
// use.
type Node struct {
	started atomic.Bool // Run was called

	cfg     Config
	rec     records
	scodec  codec[Session]
	id      string
	address string
	holder  Holder
	log     *slog.Logger
	kick    chan struct{} // Kick: poll now

	mu    sync.Mutex // guards held and stats
	held  map[string]bool
	stats NodeStats
}

// NodeStats counts what a Node did. Holds counts pchannels taken (a Hold
// of a pchannel that was not held), not the watchdog's Holds.
type NodeStats struct {
	Heartbeats, HeartbeatFailures int64
	Polls, PollFailures           int64
	Holds, HoldFailures, Releases int64
}

// NewNode returns the runtime of node id, reachable at address (where
// producers send appends). id must be a valid name (segmentlog.ValidateName)
// and unique among live processes: a second process that registers the
// same id takes the session over, and the first stops with ErrSessionLost.
func NewNode(cfg Config, store objstore.Store, id, address string, holder Holder) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := segmentlog.ValidateName("node", id); err != nil {
		return nil, fmt.Errorf("coordinator: new node: %w", err)
	}
	if store == nil || holder == nil {
		return nil, errors.New("coordinator: new node: nil store or holder")
	}
	return &Node{
		cfg:     cfg,
		rec:     records{store: store, timeout: cfg.RequestTimeout, now: cfg.Now},
		scodec:  sessionCodec(cfg.Layout),
		id:      id,
		address: address,
		holder:  holder,
		kick:    make(chan struct{}, 1),
		log:     cfg.Logger.With("component", "node", "node", id),
		held:    make(map[string]bool),
	}, nil
}

// Kick makes the node poll its assignments at once instead of after its
// current pause: for a balancer in the same process that just changed one
// (Balancer.Changes). It never blocks.
func (n *Node) Kick() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// ID returns the node's ID.
func (n *Node) ID() string { return n.id }

// Held returns the pchannels the node holds (Hold succeeded and no Release
// since), in name order.
func (n *Node) Held() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for p, ok := range n.held {
		if ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// Stats returns a copy of the counters.
func (n *Node) Stats() NodeStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// Run registers the node, then heartbeats and follows its assignments until
// ctx ends. On the way out it releases every pchannel it holds and marks
// its session stopped (bounded by SessionTTL), and returns nil. It returns
// an error wrapping ErrSessionLost if another process took the session
// over, and the registration's error if it could not register.
func (n *Node) Run(ctx context.Context) error {
	if n.started.Swap(true) {
		return fmt.Errorf("coordinator: node %s: Run called twice", n.id)
	}
	incarnation := uuid.Must(uuid.NewV7()).String()
	sess, etag, err := updateRecord(ctx, n.rec, n.scodec, n.id, func(cur *Session, now time.Time) (Session, error) {
		return decideRegister(cur, n.id, n.address, incarnation, now), nil
	})
	if err != nil {
		return fmt.Errorf("coordinator: node %s: register: %w", n.id, err)
	}
	n.log.Info("node registered", "address", n.address, "incarnation", incarnation)

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		n.heartbeat(runCtx, cancel, sess, etag)
	}()
	n.watch(runCtx)
	cancel(nil)
	<-hbDone
	cause := context.Cause(runCtx)

	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.SessionTTL)
	defer ccancel()
	for _, p := range n.Held() {
		n.release(cctx, p)
	}
	if errors.Is(cause, ErrSessionLost) {
		return fmt.Errorf("coordinator: node %s: %w", n.id, cause)
	}
	if _, _, err := updateRecord(cctx, n.rec, n.scodec, n.id, func(cur *Session, now time.Time) (Session, error) {
		return decideStop(cur, n.id, incarnation, now)
	}); err != nil {
		return fmt.Errorf("coordinator: node %s: stop session: %w", n.id, err)
	}
	n.log.Info("node stopped")
	return nil
}

// heartbeat writes the session every HeartbeatInterval with a conditional
// PUT against the ETag of its last write (one request). After a conflict
// (say, a write whose reply was lost) it reads the record and decides again;
// a record of another incarnation ends the run with ErrSessionLost.
func (n *Node) heartbeat(ctx context.Context, stop context.CancelCauseFunc, sess Session, etag string) {
	t := time.NewTicker(n.cfg.HeartbeatInterval)
	defer t.Stop()
	key := nodeKey(n.cfg.Layout, n.id)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next, err := decideHeartbeat(&sess, n.id, sess.Incarnation, n.cfg.Now())
		if err != nil {
			stop(err)
			return
		}
		body, err := encodeSession(next)
		if err != nil {
			stop(err)
			return
		}
		newETag, err := putRecord(ctx, n.rec, key, body, etag, false)
		if errors.Is(err, objstore.ErrConflict) {
			next, newETag, err = updateRecord(ctx, n.rec, n.scodec, n.id, func(cur *Session, now time.Time) (Session, error) {
				return decideHeartbeat(cur, n.id, sess.Incarnation, now)
			})
		}
		switch {
		case err == nil:
			sess, etag = next, newETag
			n.count(func(s *NodeStats) { s.Heartbeats++ })
		case errors.Is(err, ErrSessionLost):
			n.log.Error("session taken over; stopping", "err", err)
			stop(err)
			return
		case ctx.Err() != nil:
			return
		default:
			// Transient: it may have landed; the next heartbeat's conflict
			// sorts that out.
			n.count(func(s *NodeStats) { s.HeartbeatFailures++ })
			n.log.Warn("heartbeat failed", "err", err)
		}
	}
}

// watch polls the assignment records every PollInterval, or sooner when a
// Hold is due for a retry or Kick asks, and reconciles what the node holds
// with what is assigned to it. While polls find nothing changed and no
// Hold or Release is running or due, the pause doubles up to
// MaxPollInterval. Hold and Release run in goroutines, at most one per
// pchannel at a time, so that a slow recovery of one pchannel never delays
// letting go of another (which another node is waiting for).
func (n *Node) watch(ctx context.Context) {
	w := &watcher{
		n:       n,
		view:    newMirror(assignmentCodec(n.cfg.Layout)),
		acted:   make(map[string]uint64),
		retryAt: make(map[string]time.Time),
		busy:    make(map[string]bool),
		results: make(chan holdResult),
	}
	defer w.drain()
	t := time.NewTimer(0)
	defer t.Stop()
	pause := n.cfg.PollInterval
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-w.results:
			// A Hold or Release ended: the pause stays (a failed Hold
			// sets its own retry time below).
			w.settle(r)
			w.reconcile(ctx, false)
		case <-n.kick:
			w.poll(ctx)
			pause = n.cfg.PollInterval
		case <-t.C:
			if w.poll(ctx) && len(w.retryAt) == 0 {
				pause = min(2*pause, n.cfg.MaxPollInterval)
			} else {
				pause = n.cfg.PollInterval
			}
		}
		if ctx.Err() != nil {
			return
		}
		wait := pause
		now := n.cfg.Now()
		for _, at := range w.retryAt {
			wait = min(wait, max(at.Sub(now), time.Millisecond))
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
	}
}

// poll reads the assignment records and reconciles; it reports whether
// the poll succeeded and found every record as the previous one did.
func (w *watcher) poll(ctx context.Context) bool {
	n := w.n
	before := make(map[string]uint64)
	for _, a := range w.view.all() {
		before[a.PChannel] = a.Version
	}
	if err := w.view.refresh(ctx, n.rec); err != nil {
		if ctx.Err() == nil {
			n.count(func(s *NodeStats) { s.PollFailures++ })
			n.log.Warn("assignment poll failed", "err", err)
		}
		return false
	}
	n.count(func(s *NodeStats) { s.Polls++ })
	after := w.view.all()
	same := len(after) == len(before)
	for _, a := range after {
		if v, ok := before[a.PChannel]; !ok || v != a.Version {
			same = false
		}
	}
	w.reconcile(ctx, true)
	return same
}

// watcher is the state of Node.watch; only its goroutine touches it.
type watcher struct {
	n       *Node
	view    *mirror[Assignment]
	acted   map[string]uint64    // assignment version of the last successful Hold
	retryAt map[string]time.Time // no Hold before this (after a failure)
	busy    map[string]bool      // a Hold or Release of the pchannel is running
	results chan holdResult
	wg      sync.WaitGroup
}

// holdKind is what one call of the watcher's does.
type holdKind int

const (
	holdAcquire  holdKind = iota // Holder.Hold
	holdTakeOver                 // Holder.TakeOver
	holdRelease                  // Holder.Release
)

// holdResult is the outcome of one Hold, TakeOver or Release.
type holdResult struct {
	p       string
	kind    holdKind
	version uint64
	err     error
}

// reconcile starts a Hold for what targets this node and is not held (or
// was re-targeted since, or, after a poll, to check its writer still
// runs), and a Release for what it holds that does not.
func (w *watcher) reconcile(ctx context.Context, polled bool) {
	n := w.n
	listed := make(map[string]bool)
	now := n.cfg.Now()
	for _, a := range w.view.all() {
		p := a.PChannel
		listed[p] = true
		if w.busy[p] || ctx.Err() != nil {
			continue
		}
		mine, held := a.targets(n.id), n.isHeld(p)
		fresh := w.acted[p] != a.Version // an assignment version this node has not acted on
		switch {
		case mine && held && a.State == PChannelAssigning && fresh && !a.TakeOver:
			// Only a live lease confirms an assignment, and the Holder may
			// hold the pchannel parked (its lease released; see
			// docs/protocol.md, "Broadcast and coordinator" rule 4): let go
			// first, so that the Hold below takes the lease again.
			w.start(ctx, p, holdRelease, 0)
		case mine && fresh && a.State == PChannelAssigning && a.TakeOver && !now.Before(w.retryAt[p]):
			// A balancing move: take the live lease over, once per version
			// (a failed attempt is retried while the version stands).
			w.start(ctx, p, holdTakeOver, a.Version)
		case mine && (!held || fresh || polled) && !now.Before(w.retryAt[p]):
			w.start(ctx, p, holdAcquire, a.Version)
		case !mine:
			delete(w.acted, p)
			delete(w.retryAt, p)
			if held {
				w.start(ctx, p, holdRelease, 0)
			}
		}
	}
	for _, p := range n.Held() {
		if !listed[p] && !w.busy[p] && ctx.Err() == nil {
			w.start(ctx, p, holdRelease, 0)
		}
	}
}

// start runs one Hold or Release in a goroutine. The goroutine records the
// held state itself, so that a Hold that completes during shutdown is
// still released by Run.
func (w *watcher) start(ctx context.Context, p string, kind holdKind, version uint64) {
	w.busy[p] = true
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		r := holdResult{p: p, kind: kind, version: version}
		if kind == holdRelease {
			w.n.release(ctx, p)
		} else {
			r.err = w.n.hold(ctx, p, kind == holdTakeOver)
		}
		w.results <- r
	}()
}

// settle records the outcome of a Hold or Release.
func (w *watcher) settle(r holdResult) {
	n := w.n
	w.busy[r.p] = false
	switch {
	case r.kind == holdRelease:
	case r.err == nil:
		w.acted[r.p] = r.version
		delete(w.retryAt, r.p)
	default:
		now := n.cfg.Now()
		var he *HeldError
		if errors.As(r.err, &he) {
			w.retryAt[r.p] = now.Add(he.RetryAfter)
			n.log.Debug("pchannel still held elsewhere", "pchannel", r.p, "holder", he.Holder, "retry_after", he.RetryAfter)
		} else {
			w.retryAt[r.p] = now.Add(n.cfg.PollInterval)
			n.log.Warn("hold failed", "pchannel", r.p, "err", r.err)
		}
	}
}

// drain waits for the running Holds and Releases to finish.
func (w *watcher) drain() {
	go func() {
		w.wg.Wait()
		close(w.results)
	}()
	for range w.results {
	}
}

// hold calls Holder.Hold (or Holder.TakeOver) and records the outcome.
func (n *Node) hold(ctx context.Context, p string, takeover bool) error {
	wasHeld := n.isHeld(p)
	hold := n.holder.Hold
	if takeover {
		hold = n.holder.TakeOver
	}
	err := hold(ctx, p)
	n.setHeld(p, err == nil)
	if err != nil {
		n.count(func(s *NodeStats) { s.HoldFailures++ })
		return err
	}
	if !wasHeld {
		n.count(func(s *NodeStats) { s.Holds++ })
		n.log.Info("holding pchannel", "pchannel", p, "takeover", takeover)
	}
	return nil
}

func (n *Node) release(ctx context.Context, p string) {
	if err := n.holder.Release(ctx, p); err != nil {
		n.log.Warn("release returned an error", "pchannel", p, "err", err)
	} else {
		n.log.Info("released pchannel", "pchannel", p)
	}
	n.setHeld(p, false)
	n.count(func(s *NodeStats) { s.Releases++ })
}

func (n *Node) isHeld(p string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.held[p]
}

func (n *Node) setHeld(p string, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if on {
		n.held[p] = true
	} else {
		delete(n.held, p)
	}
}

func (n *Node) count(f func(*NodeStats)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f(&n.stats)
}
