package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cairnlog/cairn/infra/objstore"
)

// Balancer assigns pchannels to live nodes and moves them when nodes die,
// get stuck or join (decideAssignments). It is the coordinator's checker: a
// thin driver that reads the records, decides, and applies each change with
// a compare-and-swap.
//
// Any number of Balancers, in any number of processes, may run over one
// store at once: each change is a CAS against the record it read, and a
// node still has to win the lease to hold a pchannel. A Balancer is safe for
// concurrent use; its rounds run one at a time.
type Balancer struct {
	cfg    Config
	rec    records
	leases *Leases
	log    *slog.Logger

	mu      sync.Mutex // serialises rounds; guards the fields below
	assigns *mirror[Assignment]
	nodes   *mirror[Session]
	// known holds the lease records read so far (nil: no record). A lease
	// known to be live stays live until Expires + margin unless released,
	// so a steady pchannel's lease is read again only after that, or when
	// its state or its node's session asks for a fresh look.
	known map[string]*Lease
	// settled: the last round's view was settled (see settled); Run then
	// backs off toward MaxCheckInterval.
	settled bool
	stats   BalancerStats
	changes chan struct{} // Changes
}

// BalancerStats counts what a Balancer did.
type BalancerStats struct {
	Rounds     int64
	Changes    int64 // assignment records written
	Conflicts  int64 // changes lost to a concurrent writer
	LeaseReads int64
	Errors     int64 // rounds that failed
}

// NewBalancer returns a balancer over store. leases supplies the lease
// records and their timing; its layout must be cfg.Layout.
func NewBalancer(cfg Config, store objstore.Store, leases *Leases) (*Balancer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil || leases == nil {
		return nil, errors.New("coordinator: new balancer: nil store or leases")
	}
	if leases.layout != cfg.Layout {
		return nil, fmt.Errorf("coordinator: new balancer: layout %+v differs from the leases' %+v", cfg.Layout, leases.layout)
	}
	return &Balancer{
		cfg:     cfg,
		rec:     records{store: store, timeout: cfg.RequestTimeout, now: cfg.Now},
		leases:  leases,
		log:     cfg.Logger.With("component", "balancer"),
		assigns: newMirror(assignmentCodec(cfg.Layout)),
		nodes:   newMirror(sessionCodec(cfg.Layout)),
		known:   make(map[string]*Lease),
		changes: make(chan struct{}, 1),
	}, nil
}

// Run runs rounds until ctx ends, then returns nil; a failed round is
// logged and the next one tries again. Rounds come every CheckInterval
// while anything is in transit; once a round changed nothing and found
// every pchannel assigned to a live node that holds or parked its lease,
// the pause doubles up to MaxCheckInterval, and falls back to
// CheckInterval as soon as a round sees otherwise. An idle balancer then
// costs a round (two LISTs and a GET of each live node's session) every
// MaxCheckInterval.
func (b *Balancer) Run(ctx context.Context) error {
	wait := b.cfg.CheckInterval
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		changed, err := b.Check(ctx)
		if err != nil && ctx.Err() == nil {
			b.log.Warn("balancer round failed", "err", err)
		}
		wait = nextCheck(wait, err == nil && len(changed) == 0 && b.isSettled(), b.cfg)
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// nextCheck is the pause after a round that waited wait before it:
// doubled up to MaxCheckInterval after a settled round that changed
// nothing, CheckInterval otherwise.
func nextCheck(wait time.Duration, quiet bool, cfg Config) time.Duration {
	if !quiet {
		return cfg.CheckInterval
	}
	return min(2*wait, cfg.MaxCheckInterval)
}

func (b *Balancer) isSettled() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.settled
}

// Changes receives after a round that wrote an assignment change (one
// pending signal at most; the balancer never waits for a receiver): a
// node in the same process polls at once on it (Node.Kick) instead of at
// its backed-off pace.
func (b *Balancer) Changes() <-chan struct{} { return b.changes }

// Check runs one round: it refreshes its view of assignments and sessions,
// reads the leases it needs, decides, and writes the changes. It returns
// the records it changed. Changes lost to a concurrent writer are left to
// the next round.
func (b *Balancer) Check(ctx context.Context) ([]Assignment, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stats.Rounds++
	changed, err := b.round(ctx)
	if len(changed) > 0 {
		select {
		case b.changes <- struct{}{}:
		default:
		}
	}
	if err != nil {
		b.stats.Errors++
		return changed, fmt.Errorf("coordinator: balancer round: %w", err)
	}
	return changed, nil
}

func (b *Balancer) round(ctx context.Context) ([]Assignment, error) {
	b.settled = false
	if err := b.assigns.refresh(ctx, b.rec); err != nil {
		return nil, err
	}
	if err := ensurePChannels(ctx, b.rec, b.cfg, b.assigns); err != nil {
		return nil, err
	}
	if err := b.nodes.refresh(ctx, b.rec); err != nil {
		return nil, err
	}
	view := clusterView{Assignments: b.assigns.all(), Sessions: b.nodes.all(), Leases: make(map[string]*Lease)}
	// One clock reading for the whole round: a cached lease is used only
	// if it is live at now, so deciding at a later reading could call it
	// expired without having read it again. Reads that come after now only
	// make the view newer, which errs toward "live".
	now := b.cfg.Now()
	for _, a := range view.Assignments {
		l, err := b.lease(ctx, a, now)
		if err != nil {
			return nil, err
		}
		view.Leases[a.PChannel] = l
	}
	next := decideAssignments(view, now, b.policy())
	b.settled = len(next) == 0 && settled(view, now, b.policy())
	var applied []Assignment
	for _, a := range next {
		e, ok := b.assigns.get(a.PChannel)
		if !ok {
			continue
		}
		body, err := encodeAssignment(a)
		if err != nil {
			return applied, err
		}
		etag, err := putRecord(ctx, b.rec, assignmentKey(b.cfg.Layout, a.PChannel), body, e.etag, false)
		switch {
		case err == nil:
			b.log.Info("pchannel assignment", "pchannel", a.PChannel, "from_state", e.rec.State, "state", a.State,
				"node", a.Node, "from", a.From, "reason", a.Reason)
			b.assigns.set(a.PChannel, a, etag)
			b.stats.Changes++
			applied = append(applied, a)
		case errors.Is(err, objstore.ErrConflict):
			b.stats.Conflicts++
			b.assigns.stale(a.PChannel)
		case objstore.IsRetryable(err) && ctx.Err() == nil:
			// It may have landed: the next refresh reads the record.
			b.assigns.stale(a.PChannel)
		default:
			return applied, fmt.Errorf("write assignment of %s: %w", a.PChannel, err)
		}
	}
	return applied, nil
}

func (b *Balancer) policy() assignPolicy {
	return assignPolicy{SessionTTL: b.cfg.SessionTTL, StuckTimeout: b.cfg.StuckTimeout, LeaseMargin: b.leases.cfg.Margin,
		Quarantine: quarantineFactor * b.cfg.StuckTimeout}
}

// lease returns the lease record of a's pchannel for this round: a fresh
// read unless the one known is still live and held by the assigned node,
// or was parked by it, and nothing asks for a fresh look (a steady
// pchannel whose node has not stopped). An unassigned pchannel needs no
// lease.
func (b *Balancer) lease(ctx context.Context, a Assignment, now time.Time) (*Lease, error) {
	if a.State == PChannelUnassigned {
		return nil, nil
	}
	cached, ok := b.known[a.PChannel]
	fresh := !ok || a.State != PChannelAssigned ||
		keeper(cached, now, b.leases.cfg.Margin) != a.Node || b.stopped(a.Node)
	if !fresh {
		return cached, nil
	}
	b.stats.LeaseReads++
	l, err := b.leases.Describe(ctx, a.PChannel)
	if errors.Is(err, ErrNoLease) {
		b.known[a.PChannel] = nil
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b.known[a.PChannel] = &l
	return &l, nil
}

// stopped reports whether node's session is known to have stopped.
func (b *Balancer) stopped(node string) bool {
	e, ok := b.nodes.get(node)
	return ok && e.rec.Stopped
}

// Assignments returns every assignment record, freshly read, in pchannel
// order.
func (b *Balancer) Assignments(ctx context.Context) ([]Assignment, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.assigns.refreshRetrying(ctx, b.rec); err != nil {
		return nil, fmt.Errorf("coordinator: assignments: %w", err)
	}
	return b.assigns.all(), nil
}

// Sessions returns every node session record, freshly read, in node order.
func (b *Balancer) Sessions(ctx context.Context) ([]Session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.nodes.refreshRetrying(ctx, b.rec); err != nil {
		return nil, fmt.Errorf("coordinator: sessions: %w", err)
	}
	return b.nodes.all(), nil
}

// Stats returns a copy of the counters.
func (b *Balancer) Stats() BalancerStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// ensurePChannels creates an unassigned record for every configured
// pchannel that the mirror does not hold. A record created concurrently by
// someone else is fine; the next refresh reads it.
func ensurePChannels(ctx context.Context, r records, cfg Config, m *mirror[Assignment]) error {
	for _, p := range cfg.PChannels {
		if _, ok := m.get(p); ok {
			continue
		}
		a := newAssignment(p, r.now())
		body, err := encodeAssignment(a)
		if err != nil {
			return err
		}
		etag, err := putRecord(ctx, r, assignmentKey(cfg.Layout, p), body, "", true)
		switch {
		case err == nil:
			m.set(p, a, etag)
		case errors.Is(err, objstore.ErrExists):
			if err := m.refresh(ctx, r); err != nil {
				return err
			}
		default:
			return fmt.Errorf("create assignment record of %s: %w", p, err)
		}
	}
	return nil
}
