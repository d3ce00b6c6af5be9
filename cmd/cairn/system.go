package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnlog/cairn/coordinator"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/snapshot"
)

// systemOptions are serve's settings for the parts beside the HTTP API.
type systemOptions struct {
	flushInterval time.Duration // how often a held pchannel's flusher looks at its WAL
	flushMaxAge   time.Duration // flush once the oldest unflushed message is this old
	gcInterval    time.Duration // how often snapshot GC runs
	// compactMinRefs: a held pchannel's compactor merges segment files once
	// its manifest names this many; 0 runs no compactor.
	compactMinRefs int
	// compactInterval is how often a compactor looks (default the
	// Compactor's, 1 min; tests shorten it).
	compactInterval time.Duration
	// broadcastInterval is how often pending broadcast tasks are resumed.
	broadcastInterval time.Duration
}

// broadcastCollectInterval: the broadcast loop deletes finished tasks past
// their retention (an hour) every ten minutes (a round resumes the pending
// ones, cut at system.BroadcastRoundBudget as the maintenance function's
// is).
const broadcastCollectInterval = 10 * time.Minute

// broadcastIdleInterval: while its last round saw no pending task, the
// broadcast loop looks this often (a LIST), and at once when this process
// submits one; broadcastInterval applies while a task is pending.
const broadcastIdleInterval = time.Minute

// parkedLook: the flusher of a pchannel whose idle writer the pool parked
// (system.Config.IdleRelease) takes the parked tail for the tail, and
// looks at the store itself (a checkpoint GET and a probe of the next
// slot) this often, in case another process wrote meanwhile.
const parkedLook = 5 * time.Minute

// flushCounts counts the flush rounds committed per pchannel by this
// process's flushers: a compactor looks at its manifest only after one.
type flushCounts struct {
	mu sync.Mutex
	m  map[string]*atomic.Uint64
}

func (c *flushCounts) of(p string) *atomic.Uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.m[p]
	if n == nil {
		n = new(atomic.Uint64)
		c.m[p] = n
	}
	return n
}

// local is everything `cairn serve` runs beside the HTTP API, in one
// process: a Balancer (the coordinator's checker), a coordinator.Node whose
// Holder is the API's writer pool (so the node takes the pchannels the
// balancer assigns it, and appends to them land in the same writers), a
// snapshot.Flusher and snapshot.Compactor per held pchannel, a periodic snapshot GC, and a loop
// that resumes pending broadcast tasks with the API server's Broadcaster
// (whose copies go through the same pool). The vchannel registry lives in
// the API server. run stops it all when its
// context ends: the node releases its pchannels (closing their writers,
// which releases the leases) and marks its session stopped.
type local struct {
	sys      *system.System
	cfg      coordinator.Config
	opts     systemOptions
	node     *coordinator.Node
	balancer *coordinator.Balancer
	gc       *snapshot.GC
	// retention applies the retention policies before every GC round.
	retention *snapshot.Retention
	holder    *flushingHolder
	log       *slog.Logger
}

// newLocal builds the parts for srv; nodeID is the node's ID (and must be
// the pool's lease holder name), address where clients reach it.
func newLocal(srv *system.System, cfg coordinator.Config, opts systemOptions, nodeID, address string, log *slog.Logger) (*local, error) {
	// Each part counts its store requests under its own component
	// (cairn_store_requests_total); lease record requests, the writers'
	// renewals included, count as "lease".
	bal, err := coordinator.NewBalancer(cfg, srv.StoreFor("balancer"), srv.Leases())
	if err != nil {
		return nil, err
	}
	gc, err := snapshot.NewGC(snapshot.GCConfig{Layout: cfg.Layout, Reclaimer: srv.Registry(), Trims: srv.Registry(), Logger: log}, srv.StoreFor("gc"))
	if err != nil {
		return nil, err
	}
	flushes := &flushCounts{m: map[string]*atomic.Uint64{}}
	h := &flushingHolder{pool: srv.Pool(), log: log, newFlusher: func(p string) (*snapshot.Flusher, error) {
		// The writer in this process knows the tail: an idle pchannel's
		// flusher looks at the store only when something was appended.
		// A parked pchannel's tail is the one its writer released, but
		// another process may take the released lease: every parkedLook
		// the flusher looks for itself.
		var lastLook time.Time
		tail := func() (uint64, bool) {
			if frontier, _, ok := srv.Pool().Frontier(p); ok {
				return frontier, true
			}
			parked, ok := srv.Pool().ParkedTail(p)
			if now := time.Now(); !ok || now.Sub(lastLook) >= parkedLook {
				lastLook = now
				return 0, false
			}
			return parked, true
		}
		n := flushes.of(p)
		return snapshot.NewFlusher(snapshot.FlushConfig{PChannel: p, Layout: cfg.Layout, Interval: opts.flushInterval,
			MaxAge: opts.flushMaxAge, Logger: log, Positions: srv.Registry(), Tail: tail,
			OnRound: func(snapshot.Round) { n.Add(1) }}, srv.StoreFor("flusher"))
	}, running: map[string]*flusherRun{}}
	if opts.compactMinRefs > 0 {
		h.newCompactor = func(p string) (*snapshot.Compactor, error) {
			return snapshot.NewCompactor(snapshot.CompactConfig{PChannel: p, Layout: cfg.Layout, MinRefs: opts.compactMinRefs, Interval: opts.compactInterval,
				Flushes: flushes.of(p).Load, Logger: log}, srv.StoreFor("compactor"))
		}
	}
	node, err := coordinator.NewNode(cfg, srv.StoreFor("node"), nodeID, address, h)
	if err != nil {
		return nil, err
	}
	ret := srv.Retention()
	return &local{sys: srv, cfg: cfg, opts: opts, node: node, balancer: bal, gc: gc, retention: ret, holder: h, log: log}, nil
}

// run runs the balancer, the node and GC until ctx ends, then waits for
// the node to release its pchannels and for every flusher to stop.
func (s *local) run(ctx context.Context) {
	h := s.holder
	h.ctx = ctx
	var wg sync.WaitGroup
	wg.Add(5)
	go func() {
		defer wg.Done()
		_ = s.balancer.Run(ctx)
	}()
	go func() {
		// The node polls its assignments at a backed-off pace; a change
		// the balancer of this process wrote makes it look at once.
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.balancer.Changes():
				s.node.Kick()
			}
		}
	}()
	go func() {
		defer wg.Done()
		if err := s.node.Run(ctx); err != nil {
			s.log.Error("node stopped", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		t := time.NewTicker(s.opts.gcInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				// Retention trims first, so that GC retires what it trimmed.
				if _, err := s.retention.Apply(ctx); err != nil && ctx.Err() == nil {
					s.log.Warn("retention round failed", "err", err)
				}
				if err := s.gc.Collect(ctx); err != nil && ctx.Err() == nil {
					s.log.Warn("gc round failed", "err", err)
				}
			}
		}
	}()
	go func() {
		defer wg.Done()
		s.runBroadcasts(ctx)
	}()
	wg.Wait()
	h.stopAll()
}

// runBroadcasts resumes the pending broadcast tasks — those whose request
// stopped waiting, or whose process died — every broadcastInterval while
// its last round saw one pending, every broadcastIdleInterval otherwise
// and at once when this process submits one, and deletes the finished ones
// past their retention, until ctx ends. Tasks another run holds are left
// to it.
func (s *local) runBroadcasts(ctx context.Context) {
	b := s.sys.Broadcaster()
	t := time.NewTimer(s.opts.broadcastInterval)
	defer t.Stop()
	lastCollect := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.Submitted():
			// Submitted, maybe run to the end by its request: the next
			// round, a broadcastInterval away, resumes it if not.
			t.Reset(s.opts.broadcastInterval)
			continue
		case <-t.C:
		}
		n, err := b.ResumeWithin(ctx, system.BroadcastRoundBudget)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.Warn("broadcast round failed", "err", err)
		}
		if n > 0 {
			s.log.Info("broadcasts resumed", "finished", n)
		}
		if time.Since(lastCollect) >= broadcastCollectInterval {
			lastCollect = time.Now()
			if n, err := b.Collect(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("broadcast collect failed", "err", err)
			} else if n > 0 {
				s.log.Info("broadcasts collected", "deleted", n)
			}
		}
		if b.Pending() || err != nil {
			t.Reset(s.opts.broadcastInterval)
		} else {
			t.Reset(max(broadcastIdleInterval, s.opts.broadcastInterval))
		}
	}
}

// flushingHolder is the node's coordinator.Holder: the API's writer pool,
// plus a flusher loop and (unless newCompactor is nil) a compactor loop for
// every pchannel it holds.
type flushingHolder struct {
	pool         *system.Pool
	newFlusher   func(pchannel string) (*snapshot.Flusher, error)
	newCompactor func(pchannel string) (*snapshot.Compactor, error) // nil: no compaction
	log          *slog.Logger
	ctx          context.Context // the system's; set before the node runs

	mu      sync.Mutex
	running map[string]*flusherRun // by pchannel
}

type flusherRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Hold opens (or checks) the pchannel's writer, then makes sure its flusher
// (and compactor) runs.
func (h *flushingHolder) Hold(ctx context.Context, pchannel string) error {
	if err := h.pool.Hold(ctx, pchannel); err != nil {
		return err
	}
	return h.startFlusher(pchannel)
}

// TakeOver is Hold for a balancing move: the pool takes the lease over
// from its live holder.
func (h *flushingHolder) TakeOver(ctx context.Context, pchannel string) error {
	if err := h.pool.TakeOver(ctx, pchannel); err != nil {
		return err
	}
	return h.startFlusher(pchannel)
}

// startFlusher makes sure the pchannel's flusher (and compactor) runs.
func (h *flushingHolder) startFlusher(pchannel string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.running[pchannel] != nil || h.ctx.Err() != nil {
		return nil
	}
	f, err := h.newFlusher(pchannel)
	if err != nil {
		return err
	}
	var c *snapshot.Compactor
	if h.newCompactor != nil {
		if c, err = h.newCompactor(pchannel); err != nil {
			return err
		}
	}
	fctx, cancel := context.WithCancel(h.ctx)
	run := &flusherRun{cancel: cancel, done: make(chan struct{})}
	h.running[pchannel] = run
	go func() {
		defer close(run.done)
		var wg sync.WaitGroup
		if c != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = c.Run(fctx) // logs its own failures; returns when fctx ends
			}()
		}
		_ = f.Run(fctx) // likewise
		wg.Wait()
	}()
	h.log.Info("flusher started", "pchannel", pchannel, "compaction", c != nil)
	return nil
}

// Release stops the pchannel's flusher and compactor, then closes its writer (releasing
// the lease).
func (h *flushingHolder) Release(ctx context.Context, pchannel string) error {
	h.stop(pchannel)
	return h.pool.Release(ctx, pchannel)
}

func (h *flushingHolder) stop(pchannel string) {
	h.mu.Lock()
	run := h.running[pchannel]
	delete(h.running, pchannel)
	h.mu.Unlock()
	if run != nil {
		run.cancel()
		<-run.done
	}
}

func (h *flushingHolder) stopAll() {
	h.mu.Lock()
	var ps []string
	for p := range h.running {
		ps = append(ps, p)
	}
	h.mu.Unlock()
	for _, p := range ps {
		h.stop(p)
	}
}

// defaultNodeID names this serve process as a node: "serve-<host>-<pid>",
// the host's name cut to the characters a name may hold.
func defaultNodeID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, host)
	if len(host) > 64 {
		host = host[:64]
	}
	if host == "" {
		host = "local"
	}
	return fmt.Sprintf("serve-%s-%s", host, strconv.Itoa(os.Getpid()))
}
